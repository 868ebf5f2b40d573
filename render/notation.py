"""Display-only SymPy objects for the handout's notation: partial derivatives, adjoints, matrices of names.

These are never evaluated; ``printer.CnnLatexPrinter`` prints them. They let the document
model hold every formula as a SymPy object, so that templates only print.
"""

from __future__ import annotations

import sympy as sp


class Relu1(sp.Function):
    """Display of the ReLU step 1[z > 0]; never evaluated."""

    nargs = 1


class Wins(sp.Function):
    """Display of 1[a is the first maximum of the window that makes p]; never evaluated."""

    nargs = 2


class Softplus(sp.Function):
    """Display of softplus(z) = log(1 + e^z)."""

    nargs = 1


class Sigma(sp.Function):
    """Display of the sigmoid as a function (A2 is printed as a symbol instead)."""

    nargs = 1


class Partial(sp.Function):
    """dN/dD printed as a fraction of partials. Never evaluated."""

    nargs = 2


class Bar(sp.Function):
    """The adjoint of a quantity, \\bar{q} = dL/dq. Never evaluated."""

    nargs = 1


class Hadamard(sp.Function):
    """A ⊙ B, elementwise product of two named matrices."""

    nargs = 2


class Conv(sp.Function):
    """conv(A, B), the valid cross-correlation."""

    nargs = 2


class Reshape(sp.Function):
    """reshape(A, shape of B)."""

    nargs = 2


class Unpool(sp.Function):
    """The max-pool backward: place each entry of A at its window's first argmax."""

    nargs = 1


class Ind(sp.Function):
    """1[condition] for a printed condition (a relational)."""

    nargs = 1


class SumLines(sp.Function):
    """lhs = t1 + t2 + ... broken into lines of ``per_line`` terms: SumLines(lhs, per_line, *terms)."""


class Flow(sp.Function):
    """X --op--> Z1 --op--> ...: Flow(q0, op0, q1, op1, ..., qn), ops as symbols named by their text."""


class Row(sp.Function):
    """Several formulas side by side, spaced apart."""


class Stack(sp.Function):
    """Several rows of formulas, one under the other, centred."""


class Boxed(sp.Function):
    """A value drawn in a box (a max-pool winner in a worked matrix)."""

    nargs = 1


class Between(sp.Function):
    """lo <= x <= hi, a range condition: Between(lo, x, hi). Never evaluated."""

    nargs = 3


class IndexSum(sp.Function):
    """A sum over index ranges, written compactly: IndexSum(body, (i, 0, n - 1), ...) is the sum over
    i < n, ..., outermost index first (the ranges stacked under one sigma). Never evaluated."""


class Spaced(sp.Function):
    """A product of index symbols printed with thin spaces, s i rather than si. Never evaluated."""


class Broken(sp.Function):
    """lhs = rhs with the right-hand side on a line of its own: Broken(lhs, rhs)."""

    nargs = 2


class Lines(sp.Function):
    """An equation too long for one line: Lines(rhs, t1, t2, ...) is t1 + t2 + ... = rhs, one term per line."""


def S(name: str) -> sp.Symbol:
    """A named symbol. >>> S("Z_1")
    Z_1
    """
    return sp.Symbol(name)


def T(name: str) -> sp.Expr:
    """A named matrix, transposed: F^T."""
    return sp.MatrixSymbol(name, 1, 1).T


def chain(*factors) -> sp.Expr:
    """An unevaluated product that keeps the order given (the chain rule reads left to right)."""
    return sp.Mul(*factors, evaluate=False)


def eq(lhs, rhs) -> sp.Eq:
    """An unevaluated equation."""
    return sp.Eq(lhs, rhs, evaluate=False)
