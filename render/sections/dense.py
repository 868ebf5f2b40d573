"""dense: Z = W F + B, and its three rules (Wᵀ for the input, the outer product for the weights)."""

from __future__ import annotations

import sympy as sp

from render.blocks import Display, Para, words
from render.notation import Bar, IndexSum, Partial, Spaced, T, eq
from render.sections.common import Model, engine_entry, entry_base, grad, mark, shape_text, sym
from symbolic.layers import Dense
from symbolic.rules import labels_for

k, j = sp.symbols("k j")


def formula(layer: Dense, key: str) -> sp.Expr:
    r"""The rule for one gradient (``input``, ``W`` or ``B``) in matrix form.

    >>> from render.printer import latex; from symbolic.network import make_layers; from symbolic.spec import load_spec
    >>> print(latex(formula(make_layers(load_spec())[0][4], "input")))
    \frac{\partial L}{\partial F} = W_{2}^{T}\,\frac{\partial L}{\partial Z_{2}}
    """
    n_in, n_out, w, b = (layer.names[x] for x in ("in", "out", "W", "B"))
    if key == "W":
        return eq(grad(w), Spaced(grad(n_out), T(sym(n_in).name)))
    if key == "B":
        return eq(grad(b), grad(n_out))
    return eq(grad(n_in), Spaced(T(sym(w).name), grad(n_out)))


def forward(model: Model, layer: Dense) -> list:
    """A dense layer's forward pass: matrix form, index form, the engine's first entry."""
    n_in, n_out, w, b = (layer.names[x] for x in ("in", "out", "W", "B"))
    z, f, ww, bb = entry_base(n_out), entry_base(n_in), entry_base(w), entry_base(b)
    local = model.local[layer.index]
    first = (0,) * local.output.ndim
    label = labels_for(model.spec, n_out, local.output.shape)[first]
    return [
        Para(
            words(
                f"A fully connected layer of {layer.spec.units} unit{'s' if layer.spec.units > 1 else ''}: ",
                sym(w),
                f" is {shape_text(model.spec.param_shapes[w])}, ",
                sym(b),
                f" has one bias per unit; every unit sees all {layer.in_shape[0]} entries of ",
                sym(n_in),
                ".",
            )
        ),
        Display(eq(sym(n_out), sp.Add(Spaced(sym(w), sym(n_in)), sym(b), evaluate=False))),
        Display(eq(z[k], sp.Add(IndexSum(sp.Mul(ww[k, j], f[j], evaluate=False), (j, 1, layer.in_shape[0])), bb[k], evaluate=False))),
        Para(words("The first entry, as the engine builds it:")),
        Display(engine_entry(sp.Symbol(label), local.output[first], local.atoms)),
    ]


def backward(model: Model, layer: Dense) -> list:
    """The dense rules, each from the derivative of one output entry."""
    n_in, n_out, w, b = (layer.names[x] for x in ("in", "out", "W", "B"))
    z, f, ww, bb = entry_base(n_out), entry_base(n_in), entry_base(w), entry_base(b)
    local = model.local[layer.index]
    rules = {r.quantity.split("/d")[1]: r for r in model.rules_of(layer)}
    first_w = (0,) * local.params[w].ndim
    first_x = (0,) * local.inputs.ndim
    return [
        Para(
            words(
                "Write ",
                Bar(z[k]),
                " for ",
                Partial(sp.Symbol("L"), z[k]),
                ". The weight ",
                ww[k, j],
                " meets only unit ",
                k,
                ", times ",
                f[j],
                ":",
            )
        ),
        Display(eq(Partial(z[k], ww[k, j]), f[j])),
        Para(
            words(
                "so its gradient is ",
                sp.Mul(Bar(z[k]), f[j], evaluate=False),
                ": the outer product of the upstream gradient with the input,",
            )
        ),
        Display(formula(layer, "W")),
        Para(words("Weight gradient: ", mark(model, rules[w]))),
        Para(words("The bias enters each unit once (", eq(Partial(z[k], bb[k]), 1), "):")),
        Display(formula(layer, "B")),
        Para(words("Bias gradient: ", mark(model, rules[b]))),
        Para(words("An input entry ", f[j], " feeds every unit, through ", ww[k, j], ", so the chain rule sums over the units:")),
        Display(eq(Partial(sp.Symbol("L"), f[j]), IndexSum(Bar(z[k]) * ww[k, j], (k, 1, layer.spec.units)))),
        Display(formula(layer, "input")),
        Para(words("Input gradient: ", mark(model, rules[n_in]))),
        Para(words("The engine's rules for the first weight and the first input entry:")),
        Display(
            engine_entry(Partial(sp.Symbol("L"), sp.Symbol(str(local.params[w][first_w]))), local.grad_params[w][first_w], local.atoms)
        ),
        Display(engine_entry(Partial(sp.Symbol("L"), sp.Symbol(str(local.inputs[first_x]))), local.grad_input[first_x], local.atoms)),
    ]
