"""Lemmas the proofs rely on, each proven exactly in SymPy, and the tie and kink conventions.

Three families:

* **Derivative table.** ``atoms`` replaces the derivative of a named function by an atom
  expression: softplus' = σ, σ' = σ(1 − σ), ∂lse/∂z_k = softmax_k. Each entry is proven here
  from the function's definition (t = exp(z) turns them into rational identities).
* **Losses and stable forms.** The loss the network *actually builds* (taken from the loss
  layer's forward) equals the textbook loss, and the form numbers are computed from equals it
  too, branch by branch.
* **Conventions.** Each atom's definition, evaluated at exact rational points (ties, zeros),
  gives the stated value: ReLU'(0) = 0, leaky'(0) = slope, first / split / all selectors.
  These are the obligations that catch a ``>=`` for ``>`` or a last-max for a first-max.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import symengine as se
import sympy as sp

from symbolic.atoms import Atoms
from symbolic.functions import exact
from symbolic.layers import Context, Layer
from symbolic.layers.loss import Loss


@dataclass(frozen=True)
class Lemma:
    """A named claim and the function that proves it (True only for an exact identity)."""

    name: str
    statement: str
    prove: Callable[[], bool]


def _to_sympy(expr: se.Expr) -> sp.Expr:
    """A SymEngine expression in SymPy, with our named functions as SymPy's own."""
    out = sp.sympify(expr)
    repl = {
        sp.Function("softplus"): lambda u: sp.log(1 + sp.exp(u)),
        sp.Function("sigmoid"): lambda u: 1 / (1 + sp.exp(-u)),
        sp.Function("log1p"): lambda u: sp.log(1 + u),
        sp.Function("lse"): lambda *z: sp.log(sp.Add(*[sp.exp(x) for x in z])),
    }
    return out.replace(lambda e: isinstance(e, sp.core.function.AppliedUndef) and e.func in repl, lambda e: repl[e.func](*e.args))


def _equal_logs(a: sp.Expr, b: sp.Expr, z: sp.Symbol) -> bool:
    """a = b for expressions in z built from log and exp: with t = e^z both become functions of
    t whose derivatives are rational, so ``cancel`` decides their equality exactly, and equal
    derivatives plus equal values at t = 1 (z = 0) make equal functions."""
    t = sp.Symbol("t", positive=True)
    at = {z: sp.log(t)}
    fa, fb = sp.expand_log(a.subs(at), force=True), sp.expand_log(b.subs(at), force=True)
    same_slope = sp.cancel(sp.diff(fa, t) - sp.diff(fb, t)) == 0
    same_start = sp.expand(sp.expand_log(fa.subs(t, 1) - fb.subs(t, 1), force=True)) == 0
    return bool(same_slope and same_start)


def _rational_in_exp(expr: sp.Expr, zs: list) -> bool:
    """expr = 0 exactly, for an expression rational in e^z: with t = e^z, ``cancel`` decides it."""
    ts = [sp.Symbol(f"t{i}", positive=True) for i in range(len(zs))]
    rational = expr.subs({z: sp.log(t) for z, t in zip(zs, ts)})
    return sp.cancel(sp.expand(rational)) == 0


# -- the derivative table -----------------------------------------------------------------------


_DEFINED = {
    "sigmoid": lambda a: 1 / (1 + sp.exp(-a[0])),
    "softplus": lambda a: sp.log(1 + sp.exp(a[0])),
    "tanh": lambda a: (sp.exp(a[0]) - sp.exp(-a[0])) / (sp.exp(a[0]) + sp.exp(-a[0])),
    "softmax": None,  # filled per position below
}


def _table_entry(atoms: Atoms, expr: se.Expr) -> sp.Expr:
    """What the atoms' derivative table makes of ``expr``, with every atom by its mathematical definition."""
    canon = sp.sympify(atoms.canon(expr))
    defs = {}
    for sym, atom in atoms.by_symbol.items():
        args = [sp.sympify(a) for a in atom.args]
        if atom.kind == "softmax":
            defs[sp.sympify(sym)] = sp.exp(args[atom.position]) / sp.Add(*[sp.exp(x) for x in args])
        elif atom.kind in _DEFINED:
            defs[sp.sympify(sym)] = _DEFINED[atom.kind](args)
    return canon.subs(defs)


def softplus_derivative() -> bool:
    """The table's softplus′ (the sigmoid atom) is d/dz log(1 + e^z).

    >>> softplus_derivative()
    True
    """
    from symbolic.functions import softplus

    z = se.Symbol("z")
    atoms = Atoms()
    atoms.unary("sigmoid", z, "s")
    atoms.unary("softplus", z, "p")
    table = _table_entry(atoms, softplus(z).diff(z))
    zz = sp.Symbol("z")
    return _rational_in_exp(table - sp.diff(sp.log(1 + sp.exp(zz)), zz), [zz])


