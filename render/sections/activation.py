"""Entrywise activations (relu, leaky_relu, tanh, sigmoid): the function, and its derivative as a mask or a factor."""

from __future__ import annotations

import sympy as sp

from render.blocks import Display, Para, words
from render.notation import Bar, Hadamard, Ind, Partial, Sigma, eq
from render.sections.common import Model, engine_entry, entry_base, grad, mark, op, sym
from symbolic.layers import LeakyReLU, ReLU, Sigmoid, Tanh
from symbolic.layers.activation import Activation
from symbolic.rules import labels_for

z = sp.Symbol("z")


def _function(layer: Activation, arg: sp.Expr) -> sp.Expr:
    if isinstance(layer, Tanh):
        return sp.tanh(arg)
    if isinstance(layer, Sigmoid):
        return Sigma(arg)
    if isinstance(layer, LeakyReLU):
        return op("LeakyReLU", arg)
    return op("ReLU", arg)


def _slope(layer: Activation, zin: sp.Expr, aout: sp.Expr, whole: bool = False) -> sp.Expr:
    """The derivative ∂a/∂z written in the layer's own terms: the mask, or the output.

    ``whole``: for the whole array, where every product is entrywise and written with ⊙ (a
    square of a matrix would read as a matrix power).
    """
    if isinstance(layer, ReLU):
        return Ind(sp.StrictGreaterThan(zin, 0))
    if isinstance(layer, LeakyReLU):
        slope = sp.nsimplify(layer.spec.slope)
        return Ind(sp.StrictGreaterThan(zin, 0)) + sp.Mul(slope, Ind(sp.LessThan(zin, 0)), evaluate=False)
    if isinstance(layer, Tanh):
        return 1 - (Hadamard(aout, aout) if whole else _square(aout))
    return Hadamard(aout, 1 - aout) if whole else sp.Mul(aout, 1 - aout, evaluate=False)


def _square(x: sp.Expr) -> sp.Expr:
    r"""x squared, an indexed entry in parentheses: (a^{(2)}_k)^2, never the tangled a^{(2)}_k^2.

    >>> from render.printer import latex; from render.sections.common import entry_base
    >>> latex(_square(entry_base("A2")[sp.Symbol("k")])), latex(_square(sp.Symbol("A_2")))
    ('\\left(a^{(2)}_{k}\\right)^{2}', 'A_{2}^{2}')
    """
    if isinstance(x, sp.Indexed):
        # The printer parenthesizes a power of an entry symbol with a layer mark; an Indexed it would not.
        name = str(x.base.label)
        letter, _, mark = name.partition("^")
        layer = mark.strip("{}()")
        x = sp.Symbol(f"{letter}{layer}_{''.join(map(str, x.indices))}")
    return x**2


def formula(layer: Activation, key: str) -> sp.Expr:
    """The rule ∂L/∂(input) = ∂L/∂(output) ⊙ the derivative, entrywise.

    >>> from render.printer import latex; from symbolic.network import make_layers; from symbolic.spec import load_spec
    >>> latex(formula(make_layers(load_spec())[0][1], "input"))
    '\\\\frac{\\\\partial L}{\\\\partial Z_{1}} = \\\\frac{\\\\partial L}{\\\\partial A_{1}} \\\\odot \\\\mathbb{1}[Z_{1} > 0]'
    """
    n_in, n_out = layer.names["in"], layer.names["out"]
    return eq(grad(n_in), Hadamard(grad(n_out), _slope(layer, sym(n_in), sym(n_out), whole=True)))


_WHY = {
    ReLU: "ReLU passes positive entries and zeroes the rest, so its derivative is 1 where the input is positive and 0 elsewhere "
    "(0 at exactly 0, as PyTorch takes it): the mask lets the gradient through where the input was positive and blocks it elsewhere.",
    LeakyReLU: "Leaky ReLU keeps positive entries and scales the rest by its slope, so its derivative is 1 above 0 and the slope "
    "at or below 0 (as PyTorch takes it at 0).",
    Tanh: "The derivative of tanh at z is 1 − tanh(z) squared, and tanh of the input is the output itself, so the factor is written "
    "with the output:",
    Sigmoid: "The derivative of the sigmoid s is s (1 − s), and the sigmoid of the input is the output itself:",
}


def _why(layer: Activation) -> str:
    return next(text for cls, text in _WHY.items() if isinstance(layer, cls))


def forward(model: Model, layer: Activation) -> list:
    """An activation's forward pass: the function applied to every entry, and the engine's first entry."""
    n_in, n_out = layer.names["in"], layer.names["out"]
    local = model.local[layer.index]
    first = (0,) * local.output.ndim
    label = labels_for(model.spec, n_out, local.output.shape)[first]
    x_first = sp.Symbol(str(local.inputs[first]))
    shown = local.output[first]
    return [
        Para(words(f"The activation {layer.kind} acts entry by entry, so ", sym(n_out), " has the shape of ", sym(n_in), ".")),
        Display(eq(sym(n_out), _function(layer, sym(n_in)))),
        Para(words("The first entry, as the engine builds it:")),
        Display(
            eq(sp.Symbol(label), sp.sympify(shown))
            if not isinstance(layer, (Tanh, Sigmoid))
            else eq(sp.Symbol(label), _function(layer, x_first))
        ),
    ]


def backward(model: Model, layer: Activation) -> list:
    """An activation's one rule, from the derivative of the function."""
    n_in, n_out = layer.names["in"], layer.names["out"]
    zin, aout = entry_base(n_in)[sp.Symbol("k")], entry_base(n_out)[sp.Symbol("k")]
    local = model.local[layer.index]
    (rule,) = model.rules_of(layer)
    first = (0,) * local.inputs.ndim
    return [
        Para(words(_why(layer))),
        Display(eq(Partial(aout, zin), _slope(layer, zin, aout))),
        Para(
            words(
                "Each entry of the output depends on one entry of the input only, so the chain rule has one term per entry (all products entrywise):"
            )
        ),
        Display(formula(layer, "input")),
        Para(words("Rule: ", mark(model, rule))),
        Para(words("The engine's rule for the first entry, in the upstream gradient ", Bar(aout), ":")),
        Display(engine_entry(Partial(sp.Symbol("L"), sp.Symbol(str(local.inputs[first]))), local.grad_input[first], local.atoms)),
    ]
