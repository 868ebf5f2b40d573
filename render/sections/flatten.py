"""flatten: a reshape forward, the reverse reshape backward."""

from __future__ import annotations

import numpy as np
import sympy as sp

from render.blocks import Display, Para, words
from render.notation import Partial, Reshape, Row, T, eq
from render.sections.common import Model, entry_base, grad, mark, op, readable, shape_text, sym
from symbolic.layers import Flatten


def formula(layer: Flatten, key: str) -> sp.Expr:
    """The rule: the gradient reshaped back.

    >>> from render.printer import latex; from symbolic.network import make_layers; from symbolic.spec import load_spec
    >>> latex(formula(make_layers(load_spec())[0][3], "input"))
    '\\\\frac{\\\\partial L}{\\\\partial P_{1}} = \\\\operatorname{reshape}\\\\left(\\\\frac{\\\\partial L}{\\\\partial F}, \\\\text{shape of } P_{1}\\\\right)'
    """
    return eq(grad(layer.names["in"]), Reshape(grad(layer.names["out"]), sym(layer.names["in"])))


def forward(model: Model, layer: Flatten) -> list:
    """Flatten: the entries in row-major order (channels, then rows, then columns)."""
    n_in, n_out = layer.names["in"], layer.names["out"]
    local = model.local[layer.index]
    entries = [sp.Symbol(str(s)) for s in local.output.ravel()]
    return [
        Para(
            words(
                "Flatten lays the ",
                shape_text(layer.in_shape),
                " entries of ",
                sym(n_in),
                f" out as a vector of {layer.out_shape[0]}, row-major: channel by channel, row by row. Nothing is computed.",
            )
        ),
        Display(eq(sym(n_out), op("flatten", sym(n_in)))),
        Display(eq(T(sym(n_out).name), sp.Matrix([entries]))),
        *index_map(layer, entries),
    ]


# Entries of the flatten map written out before the last one (the rest are elided).
MAP_SHOWN = 4


def index_map(layer: Flatten, engine_names: list) -> list:
    r"""Which entry of the input each entry of the vector is, in the index form of the other sections.

    The engine's names run the indices together and leave out axes of length 1 (p2_1 for p^(2)_{1,1,1}),
    so the map is written out with the names the index forms use.

    >>> from render.printer import latex; from symbolic.network import make_layers; from symbolic.spec import load_spec
    >>> la = make_layers(load_spec("part3"))[0][6]
    >>> print(latex(index_map(la, [sp.Symbol("p2_1"), sp.Symbol("p2_2")])[1].expr))
    f_{1} = p^{(2)}_{1,1,1} \qquad f_{2} = p^{(2)}_{2,1,1}
    """
    n_in, n_out = layer.names["in"], layer.names["out"]
    src, dst = entry_base(n_in), entry_base(n_out)
    cells = list(np.ndindex(*layer.in_shape))
    keep = list(range(len(cells))) if len(cells) <= MAP_SHOWN + 1 else [*range(MAP_SHOWN), len(cells) - 1]
    maps = [eq(dst[k + 1], src[tuple(x + 1 for x in cells[k])]) for k in keep]
    if len(keep) < len(cells):
        maps.insert(MAP_SHOWN, sp.Symbol(r"\ldots"))
    rest = [sp.Symbol(str(n)) for n in engine_names]
    return [
        Para(
            words(
                "In the index form of the other sections, entry ",
                dst[sp.Symbol("k")],
                " is the input entry at the same place in row-major order"
                + (f" (a {shape_text(layer.in_shape)} input, so channel first, then row, then column)" if len(layer.in_shape) == 3 else "")
                + ":",
            )
        ),
        Display(Row(*maps)),
        Para(
            words(
                "The engine's names above (",
                *[part for k, name in enumerate(rest[:2]) for part in ((", " if k else ""), name)],
                (", and so on" if len(rest) > 2 else ""),
                ") are the same entries: they run the indices together and leave out the axes of length 1.",
            )
        ),
    ]


def backward(model: Model, layer: Flatten) -> list:
    """Flatten's rule: each entry's gradient goes back to the place it came from."""
    n_in, n_out = layer.names["in"], layer.names["out"]
    (rule,) = model.rules_of(layer)
    local = model.local[layer.index]
    first = (0,) * local.inputs.ndim
    return [
        Para(
            words(
                "Each entry of ",
                sym(n_out),
                " is one entry of ",
                sym(n_in),
                " (the derivative is 1 there and 0 elsewhere), so the gradient is the same numbers put back in ",
                sym(n_in),
                "'s shape:",
            )
        ),
        Display(formula(layer, "input")),
        Para(words("Rule: ", mark(model, rule))),
        Display(eq(Partial(sp.Symbol("L"), sp.Symbol(str(local.inputs[first]))), readable(sp.sympify(local.grad_input[first])))),
    ]


__all__ = ["backward", "formula", "forward", "index_map"]
