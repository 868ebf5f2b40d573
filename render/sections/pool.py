"""maxpool and avgpool: the window, and where each window sends its gradient."""

from __future__ import annotations

import numpy as np
import symengine as se
import sympy as sp

from render.blocks import Display, Figure, Para, words
from render.drawings import panels
from render.notation import Bar, Between, IndexSum, Partial, Wins, eq
from render.sections.common import Model, count_terms, engine_entry, entry_base, grad, grad_label, mark, op, shape_text, sym, window_index
from symbolic.layers import MaxPool
from symbolic.layers.activation import Activation
from symbolic.layers.pool import Pool
from symbolic.rules import labels_for

# r, s are a window tap (row, column); never a, which is an activation.
i, j, c, r, s, u, v = sp.symbols("i j c r s u v")

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
    '\\\\frac{\\\\partial L}{\\\\partial A_{1}} = \\\\operatorname{unpool}_{\\\\mathrm{max}}{\\\\left(\\\\frac{\\\\partial L}{\\\\partial P_{1}} \\\\right)}'
    """
    n_in, n_out = layer.names["in"], layer.names["out"]
    if isinstance(layer, MaxPool):
        return eq(grad(n_in), unpool("max")(grad(n_out)))
    kh, kw, _, _ = _geometry(layer)
    return eq(grad(n_in), unpool("avg")(grad(n_out)) / (kh * kw))


def unpool(kind: str) -> type[sp.Function]:
    """The pool's backward operation, its subscript upright like its name (``max`` is a word here, not three variables).

    >>> from render.printer import latex
    >>> latex(unpool("avg")(sp.Symbol("G")))
    '\\\\operatorname{unpool}_{\\\\mathrm{avg}}{\\\\left(G \\\\right)}'
    """
    return sp.Function(rf"\operatorname{{unpool}}_{{\mathrm{{{kind}}}}}")


def forward(model: Model, layer: Pool) -> list:
    """The forward pass of a pool: what each window keeps, and the engine's first entry."""
    kh, kw, sh, sw = _geometry(layer)
    n_in, n_out = layer.names["in"], layer.names["out"]
    x, p = entry_base(n_in), entry_base(n_out)
    cell = x[c, window_index(i, r, sh), window_index(j, s, sw)]
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
            Para(words("Entry by entry, the maximum over the window's taps ", Between(1, r, kh), " and ", Between(1, s, kw), ":")),
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
        Display(eq(p[c, i, j], IndexSum(cell, (r, 1, kh), (s, 1, kw)) / (kh * kw))),
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
            Para(
                words(
                    unpool("max")(grad(n_out)),
                    " is that routing as one operation: it puts each entry of ",
                    grad(n_out),
                    " at the place of its window's winner in an array of ",
                    sym(n_in),
                    "'s shape, 0 everywhere else" + (", adding where windows overlap." if overlap else "."),
                )
            ),
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
            Para(
                words(
                    unpool("avg")(grad(n_out)),
                    " copies each entry of ",
                    grad(n_out),
                    " to every position of its window, in an array of ",
                    sym(n_in),
                    "'s shape" + (", adding where windows overlap" if overlap else "") + f"; dividing by the window's area, {kh * kw}, "
                    "gives each position its share.",
                )
            ),
        ]
    blocks += [
        Para(words("Rule: ", mark(model, rule))),
        Para(
            words(
                (
                    f"The engine's rule for an entry in the most windows ({n_terms} terms), in the upstream gradients "
                    if n_terms > 1
                    else "The windows do not overlap, so each entry lies in one window at most: the engine's rule for an entry has 1 term, "
                    "in the upstream gradients "
                ),
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


def _winners(a: np.ndarray, cells: list, ties: str) -> list:
    """The cells of one window (one channel) that receive its gradient, with the share each gets."""
    vals = [a[rc] for rc in cells]
    top = max(vals)
    tied = [rc for rc, x in zip(cells, vals) if x == top]
    if ties == "first":
        return [(tied[0], 1.0)]
    return [(rc, 1.0 / len(tied) if ties == "split" else 1.0) for rc in tied]


def routing(model: Model, layer: MaxPool) -> dict:
    """Where each window of the worked example sends its gradient: input entry -> [(window, share)], and the windows whose entries are all 0.

    >>> from render.network_doc import gather; from symbolic.spec import load_spec
    >>> m = gather(load_spec("part3")); la = next(x for x in m.layers if isinstance(x, MaxPool))
    >>> r = routing(m, la); sum(len(w) for w in r["won"].values()) >= la.out_shape[0] * la.out_shape[1] * la.out_shape[2]
    True
    """
    a = np.asarray(model.values[layer.names["in"]], dtype=float)
    won: dict = {}
    zero: list = []
    for ch in range(a.shape[0]):
        for win, cells in layer.windows().items():
            if all(a[(ch, *rc)] == 0 for rc in cells):
                zero.append((ch, *win))
            for rc, share in _winners(a[ch], cells, layer.ties):
                won.setdefault((ch, *rc), []).append(((ch, *win), share))
    return {"won": won, "zero": zero}


def _entry(base: sp.IndexedBase, idx: tuple) -> sp.Expr:
    return base[tuple(k + 1 for k in idx)]


def example_notes(model: Model, layer: Pool) -> list:
    """The worked example's routing, pointed at: one entry that wins two windows and the sum it gets; windows of zeros."""
    if not isinstance(layer, MaxPool):
        return []
    from render.printer import number

    n_in, n_out = layer.names["in"], layer.names["out"]
    x, p = entry_base(n_in), entry_base(n_out)
    a = np.asarray(model.values[n_in], dtype=float)
    da, dp = np.asarray(model.values[f"dL/d{n_in}"], dtype=float), np.asarray(model.values[f"dL/d{n_out}"], dtype=float)
    r = routing(model, layer)
    out: list = []
    double = next((idx for idx, wins in sorted(r["won"].items()) if len(wins) > 1), None)
    if double is not None:
        wins = r["won"][double]
        terms = [sp.Mul(share, number(dp[w]), evaluate=False) if share != 1 else number(dp[w]) for w, share in wins]
        total = sum(share * dp[w] for w, share in wins)
        if np.isclose(total, da[double], rtol=1e-9, atol=1e-15):
            out.append(
                Para(
                    words(
                        "Overlapping windows in the numbers: ",
                        eq(_entry(x, double), number(a[double])),
                        f" is the largest entry of {len(wins)} windows, those of ",
                        *[part for k, (w, _) in enumerate(wins) for part in ((", " if k else ""), _entry(p, w))],
                        ", so it receives the sum of what they send: ",
                        eq(Partial(sp.Symbol("L"), _entry(x, double)), sp.Add(*terms, evaluate=False)),
                        " = ",
                        number(da[double]),
                        ".",
                    )
                )
            )
    # A zero window whose winner wins nothing else: what that entry receives is then this window's gradient alone.
    alone = [(w, idx) for w in r["zero"] for idx, wins in sorted(r["won"].items()) if wins == [(w, 1.0)]]
    if alone:
        w, cell = alone[0]
        below = next((la for la in model.layers if la.names["out"] == n_in), None)
        blocked = ""
        if below is not None and isinstance(below, Activation) and np.asarray(model.values[f"dL/d{below.names['in']}"])[cell] == 0:
            blocked = f" The {below.kind} below blocks it: its input there is not positive, so its slope is 0 and "
        n = len(r["zero"])
        parts: list = [
            f"{n} window{'s' if n > 1 else ''} of ",
            sym(n_in),
            f" hold{'s' if n == 1 else ''} only zeros (for example the window of ",
            _entry(p, w),
            f"). A tie at 0 is still a tie: {TIES[layer.ties]}, so ",
            _entry(x, cell),
            " = 0 receives ",
            number(dp[w]),
            ". This is not an error.",
        ]
        if blocked:
            parts += [blocked, eq(Partial(sp.Symbol("L"), _entry(entry_base(below.names["in"]), cell)), 0), "."]
        out.append(Para(words(*parts)))
    return out
