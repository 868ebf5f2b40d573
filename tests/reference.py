"""Independent oracles for networks described by a spec dict (what ``tomllib.loads`` gives).

Nothing here imports ``symbolic/`` or ``render/``: this module is the reference the symbolic
engine is tested against, so it is written from the spec format alone.

Two references compute the same outputs:

* `torch_reference`: PyTorch float64 autograd on the CPU. It *defines* the conventions the
  project promises at kinks (ReLU'(0) = 0, LeakyReLU'(0) = slope, max-pool sends a window's
  gradient to its first maximum in row-major order).
* `numpy_reference`: forward and backward written out by hand in numpy, with a choice of
  max-pool tie convention ("first" as PyTorch, "split", "all").

Both return "L", "output", every stage and "dL/d<stage>" (except the link's output, which
is not on the loss's path: the losses are computed from the logits), "dL/dX", "dL/dW<i>"
and "dL/dB<i>".

`error_scales` gives, for each of those keys, the scale of its rounding error: two correct
float64 implementations differ by far more than eps * |value| where a result cancels, so
compare them with ``rtol * |value| + k * eps * scale``.

Generators of test points: `random_case` (smooth random floats) and `hard_points`
(integer-valued points sitting on kinks: pool ties, exact zeros before ReLU, dead layers,
saturated logits). `shapes` gives every full-layout shape; `kink_margin` says how far a point
is from the nearest kink (for choosing points where finite differences are valid).

Layouts ("full" = PyTorch's, never squeezed): X is shaped as ``spec["input"]`` says
(``[6, 6]`` means a 6x6 array, ``[2, 8, 8]`` a 2x8x8 one), optionally with a leading batch axis;
conv2d weights are [filters, channels, kh, kw], biases [filters]; dense weights
[units, inputs], biases [units]. Every stage is returned in its full layout: a conv on a
one-channel input gives Z1 of shape (filters, h, w) even when filters == 1.

Stage names: walking the layers with t = trainable layers seen so far (a conv2d/dense
increments t before naming its output), conv2d/dense output ``Z<t>``, activations ``A<t>``,
pools ``P<t>``, flattens ``F``, ``F2``, ...; the loss's link (sigmoid for bce, softmax for
softmax_ce, identity for mse) outputs ``A<t>``. A name already taken gets ``_2``, ``_3``, ...
appended (two activations in a row: ``A1``, ``A1_2``).

>>> spec = {"input": [6, 6], "loss": "bce", "layers": [
...     {"type": "conv2d", "filters": 1, "kernel": 3}, {"type": "relu"},
...     {"type": "maxpool", "window": 2}, {"type": "flatten"},
...     {"type": "dense", "units": 1}]}
>>> stage_names(spec)
['Z1', 'A1', 'P1', 'F', 'Z2', 'A2']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as TF

LOSSES = ("bce", "softmax_ce", "mse")
TIES = ("first", "split", "all")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid")
POOLS = ("maxpool", "avgpool")
TRAINABLE = ("conv2d", "dense")

# Keys a layer may carry (beyond "type"). Unknown keys are refused: a typo such as "strides"
# would otherwise silently fall back to the default and make the oracle answer another question.
_LAYER_KEYS = {
    "conv2d": {"filters", "kernel", "stride", "padding"},
    "dense": {"units"},
    "relu": set(),
    "leaky_relu": {"slope"},
    "tanh": set(),
    "sigmoid": set(),
    "maxpool": {"window", "stride"},
    "avgpool": {"window", "stride"},
    "flatten": set(),
}

# Saturating logits used by `hard_points`: e^40 already swamps 1 in float64, e^-800 underflows
# to 0 and e^800 overflows, so naive formulas break at these.
_SATURATION = (40.0, -40.0, 800.0, -800.0, 1800.0, -1800.0)
_SCENARIOS = ("constant", "binary", "zero_kinks", "striped", "dead")
_EPS = float(np.finfo(np.float64).eps)


# ----------------------------------------------------------------------------------------
# the spec, parsed once into a plan
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """One layer of a parsed spec, with its stage name and (unbatched, full) shapes."""

    kind: str
    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    index: int = 0  # 1, 2, ... for conv2d/dense (the i of W<i>, B<i>); 0 otherwise
    kernel: tuple[int, int] = (1, 1)  # conv kernel or pool window
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    slope: float = 0.01


@dataclass(frozen=True)
class Plan:
    """A validated spec: layers with names and shapes, the loss and its link."""

    input_shape: tuple[int, ...]  # as the spec writes it: 2 or 3 dims
    full_input: tuple[int, int, int]  # (channels, height, width)
    layers: tuple[Layer, ...]
    loss: str
    ties: str
    link_name: str
    n_out: int  # values of the last stage, which the loss sees flattened

    @property
    def trainable(self) -> tuple[Layer, ...]:
        return tuple(layer for layer in self.layers if layer.kind in TRAINABLE)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {}
        for layer in self.trainable:
            if layer.kind == "conv2d":
                w = (layer.out_shape[0], layer.in_shape[0], *layer.kernel)
            else:
                w = (layer.out_shape[0], layer.in_shape[0])
            out[f"W{layer.index}"] = w
            out[f"B{layer.index}"] = (layer.out_shape[0],)
        return out


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    # bool is an int in Python; a spec saying `filters = true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _pair(value: Any, what: str, minimum: int = 1) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{what} must be an integer or a pair, got {value!r}")
        return (
            _positive_int(value[0], what, minimum),
            _positive_int(value[1], what, minimum),
        )
    v = _positive_int(value, what, minimum)
    return (v, v)


def parse_spec(spec: Mapping[str, Any]) -> Plan:
    """Validate a spec and name its stages; raises ValueError on anything invalid."""
    if not isinstance(spec, Mapping):
        raise TypeError(f"spec must be a mapping, got {type(spec).__name__}")
    raw_input = spec.get("input")
    if not isinstance(raw_input, (list, tuple)) or len(raw_input) not in (2, 3):
        raise ValueError(f"input must be [h, w] or [c, h, w], got {raw_input!r}")
    input_shape = tuple(_positive_int(d, "input") for d in raw_input)
    full: tuple[int, int, int] = (
        (1, *input_shape) if len(input_shape) == 2 else input_shape  # type: ignore[assignment]
    )
    loss = spec.get("loss")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    ties = spec.get("ties", "first")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    raw_layers = spec.get("layers")
    if not isinstance(raw_layers, (list, tuple)) or not raw_layers:
        raise ValueError("layers must be a non-empty list")

    taken: set[str] = set()

    def unique(base: str) -> str:
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        return name

    shape: tuple[int, ...] = full
    t = 0
    flattens = 0
    layers: list[Layer] = []
    for pos, raw in enumerate(raw_layers, start=1):
        if not isinstance(raw, Mapping) or "type" not in raw:
            raise ValueError(f"layer {pos} must be a table with a type")
        kind = raw["type"]
        if kind not in _LAYER_KEYS:
            raise ValueError(f"layer {pos}: unknown type {kind!r}")
        extra = set(raw) - _LAYER_KEYS[kind] - {"type"}
        if extra:
            raise ValueError(f"layer {pos} ({kind}): unknown keys {sorted(extra)}")
        where = f"layer {pos} ({kind})"
        if kind in ("conv2d", *POOLS) and len(shape) != 3:
            raise ValueError(f"{where} needs a c x h x w input, got shape {shape}")
        if kind == "conv2d":
            filters = _positive_int(raw.get("filters"), f"{where}: filters")
            kernel = _pair(raw.get("kernel"), f"{where}: kernel")
            stride = _pair(raw.get("stride", 1), f"{where}: stride")
            padding = _pair(raw.get("padding", 0), f"{where}: padding", minimum=0)
            c, h, w = shape
            hp, wp = h + 2 * padding[0], w + 2 * padding[1]
            if hp < kernel[0] or wp < kernel[1]:
                raise ValueError(f"{where}: kernel {kernel} larger than input {(hp, wp)}")
            # Like PyTorch, a stride that does not tile exactly drops the last rows/columns.
            out = (
                filters,
                (hp - kernel[0]) // stride[0] + 1,
                (wp - kernel[1]) // stride[1] + 1,
            )
            t += 1
            layer = Layer(kind, unique(f"Z{t}"), shape, out, t, kernel, stride, padding)
        elif kind == "dense":
            if len(shape) != 1:
                raise ValueError(f"{where} needs a flat input (flatten first), got {shape}")
            units = _positive_int(raw.get("units"), f"{where}: units")
            t += 1
            layer = Layer(kind, unique(f"Z{t}"), shape, (units,), t)
        elif kind in ACTIVATIONS:
            slope = raw.get("slope", 0.01)
            if isinstance(slope, bool) or not isinstance(slope, (int, float)):
                raise ValueError(f"{where}: slope must be a number, got {slope!r}")
            layer = Layer(kind, unique(f"A{t}"), shape, shape, slope=float(slope))
        elif kind in POOLS:
            window = _pair(raw.get("window"), f"{where}: window")
            stride = _pair(raw.get("stride", list(window)), f"{where}: stride")
            c, h, w = shape
            for size, win, st, axis in ((h, window[0], stride[0], "rows"), (w, window[1], stride[1], "columns")):
                if size < win or (size - win) % st:
                    raise ValueError(f"{where}: window {win} stride {st} does not tile {size} {axis}")
            out = (
                c,
                (h - window[0]) // stride[0] + 1,
                (w - window[1]) // stride[1] + 1,
            )
            layer = Layer(kind, unique(f"P{t}"), shape, out, kernel=window, stride=stride)
        else:  # flatten
            flattens += 1
            name = unique("F" if flattens == 1 else f"F{flattens}")
            layer = Layer(kind, name, shape, (math.prod(shape),))
        layers.append(layer)
        shape = layer.out_shape

    n_out = math.prod(shape)
    if loss == "bce" and n_out != 1:
        raise ValueError(f"bce needs exactly one output value, the network gives {n_out}")
    return Plan(
        input_shape,
        full,
        tuple(layers),
        loss,
        ties,
        unique(f"A{t}"),
        n_out,
    )


def stage_names(spec: Mapping[str, Any]) -> list[str]:
    """Every stage name in order, the loss's link output last."""
    plan = parse_spec(spec)
    return [layer.name for layer in plan.layers] + [plan.link_name]


