"""What every section builder of the per-layer handout shares: the network's facts and its notation.

``Model`` holds everything the sections read (the spec, its layers and loss, every rule and its
proof result, the worked example's numbers); the helpers name stages and gradients as SymPy
objects, write a proof mark, show one engine expression and show a numeric array as matrices
(with a full-value figure where the printer elides it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from render.blocks import Display, Figure, Link, Strong, Words, words
from render.notation import Partial, Row, SumLines, eq
from render.printer import cell_width, elided, number, numbers, to_display
from symbolic.layers import Layer
from symbolic.names import grad_key, scalar_name
from symbolic.spec import NetworkSpec

# An engine expression with more terms than this is shown by its first and last terms.
MAX_TERMS = 12
# Terms of a long sum on one displayed line.
TERMS_PER_LINE = 4
# Characters of printed numbers a row of side-by-side matrices may take (about the text width).
ROW_CHARS = 64


@dataclass
class Model:
    """The facts every section reads: nothing in a section is computed twice or written as a literal."""

    spec: NetworkSpec
    layers: list
    loss: Layer
    rules: list  # symbolic.rules.Rule, in rules_for's order
    results: dict  # rule name -> symbolic.rules.RuleResult
    local: dict  # layer index -> symbolic.rules.LayerRule (the layer built alone on fresh symbols)
    case: dict = field(default_factory=dict)  # X, Y and every parameter (full layouts)
    values: dict = field(default_factory=dict)  # compile_network's outputs for the case
    case_source: str = ""

    def rules_of(self, layer: Layer) -> list:
        """The rules a layer states (input first, then its parameters), as ``rules_for`` lists them."""
        return [r for r in self.rules if r.layer == layer.index and r.kind == layer.kind]


def sym(name: str) -> sp.Symbol:
    """A stage or parameter as one symbol: ``Z1`` is Z_1, ``A1_2`` is A_{1,2}.

    >>> from render.printer import latex
    >>> latex(sym("Z1")), latex(sym("A1_2")), latex(sym("X"))
    ('Z_{1}', 'A_{1,2}', 'X')
    """
    return sp.Symbol(scalar_name(name))


def grad(name: str) -> sp.Expr:
    """dL/d<name> as a fraction of partials.

    >>> from render.printer import latex
    >>> latex(grad("W2"))
    '\\\\frac{\\\\partial L}{\\\\partial W_{2}}'
    """
    return Partial(sp.Symbol("L"), sym(name))


def op(name: str, *args: object) -> sp.Expr:
    """A named operation applied to its arguments, printed upright (``rot180``: rot with subscript 180).

    >>> from render.printer import latex
    >>> latex(op("rot180", sym("W1")))
    '\\\\operatorname{rot}_{180}{\\\\left(W_{1} \\\\right)}'
    """
    return sp.Function(name)(*args)


def shape_text(shape: tuple) -> str:
    """A shape as the handout writes it: ``2×7×7``; one number for a vector.

    >>> shape_text((2, 7, 7)), shape_text((3,)), shape_text(())
    ('2×7×7', '3', '1')
    """
    return "×".join(map(str, shape)) if shape else "1"


def anchor_of(layer_index: int) -> str:
    """The appendix anchor of a layer's rules (0: lemmas, conventions and the Jacobian chain).

    >>> anchor_of(3), anchor_of(0)
    ('proofs-layer-3', 'proofs-other')
    """
    return f"proofs-layer-{layer_index}" if layer_index else "proofs-other"


def mark(model: Model, rule) -> Words:
    """A rule's proof status: a link to its appendix row when proven, an honest warning when not.

    >>> from types import SimpleNamespace as NS
    >>> m = NS(results={"r": NS(proven=False)})
    >>> mark(m, NS(name="r", layer=2, kind="relu")).parts
    (Strong(text='✗ NOT proven'),)
    """
    if model.results[rule.name].proven:
        return words(Link("✓ proven", anchor_of(rule.layer if rule.kind not in ("chain", "lemma") else 0)))
    return words(Strong("✗ NOT proven"))


def engine_entry(lhs: sp.Expr, expr: object, atoms: object) -> sp.Expr:
    """One engine expression as an equation; a long sum is broken into lines, a very long one elided.

    ``atoms`` turns the engine's atoms into their display (1[z > 0], "a routes to p").

    >>> import symengine as se
    >>> from render.printer import latex
    >>> x, y = se.symbols("x_11 y_1"); from symbolic.atoms import Atoms
    >>> latex(engine_entry(sp.Symbol("z_11"), x + y, Atoms()))
    'z_{11} = x_{11} + y_{1}'
    """
    shown = readable(to_display(expr, atoms))
    terms = list(sp.Add.make_args(shown)) if isinstance(shown, sp.Add) else [shown]
    if len(terms) <= TERMS_PER_LINE:
        return eq(lhs, shown)
    if len(terms) > MAX_TERMS:
        terms = [*terms[: TERMS_PER_LINE * 2 - 1], sp.Symbol(r"\cdots"), terms[-1]]
    return SumLines(lhs, TERMS_PER_LINE, *terms)


def _readable_name(name: str) -> sp.Expr | None:
    """The display of an engine symbol the printer would write awkwardly, or None to keep it."""
    base, _, sub = name.partition("_")
    if base == "b1" and sub:
        # Layer 1's entries carry no layer mark (w_kl, as in the lecture): its biases are b_o.
        return sp.Symbol(f"b_{sub}")
    return None


def readable(expr: sp.Expr) -> sp.Expr:
    r"""An engine expression with layer 1's biases unmarked, like its weights (the printer bars upstream gradients).

    >>> from render.printer import latex
    >>> print(latex(readable(sp.Symbol("z2bar_11") * sp.Symbol("b1_2"))))
    b_{2} \bar{z}^{(2)}_{11}
    """
    swap = {s: shown for s in expr.free_symbols if (shown := _readable_name(s.name)) is not None}
    return expr.xreplace(swap) if swap else expr


def count_terms(expr: object, atoms: object) -> int:
    """How many terms an engine expression has once displayed.

    >>> import symengine as se; from symbolic.atoms import Atoms
    >>> x, y = se.symbols("x y"); count_terms(x + 2 * y, Atoms())
    2
    """
    shown = to_display(expr, atoms)
    return len(sp.Add.make_args(shown)) if isinstance(shown, sp.Add) else 1


def entry_symbol(label: str) -> sp.Symbol:
    """The symbol of one entry by its engine label (``z2_111``)."""
    return sp.Symbol(label)


def _matrices(arr: np.ndarray) -> list[tuple[tuple, np.ndarray]]:
    """A numeric array as 2-D pieces with their leading indices (1-based; axes of length 1 left out): channels of an image, filters of a weight.

    >>> [idx for idx, _ in _matrices(np.zeros((2, 1, 3, 3)))], [idx for idx, _ in _matrices(np.zeros((1, 4, 4)))]
    ([(1,), (2,)], [()])
    >>> _matrices(np.zeros(3))[0][1].shape
    (3, 1)
    """
    a = np.asarray(arr, dtype=float)
    if a.ndim <= 2:
        # A vector is a column, as in the matrix forms (Z = W F + B).
        return [((), a.reshape(-1, 1) if a.ndim < 2 else a)]
    lead = a.shape[:-2]
    return [(tuple(i + 1 for i, n in zip(idx, lead) if n > 1), a[idx]) for idx in np.ndindex(*lead)]


def _width(m: np.ndarray) -> int:
    return m.shape[1] * (max(len(f"{v:.4g}") for v in m.ravel()) + 2)


def piece_name(name: str, idx: tuple) -> sp.Expr:
    """The name of one 2-D piece: ``Z1`` channel 2 is Z_1[2], filter 1's weights on channel 2 are W_1[1,2].

    Square brackets, never a superscript: a superscript (2) means an entry of Z₂, W₂, … everywhere else in the handout.

    >>> from render.printer import latex
    >>> latex(piece_name("Z1", (2,))), latex(piece_name("W1", (1, 2))), latex(piece_name("F", ()))
    ('Z_{1}[2]', 'W_{1}[1,2]', 'F')
    """
    from render.printer import latex

    base = sym(name)
    if not idx:
        return base
    return sp.Symbol(f"{latex(base)}[{','.join(map(str, idx))}]")


def value_blocks(name: str, arr: np.ndarray, *, gradient: bool = False, file: str = "") -> list:
    r"""Displays of a numeric array (``name``, or ∂L/∂``name`` with ``gradient``), one matrix per 2-D piece, several to a line where they fit.

    A single value is shown as a number. Where the printer elides a piece, a figure (``file``) shows every value.

    >>> from render.printer import latex
    >>> print(*[latex(b.expr) for b in value_blocks("B1", np.array([0.5]), gradient=True)])
    \frac{\partial L}{\partial B_{1}} = 0.5
    """
    from render.drawings import panels

    def lhs(idx: tuple) -> sp.Expr:
        return Partial(sp.Symbol("L"), piece_name(name, idx)) if gradient else piece_name(name, idx)

    a = np.asarray(arr, dtype=float)
    if a.size == 1:
        return [Display(eq(lhs(()), number(a.ravel()[0])))]
    pieces = _matrices(a)
    blocks: list = []
    row: list = []
    used = 0

    def flush() -> None:
        nonlocal row, used
        if row:
            blocks.append(Display(row[0] if len(row) == 1 else Row(*row)))
        row, used = [], 0

    cut = {idx: elided(*m.shape, cell=cell_width(m)) for idx, m in pieces}
    for idx, m in pieces:
        w = _width(m) + 8
        if cut[idx] or used + w > ROW_CHARS:
            flush()
        row.append(eq(lhs(idx), numbers(m)))
        used += w
        if cut[idx]:
            flush()
    flush()
    if file and any(cut.values()):
        # One figure per elided piece: side by side, the panels of a page-wide figure print their
        # numbers too small to read.
        label = grad_label(name) if gradient else name
        stem, dot, ext = file.rpartition(".")
        for idx, m in pieces:
            if not cut[idx]:
                continue
            suffix = "-".join(map(str, idx))
            blocks.append(
                Figure(
                    f"{stem}-{suffix}.{ext}" if idx else file,
                    words("Every value of ", lhs(idx), "."),
                    panels,
                    {"mats": [m], "titles": [label + (f"[{','.join(map(str, idx))}]" if idx else "")]},
                    width=0.65 if len(pieces) > 1 else 0.9,  # two square pieces to a page
                )
            )
    return blocks


def grad_label(name: str) -> str:
    """The plain label figures use for a gradient: ``∂L/∂Z1``."""
    return "∂L/∂" + name


__all__ = [
    "MAX_TERMS",
    "Model",
    "anchor_of",
    "count_terms",
    "engine_entry",
    "entry_symbol",
    "grad",
    "grad_key",
    "grad_label",
    "mark",
    "op",
    "piece_name",
    "shape_text",
    "sym",
    "value_blocks",
]


def entry_base(stage: str) -> sp.IndexedBase:
    """The indexed name of a stage's or parameter's entries: ``Z1`` gives z, ``Z2`` gives z^(2), ``W3`` gives w^(3).

    >>> from render.printer import latex
    >>> i = sp.Symbol("i"); latex(entry_base("Z2")[i]), latex(entry_base("P1")[i]), latex(entry_base("X")[i])
    ('z^{(2)}_{i}', 'p_{i}', 'x_{i}')
    """
    head = stage.rstrip("0123456789_")
    number = stage[len(head) :]
    letter = head.lower()
    if number and number.split("_")[0] not in ("", "1"):
        return sp.IndexedBase(f"{letter}^{{({number.split('_')[0]})}}")
    return sp.IndexedBase(letter)


def window_index(i: sp.Symbol, r: sp.Symbol, stride: int) -> sp.Expr:
    """The input row a filter tap ``r`` reads in output row ``i`` (1-based): stride (i − 1) + r, written tidily.

    >>> from render.printer import latex
    >>> i, r = sp.symbols("i r"); latex(window_index(i, r, 1)), latex(window_index(i, r, 2))
    ('i + r - 1', '2 i + r - 2')
    """
    from render.printer import tidy_add

    return tidy_add(stride * (i - 1) + r)
