"""Numbers from the symbols: the network's canonical expressions compiled into batched functions.

Every atom is computed from its *definition* (``Atoms.definition``): the ReLU step from the
very condition ReLU is written with, a pooling selector from the Piecewise conditions of its
convention, the sigmoid from a stable form. Then every output: the stages, the loss in its
proven stable form, and the gradients of the (proven) backward chain. Nothing here is a
hand-written backprop.

The numbers are per sample: ``net(X, Y, W1=..., ...)`` with leading batch axes on any
argument gives every output with those axes; ``mean=True`` averages the gradients and L over
the batch instead (the loss of a batch is the mean of the per-sample losses).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import symengine as se

from symbolic.errors import CaseError
from symbolic.layers import LeakyReLU, MaxPool, ReLU, obj
from symbolic.network import Network, backward, build
from symbolic.numeric.codegen import compile_program
from symbolic.spec import NetworkSpec

Shape = tuple[int, ...]


def squeezed(shape: Shape) -> Shape:
    """A shape without its axes of length 1: the short form a case may use.

    >>> squeezed((1, 1, 3, 3)), squeezed((1,))
    ((3, 3), ())
    """
    return tuple(d for d in shape if d != 1)


def symbolic_outputs(net: Network) -> dict[str, np.ndarray]:
    """Every quantity the tool prints, as canonical expressions of one sample (object arrays).

    Keys: each stage, the prediction, ``L``, ``mask(Z)`` (1[Z > 0] for each ReLU's input),
    ``route(A)`` (for each max-pool's input: how many windows route their gradient to each
    cell, 0/1 without overlap), and ``dL/d<stage>``, ``dL/d<param>`` from the backward chain.

    >>> out = symbolic_outputs(build(load_spec())); out["dL/dW1"].shape, out["P1"].shape, out["A2"].shape
    ((1, 1, 3, 3), (1, 2, 2), (1,))
    """
    atoms = net.atoms
    out: dict[str, np.ndarray] = {}
    for name, value in net.stages.items():
        out[name] = canon_array(net, value[0])
    pred_name = net.loss.names["out"]
    out[pred_name] = np.asarray(net.prediction, dtype=object)[0]
    assert net.loss_ctx is not None
    L = np.empty((), dtype=object)
    L[()] = net.loss.numeric_loss(net.loss_ctx)
    out["L"] = L
    for layer, ctx in zip(net.layers, net.contexts):
        x = ctx.saved.get("x")
        if isinstance(layer, (ReLU, LeakyReLU)):
            out[f"mask({layer.names['in']})"] = obj(x.shape[1:], lambda *i, x=x: atoms.lookup("step", (x[(0, *i)],)))
        if isinstance(layer, MaxPool):
            ones = obj((1, *layer.out_shape), lambda *_: se.Integer(1))
            out[f"route({layer.names['in']})"] = layer.backward(ctx, ones)[0][0]
    for key, value in backward(net).items():
        arr = np.asarray(value, dtype=object)
        out[key] = arr if key[4:] in net.params else arr[0]
    return out


def canon_array(net: Network, arr: np.ndarray) -> np.ndarray:
    """An array of raw expressions in canonical form."""
    arr = np.asarray(arr, dtype=object)
    return obj(arr.shape, lambda *i: net.atoms.canon(arr[i]))


class NumericNetwork:
    """The compiled network for one spec (per sample). Call it with arrays; leading batch axes broadcast.

    >>> net = compile_network(load_spec())
    >>> out = net(np.ones((6, 6)), 1.0, W1=np.ones((3, 3)), B1=-8.0, W2=np.ones(4), B2=0.0)
    >>> float(out["Z2"][0]), out["dL/dW1"].shape
    (4.0, (1, 1, 3, 3))
    """

    def __init__(self, net: Network, outputs: dict[str, np.ndarray]) -> None:
        self.spec = net.spec
        self.param_shapes = dict(net.spec.param_shapes)
        self.x_shape: Shape = net.spec.input
        self.y_shape: Shape = net.spec.y_shape
        self.inputs = list(net.inputs.ravel()) + [s for arr in net.params.values() for s in arr.ravel()] + list(net.Y.ravel())
        atoms = net.atoms
        level: dict = {}
        steps: list[list] = []
        for sym in atoms.by_symbol:  # creation order is forward order: dependencies come first
            definition = atoms.definition(sym)
            deps = [level[d] for d in definition.free_symbols if d in level]
            level[sym] = 1 + max(deps, default=-1)
            while len(steps) <= level[sym]:
                steps.append([])
            steps[level[sym]].append((sym, definition))
        self.keys = list(outputs)
        self.shapes = {k: np.shape(v) for k, v in outputs.items()}
        flat = [e for k in self.keys for e in np.asarray(outputs[k], dtype=object).ravel()]
        self._program = compile_program(self.inputs, steps, flat)

    def _arg(self, name: str, value: object, full: Shape) -> tuple[np.ndarray, Shape]:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise CaseError(f"{name}: expected numbers in an array of shape {full}, got {type(value).__name__}") from None
        for shape in (full, squeezed(full)):
            k = len(shape)
            if arr.ndim >= k and arr.shape[arr.ndim - k :] == shape:
                batch = arr.shape[: arr.ndim - k]
                return arr.reshape(batch + full), batch
        short = f" (or {squeezed(full)})" if squeezed(full) != full else ""
        raise CaseError(f"{name}: expected shape {full}{short} for {self.spec.label}, with optional leading batch axes; got {arr.shape}")

    def __call__(self, X: object, Y: object, mean: bool = False, **params: object) -> dict[str, np.ndarray]:
        missing = [p for p in self.param_shapes if p not in params]
        extra = [p for p in params if p not in self.param_shapes]
        if missing or extra:
            raise CaseError(
                f"{(missing or extra)[0]}: expected the parameters {', '.join(self.param_shapes)}; got {', '.join(params) or 'none'}"
            )
        args = [("X", X, self.x_shape)] + [(p, params[p], s) for p, s in self.param_shapes.items()] + [("Y", Y, self.y_shape)]
        arrays = [self._arg(name, value, full) for name, value, full in args]
        for (name, _, _), (arr, _) in zip(args, arrays):
            if not np.isfinite(arr).all():
                raise CaseError(f"{name}: expected finite numbers, got NaN or infinity")
        check_labels(self.spec, arrays[-1][0])
        try:
            batch = np.broadcast_shapes(*[b for _, b in arrays])
        except ValueError:
            shapes = ", ".join(f"{n} {a.shape}" for (n, _, _), (a, _) in zip(args, arrays))
            raise CaseError(f"batch: the leading (batch) axes do not broadcast together: {shapes}") from None
        size = math.prod(batch)
        cols = [np.broadcast_to(a, batch + a.shape[len(b) :]).reshape(size, -1) for a, b in arrays]
        values = np.concatenate(cols, axis=1).T if size else np.zeros((len(self.inputs), 0))
        flat = self._program(values)
        out, at = {}, 0
        for key in self.keys:
            shp = self.shapes[key]
            n = math.prod(shp)
            out[key] = flat[at : at + n].T.reshape(batch + shp)
            at += n
        if size and not all(np.isfinite(v).all() for v in out.values()):
            raise CaseError(
                "X: the forward pass overflows float64 at these values (L or a gradient is infinite or NaN); expected smaller magnitudes"
            )
        if mean:
            axes = tuple(range(len(batch)))
            out = {k: v.mean(axis=axes) for k, v in out.items()}
        return out


def check_labels(spec: NetworkSpec, y: np.ndarray) -> None:
    """Y must fit the loss: bce in [0, 1]; softmax_ce a probability vector.

    >>> check_labels(load_spec(), np.array(2.0))
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: Y: expected a label in [0, 1] for bce, got 2.0
    """
    if spec.loss in ("bce", "softmax_ce") and ((y < 0) | (y > 1)).any():
        bad = float(y[(y < 0) | (y > 1)].ravel()[0])
        raise CaseError(f"Y: expected a label in [0, 1] for {spec.loss}, got {bad!r}")
    if spec.loss == "softmax_ce":
        sums = y.sum(axis=-1)
        if (np.abs(sums - 1) > 1e-9).any():
            bad = float(sums[np.abs(sums - 1) > 1e-9].ravel()[0])
            raise CaseError(f"Y: expected a probability vector (entries summing to 1) for softmax_ce, got a sum of {bad!r}")


@lru_cache(maxsize=16)
def compile_network(spec: NetworkSpec, backend: str = "numpy") -> NumericNetwork:
    """Build the network for ``spec`` (one sample), run its backward chain and compile (cached per spec).

    >>> compile_network(load_spec()).keys[:3]
    ['X', 'Z1', 'A1']
    """
    if backend != "numpy":
        raise ValueError(f"backend: expected 'numpy', got {backend!r}")
    one = dataclasses.replace(spec, batch=1) if spec.batch != 1 else spec
    net = build(one)
    return NumericNetwork(net, symbolic_outputs(net))


def evaluate(spec: NetworkSpec, case: Mapping[str, object], mean: bool = False) -> dict[str, np.ndarray]:
    """The outputs for a case given as a mapping with X, Y and every parameter.

    >>> out = evaluate(load_spec(), {"X": np.zeros((6, 6)), "W1": np.zeros((3, 3)), "B1": 0, "W2": np.zeros(4), "B2": 0, "Y": 1})
    >>> round(float(out["L"]), 6)
    0.693147
    """
    case = dict(case)
    return compile_network(spec)(case.pop("X"), case.pop("Y"), mean=mean, **case)


from symbolic.spec import load_spec  # noqa: E402, F401 - for the doctests' namespace

__all__ = ["NumericNetwork", "check_labels", "compile_network", "evaluate", "squeezed", "symbolic_outputs"]
