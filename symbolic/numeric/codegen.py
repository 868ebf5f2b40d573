"""Straight-line numpy code from SymEngine expressions, with common-subexpression elimination.

One generated function computes, in order, every atom from its definition (Piecewise
conditions included: the same conditions the forward pass is written with) and then every
output. SymEngine's ``cse`` finds the shared pieces within each level of atoms and within the
outputs; each piece becomes one line over numpy arrays (one entry per sample). Sums and
products are emitted as flat calls so that a 700-term sum is not a 700-deep syntax tree.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from functools import reduce

import numpy as np
import symengine as se


def _add(*xs: np.ndarray) -> np.ndarray:
    return reduce(operator.add, xs)


def _mul(*xs: np.ndarray) -> np.ndarray:
    return reduce(operator.mul, xs)


def _and(*xs: np.ndarray) -> np.ndarray:
    return reduce(operator.and_, xs)


_FUNCTIONS = {"exp": "np.exp", "log": "np.log", "log1p": "np.log1p", "tanh": "np.tanh", "Abs": "np.abs"}
_RELATIONS = {se.StrictLessThan: "<", se.LessThan: "<=", se.Equality: "==", se.Unequality: "!="}


class NumpyPrinter:
    """SymEngine expression -> Python source over numpy arrays; ``names`` maps symbols to variables."""

    def __init__(self, names: dict) -> None:
        self.names = names

    def __call__(self, e: se.Expr) -> str:
        hit = self.names.get(e)
        if hit is not None:
            return hit
        if isinstance(e, se.Integer):
            return f"{float(int(e))!r}"
        if isinstance(e, se.Rational):
            return repr(float(e))
        if isinstance(e, se.Number):
            return repr(float(e))
        if e == se.true or e == se.false:
            return "True" if e == se.true else "False"
        if isinstance(e, se.Add):
            return "_add(" + ", ".join(self(a) for a in e.args) + ")"
        if isinstance(e, se.Mul):
            return "_mul(" + ", ".join(self(a) for a in e.args) + ")"
        if isinstance(e, se.Pow):
            base, exp = e.args
            if base == se.E:
                return f"np.exp({self(exp)})"
            if exp == -1:
                return f"(1.0 / {self(base)})"
            if exp == 2:
                b = self(base)
                return f"({b} * {b})"
            return f"({self(base)} ** {self(exp)})"
        if isinstance(e, se.Piecewise):
            args = e.args
            out = self(args[-2]) if args[-1] == se.true else "np.nan"
            for piece, cond in reversed(list(zip(args[0::2], args[1::2]))[: len(args) // 2 - (args[-1] == se.true)]):
                out = f"np.where({self(cond)}, {self(piece)}, {out})"
            return out
        if isinstance(e, se.And):
            return "_and(" + ", ".join(self(a) for a in e.args) + ")"
        for cls, op in _RELATIONS.items():
            if isinstance(e, cls):
                lhs, rhs = e.args
                return f"({self(lhs)} {op} {self(rhs)})"
        name = type(e).__name__ if not isinstance(e, se.FunctionSymbol) else e.get_name()
        if name in _FUNCTIONS:
            return f"{_FUNCTIONS[name]}({self(e.args[0])})"
        raise TypeError(f"cannot turn {type(e).__name__} into numpy code: {e}")


def compile_program(
    inputs: Sequence[se.Symbol], steps: Sequence[Sequence[tuple[se.Symbol, se.Expr]]], outputs: Sequence[se.Expr]
) -> NumpyProgram:
    """A function of a (batch, len(inputs)) array returning a (batch, len(outputs)) array.

    ``steps`` are levels of assignments (symbol, expression): each level may use the inputs
    and the symbols of earlier levels.

    >>> x, y, a = se.symbols("x y a")
    >>> f = compile_program([x, y], [[(a, se.Piecewise((1, se.Gt(x, 0)), (0, True)))]], [a * y + 1, se.Rational(1, 2)])
    >>> f(np.array([[1.0, 2.0], [-1.0, 3.0]])).tolist()
    [[3.0, 0.5], [1.0, 0.5]]
    """
    names: dict = {se.sympify(s): f"_V[{i}]" for i, s in enumerate(inputs)}
    printer = NumpyPrinter(names)
    lines = ["def _f(_V, _O):"]
    counter = 0

    def emit(exprs: list) -> list[str]:
        nonlocal counter
        if not exprs:
            return []
        reps, reduced = se.cse(exprs)
        for sym, value in reps:
            code = printer(value)
            names[sym] = f"_c{counter}"
            lines.append(f"    _c{counter} = {code}")
            counter += 1
        return [printer(e) for e in reduced]

    for level, assignments in enumerate(steps):
        codes = emit([se.sympify(e) for _, e in assignments])
        for k, ((sym, _), code) in enumerate(zip(assignments, codes)):
            var = f"_a{level}_{k}"
            lines.append(f"    {var} = {code}")
            names[se.sympify(sym)] = var
    for k, code in enumerate(emit([se.sympify(e) for e in outputs])):
        lines.append(f"    _O[{k}] = {code}")
    lines.append("    return _O")
    return NumpyProgram("\n".join(lines), len(outputs))


class NumpyProgram:
    r"""The generated source and the function it defines; it pickles as its source (for the disk cache).

    >>> f = NumpyProgram("def _f(_V, _O):\n    _O[0] = _add(_V[0], _V[1])\n    return _O", 1)
    >>> f(np.array([[1.0, 2.0]])).tolist()
    [[3.0]]
    """

    def __init__(self, source: str, n_outputs: int) -> None:
        self.source = source
        self.n_outputs = n_outputs
        self._body = self._compile()

    def _compile(self) -> Callable:
        scope = {"_add": _add, "_mul": _mul, "_and": _and, "np": np}
        exec(compile(self.source, "<cnn-derive numpy>", "exec"), scope)  # noqa: S102 - our own generated code
        return scope["_f"]

    def __getstate__(self) -> dict:
        return {"source": self.source, "n_outputs": self.n_outputs}

    def __setstate__(self, state: dict) -> None:
        self.source, self.n_outputs = state["source"], state["n_outputs"]
        self._body = self._compile()

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        # One contiguous array per variable: numpy's fastest layout for elementwise work.
        columns = np.ascontiguousarray(np.asarray(rows, dtype=np.float64).T)
        out = np.empty((self.n_outputs, columns.shape[1]))
        with np.errstate(all="ignore"):  # branches not taken may overflow; np.where discards them
            return self._body(columns, out).T


__all__ = ["NumpyPrinter", "NumpyProgram", "compile_program"]
