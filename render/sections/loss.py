"""The loss (bce, softmax_ce, mse): the prediction it makes, the loss, and the gradient that starts backprop."""

from __future__ import annotations

import sympy as sp

from render.blocks import Display, Para, words
from render.notation import IndexSum, Partial, Sigma, Softplus, eq
from render.sections.common import Model, engine_entry, entry_base, grad, mark, op, sym
from symbolic.layers import BCE, MSE, Loss, SoftmaxCE

k = sp.Symbol("k")
Y = sp.Symbol("Y")


def formula(layer: Loss, key: str) -> sp.Expr:
    """The gradient of the loss with respect to its input (the last layer's output).

    >>> from render.printer import latex; from symbolic.network import make_layers; from symbolic.spec import load_spec
    >>> latex(formula(make_layers(load_spec("part3"))[1], "input"))
    '\\\\frac{\\\\partial L}{\\\\partial Z_{3}} = A_{3} - Y'
    """
    n_in, n_out = layer.names["in"], layer.names["out"]
    if isinstance(layer, MSE):
        return eq(grad(n_in), sp.Mul(sp.Rational(2, 1) / sp.Symbol("m"), sym(n_in) - Y, evaluate=False))
    return eq(grad(n_in), sym(n_out) - Y)


def _lecture_rule() -> sp.Expr:
    """The lecture's loss rule, ∂L/∂Z_2 = A_2 − Y, with the names of the lecture's network (the seed spec)."""
    from symbolic.network import make_layers
    from symbolic.spec import load_spec

    seed_loss = make_layers(load_spec())[1]
    return formula(seed_loss, "input")


def _lecture_names_note(model: Model, n_in: str, rule: sp.Expr) -> tuple:
    """A reminder that the lecture's rule is in the lecture's names, where this network uses them for other stages."""
    lecture = {str(s).replace("_", "") for s in rule.free_symbols}
    clash = [name for name in model.spec.stages[:-1] if name in lecture and name != n_in]  # the last is the loss, L in both
    if not clash:
        return ()
    listed: list = []
    for k, name in enumerate(clash):
        listed += [" and " if k == len(clash) - 1 and k else ", " if k else "", sym(name)]
    return (" (in the lecture's own names: its ", *listed, " are not this network's)" if len(clash) > 1 else " is not this network's)")


def forward(model: Model, layer: Loss) -> list:
    """The loss: the prediction, the loss in the textbook form, and the form the engine builds (proven equal)."""
    n_in, n_out = layer.names["in"], layer.names["out"]
    z, a, y = entry_base(n_in), entry_base(n_out), sp.IndexedBase("y")
    m = model.spec.units
    local = model.local[layer.index]
    built = local.output[()]
    blocks: list = []
    if isinstance(layer, SoftmaxCE):
        blocks += [
            Para(words(f"Softmax turns the {m} scores of ", sym(n_in), " into probabilities, the prediction ", sym(n_out), ":")),
            Display(eq(a[k], sp.exp(z[k]) / sp.Sum(sp.exp(z[sp.Symbol("j")]), (sp.Symbol("j"), 1, m)))),
            Para(words("The loss is the cross-entropy with the label ", Y, ", a probability vector:")),
            Display(eq(sp.Symbol("L"), -IndexSum(y[k] * sp.log(a[k]), (k, 1, m)))),
            Para(
                words(
                    "Since ",
                    eq(sp.log(a[k]), sp.Add(z[k], -op("lse", sym(n_in)), evaluate=False)),
                    ", where the log-sum-exp is ",
                    eq(op("lse", sym(n_in)), sp.log(IndexSum(sp.exp(z[k]), (k, 1, m)))),
                    ", the loss is the label's sum times the log-sum-exp, minus the label-weighted scores:",
                )
            ),
            Display(
                eq(
                    sp.Symbol("L"),
                    sp.Add(
                        sp.Mul(op("lse", sym(n_in)), IndexSum(y[k], (k, 1, m)), evaluate=False),
                        -IndexSum(y[k] * z[k], (k, 1, m)),
                        evaluate=False,
                    ),
                )
            ),
            Para(
                words(
                    "The label sums to 1, so the engine builds it as log-sum-exp minus the label-weighted scores (the two forms are "
                    "proven equal when ",
                    Y,
                    " sums to 1):",
                )
            ),
        ]
    elif isinstance(layer, BCE):
        blocks += [
            Para(words("The sigmoid gives the prediction ", sym(n_out), "; the loss is binary cross-entropy with the label ", Y, ":")),
            Display(eq(sym(n_out), Sigma(sym(n_in)))),
            Display(eq(sp.Symbol("L"), -Y * sp.log(sym(n_out)) - (1 - Y) * sp.log(1 - sym(n_out)))),
            Para(words("The engine builds it from ", sym(n_in), " (proven equal), which stays exact when the sigmoid saturates:")),
            Display(eq(sp.Symbol("L"), Softplus(sym(n_in)) - Y * sym(n_in))),
        ]
        return blocks
    else:
        blocks += [
            Para(words("The prediction is ", sym(n_in), f" itself; the loss is the mean squared error over its {m} entries:")),
            Display(eq(sp.Symbol("L"), IndexSum((z[k] - y[k]) ** 2, (k, 1, m)) / m)),
            Para(words("As the engine builds it:")),
        ]
    blocks.append(Display(engine_entry(sp.Symbol("L"), built, local.atoms)))
    return blocks


def backward(model: Model, layer: Loss) -> list:
    """Where backprop starts: the gradient of L with respect to the last layer's output."""
    n_in, n_out = layer.names["in"], layer.names["out"]
    z, a, y = entry_base(n_in), entry_base(n_out), sp.IndexedBase("y")
    (rule,) = model.rules_of(layer)
    local = model.local[layer.index]
    first = (0,) * local.inputs.ndim
    if isinstance(layer, SoftmaxCE):
        lecture = _lecture_rule()
        why = [
            Para(words("The derivative of log-sum-exp is the softmax, and the label-weighted sum gives the label:")),
            Display(eq(Partial(op("lse", sym(n_in)), z[k]), a[k])),
            Para(
                words(
                    "so ",
                    eq(Partial(sp.Symbol("L"), z[k]), sp.Add(a[k], -y[k], evaluate=False)),
                    ": prediction minus label. This is where the label summing to 1 matters: without it the first term would be ",
                    a[k],
                    " times the label's sum. It is the same form as the lecture's sigmoid with binary cross-entropy, where ",
                    lecture,
                    *_lecture_names_note(model, n_in, lecture),
                    ": softmax cross-entropy is its generalization to several classes.",
                )
            ),
        ]
    elif isinstance(layer, BCE):
        why = [Para(words("The derivative of softplus is the sigmoid, so the gradient is prediction minus label:"))]
    else:
        why = [
            Para(
                words(
                    "Each squared difference differentiates to twice the difference, and the mean divides by ",
                    sp.Symbol("m"),
                    f" = {model.spec.units}:",
                )
            )
        ]
    return [
        *why,
        Display(formula(layer, "input")),
        Para(words("Rule: ", mark(model, rule))),
        Para(words("The engine's rule for the first entry:")),
        Display(engine_entry(Partial(sp.Symbol("L"), sp.Symbol(str(local.inputs[first]))), local.grad_input[first], local.atoms)),
    ]
