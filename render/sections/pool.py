"""maxpool and avgpool: the window, and where each window sends its gradient."""

from __future__ import annotations

import numpy as np
import symengine as se
import sympy as sp

from render.blocks import Display, Figure, Para, words
from render.layer_figures import panels
from render.notation import Bar, Between, IndexSum, Partial, Wins, eq
from render.sections.common import Model, count_terms, engine_entry, entry_base, grad, grad_label, mark, op, shape_text, sym, window_index
from symbolic.layers import MaxPool
from symbolic.layers.pool import Pool
from symbolic.rules import labels_for

i, j, c, a, e, u, v = sp.symbols("i j c a e u v")

TIES = {
    "first": "the first maximum in row-major order wins (as in PyTorch)",
    "split": "the tied maxima share the window's gradient equally",
    "all": "every tied maximum receives the window's gradient in full",
}
# Up to this many entries in a window the engine's own Piecewise form is shown; beyond, its max.
PIECEWISE_AREA = 4


def _geometry(layer: Pool) -> tuple[int, int, int, int]:
    (kh, kw), (sh, sw) = layer.spec.window, layer.spec.stride
    return kh, kw, sh, sw


def _words(layer: Pool) -> str:
    kh, kw, sh, sw = _geometry(layer)
    overlap = sh < kh or sw < kw
    text = f"a {kh}×{kw} window moved with stride {sh if sh == sw else (sh, sw)}"
    if overlap:
        text += " (the windows overlap: the stride is smaller than the window, so one entry can sit in several windows)"
    return text


def formula(layer: Pool, key: str) -> sp.Expr:
    """The rule ∂L/∂(input) in matrix form.

    >>> from render.printer import latex; from symbolic.network import make_layers; from symbolic.spec import load_spec
    >>> latex(formula(make_layers(load_spec())[0][2], "input"))
    '\\\\frac{\\\\partial L}{\\\\partial A_{1}} = \\\\operatorname{unpool}_{max}{\\\\left(\\\\frac{\\\\partial L}{\\\\partial P_{1}} \\\\right)}'
    """
    n_in, n_out = layer.names["in"], layer.names["out"]
    if isinstance(layer, MaxPool):
        return eq(grad(n_in), op("unpool_max", grad(n_out)))
    kh, kw, _, _ = _geometry(layer)
    return eq(grad(n_in), op("unpool_avg", grad(n_out)) / (kh * kw))


def forward(model: Model, layer: Pool) -> list:
    """The forward pass of a pool: what each window keeps, and the engine's first entry."""
    kh, kw, sh, sw = _geometry(layer)
    n_in, n_out = layer.names["in"], layer.names["out"]
    x, p = entry_base(n_in), entry_base(n_out)
    cell = x[c, window_index(i, a, sh), window_index(j, e, sw)]
    local = model.local[layer.index]
    first = (0,) * local.output.ndim
    label = labels_for(model.spec, n_out, local.output.shape)[first]
    win = layer.windows()[(0, 0)]
    in_labels = labels_for(model.spec, n_in, local.inputs.shape)
    members = [sp.Symbol(in_labels[(0, 0, *rc)]) for rc in win]
    if isinstance(layer, MaxPool):
        blocks: list = [
            Para(
                words(
                    f"Max-pool with {_words(layer)}: each entry of ",
                    sym(n_out),
                    f" ({shape_text(layer.out_shape)}) is the largest entry of its window in ",
                    sym(n_in),
                    f", channel by channel. At a tie {TIES[layer.ties]}.",
                )
            ),
            Display(eq(sym(n_out), op("maxpool", sym(n_in)))),
            Para(words("Entry by entry, the maximum over the window's taps ", Between(1, a, kh), " and ", Between(1, e, kw), ":")),
            Display(eq(p[c, i, j], op("max", cell))),
        ]
        if kh * kw <= PIECEWISE_AREA:
            blocks += [
                Para(words("The first entry, as the engine builds it (the conditions read top to bottom, which is the tie rule):")),
                Display(eq(sp.Symbol(label), local.output[first])),
            ]
        else:
            blocks += [
                Para(words(f"The first entry is the largest of its {len(members)} window entries:")),
                Display(eq(sp.Symbol(label), op("max", *members))),
            ]
        return blocks
    return [
        Para(words(f"Average pool with {_words(layer)}: each entry of ", sym(n_out), " is the mean of its window in ", sym(n_in), ".")),
        Display(eq(sym(n_out), op("avgpool", sym(n_in)))),
        Display(eq(p[c, i, j], IndexSum(cell, (a, 1, kh), (e, 1, kw)) / (kh * kw))),
        Para(words("The first entry, as the engine builds it:")),
        Display(engine_entry(sp.Symbol(label), local.output[first], local.atoms)),
    ]


