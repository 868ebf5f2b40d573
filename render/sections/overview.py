"""The handout's opening: title line, what the network is, its picture, its stages and its parameters."""

from __future__ import annotations

from render.blocks import Figure, Heading, Para, Strong, Table, words
from render.drawings import architecture
from render.sections.common import Model, grad, shape_text, sym
from symbolic.layers import AvgPool, Conv2D, Dense, Flatten, MaxPool
from symbolic.layers.activation import Activation
from symbolic.layers.loss import BCE, MSE, SoftmaxCE

LOSS_NAMES = {BCE: "binary cross-entropy", SoftmaxCE: "softmax cross-entropy", MSE: "mean squared error"}
LINKS = {BCE: "sigmoid", SoftmaxCE: "softmax", MSE: ""}
SHORT = {BCE: "BCE", SoftmaxCE: "CE", MSE: "MSE"}


def loss_name(loss) -> str:
    """The loss in words.

    >>> from symbolic.network import make_layers; from symbolic.spec import load_spec
    >>> loss_name(make_layers(load_spec("part3"))[1])
    'softmax cross-entropy'
    """
    return next(text for cls, text in LOSS_NAMES.items() if isinstance(loss, cls))


def _pair(p: tuple) -> str:
    return str(p[0]) if p[0] == p[1] else "×".join(map(str, p))


def describe(layer) -> tuple:
    """What a layer does, as table words, and the short label of its arrow in the architecture figure."""
    s = layer.spec
    if isinstance(layer, Conv2D):
        extra = (f", stride {_pair(s.stride)}" if s.stride != (1, 1) else "") + (
            f", padding {_pair(s.padding)}" if s.padding != (0, 0) else ""
        )
        return (
            words(
                f"conv2d: {s.filters} filter{'s' if s.filters > 1 else ''} of {'×'.join(map(str, (*[c for c in layer.in_shape[:1] if c > 1], *s.kernel)))} (",
                sym(layer.names["W"]),
                ", ",
                sym(layer.names["B"]),
                f"){extra}",
            ),
            f"conv {'×'.join(map(str, s.kernel))}"
            + (f", stride {_pair(s.stride)}" if s.stride != (1, 1) else "")
            + (f", pad {_pair(s.padding)}" if s.padding != (0, 0) else "")
            + f"\n{layer.names['W']}, {layer.names['B']}",
        )
    if isinstance(layer, (MaxPool, AvgPool)):
        kind = "max-pool" if isinstance(layer, MaxPool) else "avg-pool"
        win = "×".join(map(str, s.window))
        overlap = ", overlapping" if s.stride[0] < s.window[0] or s.stride[1] < s.window[1] else ""
        return words(f"{kind} {win}, stride {_pair(s.stride)}{overlap}"), f"{kind}\n{win}, stride {_pair(s.stride)}"
    if isinstance(layer, Flatten):
        return words("flatten (row-major)"), "flatten"
    if isinstance(layer, Dense):
        return (
            words(f"dense: {s.units} unit{'s' if s.units > 1 else ''} (", sym(layer.names["W"]), ", ", sym(layer.names["B"]), ")"),
            f"dense\n{layer.names['W']}, {layer.names['B']}",
        )
    if isinstance(layer, Activation):
        return words(f"{layer.kind}, entrywise"), layer.kind
    raise TypeError(type(layer).__name__)


def _params_of(model: Model) -> list:
    return [(la, role) for la in model.layers for role in la.roles]


def blocks(model: Model) -> list:
    """Intro paragraph, architecture figure, stage table and parameter table."""
    spec, loss = model.spec, model.loss
    link = next(text for cls, text in LINKS.items() if isinstance(loss, cls))
    short = next(text for cls, text in SHORT.items() if isinstance(loss, cls))
    params = _params_of(model)
    grads = [grad(la.names[role]) for la, role in params]
    gradient_words: list = []
    for k, g in enumerate(grads):
        gradient_words += [g, ", " if k < len(grads) - 2 else (" and " if k == len(grads) - 2 else "")]
    kinds = ", ".join(la.kind for la in model.layers)
    shapes = [("X", shape_text(spec.input), describe(model.layers[0])[1])]
    for k, la in enumerate(model.layers):
        nxt = describe(model.layers[k + 1])[1] if k + 1 < len(model.layers) else (link or short)
        shapes.append((la.names["out"], shape_text(la.out_shape), nxt))
    if link:
        shapes.append((loss.names["out"], shape_text(loss.in_shape), short))
    shapes.append(("L", "1", None))
    stage_rows = [(words(sym("X")), words(shape_text(spec.input)), words("the input"))]
    for la in model.layers:
        stage_rows.append((words(sym(la.names["out"])), words(shape_text(la.out_shape)), describe(la)[0]))
    if link:
        stage_rows.append((words(sym(loss.names["out"])), words(shape_text(loss.in_shape)), words(f"{link}: the prediction")))
    stage_rows.append((words(sym("L")), words("1"), words(f"{loss_name(loss)} with the label ", sym("Y"))))
    param_rows = []
    for la, role in params:
        name = la.names[role]
        shape = spec.param_shapes[name]
        count = 1
        for d in shape:
            count *= d
        what = ("weights" if role == "W" else "biases") + f" of layer {la.index} ({la.kind})"
        param_rows.append((words(sym(name)), words(shape_text(shape)), words(str(count)), words(what)))
    param_rows.append((words(Strong("total")), words(""), words(Strong(str(spec.n_params))), words("trainable parameters")))
    return [
        Para(
            words(
                f"This handout derives every gradient of the network “{spec.label}”: an input of {shape_text(spec.input)}, "
                f"then {len(model.layers)} layers ({kinds}) and the loss, {loss_name(loss)} (layer {loss.index}). Training by gradient descent needs the "
                f"gradient of the loss with respect to each of its {spec.n_params} trainable parameters: ",
                *gradient_words,
                ", each with the shape of its parameter. Backpropagation finds them by walking the layers from the loss back to "
                "the input, one rule per layer. “The engine” below is cnn-derive's symbolic core: it builds every entry of every stage as "
                "an exact expression in the input and the parameters, and differentiates those expressions. Every formula below is "
                "printed from the engine's own expressions (“as the engine builds it” marks one shown as built, not typed by hand); "
                "every rule is proven exactly (Appendix); every number comes from code generated from those expressions.",
            )
        ),
        Heading("1. The network", 1, "network"),
        Figure(
            "architecture.png",
            words("The network, with the shape of every stage; the arrows that carry parameters are trained."),
            architecture,
            {"shapes": shapes},
        ),
        Table((words("quantity"), words("shape"), words("what it is")), tuple(stage_rows), "lll"),
        Table((words("parameter"), words("shape"), words("count"), words("what it is")), tuple(param_rows), "llrl"),
    ]
