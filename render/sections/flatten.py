"""flatten: a reshape forward, the reverse reshape backward."""

from __future__ import annotations

import sympy as sp

from render.blocks import Display, Para, words
from render.notation import Partial, Reshape, T, eq
from render.sections.common import Model, grad, mark, op, readable, shape_text, sym
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


__all__ = ["backward", "formula", "forward"]