def _busiest(local) -> tuple:
    """The input entry whose gradient has the most terms: the one in the most windows (the first such)."""
    g = local.grad_input
    # Counted on the engine's own sums: converting every entry for display would take seconds on big inputs.
    return max(np.ndindex(*g.shape), key=lambda idx: (len(g[idx].args) if isinstance(g[idx], se.Add) else 1, [-k for k in idx]))


def backward(model: Model, layer: Pool) -> list:
    """A pool's one rule: the derivative of a window's value with respect to its entries, then the routing."""
    kh, kw, sh, sw = _geometry(layer)
    n_in, n_out = layer.names["in"], layer.names["out"]
    x, p = entry_base(n_in), entry_base(n_out)
    local = model.local[layer.index]
    (rule,) = model.rules_of(layer)
    overlap = sh < kh or sw < kw
    busiest = _busiest(local)
    n_terms = count_terms(local.grad_input[busiest], local.atoms)
    pbar = Bar(p[c, i, j])
    if isinstance(layer, MaxPool):
        blocks: list = [
            Para(
                words(
                    "A window's value is one of its entries, the winner: ",
                    Partial(p[c, i, j], x[c, u, v]),
                    " is 1 for the winner and 0 for every other entry of the window. So each entry of ",
                    grad(n_out),
                    " goes to its window's winner, and every entry that wins nothing gets 0"
                    + (": an entry that wins several overlapping windows receives the sum of what they send." if overlap else "."),
                    f" At a tie {TIES[layer.ties]}.",
                )
            ),
            Display(formula(layer, "input")),
        ]
    else:
        blocks = [
            Para(
                words(
                    "A window's value is the mean of its entries: ",
                    eq(Partial(p[c, i, j], x[c, u, v]), sp.Rational(1, kh * kw)),
                    " for each of the window's entries. So each entry of ",
                    grad(n_out),
                    " is spread evenly over its window"
                    + ("; an entry in several overlapping windows receives the sum." if overlap else "."),
                )
            ),
            Display(formula(layer, "input")),
        ]
    blocks += [
        Para(words("Rule: ", mark(model, rule))),
        Para(
            words(
                f"The engine's rule for an entry in the most windows ({n_terms} term{'s' if n_terms != 1 else ''}), in the upstream gradients ",
                pbar,
                *(
                    (
                        " (",
                        Wins(x[c, u, v], p[c, i, j]),
                        " is 1 when ",
                        x[c, u, v],
                        " is the winner of the window that makes ",
                        p[c, i, j],
                        ")",
                    )
                    if isinstance(layer, MaxPool)
                    else ()
                ),
                ":",
            )
        ),
        Display(engine_entry(Partial(sp.Symbol("L"), sp.Symbol(str(local.inputs[busiest]))), local.grad_input[busiest], local.atoms)),
    ]
    return blocks


def example_figure(model: Model, layer: Pool, file: str) -> Figure | None:
    """Max-pool routing in the worked example, channel 1: the input with its winners outlined, ∂L/∂P, ∂L/∂(input)."""
    if not isinstance(layer, MaxPool):
        return None
    n_in, n_out = layer.names["in"], layer.names["out"]
    route = np.asarray(model.values[f"route({n_in})"], dtype=float)[0]
    return Figure(
        file,
        words(
            "Max-pool backward in the worked example, channel 1: the winners in ",
            sym(n_in),
            " (outlined) receive the entries of ",
            grad(n_out),
            ("; where windows overlap, an entry that wins several receives their sum" if layer.spec.stride < layer.spec.window else ""),
            "; every other entry gets 0.",
        ),
        panels,
        {
            "mats": [
                np.asarray(model.values[n_in])[0],
                np.asarray(model.values[f"dL/d{n_out}"])[0],
                np.asarray(model.values[f"dL/d{n_in}"])[0],
            ],
            "titles": [f"{n_in} (winners outlined)", grad_label(n_out), grad_label(n_in)],
            "marks": [route > 0, None, route > 0],
        },
    )
