"""Brute-force derivatives: differentiate the complete expression of L, as a student expanding every sum would.

These are the ground truth that every rule is proven against. SymEngine does the calculus on
the raw Piecewise network; ``Atoms.canon`` then rewrites the answer exactly in named entries
and atoms. ``expansion`` lays a derivative out as the lecture's "complex summation": one term
per pooling window and position.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import symengine as se

from symbolic.errors import ParameterError
from symbolic.layers import obj
from symbolic.network import Network


def gradient(net: Network, wrt) -> np.ndarray:
    """dL/d(each symbol of ``wrt``), brute force, canonical form; same shape as ``wrt``.

    >>> from symbolic.network import build; from symbolic.spec import NetworkSpec
    >>> net = build(NetworkSpec(), start="Z2"); gradient(net, net.inputs)[0] == net.atoms.sigmoid(net.Z2) - net.Y
    True
    """
    wrt = np.asarray(wrt, dtype=object)
    return obj(wrt.shape, lambda *i: net.atoms.canon(net.L.diff(wrt[i])))


def parameter_name(net: Network, name: str) -> str:
    """The network's own spelling of a parameter name; case does not matter (b_1 is B_1).

    >>> from symbolic.network import build; from symbolic.spec import NetworkSpec
    >>> parameter_name(build(NetworkSpec()), "b_1")
    'B_1'
    """
    params = net.params()
    # The lecture writes the biases as capitals; people often type them small.
    found = {n.lower(): n for n in params}.get(name.lower())
    if found is None:
        raise ParameterError(
            f"PARAM: expected one of {', '.join(params)} for n={net.spec.n}, k={net.spec.k}; got {name!r}"
        )
    return found


def param_gradient(net: Network, name: str):
    """dL/d(parameter ``name``), brute force, canonical form.

    >>> from symbolic.network import build; from symbolic.spec import NetworkSpec
    >>> net = build(NetworkSpec()); d = param_gradient(net, "B_2"); d == net.atoms.sigmoid(net.Z2) - net.Y
    True
    """
    return net.atoms.canon(net.L.diff(net.params()[parameter_name(net, name)]))


@dataclass(frozen=True)
class Term:
    """One summand: which window and position it comes from (labels, or None) and its value."""

    window: str | None
    position: str | None
    expr: object


@dataclass(frozen=True)
class Expansion:
    """A derivative written out term by term, grouped by pooling window then position (row-major)."""

    param: str
    derivative: object
    terms: tuple

    def windows(self):
        """The terms grouped by window, in order: [(window_label, [Term, ...]), ...]."""
        out: dict = {}
        for t in self.terms:
            out.setdefault(t.window, []).append(t)
        return list(out.items())


def expansion(net: Network, name: str) -> Expansion:
    """The brute-force dL/d``name`` as a sum of terms, one per (window, position) it reaches.

    Each term is the sum of the expanded monomials that carry that window position's
    first-max selector, so the terms add up to the derivative exactly (tested).

    >>> from symbolic.network import build; from symbolic.spec import NetworkSpec
    >>> e = expansion(build(NetworkSpec()), "w_11"); len(e.terms), e.terms[0].window, e.terms[0].position
    (16, 'p_11', 'a_11')
    """
    name = parameter_name(net, name)
    d = param_gradient(net, name)
    atoms = net.atoms
    # Name each conv output z_ij instead of spelling out its sum: exact, since that is z_ij's definition.
    names = {net.atoms.canon(net.Z1[i]): se.Symbol(net.label["Z1"][i]) for i in np.ndindex(*net.Z1.shape)}
    shown = d.subs(names)
    groups: dict = {}
    order: dict = {}
    for mono in _terms(se.expand(shown)):
        sel = [atoms.by_symbol[s] for s in mono.free_symbols if s in atoms.by_symbol and atoms.by_symbol[s].kind == "select"]
        if len(sel) > 1:
            raise AssertionError(f"a monomial of dL/d{name} carries {len(sel)} window selectors")
        key = (sel[0].label[1], sel[0].label[0]) if sel else (None, None)
        rank = int(str(sel[0].symbol)[len("_atom"):]) if sel else -1
        groups.setdefault(key, []).append(mono)
        order[key] = rank
    keys = sorted(groups, key=lambda k: order[k])
    terms = tuple(Term(k[0], k[1], se.Add(*groups[k])) for k in keys)
    return Expansion(name, shown, terms)


def _terms(expr):
    return expr.args if isinstance(expr, se.Add) else (expr,)
