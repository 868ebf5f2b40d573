"""Atoms: named stand-ins for the non-smooth pieces, and the canonical form built from them.

SymEngine differentiates the Piecewise network exactly but leaves its answer as nested
Piecewise expressions, which do not cancel against anything. ``Atoms.canon`` rewrites them
with one exact identity: a Piecewise whose branches are tried in order equals
``sum_i piece_i * sel_i`` where ``sel_i`` is 1 exactly when branch i is the first true one.
Each ``sel_i`` is an atom, a plain symbol:

* ``step``    1[z > 0], the ReLU selector (its other branch selects with ``1 - step``);
* ``select``  1[value i is the first maximum of its pooling window];
* ``sigmoid`` sigmoid(u), from the derivative of ``softplus`` (``SOFTPLUS' = sigmoid``);
* ``softplus`` softplus(u) itself, so the loss has a numeric form too.

After the rewrite everything is a polynomial (or rational function) in named entries and
atoms, and an identity proven with the atoms as free symbols holds for every value they take:
in particular for the 0/1 values they take at a point, ties and kinks included.
"""
from __future__ import annotations

from dataclasses import dataclass

import symengine as se

from symbolic.functions import first_max_conditions, relu_condition, softplus


@dataclass(frozen=True)
class Atom:
    """One atom: its symbol, what kind of quantity it is, and the raw expressions it depends on.

    ``label`` names the quantities for printing, e.g. ``("z_11",)`` for 1[z_11 > 0] or
    ``("a_12", "p_11")`` for "a_12 is the first max of the window that makes p_11".
    """

    symbol: se.Symbol
    kind: str
    args: tuple
    position: int
    label: tuple


class Atoms:
    """The registry of atoms of one network build, in creation (forward) order.

    >>> atoms = Atoms(); z = se.Symbol("z_11")
    >>> s = atoms.step(z, label="z_11"); atoms.canon(se.Piecewise((z, se.Gt(z, 0)), (0, True))) == z * s
    True
    """

    def __init__(self) -> None:
        self.by_symbol: dict = {}
        self._selectors: dict = {}   # tuple of Piecewise conditions -> tuple of selector expressions
        self._unary: dict = {}       # (kind, arg) -> atom symbol
        self._memo: dict = {}

    # -- creating atoms ---------------------------------------------------------------------
    def _new(self, kind, args, position, label):
        sym = se.Symbol(f"_atom{len(self.by_symbol)}")
        self.by_symbol[sym] = Atom(sym, kind, tuple(args), position, tuple(label))
        return sym

    def step(self, z, label):
        """The atom 1[z > 0]; the same z gives the same atom."""
        key = (relu_condition(z),)
        if key not in self._selectors:
            s = self._new("step", (z,), 0, (label,))
            self._selectors[key] = (s, 1 - s)
            self._unary["step", z] = s
        return self._unary["step", z]

    def selectors(self, values, labels, window_label):
        """The first-max selectors of one pooling window, one per value, in row-major order."""
        values = list(values)
        if len(values) == 1:
            return (se.Integer(1),)
        key = first_max_conditions(values)
        if key not in self._selectors:
            self._selectors[key] = tuple(
                self._new("select", values, i, (labels[i], window_label)) for i in range(len(values))
            )
        return self._selectors[key]

    def _unary_atom(self, kind, u, label):
        if (kind, u) not in self._unary:
            self._unary[kind, u] = self._new(kind, (u,), 0, (label,))
        return self._unary[kind, u]

    def sigmoid(self, u, label="Z_2"):
        """The atom sigmoid(u)."""
        return self._unary_atom("sigmoid", u, label)

    def softplus(self, u, label="Z_2"):
        """The atom softplus(u) = log(1 + exp(u))."""
        return self._unary_atom("softplus", u, label)

    # -- the canonical form -----------------------------------------------------------------
    def canon(self, expr):
        """``expr`` with every Piecewise, softplus and softplus' replaced by atoms (exactly).

        Raises KeyError for a Piecewise whose conditions no layer registered: a silent
        fallback could let two sides of a proof disagree on what an atom means.
        """
        expr = se.sympify(expr)
        memo = self._memo
        hit = memo.get(expr)
        if hit is not None:
            return hit
        out = self._canon(expr)
        memo[expr] = out
        return out

    def _canon(self, expr):
        if isinstance(expr, (se.Symbol, se.Number)) or not expr.args:
            return expr
        if isinstance(expr, se.Piecewise):
            args = expr.args
            pieces, conds = args[0::2], args[1::2]
            sel = self._selectors[tuple(conds[:-1])]
            return se.Add(*[self.canon(p) * s for p, s in zip(pieces, sel) if p != 0])
        if isinstance(expr, se.Subs):
            deriv, _, point = expr.args
            if isinstance(deriv, se.Derivative) and deriv.args[0].get_name() == "softplus":
                return self.sigmoid(point)
            raise KeyError(f"no derivative rule for {deriv}")
        if isinstance(expr, se.Derivative):
            f, var = expr.args[0], expr.args[1]
            if isinstance(f, se.FunctionSymbol) and f.get_name() == "softplus" and f.args == (var,):
                return self.sigmoid(var)
            raise KeyError(f"no derivative rule for {expr}")
        if isinstance(expr, se.FunctionSymbol):
            if expr.get_name() == "softplus":
                return self.softplus(expr.args[0])
            raise KeyError(f"unknown function {expr}")
        if isinstance(expr, se.Add):
            return se.Add(*[self.canon(a) for a in expr.args])
        if isinstance(expr, se.Mul):
            return se.Mul(*[self.canon(a) for a in expr.args])
        if isinstance(expr, se.Pow):
            return se.Pow(self.canon(expr.args[0]), self.canon(expr.args[1]))
        raise KeyError(f"cannot put {type(expr).__name__} into canonical form: {expr}")


def is_zero(expr) -> bool:
    """An exact proof obligation: the expanded expression is the number 0.

    >>> x = se.Symbol("x"); is_zero((x + 1) ** 2 - x**2 - 2 * x - 1)
    True
    """
    return se.expand(expr) == 0


__all__ = ["Atom", "Atoms", "is_zero", "softplus"]
