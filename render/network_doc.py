"""The per-layer handout for any network: the layers walked in order, each contributing its forward equation,
its backward rule with the step that gives it, its proof mark, and its numbers in the worked example.

``build_document(spec)`` gathers the facts once (``sections.common.Model``: rules and their proofs,
each layer built alone on fresh symbols, the worked example's numbers) and asks one section
builder per layer kind (``render.sections``) for its blocks. Which builder is found from the
layer's class, never from its name.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import sympy as sp

from render.blocks import Document, Heading, Para, Words, words
from render.notation import Bar, Partial
from render.sections import activation, appendix, check, conv, dense, example, flatten, loss, overview, pool
from render.sections.common import Model, entry_base, shape_text, sym
from symbolic.layers import AvgPool, Conv2D, Dense, Flatten, Layer, Loss, MaxPool
from symbolic.layers.activation import Activation
from symbolic.rules import labels_for
from symbolic.spec import NetworkSpec

# The section builder of each layer class (the first that matches).
BUILDERS: tuple[tuple[type, ModuleType], ...] = (
    (Conv2D, conv),
    (MaxPool, pool),
    (AvgPool, pool),
    (Activation, activation),
    (Flatten, flatten),
    (Dense, dense),
    (Loss, loss),
)


def builder(layer: Layer) -> ModuleType:
    """The section builder module for a layer, by its class.

    >>> from symbolic.network import make_layers; from symbolic.spec import load_spec
    >>> [builder(la).__name__.rsplit(".", 1)[1] for la in make_layers(load_spec())[0]]
    ['conv', 'activation', 'pool', 'flatten', 'dense']
    """
    for cls, module in BUILDERS:
        if isinstance(layer, cls):
            return module
    raise TypeError(f"{layer.title}: no section builder for {type(layer).__name__}")


def layer_heading(layer: Layer, direction: str) -> Words:
    """A layer's subsection title: ``Layer 4: conv2d, P_1 → Z_2`` with the stages as math (the loss ends in L)."""
    out = "L" if isinstance(layer, Loss) else layer.names["out"]
    what = f"loss ({overview.loss_name(layer)})" if isinstance(layer, Loss) else layer.kind
    return words(f"Layer {layer.index}: {what}, ", sym(layer.names["in"]), " → ", sym(out))


def gather(spec: NetworkSpec, case: dict | None = None, progress: Callable[[str], None] | None = None) -> Model:
    """Every fact the document needs, computed once: layers, rules and their proofs, local builds, the worked example."""
    from symbolic.network import make_layers
    from symbolic.numeric import compile_network
    from symbolic.rules import layer_rule, prove, rules_for

    say = progress or (lambda text: None)
    layers, loss_layer = make_layers(spec)
    say(f"proving the rules ({spec.label})")
    rules = rules_for(spec)
    results = {r.name: prove(r) for r in rules}
    local = {la.index: layer_rule(spec, la.index) for la in [*layers, loss_layer]}
    say("computing the worked example")
    values_case, source = example.choose_case(spec, case)
    params = {k: v for k, v in values_case.items() if k not in ("X", "Y")}
    values = compile_network(spec)(values_case["X"], values_case["Y"], **params)
    return Model(spec, layers, loss_layer, rules, results, local, values_case, values, source)


def _engine_names(model: Model) -> tuple:
    """How the engine's names relate to the index form, on the first layer's first entry (said once, before its first use)."""
    layer = model.layers[0]
    out = layer.names["out"]
    shape = model.local[layer.index].output.shape
    label = labels_for(model.spec, out, shape)[(0,) * len(shape)]
    index = entry_base(out)[(1,) * len(layer.out_shape)]
    if len(layer.out_shape) < 2 or str(index) == label:
        return ()
    return (" The engine names an entry by its indices run together, leaving out axes of length 1: ", sp.Symbol(label), " is ", index, ".")


def build_document(spec: NetworkSpec, *, case: dict | None = None, progress: Callable[[str], None] | None = None) -> Document:
    """The per-layer handout for ``spec`` as a document model.

    ``case`` (a case in ``eval``'s format, as a dict) replaces the worked example's numbers;
    ``progress`` is called with a short description before each long step.

    >>> from symbolic.spec import load_spec
    >>> doc = build_document(load_spec("lenet-tiny")); doc.title
    'Backpropagation through lenet-tiny'
    """
    model = gather(spec, case, progress)
    say = progress or (lambda text: None)
    say("writing the handout")
    everything = [model.loss, *reversed(model.layers)]
    formulas = {
        r.name: builder(la).formula(la, "input" if r.quantity == f"dL/d{la.names['in']}" else _role(la, r))
        for la in everything
        for r in model.rules_of(la)
    }
    blocks: list = overview.blocks(model)
    blocks += [
        Heading("2. Forward pass", 1, "forward"),
        Para(
            words(
                "Layer by layer from the input ",
                sym("X"),
                " to the loss ",
                sym("L"),
                ": each layer's equation in matrix form, then entry by entry, then the first entry as the engine builds it.",
                *_engine_names(model),
            )
        ),
        *conv.operators(model),
    ]
    for la in [*model.layers, model.loss]:
        blocks.append(Heading(layer_heading(la, "forward"), 2, f"forward-{la.index}"))
        blocks += builder(la).forward(model, la)
    blocks += [
        Heading("3. Backward pass", 1, "backward"),
        Para(
            words(
                "From the loss back to the input. Each layer receives the gradient of ",
                sym("L"),
                " with respect to its output and passes on the gradient with respect to its input (and, for a trainable layer, "
                "its parameters). Each rule follows from one derivative of the layer's own forward, through the chain rule. "
                "Every rule carries its proof status, linked to the appendix. A bar marks such a gradient: ",
                Bar(sp.Symbol("x")),
                " stands for ",
                Partial(sym("L"), sp.Symbol("x")),
                ", for any entry ",
                sp.Symbol("x"),
                ".",
            )
        ),
    ]
    for la in everything:
        blocks.append(Heading(layer_heading(la, "backward"), 2, f"backward-{la.index}"))
        blocks += builder(la).backward(model, la)
    blocks += example.blocks(model)
    blocks += check.blocks(model)
    blocks += appendix.blocks(model, formulas)
    subtitle = words(
        f"An input of {shape_text(spec.input)}, {len(model.layers)} layers and the loss, {spec.n_params} trainable parameters. "
        "Numbers are rounded to 4 significant digits."
    )
    return Document(f"Backpropagation through {spec.label}", subtitle, tuple(blocks))


def _role(layer: Layer, rule) -> str:
    """Which parameter role (``W``, ``B``) a rule is about."""
    target = rule.quantity.split("/d", 1)[1]
    return next(role for role in layer.roles if layer.names[role] == target)


__all__ = ["BUILDERS", "build_document", "builder", "gather"]
