"""The network's non-smooth and named functions, symbolically (SymEngine).

Kink conventions live in how each function is *written*, so that SymEngine's ordinary
differentiation produces them, and the same conditions define the atoms' numeric values:

* ``relu(z) = Piecewise((z, z > 0), (0, True))``: the strict ``>`` makes ReLU'(0) = 0.
* ``leaky_relu(z) = Piecewise((z, z > 0), (slope z, True))``: the derivative at 0 is the slope,
  as in PyTorch.
* ``first_max(v)``: a Piecewise whose first true branch is the first maximum in row-major
  order, so at a tie the whole derivative goes to the first maximum (PyTorch on the CPU).
* ``max_split(v)`` and ``max_all(v)`` are named functions: their value is the maximum, and
  their derivative *is* the convention (equal shares among the maxima; the whole gradient to
  each maximum), through ``atoms``. "all" is not the derivative of any function; it is a
  routing rule, which is why it cannot be written as a Piecewise.
* ``sigmoid``, ``softplus`` and ``lse`` (log-sum-exp) are named smooth functions whose
  derivatives (σ(1 − σ), σ, softmax) ``atoms`` knows; ``lemmas`` proves each one. ``tanh`` is
  SymEngine's own, and so is its derivative 1 − tanh².

SymPy's ``Max`` is not used: it differentiates to ``Heaviside(…)`` with ``Heaviside(0) = 1/2``
and sorts its arguments, so it matches no convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import symengine as se

softplus = se.Function("softplus")
sigmoid = se.Function("sigmoid")
lse = se.Function("lse")
log1p = se.Function("log1p")  # numeric forms only: numpy's log1p keeps the digits log(1 + u) loses
max_split = se.Function("max_split")
max_all = se.Function("max_all")
MAX_FUNCTIONS = {"split": max_split, "all": max_all}
NAMED = ("softplus", "sigmoid", "lse", "log1p", "max_split", "max_all")


def exact(value: float) -> se.Expr:
    """A spec's decimal number as an exact rational (0.1 is 1/10), so proofs stay exact.

    >>> exact(0.1), exact(0.25)
    (1/10, 1/4)
    """
    frac = Fraction(repr(float(value)))
    return se.Rational(frac.numerator, frac.denominator)


def relu_condition(z: se.Expr) -> se.Expr:
    """The condition under which ReLU passes z through; strict, so ReLU'(0) = 0.

    >>> relu_condition(se.Symbol("z"))
    0 < z
    """
    return se.Gt(z, 0)


def relu(z: se.Expr) -> se.Expr:
    """ReLU as a Piecewise whose derivative SymEngine gets right at 0.

    >>> z = se.Symbol("z"); relu(z).diff(z)
    Piecewise((1, 0 < z), (0, True))
    """
    return se.Piecewise((z, relu_condition(z)), (0, True))


def leaky_relu(z: se.Expr, slope: se.Expr) -> se.Expr:
    """Leaky ReLU: z above 0, slope·z at and below it (so its derivative at 0 is the slope).

    >>> z = se.Symbol("z"); leaky_relu(z, se.Rational(1, 10)).diff(z)
    Piecewise((1, 0 < z), (1/10, True))
    """
    return se.Piecewise((z, relu_condition(z)), (slope * z, True))


def first_max_conditions(values: Sequence[se.Expr]) -> tuple:
    """The conditions of the first-wins maximum, one per value but the last.

    Read in order: value i wins when no earlier value won and it is >= every later value.
    Given that the earlier ones lost, some later value is larger than each of them, so value i
    is then also strictly larger than every earlier one: it is the first maximum.

    >>> a, b = se.symbols("a b"); first_max_conditions([a, b])
    (b <= a,)
    """
    values = list(values)
    return tuple(se.And(*[se.Ge(values[i], values[j]) for j in range(i + 1, len(values))]) for i in range(len(values) - 1))


def first_max(values: Sequence[se.Expr]) -> se.Expr:
    """The maximum of ``values`` as a Piecewise that picks the first maximum at a tie.

    >>> a, b = se.symbols("a b"); first_max([a, b]).diff(a)
    Piecewise((1, b <= a), (0, True))
    """
    values = list(values)
    if len(values) == 1:
        return values[0]
    conds = first_max_conditions(values)
    return se.Piecewise(*zip(values[:-1], conds), (values[-1], True))


def is_max_condition(values: Sequence[se.Expr], i: int) -> se.Expr:
    """Value i is a maximum (not necessarily the first): >= every other value.

    >>> a, b = se.symbols("a b"); is_max_condition([a, b], 1)
    a <= b
    """
    return se.And(*[se.Ge(values[i], v) for j, v in enumerate(values) if j != i])


def window_max(values: Sequence[se.Expr], ties: str) -> se.Expr:
    """The maximum of a pooling window under a tie convention: "first", "split" or "all".

    >>> a, b = se.symbols("a b"); window_max([a, b], "split")
    max_split(a, b)
    """
    values = list(values)
    if ties == "first" or len(values) == 1:
        return first_max(values)
    return MAX_FUNCTIONS[ties](*values)


__all__ = [
    "MAX_FUNCTIONS",
    "exact",
    "first_max",
    "first_max_conditions",
    "is_max_condition",
    "leaky_relu",
    "log1p",
    "lse",
    "relu",
    "relu_condition",
    "sigmoid",
    "softplus",
    "window_max",
]