def sigmoid_derivative() -> bool:
    """The table's σ′ (σ(1 − σ) in the sigmoid atom) is d/dz of σ(z) = 1 / (1 + e^-z).

    >>> sigmoid_derivative()
    True
    """
    from symbolic.functions import sigmoid

    z = se.Symbol("z")
    atoms = Atoms()
    atoms.unary("sigmoid", z, "s")
    table = _table_entry(atoms, sigmoid(z).diff(z))
    zz = sp.Symbol("z")
    return _rational_in_exp(table - sp.diff(1 / (1 + sp.exp(-zz)), zz), [zz])


def lse_derivative(m: int = 3) -> bool:
    """The table's ∂lse/∂z_k (the softmax atom k) is ∂/∂z_k log Σ_j e^{z_j}, for every k (here m = 3
    logits; the argument does not depend on m: each partial derivative touches one term of the sum).

    >>> lse_derivative()
    True
    """
    from symbolic.functions import lse

    z = [se.Symbol(f"z{k}") for k in range(m)]
    atoms = Atoms()
    atoms.softmax(z, [f"a{k}" for k in range(m)], "L")
    zs = [sp.Symbol(f"z{k}") for k in range(m)]
    total = sp.Add(*[sp.exp(x) for x in zs])
    return all(_rational_in_exp(_table_entry(atoms, lse(*z).diff(zk)) - sp.diff(sp.log(total), zz), zs) for zk, zz in zip(z, zs))


def tanh_derivative() -> bool:
    """tanh' = 1 − tanh², which SymEngine uses; checked in SymPy from tanh = (e^z − e^-z)/(e^z + e^-z).

    >>> tanh_derivative()
    True
    """
    z = sp.Symbol("z")
    t = (sp.exp(z) - sp.exp(-z)) / (sp.exp(z) + sp.exp(-z))
    return (
        _rational_in_exp(sp.diff(t, z) - (1 - t**2), [z])
        and se.tanh(se.Symbol("z")).diff(se.Symbol("z")) == 1 - se.tanh(se.Symbol("z")) ** 2
    )


# -- the losses the network builds, and their stable forms ------------------------------------------


def _loss_on_symbols(loss: Loss, units: int) -> tuple[sp.Expr, sp.Expr, list, list]:
    """The loss layer's own forward and numeric form on fresh symbols z, y (one sample), in SymPy."""
    z = np.array([[se.Symbol(f"z{k}") for k in range(units)]], dtype=object)
    y = np.array([[se.Symbol(f"y{k}") for k in range(units)]], dtype=object)
    lab = np.array([[f"z{k}" for k in range(units)]], dtype=object)
    ctx = Context(Atoms(), lab, lab, "out")
    value = loss.forward(ctx, z, {"Y": y})[()]
    stable = loss.numeric_loss(ctx)
    # The numeric form is written with atoms' arguments canonical; here they are plain symbols.
    return (
        _to_sympy(value),
        _to_sympy(stable),
        [sp.Symbol(f"z{k}", real=True) for k in range(units)],
        [sp.Symbol(f"y{k}") for k in range(units)],
    )


def _real(expr: sp.Expr, units: int) -> sp.Expr:
    return expr.subs({sp.Symbol(f"z{k}"): sp.Symbol(f"z{k}", real=True) for k in range(units)})


def loss_lemma(loss: Loss, units: int) -> bool:
    """The loss the layer builds is the textbook loss of its prediction, and its stable form equals it.

    * bce: softplus(z) − y z = −y log σ(z) − (1 − y) log(1 − σ(z)); the stable form
      max(z, 0) − z y + log1p(e^{−|z|}) equals it on each branch (z > 0 and z ≤ 0).
    * softmax_ce: lse(z) − Σ y_k z_k = −Σ y_k log softmax_k(z) when Σ y_k = 1; the stable form
      (shifted by the maximum M, where the proof takes M as a free symbol) equals it.
    * mse: the stable form is the loss itself.

    >>> from symbolic.layers import BCE, SoftmaxCE
    >>> loss_lemma(BCE(None, 1, (1,), (), {"in": "Z2", "out": "A2"}), 1)
    True
    >>> loss_lemma(SoftmaxCE(None, 1, (3,), (), {"in": "Z3", "out": "A3"}), 3)
    True
    """
    value, stable, z, y = _loss_on_symbols(loss, units)
    value, stable = _real(value, units), _real(stable, units)
    if loss.kind == "bce":
        zz, yy = z[0], y[0]
        sig = 1 / (1 + sp.exp(-zz))
        textbook = -yy * sp.log(sig) - (1 - yy) * sp.log(1 - sig)
        ok = _equal_logs(value + yy * zz, textbook + yy * zz, zz)
        pieces = stable.args if isinstance(stable, sp.Piecewise) else ((stable, True),)
        for piece, _cond in pieces:
            ok &= _equal_logs(piece + yy * zz, value + yy * zz, zz)
        return bool(ok)
    if loss.kind == "softmax_ce":
        total = sp.Add(*[sp.exp(x) for x in z])
        last = 1 - sp.Add(*y[:-1])
        textbook = -sp.Add(*[yk * sp.log(sp.exp(zk) / total) for yk, zk in zip(y, z)])
        ok = sp.simplify(sp.expand_log((value - textbook).subs(y[-1], last), force=True)) == 0
        m = sp.Symbol("M", real=True)
        shifted = stable.replace(lambda e: isinstance(e, sp.Piecewise), lambda e: m)
        ok &= sp.simplify(sp.expand_log((shifted - value).subs(y[-1], last), force=True)) == 0
        return bool(ok)
    return sp.expand(stable - value) == 0


