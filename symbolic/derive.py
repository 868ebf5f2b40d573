"""Brute-force derivatives: differentiate the complete expression of L, as a student expanding every sum would.

These are the ground truth the end-to-end proofs compare against. SymEngine does the calculus
on the raw network; ``Atoms.canon`` rewrites the answer exactly in named entries and atoms.
``expansion`` lays a derivative out as the lecture's "complex summation": one term per pooling
window and position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import symengine as se

from symbolic.atoms import Atoms
from symbolic.layers import obj
from symbolic.network import Network


def gradient(net: Network, wrt: np.ndarray) -> np.ndarray:
    """dL/d(each symbol of ``wrt``), brute force, canonical form; same shape as ``wrt``.

    >>> from symbolic.network import build; from symbolic.spec import load_spec
    >>> net = build(load_spec(), start="Z2"); gradient(net, net.inputs)[0, 0] == net.prediction[0, 0] - net.Y[0, 0]
    True
    """
    wrt = np.asarray(wrt, dtype=object)
    return obj(wrt.shape, lambda *i: net.atoms.canon(net.L.diff(wrt[i])))


def param_gradient(net: Network, name: str) -> se.Expr:
    """dL/d(parameter entry ``name``), brute force, canonical form; case does not matter.

    >>> from symbolic.network import build; from symbolic.spec import load_spec
    >>> net = build(load_spec()); param_gradient(net, "b_2") == net.prediction[0, 0] - net.Y[0, 0]
    True
    """
    return net.atoms.canon(net.L.diff(net.entry(name)))


@dataclass(frozen=True)
class Term:
    """One summand: which window and position it comes from (labels, or None) and its value."""

    window: str | None
    position: str | None
    expr: se.Expr


@dataclass(frozen=True)
class Expansion:
    """A derivative written out term by term, grouped by pooling window then position (row-major).

    ``atoms`` are the network's, which say what each selector in the terms stands for; Jupyter
    shows the expansion as math through them.
    """

    param: str
    derivative: se.Expr
    terms: tuple[Term, ...]
    atoms: Atoms | None = field(default=None, compare=False, repr=False)

    # Jupyter's display hooks. Math becomes text only through render's printers, and symbolic
    # never imports render at module level (data flows one way), so each hook imports it when called.
    def _repr_latex_(self) -> str:
        r"""The terms as math, two a line, as ``cnn-derive expand --latex`` prints them.

        >>> from symbolic.network import build; from symbolic.spec import load_spec
        >>> expansion(build(load_spec()), "w_11")._repr_latex_().count(r"\to p_{")
        16
        """
        from render.display import expansion_latex

        return expansion_latex(self)

    def _repr_pretty_(self, p, cycle: bool) -> None:
        from render.display import expansion_lines

        p.text("\n".join(expansion_lines(self)))

    def windows(self) -> list[tuple[str | None, list[Term]]]:
        """The terms grouped by window, in order: [(window_label, [Term, ...]), ...]."""
        out: dict = {}
        for t in self.terms:
            out.setdefault(t.window, []).append(t)
        return list(out.items())


def stage_names_map(net: Network) -> dict:
    """Canonical conv and dense outputs -> their entry symbols (z_ij): exact, it is their definition."""
    names: dict = {}
    for layer in reversed(net.layers):
        if layer.kind in ("conv2d", "dense"):
            values, labels = net.stages[layer.names["out"]], net.stage_labels[layer.names["out"]]
            for i in np.ndindex(*values.shape):
                names[net.atoms.canon(values[i])] = se.Symbol(labels[i])
    return names


def expansion(net: Network, name: str) -> Expansion:
    """The brute-force dL/d``name`` as a sum of terms, one per (window, position) it reaches.

    Each term is the sum of the expanded monomials that carry that window position's
    selectors, so the terms add up to the derivative exactly (tested).

    >>> from symbolic.network import build; from symbolic.spec import load_spec
    >>> e = expansion(build(load_spec()), "w_11"); len(e.terms), e.terms[0].window, e.terms[0].position
    (16, 'p_11', 'a_11')
    """
    entry = net.entry(name)
    d = net.atoms.canon(net.L.diff(entry))
    shown = d.subs(stage_names_map(net))
    atoms = net.atoms
    groups: dict = {}
    order: dict = {}
    for mono in _terms(se.expand(shown)):
        sel = sorted(
            (atoms.by_symbol[s] for s in mono.free_symbols if s in atoms.by_symbol and atoms.by_symbol[s].is_selector),
            key=lambda a: int(str(a.symbol)[len("_atom") :]),
        )
        key = (" ".join(a.label[1] for a in sel) or None, " ".join(a.label[0] for a in sel) or None)
        rank = tuple(int(str(a.symbol)[len("_atom") :]) for a in sel)
        groups.setdefault(key, []).append(mono)
        order[key] = rank
    keys = sorted(groups, key=lambda k: order[k])
    terms = tuple(Term(k[0], k[1], se.Add(*groups[k])) for k in keys)
    return Expansion(str(entry), shown, terms, atoms)


def _terms(expr: se.Expr) -> tuple:
    return expr.args if isinstance(expr, se.Add) else (expr,)


__all__ = ["Expansion", "Term", "expansion", "gradient", "param_gradient", "stage_names_map"]
