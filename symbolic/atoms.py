"""Atoms: named stand-ins for the non-smooth and transcendental pieces, and the canonical form.

SymEngine differentiates the raw network exactly but leaves Piecewise expressions and
derivatives of named functions in its answer, which do not cancel against anything.
``Atoms.canon`` rewrites them with exact identities:

* a Piecewise whose branches are tried in order equals ``sum_i piece_i * sel_i``, where
  ``sel_i`` is 1 exactly when branch i is the first true one;
* a named function becomes its atom (``sigmoid(u)``, ``tanh(u)``, ``softplus(u)``,
  ``lse(z)``, the window maximum), and a derivative of one becomes what ``lemmas`` proves it
  is: softplus' = σ, σ' = σ(1 − σ), ∂lse/∂z_k = softmax_k; the window maxima of the "split" and
  "all" conventions differentiate to their convention's selectors by definition.

Each atom is a plain symbol, so an identity proven with the atoms free holds for every value
they take: the 0/1 values at ties and kinks included. Each atom also has a *definition*, an
expression in the canonical form of its arguments built from the very conditions the
forward pass uses; every number cnn-derive prints evaluates atoms through these definitions,
so a convention is written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import symengine as se

from symbolic.functions import first_max, first_max_conditions, is_max_condition, log1p, relu_condition

SELECT_KINDS = ("first", "split", "all")


@dataclass(frozen=True)
class Atom:
    """One atom: its symbol, kind, the raw expressions it depends on, and labels for printing.

    ``kind`` is "step" (1[z > 0]), "first" / "split" / "all" (a pooling window's selector under
    that tie convention), "max" (a window's value under split or all), "sigmoid", "tanh",
    "softplus", "softmax" or "lse". ``label`` names the quantities: ``("z_11",)`` for
    1[z_11 > 0], ``("a_12", "p_11")`` for "a_12 routes to p_11".
    """

    symbol: se.Symbol
    kind: str
    args: tuple
    position: int
    label: tuple

    @property
    def is_selector(self) -> bool:
        """True for the pooling selectors of every tie convention."""
        return self.kind in SELECT_KINDS


class Atoms:
    """The registry of atoms of one network build, in creation (forward) order.

    >>> atoms = Atoms(); z = se.Symbol("z_11")
    >>> s = atoms.step(z, label="z_11"); atoms.canon(se.Piecewise((z, se.Gt(z, 0)), (0, True))) == z * s
    True
    """

    def __init__(self) -> None:
        self.by_symbol: dict[se.Symbol, Atom] = {}
        self._piecewise: dict[tuple, tuple] = {}  # Piecewise conditions -> selector expressions
        self._keyed: dict[tuple, se.Symbol] = {}  # (kind, args, position) -> atom
        self._memo: dict = {}

    def _atom(self, kind: str, args: Sequence, position: int, label: Sequence[str]) -> se.Symbol:
        key = (kind, tuple(args), position)
        hit = self._keyed.get(key)
        if hit is None:
            hit = se.Symbol(f"_atom{len(self.by_symbol)}")
            self.by_symbol[hit] = Atom(hit, kind, tuple(args), position, tuple(label))
            self._keyed[key] = hit
        return hit

    def lookup(self, kind: str, args: Sequence, position: int = 0) -> se.Symbol:
        """The atom registered for ``(kind, args, position)``; KeyError if the forward never made it."""
        return self._keyed[kind, tuple(args), position]

    # -- creating atoms (layers call these in their forward) ---------------------------------
    def step(self, z: se.Expr, label: str) -> se.Symbol:
        """The atom 1[z > 0]; the same z gives the same atom."""
        s = self._atom("step", (z,), 0, (label,))
        self._piecewise.setdefault((relu_condition(z),), (s, 1 - s))
        return s

    def window(self, values: Sequence[se.Expr], ties: str, labels: Sequence[str], window_label: str) -> tuple:
        """The selectors of one pooling window under a tie convention, one per value, row-major."""
        values = tuple(values)
        if len(values) == 1:
            return (se.Integer(1),)
        sel = tuple(self._atom(ties, values, i, (labels[i], window_label)) for i in range(len(values)))
        if ties == "first":
            self._piecewise.setdefault(first_max_conditions(values), sel)
        else:
            self._atom("max", values, 0, (window_label,))
        return sel

    def unary(self, kind: str, u: se.Expr, label: str) -> se.Symbol:
        """The atom ``kind(u)`` for kind "sigmoid", "tanh" or "softplus"."""
        return self._atom(kind, (u,), 0, (label,))

    def softmax(self, z: Sequence[se.Expr], labels: Sequence[str], label: str) -> tuple:
        """The softmax atoms of a logit vector, and (registered alongside) its log-sum-exp."""
        z = tuple(z)
        self._atom("lse", z, 0, (label,))
        return tuple(self._atom("softmax", z, k, (labels[k],)) for k in range(len(z)))

    # -- the canonical form -------------------------------------------------------------------
    def canon(self, expr: se.Expr) -> se.Expr:
        """``expr`` with every Piecewise and named function replaced by atoms (exactly).

        Raises KeyError for a Piecewise or function no layer registered: a silent fallback
        could let two sides of a proof disagree on what an atom means.
        """
        expr = se.sympify(expr)
        hit = self._memo.get(expr)
        if hit is None:
            hit = self._canon(expr)
            self._memo[expr] = hit
        return hit

    def _canon(self, expr: se.Expr) -> se.Expr:
        if isinstance(expr, (se.Symbol, se.Number)) or not expr.args:
            return expr
        if isinstance(expr, se.Piecewise):
            args = expr.args
            pieces, conds = args[0::2], args[1::2]
            sel = self._piecewise[tuple(conds[:-1])]
            return se.Add(*[self.canon(p) * s for p, s in zip(pieces, sel) if p != 0])
        if isinstance(expr, (se.Subs, se.Derivative)):
            return self._derivative(expr)
        if isinstance(expr, se.tanh):
            return self.lookup("tanh", expr.args)
        if isinstance(expr, se.FunctionSymbol):
            name = expr.get_name()
            if name in ("max_split", "max_all"):
                return self.lookup("max", expr.args)
            return self.lookup(name, expr.args)
        if isinstance(expr, se.Add):
            return se.Add(*[self.canon(a) for a in expr.args])
        if isinstance(expr, se.Mul):
            return se.Mul(*[self.canon(a) for a in expr.args])
        if isinstance(expr, se.Pow):
            return se.Pow(self.canon(expr.args[0]), self.canon(expr.args[1]))
        raise KeyError(f"cannot put {type(expr).__name__} into canonical form: {expr}")

    def _derivative(self, expr: se.Expr) -> se.Expr:
        """A derivative of a named function at a point, by the table that ``lemmas`` proves."""
        if isinstance(expr, se.Subs):
            deriv, var, point = expr.args
            f = deriv.args[0]
            position = f.args.index(var)
            args = tuple(point if a == var else a for a in f.args)
        else:
            f, var = expr.args[0], expr.args[1]
            if list(f.args).count(var) != 1:
                raise KeyError(f"no derivative rule for {expr}")
            position, args = f.args.index(var), tuple(f.args)
        name = f.get_name() if isinstance(f, se.FunctionSymbol) else ""
        if name == "softplus":
            return self.lookup("sigmoid", args)
        if name == "sigmoid":
            s = self.lookup("sigmoid", args)
            return s * (1 - s)
        if name == "lse":
            return self.lookup("softmax", args, position)
        if name in ("max_split", "max_all"):
            return self.lookup(name[4:], args, position)
        raise KeyError(f"no derivative rule for {expr}")

    # -- what each atom is, numerically ---------------------------------------------------------
    def definition(self, symbol: se.Symbol) -> se.Expr:
        """The atom as an expression in the canonical form of its arguments (for numbers).

        >>> atoms = Atoms(); z = se.Symbol("z"); s = atoms.step(z, "z")
        >>> atoms.definition(s)
        Piecewise((1, 0 < z), (0, True))
        """
        atom = self.by_symbol[symbol]
        args = [self.canon(a) for a in atom.args]
        return DEFINITIONS[atom.kind](args, atom.position)


def _select_first(v: list, i: int) -> se.Expr:
    conds = first_max_conditions(v)
    branches = [(se.Integer(0), c) for c in conds[:i]]
    branches.append((se.Integer(1), conds[i] if i < len(conds) else se.true))
    if i < len(conds):
        branches.append((se.Integer(0), se.true))
    return se.Piecewise(*branches)


def _indicator(cond: se.Expr) -> se.Expr:
    return se.Piecewise((1, cond), (0, True))


def _select_split(v: list, i: int) -> se.Expr:
    return _indicator(is_max_condition(v, i)) / se.Add(*[_indicator(is_max_condition(v, j)) for j in range(len(v))])


def _select_all(v: list, i: int) -> se.Expr:
    return _indicator(is_max_condition(v, i))


def _sigmoid(v: list, _: int) -> se.Expr:
    # exp is only ever taken of -|u|, so neither branch overflows where it is chosen.
    u = v[0]
    return se.Piecewise((1 / (1 + se.exp(-u)), se.Ge(u, 0)), (se.exp(u) / (1 + se.exp(u)), True))


def _softplus(v: list, _: int) -> se.Expr:
    u = v[0]
    return se.Piecewise((u + log1p(se.exp(-u)), se.Gt(u, 0)), (log1p(se.exp(u)), True))


def _softmax(v: list, k: int) -> se.Expr:
    m = first_max(v)
    return se.exp(v[k] - m) / se.Add(*[se.exp(x - m) for x in v])


def _lse(v: list, _: int) -> se.Expr:
    m = first_max(v)
    return m + se.log(se.Add(*[se.exp(x - m) for x in v]))


DEFINITIONS = {
    "step": lambda v, _: _indicator(relu_condition(v[0])),
    "first": _select_first,
    "split": _select_split,
    "all": _select_all,
    "max": lambda v, _: first_max(v),
    "sigmoid": _sigmoid,
    "tanh": lambda v, _: se.tanh(v[0]),
    "softplus": _softplus,
    "softmax": _softmax,
    "lse": _lse,
}


def is_zero(expr: se.Expr) -> bool:
    """An exact proof obligation: the expanded expression is the number 0.

    >>> x = se.Symbol("x"); is_zero((x + 1) ** 2 - x**2 - 2 * x - 1)
    True
    """
    return se.expand(expr) == 0


__all__ = ["DEFINITIONS", "SELECT_KINDS", "Atom", "Atoms", "is_zero"]