# -- the conventions, at exact points -------------------------------------------------------------


def _at(atoms: Atoms, expr: se.Expr, point: dict) -> se.Expr:
    """An atom expression evaluated exactly: every atom by its definition, then the point."""
    defs = {s: atoms.definition(s) for s in atoms.by_symbol}
    for _ in range(len(defs) + 1):  # definitions may refer to atoms made before them
        expr = se.sympify(expr).subs(defs)
    return se.sympify(expr.subs(point))


def activation_convention(layer: Layer) -> bool:
    """The layer's own backward rule, at exact points: ReLU'(0) = 0, leaky'(0) = slope, and 1 above 0.

    >>> from symbolic.spec import LayerSpec
    >>> from symbolic.layers import ReLU; activation_convention(ReLU(LayerSpec("relu"), 1, (1,), (1,), {"in": "Z1", "out": "A1"}))
    True
    """
    z = se.Symbol("z")
    ctx = Context(Atoms(), np.array([["z"]], dtype=object), np.array([["a"]], dtype=object))
    layer.forward(ctx, np.array([[z]], dtype=object), {})
    g, _ = layer.backward(ctx, np.array([[se.Integer(1)]], dtype=object))
    slope = exact(layer.spec.slope) if layer.kind == "leaky_relu" else se.Integer(0)
    points = {se.Integer(-1): slope, se.Integer(0): slope, se.Rational(1, 10**9): se.Integer(1)}
    return all(_at(ctx.atoms, g[0, 0], {z: v}) == want for v, want in points.items())


def convention_cases(ties: str) -> list[tuple[list, list]]:
    """Exact windows and the routing the convention states for them (row-major).

    >>> convention_cases("split")[0]
    ([1, 3, 3, 0], [0, 1/2, 1/2, 0])
    """
    windows = [[1, 3, 3, 0], [2, 2, 2, 2], [0, 0, -1, 0], [5, 1, 1, 5], [-3, -1, -2, -1]]
    out = []
    for w in windows:
        top = max(w)
        hits = [i for i, v in enumerate(w) if v == top]
        if ties == "first":
            want = [se.Integer(1 if i == hits[0] else 0) for i in range(len(w))]
        elif ties == "split":
            want = [se.Rational(1, len(hits)) if i in hits else se.Integer(0) for i in range(len(w))]
        else:
            want = [se.Integer(1 if i in hits else 0) for i in range(len(w))]
        out.append(([se.Integer(v) for v in w], want))
    return out


def pool_convention(ties: str) -> bool:
    """A 2×2 max-pool's own backward rule at exact tied windows routes as ``ties`` states, and
    its value is the maximum.

    >>> pool_convention("first"), pool_convention("split"), pool_convention("all")
    (True, True, True)
    """
    from symbolic.layers import MaxPool
    from symbolic.spec import LayerSpec

    layer = MaxPool(LayerSpec("maxpool", window=(2, 2), stride=(2, 2)), 1, (1, 2, 2), (1, 1, 1), {"in": "A1", "out": "P1"}, ties=ties)
    a = np.array([[[[se.Symbol(f"a{i}{j}") for j in range(2)] for i in range(2)]]], dtype=object)
    names = np.array([[[[f"a{i}{j}" for j in range(2)] for i in range(2)]]], dtype=object)
    ctx = Context(Atoms(), names, np.array([[[["p"]]]], dtype=object))
    value = layer.forward(ctx, a, {})[0, 0, 0, 0]
    g, _ = layer.backward(ctx, np.array([[[[se.Integer(1)]]]], dtype=object))
    for values, want in convention_cases(ties):
        point = dict(zip(a.ravel(), values))
        got = [_at(ctx.atoms, e, point) for e in g.ravel()]
        if got != want or _at(ctx.atoms, ctx.atoms.canon(value), point) != max(values):
            return False
    return True


__all__ = [
    "Lemma",
    "activation_convention",
    "convention_cases",
    "lse_derivative",
    "loss_lemma",
    "sigmoid_derivative",
    "softplus_derivative",
    "tanh_derivative",
    "pool_convention",
]