def shapes(spec: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Full-layout, unbatched shapes: X, W<i>/B<i>, Y, every stage, "output" and "L".

    The gradient "dL/d<key>" of any key has the key's shape.

    >>> s = shapes({"input": [6, 6], "loss": "bce", "layers": [
    ...     {"type": "conv2d", "filters": 1, "kernel": 3}, {"type": "relu"},
    ...     {"type": "maxpool", "window": 2}, {"type": "flatten"},
    ...     {"type": "dense", "units": 1}]})
    >>> s["X"], s["W1"], s["B1"], s["Z1"], s["P1"], s["F"], s["W2"], s["Z2"], s["Y"]
    ((6, 6), (1, 1, 3, 3), (1,), (1, 4, 4), (1, 2, 2), (4,), (1, 4), (1,), ())
    """
    plan = parse_spec(spec)
    out: dict[str, tuple[int, ...]] = {"X": plan.input_shape}
    out.update(plan.param_shapes())
    # bce's label is "a number"; the other losses take one value per output unit.
    out["Y"] = () if plan.loss == "bce" else (plan.n_out,)
    for layer in plan.layers:
        out[layer.name] = layer.out_shape
    last = plan.layers[-1].out_shape
    out[plan.link_name] = last
    out["output"] = last
    out["L"] = ()
    return out


# ----------------------------------------------------------------------------------------
# the case: arrays brought to full layout with a batch axis
# ----------------------------------------------------------------------------------------
def _to_layout(value: Any, full: tuple[int, ...], key: str) -> np.ndarray:
    """Reshape to `full`, accepting any form that differs from it only by size-1 axes."""
    a = np.asarray(value, dtype=np.float64)
    if a.shape == full:
        return a.copy()
    # Size-1 axes carry no ordering, so dropping/adding them cannot permute the data.
    if tuple(d for d in a.shape if d != 1) == tuple(d for d in full if d != 1):
        return a.reshape(full).copy()
    raise ValueError(f"{key} must have shape {full} (size-1 axes may be dropped), got {a.shape}")


@dataclass
class _Case:
    X: np.ndarray  # (batch, c, h, w)
    params: dict[str, np.ndarray]  # full layouts
    Y: np.ndarray  # (batch, n_out)
    batched: bool


def _normalize_case(plan: Plan, case: Mapping[str, Any]) -> _Case:
    if not isinstance(case, Mapping):
        raise TypeError(f"case must be a mapping, got {type(case).__name__}")
    for key in ("X", "Y"):
        if key not in case:
            raise ValueError(f"case has no {key}")
    X = np.asarray(case["X"], dtype=np.float64)
    rank = len(plan.input_shape)
    if X.shape == plan.input_shape:
        batched, batch = False, 1
    elif X.ndim == rank + 1 and X.shape[1:] == plan.input_shape:
        batched, batch = True, X.shape[0]
        if batch == 0:
            raise ValueError("X has an empty batch")
    else:
        raise ValueError(f"X must have shape {plan.input_shape} or (batch, *{plan.input_shape}), got {X.shape}")
    X4 = X.reshape((batch, *plan.full_input)).copy()

    expected = plan.param_shapes()
    params = {}
    for key, full in expected.items():
        if key not in case:
            raise ValueError(f"case has no {key}")
        params[key] = _to_layout(case[key], full, key)
    # A W3 for a network with two trainable layers means the case was built for another spec.
    for key in case:
        if key[:1] in ("W", "B") and key[1:].isdigit() and key not in expected:
            raise ValueError(f"case has {key}, but the spec has {len(plan.trainable)} trainable layers")

    y_full = (batch, plan.n_out) if batched else (plan.n_out,)
    Y = _to_layout(case["Y"], y_full, "Y").reshape(batch, plan.n_out)
    return _Case(X4, params, Y, batched)


def _finish(
    plan: Plan,
    case: _Case,
    L: float,
    link: np.ndarray,
    values: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    dX: np.ndarray,
    param_grads: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Assemble the common output dict; drops the batch axis for unbatched cases."""

    def un(a: np.ndarray) -> np.ndarray:
        a = np.array(a, dtype=np.float64, copy=True)
        return a if case.batched else a[0]

    out: dict[str, np.ndarray] = {"L": np.array(L, dtype=np.float64)}
    out["output"] = un(link)
    out[plan.link_name] = un(link)
    for layer in plan.layers:
        out[layer.name] = un(values[layer.name])
        out["dL/d" + layer.name] = un(grads[layer.name])
    batch = case.X.shape[0]
    x_shape = (batch, *plan.input_shape) if case.batched else plan.input_shape
    out["dL/dX"] = np.array(dX, dtype=np.float64).reshape(x_shape)
    for key in plan.param_shapes():
        out["dL/d" + key] = np.array(param_grads[key], dtype=np.float64, copy=True)
    return out


# ----------------------------------------------------------------------------------------
# reference 1: PyTorch autograd
# ----------------------------------------------------------------------------------------
def torch_reference(spec: Mapping[str, Any], case: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """L, "output", every stage and its gradient, dL/dX and dL/dW<i>, dL/dB<i> via autograd.

    Keys: "L" (0-d), "output" and the link's stage name (same value), each stage name,
    "dL/d<stage>" for every stage except the link's output (the loss is computed from the
    logits, as PyTorch's stable losses do, so the link's output is not on the loss's path),
    "dL/dX" (shaped as the case's X), "dL/dW<i>", "dL/dB<i>" (full layouts).
    """
    plan = parse_spec(spec)
    c = _normalize_case(plan, case)
    f64 = torch.float64
    # These networks are tiny: with several intra-op threads PyTorch spends far longer
    # waking threads than computing (20x slower on a loaded 2-core machine), so run on one
    # thread and give the caller's setting back.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _torch_run(plan, c, f64)
    finally:
        torch.set_num_threads(threads)


def _torch_run(plan: Plan, c: _Case, f64: torch.dtype) -> dict[str, np.ndarray]:
    with torch.enable_grad():  # a caller inside torch.no_grad() still gets gradients
        x = torch.tensor(c.X, dtype=f64, requires_grad=True)
        p = {k: torch.tensor(v, dtype=f64, requires_grad=True) for k, v in c.params.items()}
        h = x
        stages: dict[str, torch.Tensor] = {}
        for layer in plan.layers:
            h = _torch_layer(layer, h, p)
            h.retain_grad()
            stages[layer.name] = h
        batch = c.X.shape[0]
        z = h.reshape(batch, plan.n_out)
        y = torch.tensor(c.Y, dtype=f64)
        if plan.loss == "bce":
            loss = TF.binary_cross_entropy_with_logits(z, y)  # mean over the batch
            link = torch.sigmoid(z)
        elif plan.loss == "softmax_ce":
            loss = TF.cross_entropy(z, y)  # probability targets; mean over the batch
            link = torch.softmax(z, dim=1)
        else:
            loss = TF.mse_loss(z, y)  # mean over batch and units
            link = z
        loss.backward()

    def np_(t: torch.Tensor) -> np.ndarray:
        return t.detach().numpy().copy()

    values = {name: np_(t) for name, t in stages.items()}
    grads = {}
    for name, t in stages.items():
        # Every stage lies on the chain to L, so autograd always fills its grad.
        assert t.grad is not None, name
        grads[name] = np_(t.grad)
    assert x.grad is not None
    pgrads = {}
    for k, v in p.items():
        assert v.grad is not None, k
        pgrads[k] = np_(v.grad)
    link_np = np_(link).reshape(h.shape)
    return _finish(plan, c, float(loss.item()), link_np, values, grads, np_(x.grad), pgrads)


def _torch_layer(layer: Layer, h: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    kind = layer.kind
    if kind == "conv2d":
        w, b = p[f"W{layer.index}"], p[f"B{layer.index}"]
        return TF.conv2d(h, w, b, stride=layer.stride, padding=layer.padding)
    if kind == "dense":
        return TF.linear(h, p[f"W{layer.index}"], p[f"B{layer.index}"])
    if kind == "relu":
        return TF.relu(h)
    if kind == "leaky_relu":
        return TF.leaky_relu(h, layer.slope)
    if kind == "tanh":
        return torch.tanh(h)
    if kind == "sigmoid":
        return torch.sigmoid(h)
    if kind == "maxpool":
        return TF.max_pool2d(h, layer.kernel, layer.stride)
    if kind == "avgpool":
        return TF.avg_pool2d(h, layer.kernel, layer.stride)
    return h.reshape(h.shape[0], -1)  # flatten: row-major over channels, rows, columns


# ----------------------------------------------------------------------------------------
# reference 2: numpy, forward and backward by hand
# ----------------------------------------------------------------------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    # The same formula as PyTorch's CPU kernel, 1 / (1 + e^-z): accurate to a few ulp
    # everywhere except where the true value is subnormal (z < -708), where it gives 0 as
    # PyTorch does (the two-branch "stable" form would give a subnormal there instead).
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _windows(shape: tuple[int, ...], kernel: tuple[int, int], stride: tuple[int, int]):
    """(i, j, row slice, column slice) of each window of an h x w map, row-major."""
    h, w = shape[-2:]
    for i in range((h - kernel[0]) // stride[0] + 1):
        for j in range((w - kernel[1]) // stride[1] + 1):
            r, s = i * stride[0], j * stride[1]
            yield i, j, slice(r, r + kernel[0]), slice(s, s + kernel[1])


def _pad(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    ph, pw = padding
    out = np.zeros((*x.shape[:2], x.shape[2] + 2 * ph, x.shape[3] + 2 * pw))
    out[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]] = x
    return out


def _np_forward(layer: Layer, x: np.ndarray, params: Mapping[str, np.ndarray]) -> np.ndarray:
    kind = layer.kind
    batch = x.shape[0]
    if kind == "conv2d":
        w, b = params[f"W{layer.index}"], params[f"B{layer.index}"]
        xp = _pad(x, layer.padding)
        z = np.empty((batch, *layer.out_shape))
        # Cross-correlation: Z[n, f, i, j] = b[f] + sum_{c,u,v} W[f, c, u, v] X[n, c, i*s+u, j*s+v]
        for i, j, rows, cols in _windows(xp.shape, layer.kernel, layer.stride):
            patch = xp[:, :, rows, cols]
            z[:, :, i, j] = np.einsum("ncuv,fcuv->nf", patch, w) + b
        return z
    if kind == "dense":
        w, b = params[f"W{layer.index}"], params[f"B{layer.index}"]
        return x @ w.T + b
    if kind == "relu":
        return np.where(x > 0, x, 0.0)
    if kind == "leaky_relu":
        return np.where(x > 0, x, x * layer.slope)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "sigmoid":
        return _sigmoid(x)
    if kind in POOLS:
        out = np.empty((batch, *layer.out_shape))
        area = layer.kernel[0] * layer.kernel[1]
        for i, j, rows, cols in _windows(x.shape, layer.kernel, layer.stride):
            win = x[:, :, rows, cols].reshape(batch, x.shape[1], area)
            out[:, :, i, j] = win.max(axis=2) if kind == "maxpool" else win.sum(axis=2) / area
        return out
    return x.reshape(batch, -1)  # flatten


def _np_backward(
    layer: Layer,
    x: np.ndarray,
    y: np.ndarray,
    g: np.ndarray,
    params: Mapping[str, np.ndarray],
    param_grads: dict[str, np.ndarray],
    ties: str,
) -> np.ndarray:
    """dL/d(input) from g = dL/d(output); fills param_grads for conv2d/dense."""
    kind = layer.kind
    batch = x.shape[0]
    if kind == "conv2d":
        w = params[f"W{layer.index}"]
        xp = _pad(x, layer.padding)
        dxp = np.zeros_like(xp)
        dw = np.zeros_like(w)
        # Each output position (i, j) saw one patch; it sends g[n, f, i, j] * patch to dW
        # and g[n, f, i, j] * W to the patch's cells (summed where patches overlap).
        for i, j, rows, cols in _windows(xp.shape, layer.kernel, layer.stride):
            gij = g[:, :, i, j]  # (batch, filters)
            dw += np.einsum("nf,ncuv->fcuv", gij, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += np.einsum("nf,fcuv->ncuv", gij, w)
        param_grads[f"W{layer.index}"] = dw
        param_grads[f"B{layer.index}"] = g.sum(axis=(0, 2, 3))
        ph, pw = layer.padding
        return dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]
    if kind == "dense":
        w = params[f"W{layer.index}"]
        param_grads[f"W{layer.index}"] = g.T @ x
        param_grads[f"B{layer.index}"] = g.sum(axis=0)
        return g @ w
    if kind == "relu":
        return np.where(x > 0, g, 0.0)  # ReLU'(0) = 0
    if kind == "leaky_relu":
        return np.where(x > 0, g, g * layer.slope)  # x > 0 ? 1 : slope, so slope at 0
    if kind == "tanh":
        return g * (1.0 - y * y)
    if kind == "sigmoid":
        return g * (1.0 - y) * y  # the order PyTorch's sigmoid_backward multiplies in
    if kind in POOLS:
        channels = x.shape[1]
        area = layer.kernel[0] * layer.kernel[1]
        dx = np.zeros_like(x)
        for i, j, rows, cols in _windows(x.shape, layer.kernel, layer.stride):
            gij = g[:, :, i, j][:, :, None]  # (batch, channels, 1)
            if kind == "avgpool":
                share = np.broadcast_to(gij / area, (batch, channels, area))
            else:
                win = x[:, :, rows, cols].reshape(batch, channels, area)
                is_max = win == y[:, :, i, j][:, :, None]  # exact equality defines a tie
                if ties == "first":
                    # argmax of a boolean array is its first True: the first maximum in
                    # row-major order, as PyTorch's CPU kernel records it.
                    first = np.argmax(is_max, axis=2)
                    sel = np.arange(area)[None, None, :] == first[:, :, None]
                    share = np.where(sel, gij, 0.0)
                elif ties == "split":
                    share = np.where(is_max, gij / is_max.sum(axis=2, keepdims=True), 0.0)
                else:  # "all"
                    share = np.where(is_max, gij, 0.0)
            # "+=": with stride < window a cell collects from every window it lies in.
            dx[:, :, rows, cols] += share.reshape(batch, channels, *layer.kernel)
        return dx
    return g.reshape(x.shape)  # flatten


def _np_loss(loss: str, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(L, dL/dz, link(z)) for logits z and labels y, both (batch, n); L is a batch mean."""
    batch, n = z.shape
    if loss == "bce":
        # max(z, 0) - z y + log(1 + e^-|z|): no overflow, and no log(0) when saturated.
        per = np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))
        link = _sigmoid(z)
        dz = (link - y) / batch
        return float(per.sum() / batch), dz, link
    if loss == "softmax_ce":
        shifted = z - z.max(axis=1, keepdims=True)  # as log_softmax: exp never overflows
        lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        logp = shifted - lse
        per = -(y * logp).sum(axis=1)
        link = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        # d/dz_j of -sum_i y_i log p_i = p_j * sum_i y_i - y_j (y need not sum to 1).
        dz = (np.exp(logp) * y.sum(axis=1, keepdims=True) - y) / batch
        return float(per.sum() / batch), dz, link
    diff = z - y
    return float((diff * diff).sum() / (batch * n)), 2.0 * diff / (batch * n), z.copy()


def numpy_reference(spec: Mapping[str, Any], case: Mapping[str, Any], ties: str | None = None) -> dict[str, np.ndarray]:
    """The same keys as `torch_reference`, by hand-written forward and backward passes.

    ties: max-pool tie convention, "first" (PyTorch CPU), "split" (1/|M| to each of the |M|
    maxima) or "all" (each maximum gets the whole gradient); default spec.get("ties", "first").
    """
    plan = parse_spec(spec)
    ties = plan.ties if ties is None else ties
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    c = _normalize_case(plan, case)
    run = _np_run(plan, c, ties)
    return _finish(plan, c, run.L, run.link, run.values, run.grads, run.dX, run.param_grads)


@dataclass
class _Run:
    inputs: list[np.ndarray]  # the input of each layer
    values: dict[str, np.ndarray]  # the output of each layer, by stage name
    z: np.ndarray  # logits, (batch, n_out)
    L: float
    dz: np.ndarray
    link: np.ndarray  # shaped as the last stage
    grads: dict[str, np.ndarray]
    dX: np.ndarray
    param_grads: dict[str, np.ndarray]


def _np_run(plan: Plan, c: _Case, ties: str) -> _Run:
    inputs: list[np.ndarray] = []
    values: dict[str, np.ndarray] = {}
    h = c.X
    for layer in plan.layers:
        inputs.append(h)
        h = _np_forward(layer, h, c.params)
        values[layer.name] = h
    z = h.reshape(c.X.shape[0], plan.n_out)
    L, dz, link = _np_loss(plan.loss, z, c.Y)
    g = dz.reshape(h.shape)
    grads: dict[str, np.ndarray] = {}
    param_grads: dict[str, np.ndarray] = {}
    for layer, x in zip(reversed(plan.layers), reversed(inputs)):
        grads[layer.name] = g
        g = _np_backward(layer, x, values[layer.name], g, c.params, param_grads, ties)
    return _Run(inputs, values, z, L, dz, link.reshape(h.shape), grads, g, param_grads)


# ----------------------------------------------------------------------------------------
# rounding-error scales, for comparing two float64 implementations fairly
# ----------------------------------------------------------------------------------------
def error_scales(spec: Mapping[str, Any], case: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """For every key of the references, a scale s >= 0 with |rounding error| ~ eps * s.

    Two correct float64 implementations that sum in different orders (PyTorch's im2col/GEMM
    against these loops) or use libm functions a few ulp apart can differ by far more than
    eps * |value| where a result cancels: a gradient summing terms of both signs, 1 - tanh^2
    near saturation, PyTorch's BCE ``(1 - y) z - log_sigmoid(z)`` for z << 0 and y = 0 (whose
    two terms cancel to ~e^z). So a comparison needs a tolerance of the form
    ``rtol * |value| + k * eps * s``. s is a first-order bound on how rounding errors grow:
    every sum is replaced by the sum of the magnitudes of its terms (each term's own error
    scale included), every local rounding adds the magnitude of the rounded value, and
    errors passing through a smooth function are multiplied by its derivative's magnitude.
    A wrong formula, a wrongly routed gradient or a wrong tie convention changes a result
    by about its own size, far above k * eps * s for any modest k.

    Max-pool windows are routed by the first maximum (as PyTorch); a near-tie closer than
    the rounding error would make the two references route differently, which no scale can
    absorb: points from `hard_points` tie exactly, random points almost surely do not tie.
    """
    plan = parse_spec(spec)
    c = _normalize_case(plan, case)
    run = _np_run(plan, c, "first")
    absp = {k: np.abs(v) for k, v in c.params.items()}

    s = np.abs(c.X)  # inputs are exact; |X| only seeds the magnitudes of the first sums
    in_scales: list[np.ndarray] = []
    val_scales: dict[str, np.ndarray] = {}
    for layer, x in zip(plan.layers, run.inputs):
        in_scales.append(s)
        s = _scale_forward(layer, x, run.values[layer.name], s, absp)
        val_scales[layer.name] = s

    batch = c.X.shape[0]
    sz = s.reshape(batch, plan.n_out)
    sL, sdz, slink = _loss_scales(plan.loss, run.z, sz, c.Y)

    sg = sdz.reshape(s.shape)
    grad_scales: dict[str, np.ndarray] = {}
    pscales: dict[str, np.ndarray] = {}
    for layer, x, s_in in zip(reversed(plan.layers), reversed(run.inputs), reversed(in_scales)):
        grad_scales[layer.name] = sg
        y, g, sy = run.values[layer.name], run.grads[layer.name], val_scales[layer.name]
        if layer.kind == "relu":
            sg = np.where(x > 0, sg, 0.0)
        elif layer.kind == "leaky_relu":
            sg = np.where(x > 0, sg, abs(layer.slope) * sg)
        elif layer.kind == "tanh":
            # g * (1 - y^2): 1 - y^2 carries error ~ 2|y| sy + (1 + y^2) (it cancels near +-1)
            sg = sg * (1.0 - y * y) + np.abs(g) * (2.0 * np.abs(y) * sy + 1.0 + y * y)
        elif layer.kind == "sigmoid":
            sg = sg * y * (1.0 - y) + np.abs(g) * ((1.0 + 2.0 * y) * sy + y * (1.0 + y))
        elif layer.kind == "maxpool":
            # Route by the values; under split or all, every maximum may receive a share, so
            # "all" (the whole scale to each) bounds both.
            sg = _np_backward(layer, x, y, sg, absp, pscales, "first" if plan.ties == "first" else "all")
        else:
            # conv2d/dense: dX from sg and |W|; dW = sum of sg * (input scale) >= |g| |x|.
            sg = _np_backward(layer, s_in, y, sg, absp, pscales, "first")
    return _finish(plan, c, sL, slink, val_scales, grad_scales, sg, pscales)


def _scale_forward(layer: Layer, x: np.ndarray, y: np.ndarray, s: np.ndarray, absp: Mapping[str, np.ndarray]) -> np.ndarray:
    """Error scale of a layer's output y = layer(x), given the scale s of x."""
    if layer.kind == "relu":
        return np.where(x > 0, s, 0.0)
    if layer.kind == "leaky_relu":
        return np.where(x > 0, s, abs(layer.slope) * s)
    if layer.kind == "tanh":
        return (1.0 - y * y) * s + np.abs(y)
    if layer.kind == "sigmoid":
        return y * (1.0 - y) * s + np.abs(y)
    # conv2d/dense with |W|, |B| and the input's scales: the sum of the magnitudes of the
    # terms. Max-pool keeps the largest scale of the window, avg-pool averages.
    return _np_forward(layer, s, absp)


def _loss_scales(loss: str, z: np.ndarray, sz: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Error scales of (L, dL/dz, link) given logits z with error scales sz."""
    batch, n = z.shape
    ay = np.abs(y)
    if loss == "bce":
        p = _sigmoid(z)
        # Terms of both formulas in use: max(z,0), z y, log1p(e^-|z|) and PyTorch's
        # (1 - y) z and log_sigmoid(z) = min(z, 0) - log1p(e^-|z|).
        terms = np.abs(z) * (1.0 + ay + np.abs(1.0 - y)) + np.log1p(np.exp(-np.abs(z)))
        per = (1.0 + ay) * sz + terms
        slink = p * (1.0 - p) * sz + p
        sdz = (slink + ay) / batch
        return float(per.sum() / batch), sdz, slink
    if loss == "softmax_ce":
        shifted = z - z.max(axis=1, keepdims=True)
        p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        smax = sz.max(axis=1, keepdims=True)
        s_logp = sz + smax + np.abs(z) + np.abs(z.max(axis=1, keepdims=True)) + np.abs(lse)
        per = (ay * s_logp).sum(axis=1)
        slink = p * (1.0 + sz + smax)
        sdz = (slink * ay.sum(axis=1, keepdims=True) + ay) / batch
        return float(per.sum() / batch), sdz, slink
    d = np.abs(z - y)
    sd = sz + np.abs(z) + ay
    per = 2.0 * d * sd + d * d
    return float(per.sum() / (batch * n)), 2.0 * sd / (batch * n), sz.copy()


# ----------------------------------------------------------------------------------------
# test points
# ----------------------------------------------------------------------------------------
def _random_y(plan: Plan, rng: np.random.Generator, batch: int | None) -> Any:
    lead = () if batch is None else (batch,)
    if plan.loss == "bce":
        y = rng.uniform(0.0, 1.0, size=lead)
        return float(y) if batch is None else y
    if plan.loss == "softmax_ce":
        return rng.dirichlet(np.ones(plan.n_out), size=lead or None)
    return rng.normal(size=(*lead, plan.n_out))


def random_case(spec: Mapping[str, Any], rng: np.random.Generator, batch: int | None = None) -> dict[str, Any]:
    """A random float case in full layouts (X with a leading batch axis if batch is given).

    Weights are scaled by 1/sqrt(fan-in) so logits stay moderate; Y is valid for the loss
    (a number in [0, 1] for bce, a probability vector for softmax_ce).
    """
    plan = parse_spec(spec)
    lead = () if batch is None else (batch,)
    case: dict[str, Any] = {"X": rng.normal(size=(*lead, *plan.input_shape))}
    for key, shape in plan.param_shapes().items():
        if key.startswith("W"):
            fan_in = math.prod(shape[1:])
            case[key] = rng.normal(size=shape) / math.sqrt(fan_in)
        else:
            case[key] = rng.normal(size=shape) * 0.5
    case["Y"] = _random_y(plan, rng, batch)
    return case


def _forward_to(plan: Plan, case: _Case, stop: int) -> np.ndarray:
    """The input of layer number `stop` (0-based), by the numpy forward pass."""
    h = case.X
    for layer in plan.layers[:stop]:
        h = _np_forward(layer, h, case.params)
    return h


def _is_integral(a: np.ndarray) -> bool:
    # Integers below 2^53 add and multiply exactly in float64, whatever the order of
    # summation, so both references see bit-identical values (and hence identical ties).
    return bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)) and np.all(np.abs(a) < 2.0**40))


def hard_points(spec: Mapping[str, Any], rng: np.random.Generator, count: int) -> list[dict[str, Any]]:
    """`count` unbatched cases on kinks, integer-valued where the network allows it.

    Cycles through scenarios: constant input (every pool window ties), binary input with
    weights in {-1, 0, 1} (many ties and zeros), exact zeros before each activation (a
    bias set to minus a computed pre-activation, wherever that layer's input is still
    integer-valued), striped input (identical rows, so windows tie vertically) and a dead
    first layer (bias below every pre-activation). Every other case also saturates the last
    layer's bias at +-40, +-800, +-1800. Labels: bce cycles 0, 0.3, 1; softmax_ce alternates
    one-hot and soft vectors; mse takes small integers. Deterministic given rng.

    A case that another correct float64 implementation could put on another side of a kink
    is drawn again (see `_ambiguous_kinks`). Two examples: tanh(19) and tanh(20) are both
    1.0 in numpy, but PyTorch gives tanh(19) = 1 - 2^-53 (the correctly rounded value), so
    a max-pool window holding both ties in one and not in the other; and 2/3 - 2 * (1/3)
    after an average pool is 0 or 1e-16 depending on the order of summation, so a ReLU
    there is on or off. After 20 rejected draws the case falls back to all-zero weights,
    whose kinks are exact everywhere.
    """
    plan = parse_spec(spec)
    if count < 0:
        raise ValueError("count must be >= 0")
    cases = []
    for k in range(count):
        for attempt in range(21):
            scenario = _SCENARIOS[(k + attempt) % len(_SCENARIOS)]
            case = _hard_case(plan, rng, k, scenario, zero_weights=attempt == 20)
            if not _ambiguous_kinks(plan, _normalize_case(plan, case)):
                break
        cases.append(case)
    return cases


def _hard_case(plan: Plan, rng: np.random.Generator, k: int, scenario: str, zero_weights: bool) -> dict[str, Any]:
    trainable = plan.trainable
    C, H, W = plan.full_input
    if scenario == "constant":
        X = np.full((C, H, W), float(rng.choice([-3, -2, -1, 1, 2, 3])))
    elif scenario == "binary":
        X = rng.integers(0, 2, size=(C, H, W)).astype(float)
    elif scenario == "striped":
        X = np.broadcast_to(rng.integers(-3, 4, size=(C, 1, W)), (C, H, W)).astype(float)
    else:
        X = rng.integers(-3, 4, size=(C, H, W)).astype(float)
    params = {}
    for key, shape in plan.param_shapes().items():
        layer = trainable[int(key[1:]) - 1]
        # Dense layers get smaller weights: they see many summed values and would
        # otherwise push every logit far into saturation, hiding the other kinks.
        hi = 1 if (scenario == "binary" or layer.kind == "dense") else 2
        params[key] = rng.integers(-hi, hi + 1, size=shape).astype(float)
        if zero_weights and key.startswith("W"):
            params[key][...] = 0.0
    norm = _Case(X.reshape(1, C, H, W), params, np.zeros((1, plan.n_out)), False)

    if scenario in ("zero_kinks", "dead", "striped"):
        for pos, layer in enumerate(plan.layers):
            if layer.kind not in TRAINABLE:
                continue
            x = _forward_to(plan, norm, pos)
            if not _is_integral(x):
                break  # later inputs are not exact either: no exact zero is possible
            b = params[f"B{layer.index}"]
            b[...] = 0.0
            pre = _np_forward(layer, x, params)[0]  # (filters, h, w) or (units,)
            flat = pre.reshape(pre.shape[0], -1)
            if scenario == "dead" and layer is trainable[0]:
                b[...] = -(np.abs(flat).max(axis=1) + 1.0)  # every pre-activation < 0
            else:
                # One exact zero per filter/unit, at a random position.
                cols = rng.integers(0, flat.shape[1], size=flat.shape[0])
                b[...] = -flat[np.arange(flat.shape[0]), cols]

    if k % 2 == 1 and trainable:
        sat = _SATURATION[(k // 2) % len(_SATURATION)]
        b = params[f"B{trainable[-1].index}"]
        if plan.loss == "softmax_ce" and b.size > 1:
            pattern = np.zeros(b.size)
            order = rng.permutation(b.size)
            pattern[order[0]], pattern[order[1]] = 1.0, -1.0
            b[...] = sat * pattern
        else:
            b[...] = sat

    if plan.loss == "bce":
        Y: Any = (0.0, 0.3, 1.0)[k % 3]
    elif plan.loss == "softmax_ce":
        if k % 2 == 0:
            Y = np.zeros(plan.n_out)
            Y[rng.integers(plan.n_out)] = 1.0
        else:
            # every class at least once, so the vector is genuinely soft
            counts = rng.integers(1, 4, size=plan.n_out).astype(float)
            Y = counts / counts.sum()
    else:
        Y = rng.integers(-2, 3, size=plan.n_out).astype(float)
    return {"X": X.reshape(plan.input_shape).copy(), **params, "Y": Y}


def _ambiguous_kinks(plan: Plan, c: _Case) -> bool:
    """True if another correct implementation could put the point on another side of a kink.

    That is: a ReLU/LeakyReLU input within rounding error of 0, or a max-pool window whose
    set of maxima could differ.

    A stage is *deterministic* when every correct float64 implementation gets it bit for
    bit: sums of integers (exact in any order), ReLU, max, reshapes, one correctly rounded
    multiply (leaky slope) or divide (average of an exact sum). tanh and sigmoid are not
    (libm results differ by an ulp), nor are sums of non-integers (order). Ties in a
    deterministic stage are safe. Otherwise each value carries a *witness*: the
    deterministic value it was computed from elementwise (equal witnesses give equal values
    in any implementation), or none after a non-exact sum. A window is safe when its
    maxima share one witness and the runner-up is clearly below.
    """
    absp = {k: np.abs(v) for k, v in c.params.items()}
    h = c.X
    scale = np.abs(h)
    integral = _is_integral(h)
    det = integral
    witness: np.ndarray | None = h
    for layer in plan.layers:
        out = _np_forward(layer, h, c.params)
        out_scale = _scale_forward(layer, h, out, scale, absp)
        kind = layer.kind
        if kind in ("relu", "leaky_relu") and not det and np.any(np.abs(h) <= 1e3 * _EPS * scale):
            return True  # an input within rounding error of the kink: its side is not defined
        if kind == "maxpool" and not det:
            area = layer.kernel[0] * layer.kernel[1]
            new_witness = None if witness is None else np.empty_like(out)
            for i, j, rows, cols in _windows(h.shape, layer.kernel, layer.stride):
                win = h[:, :, rows, cols].reshape(h.shape[0], h.shape[1], area)
                top = out[:, :, i, j][:, :, None]
                tied = win == top
                below = np.where(tied, -np.inf, win).max(axis=2)
                # The runner-up must be clear of the maximum by far more than either
                # implementation's rounding error (see `error_scales`).
                swin = scale[:, :, rows, cols].reshape(win.shape).max(axis=2)
                if np.any(top[:, :, 0] - below <= 1e-12 * np.abs(top[:, :, 0]) + 1e3 * _EPS * swin):
                    return True
                if witness is None:
                    if np.any(tied.sum(axis=2) > 1):
                        return True
                    continue
                wwin = witness[:, :, rows, cols].reshape(win.shape)
                first = np.take_along_axis(wwin, np.argmax(tied, axis=2)[:, :, None], axis=2)
                if np.any(tied & (wwin != first)):
                    return True
                assert new_witness is not None
                new_witness[:, :, i, j] = first[:, :, 0]
            witness = new_witness
        elif kind in TRAINABLE:
            det = integral
            integral = integral and _is_integral(out)
            witness = out if det else None
        elif kind == "avgpool":
            det = integral  # an exact sum, then one division
            integral = integral and _is_integral(out)
            witness = out if det else None
        elif kind in ("tanh", "sigmoid"):
            det = integral = False
            # witness unchanged: equal inputs give equal outputs
        elif kind == "leaky_relu":
            integral = integral and _is_integral(out)
            # det unchanged: one correctly rounded multiply
            witness = out if det else witness
        elif kind == "flatten":
            witness = None if witness is None else witness.reshape(out.shape)
            if det:
                witness = out
        else:  # relu, or maxpool of a deterministic stage
            witness = out if det else witness
        h, scale = out, out_scale
    return False


def kink_margin(spec: Mapping[str, Any], case: Mapping[str, Any]) -> float:
    """Distance (in stage values) from the point to the nearest kink; 0 on a kink.

    Kinks: an input of relu/leaky_relu at 0, and a max-pool window whose maximum is shared
    (gap to the runner-up). A window of a maxpool right after a relu whose entries are all 0
    is no kink when every relu input is away from 0: those cells stay dead nearby, so the
    loss is locally constant in them. Use it to pick points for finite differences.
    """
    plan = parse_spec(spec)
    c = _normalize_case(plan, case)
    margin = math.inf
    h = c.X
    prev: Layer | None = None
    for layer in plan.layers:
        if layer.kind in ("relu", "leaky_relu"):
            margin = min(margin, float(np.abs(h).min()))
        if layer.kind == "maxpool":
            area = layer.kernel[0] * layer.kernel[1]
            for _, _, rows, cols in _windows(h.shape, layer.kernel, layer.stride):
                win = np.sort(h[:, :, rows, cols].reshape(h.shape[0], h.shape[1], area), axis=2)
                gap = win[:, :, -1] - win[:, :, -2] if area > 1 else np.full(win.shape[:2], np.inf)
                if prev is not None and prev.kind == "relu":
                    gap = np.where(win[:, :, -1] == 0.0, np.inf, gap)
                margin = min(margin, float(gap.min()))
        h = _np_forward(layer, h, c.params)
        prev = layer
    return margin
