"""Machine code from the same expressions: SymEngine's LLVM backend, level by level.

A program is the inputs, levels of atom assignments (each atom from its definition), and the
outputs. Small programs are compiled as one function, with every atom inlined into the
outputs and LLVM's common-subexpression elimination sharing the pieces; larger ones as one
function per level, whose results feed the next (inlining would make SymEngine's cse walk an
exponentially large tree).

LLVM has no ``log1p``; it is compiled as its own expression: the Taylor series for u < 1/100
(8 terms: the truncation error is below u⁹/9, so under 2e-16 relative) and log(1 + u) above,
where rounding 1 + u costs at most 1.2e-14 relative. The loss tests hold both backends to
1e-13 relative against mpmath over z ∈ [−1800, 1800].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import symengine as se

INLINE_ATOMS = 128  # up to this many atoms, one fused function (the seed at n = 8 has 74)


def log1p_expr(u: se.Expr) -> se.Expr:
    """log(1 + u) for u >= 0 with full relative precision, in operations LLVM has.

    >>> u = se.Symbol("u"); float(log1p_expr(u).subs({u: se.RealDouble(1e-20)}))
    1e-20
    """
    series = se.Add(*[se.Integer((-1) ** k) * u ** (k + 1) / (k + 1) for k in range(8)])
    return se.Piecewise((series, se.Lt(u, se.Rational(1, 100))), (se.log(1 + u), True))


def rewrite(expr: se.Expr, memo: dict) -> se.Expr:
    """``expr`` with every ``log1p`` replaced by ``log1p_expr`` (the one function LLVM lacks)."""
    expr = se.sympify(expr)
    if not expr.args:
        return expr
    hit = memo.get(expr)
    if hit is not None:
        return hit
    args = [rewrite(a, memo) for a in expr.args]
    if isinstance(expr, se.FunctionSymbol) and expr.get_name() == "log1p":
        out = log1p_expr(args[0])
    elif isinstance(expr, se.Piecewise):
        out = se.Piecewise(*zip(args[0::2], args[1::2]))
    elif hasattr(expr, "func"):
        out = expr.func(*args)
    else:
        out = type(expr)(*args)
    memo[expr] = out
    return out


def available() -> bool:
    """Whether this SymEngine was built with LLVM.

    >>> isinstance(available(), bool)
    True
    """
    try:
        x = se.Symbol("x")
        se.Lambdify([x], [x + 1], backend="llvm")
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


class LLVMProgram:
    """The compiled program: call it with a (batch, len(inputs)) array, get (batch, len(outputs)).

    It pickles (SymEngine's LLVM functions do), which is what the disk cache stores.
    """

    def __init__(
        self,
        inputs: Sequence[se.Symbol],
        steps: Sequence[Sequence[tuple[se.Symbol, se.Expr]]],
        outputs: Sequence[se.Expr],
        opt_level: int = 2,
    ) -> None:
        memo: dict = {}
        steps = [[(s, rewrite(e, memo)) for s, e in level] for level in steps]
        outputs = [rewrite(e, memo) for e in outputs]
        n_atoms = sum(len(level) for level in steps)
        self.n_outputs = len(outputs)
        self.functions: list = []
        if n_atoms <= INLINE_ATOMS:
            sub: dict = {}
            for level in steps:
                for sym, e in level:
                    sub[sym] = se.sympify(e).xreplace(sub) if sub else se.sympify(e)
            fused = [se.sympify(e).xreplace(sub) if sub else se.sympify(e) for e in outputs]
            self.functions.append(se.Lambdify(list(inputs), fused, backend="llvm", cse=True, opt_level=opt_level))
            self.fused = True
        else:
            known = list(inputs)
            for level in steps:
                self.functions.append(se.Lambdify(known, [e for _, e in level], backend="llvm", cse=True, opt_level=opt_level))
                known = known + [s for s, _ in level]
            self.functions.append(se.Lambdify(known, list(outputs), backend="llvm", cse=True, opt_level=opt_level))
            self.fused = False

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        if rows.shape[0] == 0:
            return np.zeros((0, self.n_outputs))
        for f in self.functions[:-1]:
            rows = np.concatenate([rows, np.asarray(f(rows)).reshape(rows.shape[0], -1)], axis=1)
        return np.asarray(self.functions[-1](rows)).reshape(rows.shape[0], -1)


def compile_llvm(
    inputs: Sequence[se.Symbol], steps: Sequence[Sequence[tuple[se.Symbol, se.Expr]]], outputs: Sequence[se.Expr]
) -> Callable[[np.ndarray], np.ndarray]:
    """The LLVM counterpart of ``codegen.compile_program``, same calling convention.

    >>> x, a = se.symbols("x a")
    >>> f = compile_llvm([x], [[(a, se.Piecewise((1, se.Gt(x, 0)), (0, True)))]], [a * x + 1])
    >>> f(np.array([[2.0], [-1.0]])).tolist()
    [[3.0], [1.0]]
    """
    return LLVMProgram(inputs, steps, outputs)


__all__ = ["LLVMProgram", "available", "compile_llvm", "log1p_expr"]
