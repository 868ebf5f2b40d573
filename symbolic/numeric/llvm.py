"""Machine code from the same expressions: SymEngine's LLVM backend, level by level.

A program is the inputs, levels of assignments (each atom from its definition, and in the
staged form each stage entry too), and the outputs. Where it can, the program is compiled as
one function, with every atom inlined into the outputs and SymEngine's common-subexpression
elimination sharing the pieces: the seed family at every size up to 28×28. Inlining an atom whose definition holds other atoms nests
them, and deep networks (part3: two conv layers, tanh, softmax) inline into trees of 10¹²
nodes that neither cse nor LLVM get through; ``fuse`` measures that before compiling, and
such programs get one function per level of the staged program instead, whose results feed
the next.

LLVM has no ``log1p``; it is compiled as its own expression: the Taylor series for u < 1/100
(8 terms: the truncation error is below u⁹/9, so under 2e-16 relative) and log(1 + u) above,
where rounding 1 + u costs at most 1.2e-14 relative. The loss tests hold both backends to
1e-13 relative against mpmath over z ∈ [−1800, 1800].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import symengine as se

# Limits of one fused function, measured on the inlined outputs: the tree counted without
# sharing (what a walk that does not remember visits: seed 28×28 4e8, lenet-tiny 2e10, part3
# 5e12) and the distinct nodes, which set the compile time (28×28: 2e4 nodes, 10 s at -O1).
FUSE_TREE = 10**9
FUSE_NODES = 25_000
# -O2 is the default; past this many nodes -O1 compiles no slower and its code ran 10% faster
# (28×28: 25 µs against 28 µs a sample; -O0 compiles 3× faster but runs 3× slower).
O1_NODES = 5_000
# Past the fused limits, one function per level of the staged program (stage entries and
# atoms as variables) up to this many atoms. It ran faster than numpy's staged program at
# every batch (part3, 272 atoms: 8.6 against 14 µs a sample at 10 000 rows, 18 against 373 at
# 32), but its compile time grows faster: the seed at 40×40 (2 888 atoms) took 67 s against
# numpy's 29 s, for 179 against 306 µs a sample.
LEVEL_ATOMS = 1_000
CHUNK = 128  # rows a level-by-level program runs at once
LEVEL_OPT = 1  # per level, -O2 bought nothing measurable over -O1 (part3, a 10-digit softmax net)


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


def inline(steps: Sequence[Sequence[tuple[se.Symbol, se.Expr]]], outputs: Sequence[se.Expr]) -> list[se.Expr]:
    """The outputs with every atom replaced by its definition, itself inlined.

    One substitution per level, over all its expressions at once: SymEngine converts the
    mapping on every call, so a call per atom would cost the square of their number.

    >>> x, a, b = se.symbols("x a b"); inline([[(a, 2 * x)], [(b, a + 1)]], [a * b])
    [2*x*(1 + 2*x)]
    """
    sub: dict = {}
    for level in steps:
        values = se.DenseMatrix(len(level), 1, [e for _, e in level])
        values = values.xreplace(sub) if sub else values
        sub.update(zip((s for s, _ in level), values))
    if not outputs:
        return []
    done = se.DenseMatrix(len(outputs), 1, list(outputs))
    return list(done.xreplace(sub) if sub else done)


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


def sizes(exprs: Sequence[se.Expr]) -> tuple[int, int]:
    """The tree size of ``exprs`` counted without sharing, and their distinct nodes.

    ``x + 1`` is counted twice in the tree, once among the nodes (exp is a power of E):

    >>> x = se.Symbol("x"); sizes([se.exp(x + 1) + (x + 1) ** 2])
    (11, 8)
    """
    memo: dict = {}

    def size(e: se.Expr) -> int:
        hit = memo.get(e)
        if hit is None:
            hit = memo[e] = 1 + sum(size(a) for a in e.args)
        return hit

    return sum(size(e) for e in exprs), len(memo)


Fused = tuple[list[se.Expr], int]  # the inlined outputs and their distinct nodes


def tree_size(steps: Sequence[Sequence[tuple[se.Symbol, se.Expr]]], outputs: Sequence[se.Expr]) -> int:
    """The size the outputs would have with every atom inlined, counted without sharing.

    Counted on the levels, without inlining: each atom's symbol counts as its definition's
    tree. (Walking the inlined trees instead pays for deep equality tests between equal
    subtrees SymEngine built apart.)

    ``a * a`` is ``a**2``: the power, ``x + 1`` (three nodes) and the 2.

    >>> x, a = se.symbols("x a"); tree_size([[(a, x + 1)]], [a * a])
    5
    """
    memo: dict = {}

    def size(e: se.Expr) -> int:
        hit = memo.get(e)
        if hit is None:
            hit = memo[e] = 1 + sum(size(a) for a in e.args)
        return hit

    for level in steps:
        for sym, e in level:
            memo[sym] = size(e)
    return sum(size(e) for e in outputs)


Fused = tuple[list[se.Expr], int]  # the inlined outputs and their distinct nodes


def fuse(steps: Sequence[Sequence[tuple[se.Symbol, se.Expr]]], outputs: Sequence[se.Expr]) -> Fused | None:
    """The outputs with every atom inlined, ready for one function, or None past the limits.

    >>> x, a = se.symbols("x a"); fused, nodes = fuse([[(a, se.Function("log1p")(x))]], [a + 1])
    >>> fused[0].has(se.Function("log1p")(x)), nodes > 3
    (False, True)
    """
    if tree_size(steps, outputs) > FUSE_TREE:
        return None
    memo: dict = {}
    steps = [[(s, rewrite(e, memo)) for s, e in level] for level in steps]
    fused = inline(steps, [rewrite(e, memo) for e in outputs])
    nodes = sizes(fused)[1]
    return (fused, nodes) if nodes <= FUSE_NODES else None


class LLVMProgram:
    """The compiled program: call it with a (batch, len(inputs)) array, get (batch, len(outputs)).

    One function of the ``fused`` outputs (``fuse``) where given, else one per level. It
    pickles (SymEngine's LLVM functions do), which is what the disk cache stores.
    """

    def __init__(
        self,
        inputs: Sequence[se.Symbol],
        steps: Sequence[Sequence[tuple[se.Symbol, se.Expr]]],
        outputs: Sequence[se.Expr],
        fused: Fused | None,
    ) -> None:
        self.n_outputs = len(outputs)
        self.functions: list = []
        self.fused = fused is not None
        if fused is not None:
            exprs, nodes = fused
            opt = 1 if nodes > O1_NODES else 2
            self.functions.append(se.Lambdify(list(inputs), exprs, backend="llvm", cse=True, opt_level=opt))
            return
        memo: dict = {}
        steps = [[(s, rewrite(e, memo)) for s, e in level] for level in steps]
        outputs = [rewrite(e, memo) for e in outputs]
        known = list(inputs)
        for level in steps:
            self.functions.append(se.Lambdify(known, [e for _, e in level], backend="llvm", cse=True, opt_level=LEVEL_OPT))
            known = known + [s for s, _ in level]
        self.functions.append(se.Lambdify(known, list(outputs), backend="llvm", cse=True, opt_level=LEVEL_OPT))

    def one(self, row: np.ndarray) -> np.ndarray:
        """One sample: a contiguous float row of the inputs in, a fresh row of the outputs out."""
        if self.fused:
            return self.functions[0](row)  # the API's one-sample path: no batch reshapes
        return self(row[None, :])[0]

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        if rows.shape[0] == 0:  # SymEngine refuses an empty batch
            return np.zeros((0, self.n_outputs))
        if self.fused:
            return np.asarray(self.functions[0](rows)).reshape(rows.shape[0], self.n_outputs)
        out = np.empty((rows.shape[0], self.n_outputs))
        # Level by level, each level's results are appended to the rows it reads; in chunks of
        # rows, that traffic stays in the cache (part3 at 10 000 rows: 7.5 against 20 µs a row).
        for at in range(0, rows.shape[0], CHUNK):
            part = rows[at : at + CHUNK]
            for f in self.functions[:-1]:
                part = np.concatenate([part, np.asarray(f(part)).reshape(part.shape[0], -1)], axis=1)
            out[at : at + CHUNK] = np.asarray(self.functions[-1](part)).reshape(part.shape[0], -1)
        return out


def compile_llvm(
    inputs: Sequence[se.Symbol],
    steps: Sequence[Sequence[tuple[se.Symbol, se.Expr]]],
    outputs: Sequence[se.Expr],
) -> Callable[[np.ndarray], np.ndarray]:
    """The LLVM counterpart of ``codegen.compile_program``, same calling convention.

    One function where ``fuse`` allows it, else one per level.

    >>> x, a = se.symbols("x a")
    >>> f = compile_llvm([x], [[(a, se.Piecewise((1, se.Gt(x, 0)), (0, True)))]], [a * x + 1])
    >>> f(np.array([[2.0], [-1.0]])).tolist()
    [[3.0], [1.0]]
    """
    return LLVMProgram(inputs, steps, outputs, fuse(steps, outputs))


__all__ = ["LLVMProgram", "available", "compile_llvm", "fuse", "inline", "log1p_expr", "sizes", "tree_size"]
