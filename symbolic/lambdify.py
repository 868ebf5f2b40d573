"""Turn SymEngine expressions into a batched numpy function, with common-subexpression elimination.

SymEngine's ``cse`` finds the shared pieces; each piece becomes one line of generated Python
over numpy arrays (one column of the batch per variable). SymEngine's own ``Lambdify`` does
the same job but its set-up time grows with inputs x outputs, which is minutes at MNIST size.
Sums and products are emitted as flat calls (``_add(a, b, ...)``) so that a 700-term sum does
not become a 700-deep syntax tree.
"""
from __future__ import annotations

import operator
from functools import reduce

import numpy as np
import symengine as se


def _add(*xs):
    return reduce(operator.add, xs)


def _mul(*xs):
    return reduce(operator.mul, xs)


class _Printer:
    def __init__(self, names: dict) -> None:
        self.names = names

    def __call__(self, e) -> str:
        if e in self.names:
            return self.names[e]
        if isinstance(e, se.Integer):
            return f"({int(e)})"
        if isinstance(e, se.Rational):
            p, q = (int(a) for a in e.args) if e.args else map(int, str(e).split("/"))
            return repr(p / q)
        if isinstance(e, se.Number):
            return repr(float(e))
        if isinstance(e, se.Add):
            return "_add(" + ", ".join(self(a) for a in e.args) + ")"
        if isinstance(e, se.Mul):
            return "_mul(" + ", ".join(self(a) for a in e.args) + ")"
        if isinstance(e, se.Pow):
            base, exp = e.args
            return f"({self(base)} ** {self(exp)})"
        raise TypeError(f"cannot lambdify {type(e).__name__}: {e}")


def lambdify(inputs, exprs):
    """A function of a (batch, len(inputs)) array returning a (batch, len(exprs)) array.

    >>> x, y = se.symbols("x y"); f = lambdify([x, y], [x * y + 1, (x + y) ** 2, se.Rational(1, 2)])
    >>> f(np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
    [[3.0, 9.0, 0.5], [13.0, 49.0, 0.5]]
    """
    inputs = [se.sympify(s) for s in inputs]
    exprs = [se.sympify(e) for e in exprs]
    names = {s: f"_V[{i}]" for i, s in enumerate(inputs)}
    reps, reduced = se.cse(exprs) if exprs else ([], [])
    lines = ["def _f(_V):"]
    printer = _Printer(names)
    for i, (sym, value) in enumerate(reps):
        code = printer(value)
        names[sym] = f"_c{i}"
        lines.append(f"    _c{i} = {code}")
    lines.append("    return [" + ", ".join(printer(e) for e in reduced) + "]")
    scope = {"_add": _add, "_mul": _mul}
    exec(compile("\n".join(lines), "<cnn-derive lambdify>", "exec"), scope)  # noqa: S102 - our own generated code
    body = scope["_f"]

    def f(values):
        values = np.asarray(values, dtype=np.float64)
        cols = values.T
        outs = body(cols)
        batch = values.shape[0]
        return np.stack([np.broadcast_to(np.asarray(o, dtype=np.float64), (batch,)) for o in outs], axis=1) if outs else np.zeros((batch, 0))

    return f
