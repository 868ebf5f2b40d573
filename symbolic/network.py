"""A network is the list of its layers; building it and running its backward chain are loops.

``build(spec)`` starts at the input: X, every parameter and Y are named symbols (indices from
1, as in the lecture; ``names`` gives them) and every stage up to L is a SymEngine expression
in them. ``build(spec, start="A1")`` starts from fresh symbols for stage A1 instead: that is L
as a function of A1, whose brute-force gradient is dL/dA1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import symengine as se

from symbolic.atoms import Atoms
from symbolic.errors import ParameterError
from symbolic.layers import LAYERS, LOSS_LAYERS, Context, Layer, Loss, MaxPool, obj
from symbolic.names import bar as names_bar
from symbolic.names import bias_base, entry_name, grad_key, param_names, scalar_name, stage_base, weight_base
from symbolic.spec import NetworkSpec, load_spec  # noqa: F401 - load_spec: for the doctests

Array = np.ndarray


def named(base: str, shape: tuple[int, ...], scalar: str | None = None) -> Array:
    """An object array of symbols ``base_ij``; a single entry is the one symbol ``scalar``.

    >>> named("x", (1, 2, 2)).ravel().tolist(), named("b1", (1,), "B_1").tolist()
    ([x_11, x_12, x_21, x_22], [B_1])
    """
    return obj(shape, lambda *i: se.Symbol(label_of(base, i, shape, scalar)))


def label_of(base: str, idx: tuple[int, ...], shape: tuple[int, ...], scalar: str | None = None) -> str:
    """The name of one entry (see ``names.entry_name``); a one-entry array is ``scalar``."""
    if scalar is not None and math.prod(shape) == 1:
        return scalar
    return entry_name(base, idx, shape)


@lru_cache(maxsize=512)
def labels(base: str, shape: tuple[int, ...], scalar: str | None = None) -> Array:
    """Entry names as strings, shaped like the stage (cached: every build of a spec names the same entries)."""
    out = obj(shape, lambda *i: label_of(base, i, shape, scalar))
    out.flags.writeable = False
    return out


def make_layers(spec: NetworkSpec) -> tuple[list[Layer], Loss]:
    """The spec's layers as objects, with their stage and parameter names, and the loss.

    >>> [repr(la) for la in make_layers(load_spec())[0]][:2]
    ['Conv2D(layer 1 (conv2d): X -> Z1)', 'ReLU(layer 2 (relu): Z1 -> A1)']
    """
    stages = spec.stages
    layers: list[Layer] = []
    t = 0
    for i, (ls, shape_in, shape_out) in enumerate(zip(spec.layers, spec.shapes, spec.shapes[1:])):
        names = {"in": stages[i], "out": stages[i + 1]}
        if ls.type in ("conv2d", "dense"):
            t += 1
            names["W"], names["B"] = param_names(t)
        cls = LAYERS[ls.type]
        extra = {"ties": spec.ties} if cls is MaxPool else {}
        layers.append(cls(ls, i + 1, shape_in, shape_out, names, **extra))  # type: ignore[call-arg]
    loss_names = {"in": stages[-3], "out": stages[-2]}
    loss = LOSS_LAYERS[spec.loss](None, len(spec.layers) + 1, spec.shapes[-1], (), loss_names)  # type: ignore[arg-type]
    return layers, loss


@dataclass
class Network:
    """One symbolic build: stage values from ``start`` on, parameters, Y, L, atoms, contexts."""

    spec: NetworkSpec
    layers: list[Layer]
    loss: Loss
    atoms: Atoms
    start: str
    stages: dict[str, Array]
    params: dict[str, Array]
    Y: Array
    L: se.Expr
    contexts: list[Context] = field(default_factory=list)
    loss_ctx: Context | None = None
    stage_labels: dict[str, Array] = field(default_factory=dict)

    @property
    def inputs(self) -> Array:
        """The start stage's symbols."""
        return self.stages[self.start]

    def entries(self) -> dict[str, se.Symbol]:
        """Every trainable entry by name, in order: w_11, ..., B_1, w2_1, ..., B_2.

        >>> list(build(load_spec()).entries())[:3], len(build(load_spec()).entries())
        (['w_11', 'w_12', 'w_13'], 15)
        """
        return {str(s): s for arr in self.params.values() for s in arr.ravel()}

    def entry(self, name: str) -> se.Symbol:
        """One trainable entry by name; case does not matter (b_1 is B_1).

        >>> build(load_spec()).entry("b_1")
        B_1
        """
        found = {n.lower(): s for n, s in self.entries().items()}.get(name.lower())
        if found is None:
            raise ParameterError(f"PARAM: expected one of {', '.join(self.entries())}; got {name!r}")
        return found

    # Jupyter's display hooks: the forward chain and the shapes, not the (long) expressions. Math
    # becomes text only through render's printers, and symbolic never imports render at module
    # level (data flows one way), so each hook imports it when called.
    def _repr_latex_(self) -> str:
        r"""The forward chain with every stage's shape, then the parameters.

        >>> build(load_spec())._repr_latex_().count(r"\xrightarrow")
        7
        """
        from render.display import network_latex

        return network_latex(self)

    def _repr_pretty_(self, p, cycle: bool) -> None:
        from render.display import network_text

        p.text(network_text(self))

    @property
    def prediction(self) -> Array:
        """The network's output (canonical): A2 = sigmoid(Z2) for the seed."""
        assert self.loss_ctx is not None
        return self.loss.prediction(self.loss_ctx)


def stage_symbols(spec: NetworkSpec, stage: str, shape: tuple[int, ...], bar: bool = False) -> Array:
    """Fresh symbols for a stage with a batch axis: ``a_ij`` for A1 (``abar_ij`` with ``bar``)."""
    base, scalar = stage_base(stage), scalar_name(stage)
    if bar:
        base, scalar = names_bar(base), names_bar(scalar)
    return named(base, (spec.batch, *shape), scalar)


def param_symbols(spec: NetworkSpec) -> dict[str, Array]:
    """Every parameter as named symbols, in PyTorch's layout."""
    out = {}
    for name, shape in spec.param_shapes.items():
        t = int(name[1:])
        out[name] = named(weight_base(t), shape) if name[0] == "W" else named(bias_base(t), shape, scalar_name(name))
    return out


def label_symbols(spec: NetworkSpec) -> Array:
    """Y with a batch axis: ``Y`` for one bce sample, ``y_k`` for a vector."""
    return named("y", (spec.batch, max(1, spec.units if spec.loss != "bce" else 1)), "Y")


def build(spec: NetworkSpec, start: str = "X", atoms: Atoms | None = None) -> Network:
    """Build the network forward from stage ``start``, registering every kink as an atom.

    >>> net = build(load_spec()); net.stages["Z1"].shape, net.stages["P1"].shape, net.stages["F"].shape
    ((1, 1, 4, 4), (1, 1, 2, 2), (1, 4))
    """
    stage_list = spec.stages
    if start not in stage_list[:-2]:
        raise ValueError(f"start must be one of {stage_list[:-2]}")
    first = stage_list.index(start)
    layers, loss = make_layers(spec)
    atoms = atoms if atoms is not None else Atoms()
    shapes = spec.shapes
    stage_labels = {
        stage_list[i]: labels(stage_base(stage_list[i]), (spec.batch, *shapes[i]), scalar_name(stage_list[i])) for i in range(len(shapes))
    }
    x = stage_symbols(spec, start, shapes[first])
    all_params = param_symbols(spec)
    params = {p: all_params[p] for la in layers[first:] for p in la.params}
    stages = {start: x}
    contexts = []
    for layer in layers[first:]:
        ctx = Context(atoms, stage_labels[layer.names["in"]], stage_labels[layer.names["out"]], layer.names["out"])
        x = layer.forward(ctx, x, {p: params[p] for p in layer.params})
        stages[layer.names["out"]] = x
        contexts.append(ctx)
    Y = label_symbols(spec)
    pred_labels = labels(stage_base(stage_list[-2]), x.shape, scalar_name(stage_list[-2]))
    loss_ctx = Context(atoms, stage_labels[stage_list[-3]], pred_labels, stage_list[-2])
    L = loss.forward(loss_ctx, x, {"Y": Y})[()]
    return Network(spec, layers[first:], loss, atoms, start, stages, params, Y, L, contexts, loss_ctx, stage_labels)


def backward(net: Network) -> dict[str, Array]:
    """The backward chain, rule by rule, from L down to the start stage (canonical form).

    Keys are ``dL/d<stage>`` for every stage from the loss's input down to the start, and
    ``dL/d<param>`` for every parameter of the layers built.

    >>> sorted(backward(build(load_spec(), start="P1")))
    ['dL/dB2', 'dL/dF', 'dL/dP1', 'dL/dW2', 'dL/dZ2']
    """
    assert net.loss_ctx is not None
    g, _ = net.loss.backward(net.loss_ctx, se.Integer(1))
    out = {grad_key(net.loss.names["in"]): g}
    for layer, ctx in zip(reversed(net.layers), reversed(net.contexts)):
        g, gp = layer.backward(ctx, g)
        out[grad_key(layer.names["in"])] = g
        out.update({grad_key(k): v for k, v in gp.items()})
    return out


__all__ = ["Network", "backward", "build", "label_symbols", "labels", "make_layers", "named", "param_symbols", "stage_symbols"]
