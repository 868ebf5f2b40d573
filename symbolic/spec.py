"""A network as a frozen, validated value, read from a TOML spec or named as a preset.

The format is a contract (the README documents it; the presets in ``presets/`` are examples)::

    name = "part3"          # optional
    input = [2, 9, 9]       # channels, height, width; [6, 6] means one channel
    loss = "softmax_ce"     # "bce" | "softmax_ce" | "mse"
    ties = "first"          # optional: "first" (default) | "split" | "all"
    batch = 1               # optional: samples sharing the parameters, mean loss

    [[layers]]
    type = "conv2d"         # conv2d | relu | leaky_relu | tanh | sigmoid | maxpool | avgpool | flatten | dense
    filters = 2
    kernel = 3              # or [kh, kw]
    stride = 1              # optional, default 1 (or [sh, sw])
    padding = 0             # optional, default 0 (or [ph, pw])

Every refusal is a `SpecError` whose message names the layer (index and type) and the field,
and says what was expected.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from symbolic.errors import SpecError
from symbolic.names import ACTIVATIONS, POOLS, stage_names

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

LAYER_TYPES = ("conv2d", *ACTIVATIONS, *POOLS, "flatten", "dense")
LOSSES = ("bce", "softmax_ce", "mse")
TIES = ("first", "split", "all")
TOP_KEYS = ("name", "input", "loss", "ties", "batch", "layers")
LAYER_KEYS = {
    "conv2d": ("filters", "kernel", "stride", "padding"),
    "relu": (),
    "leaky_relu": ("slope",),
    "tanh": (),
    "sigmoid": (),
    "maxpool": ("window", "stride"),
    "avgpool": ("window", "stride"),
    "flatten": (),
    "dense": ("units",),
}
REQUIRED = {"conv2d": ("filters", "kernel"), "maxpool": ("window",), "avgpool": ("window",), "dense": ("units",)}
DEFAULT_SLOPE = 0.01  # PyTorch's LeakyReLU default
PRESET_DIR = "presets"

Shape = tuple[int, ...]
Pair = tuple[int, int]


@dataclass(frozen=True)
class LayerSpec:
    """One ``[[layers]]`` entry, with defaults filled in and pairs expanded.

    >>> LayerSpec("conv2d", filters=2, kernel=(3, 3)).stride
    (1, 1)
    """

    type: str
    filters: int = 0
    kernel: Pair = (0, 0)
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    window: Pair = (0, 0)
    units: int = 0
    slope: float = DEFAULT_SLOPE


@dataclass(frozen=True)
class NetworkSpec:
    """A validated network: input shape, layers, loss, tie convention, batch; shapes derived.

    >>> s = seed_spec(); s.shapes, s.n_params
    (((1, 6, 6), (1, 4, 4), (1, 4, 4), (1, 2, 2), (4,), (1,)), 15)
    >>> s.stages
    ('X', 'Z1', 'A1', 'P1', 'F', 'Z2', 'A2', 'L')
    """

    layers: tuple[LayerSpec, ...]
    input: Shape = (1, 6, 6)
    loss: str = "bce"
    ties: str = "first"
    batch: int = 1
    name: str = ""
    input_rank: int = 3
    shapes: tuple[Shape, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", _check(self))

    @property
    def stages(self) -> tuple[str, ...]:
        """Names of the input, every layer's output, the prediction and L (see ``names``)."""
        return tuple(stage_names([la.type for la in self.layers], self.loss))

    @property
    def param_shapes(self) -> dict[str, Shape]:
        """Full (PyTorch) layout of every parameter, in order: W1, B1, W2, B2, ...

        >>> seed_spec().param_shapes
        {'W1': (1, 1, 3, 3), 'B1': (1,), 'W2': (1, 4), 'B2': (1,)}
        """
        out: dict[str, Shape] = {}
        t = 0
        for layer, shape in zip(self.layers, self.shapes):
            if layer.type == "conv2d":
                t += 1
                out[f"W{t}"] = (layer.filters, shape[0], *layer.kernel)
                out[f"B{t}"] = (layer.filters,)
            elif layer.type == "dense":
                t += 1
                out[f"W{t}"] = (layer.units, shape[0])
                out[f"B{t}"] = (layer.units,)
        return out

    @property
    def n_params(self) -> int:
        """Number of trainable scalars."""
        total = 0
        for shape in self.param_shapes.values():
            size = 1
            for d in shape:
                size *= d
            total += size
        return total

    @property
    def units(self) -> int:
        """Length of the last layer's output: what the loss compares with Y."""
        return self.shapes[-1][0]

    @property
    def y_shape(self) -> Shape:
        """Shape of one sample's label: () for bce, (units,) otherwise."""
        return () if self.loss == "bce" else (self.units,)

    @property
    def label(self) -> str:
        """The name to show: the spec's own, else a description."""
        return self.name or f"{len(self.layers)}-layer network"


def _pair(where: str, key: str, value: object, low: int) -> Pair:
    pair = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in pair):
        return (pair[0], pair[1])
    raise SpecError(f"{where}: {key}: expected an integer >= {low} or a pair [h, w] of them, got {value!r}")


def _int(where: str, key: str, value: object, low: int = 1) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= low:
        return value
    prefix = f"{where}: " if where else ""
    raise SpecError(f"{prefix}{key}: expected an integer >= {low}, got {value!r}")


def _fmt(shape: Shape) -> str:
    return "×".join(map(str, shape))


def _fits(where: str, what: str, size: int, span: int, stride: int, whole: str) -> int:
    if span > size:
        raise SpecError(f"{where}: {what} does not fit {whole}: it spans {span} > {size}")
    if (size - span) % stride:
        raise SpecError(f"{where}: {what} with stride {stride} does not fit {whole}: ({size} − {span}) is not a multiple of {stride}")
    return (size - span) // stride + 1


def _walk(spec: NetworkSpec) -> list[Shape]:
    """Every stage's shape in full layout, input first; raises SpecError on the first misfit."""
    shapes: list[Shape] = [spec.input]
    for i, layer in enumerate(spec.layers, 1):
        where = f"layer {i} ({layer.type})"
        shape = shapes[-1]
        if layer.type in ("conv2d", *POOLS):
            if len(shape) != 3:
                raise SpecError(f"{where}: expects an image (channels × height × width), got a flat input of {_fmt(shape)}")
            c, h, w = shape
            if layer.type == "conv2d":
                (kh, kw), (sh, sw), (ph, pw) = layer.kernel, layer.stride, layer.padding
                if ph >= kh or pw >= kw:
                    raise SpecError(f"{where}: padding: expected less than the kernel ({_fmt(layer.kernel)}), got {_fmt(layer.padding)}")
                hp, wp = h + 2 * ph, w + 2 * pw
                if kh > hp or kw > wp:
                    raise SpecError(
                        f"{where}: kernel: {_fmt(layer.kernel)} is larger than the padded input {hp}×{wp} "
                        f"({h}×{w} padded by {ph}, {pw}); expected at most {hp}×{wp}"
                    )
                what = f"kernel {_fmt(layer.kernel)}"
                ho = _fits(where, what, hp, kh, sh, f"a padded height of {hp}")
                wo = _fits(where, what, wp, kw, sw, f"a padded width of {wp}")
                shapes.append((layer.filters, ho, wo))
            else:
                (kh, kw), (sh, sw) = layer.window, layer.stride
                what = f"window {kh}" if kh == kw and sh == sw else f"window {_fmt(layer.window)}"
                if kh == kw and sh == sw and h == w:
                    ho = _fits(where, what, h, kh, sh, f"a {h}×{w} input")
                    wo = ho
                else:
                    ho = _fits(where, what, h, kh, sh, f"a height of {h}")
                    wo = _fits(where, what, w, kw, sw, f"a width of {w}")
                shapes.append((c, ho, wo))
        elif layer.type == "flatten":
            size = 1
            for d in shape:
                size *= d
            shapes.append((size,))
        elif layer.type == "dense":
            if len(shape) != 1:
                raise SpecError(f"{where}: expects a flat input (add a flatten layer before it), got {_fmt(shape)}")
            shapes.append((layer.units,))
        else:
            shapes.append(shape)
    return shapes


def _check(spec: NetworkSpec) -> tuple[Shape, ...]:
    if not spec.layers:
        raise SpecError("layers: expected at least one [[layers]] entry")
    if spec.loss not in LOSSES:
        raise SpecError(f"loss: expected one of {', '.join(LOSSES)}, got {spec.loss!r}")
    if spec.ties not in TIES:
        raise SpecError(f"ties: expected one of {', '.join(TIES)}, got {spec.ties!r}")
    shapes = _walk(spec)
    last = shapes[-1]
    if len(last) != 1:
        raise SpecError(f"loss: {spec.loss} needs a flat last layer (end with flatten or dense), got {_fmt(last)}")
    if spec.loss == "bce" and last[0] != 1:
        i = len(spec.layers)
        raise SpecError(
            f"loss: bce needs one unit in the last layer, but layer {i} ({spec.layers[-1].type}) gives {last[0]}; "
            "use softmax_ce or mse for several units"
        )
    if spec.loss == "softmax_ce" and last[0] < 2:
        raise SpecError("loss: softmax_ce needs at least 2 units in the last layer; use bce for one unit")
    return tuple(shapes)


def parse_spec(data: dict, source: str = "spec") -> NetworkSpec:
    """A NetworkSpec from a parsed TOML document (a dict); every error names its field.

    >>> parse_spec({"input": [6, 6], "loss": "bce", "layers": [{"type": "flatten"}, {"type": "dense", "units": 1}]}).shapes
    ((1, 6, 6), (36,), (1,))
    >>> parse_spec({"input": [4, 4], "loss": "bce", "layers": [{"type": "maxpool", "window": 3, "stride": 2}]})
    Traceback (most recent call last):
    ...
    symbolic.errors.SpecError: layer 1 (maxpool): window 3 with stride 2 does not fit a 4×4 input: (4 − 3) is not a multiple of 2
    """
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a TOML table, got {type(data).__name__}")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise SpecError(f"{source}: unknown key {unknown[0]!r}; expected some of {', '.join(TOP_KEYS)}")
    for key in ("input", "loss", "layers"):
        if key not in data:
            raise SpecError(f"{key}: missing; every spec needs input, loss and layers")
    raw_input = data["input"]
    if (
        not isinstance(raw_input, list)
        or len(raw_input) not in (2, 3)
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in raw_input)
    ):
        raise SpecError(f"input: expected [height, width] or [channels, height, width] of integers >= 1, got {raw_input!r}")
    shape = tuple(raw_input) if len(raw_input) == 3 else (1, *raw_input)
    name = data.get("name", "")
    if not isinstance(name, str):
        raise SpecError(f"name: expected a string, got {name!r}")
    for key in ("loss", "ties"):
        if key in data and not isinstance(data[key], str):
            raise SpecError(f"{key}: expected a string, got {data[key]!r}")
    batch = _int("", "batch", data["batch"]) if "batch" in data else 1
    raw_layers = data["layers"]
    if not isinstance(raw_layers, list) or not all(isinstance(la, dict) for la in raw_layers):
        raise SpecError("layers: expected an array of tables, written [[layers]]")
    layers = tuple(_layer(i, raw) for i, raw in enumerate(raw_layers, 1))
    return NetworkSpec(
        layers=layers,
        input=shape,
        loss=data["loss"],
        ties=data.get("ties", "first"),
        batch=batch,
        name=name,
        input_rank=len(raw_input),
    )


def _layer(i: int, raw: dict) -> LayerSpec:
    kind = raw.get("type")
    if kind not in LAYER_TYPES:
        shown = f"unknown type {kind!r}" if "type" in raw else "no type"
        raise SpecError(f"layer {i}: {shown}; expected one of {', '.join(LAYER_TYPES)}")
    where = f"layer {i} ({kind})"
    allowed = LAYER_KEYS[kind]
    for key in raw:
        if key != "type" and key not in allowed:
            expected = ", ".join(allowed) if allowed else "no options"
            raise SpecError(f"{where}: unknown key {key!r}; expected {expected}")
    for key in REQUIRED.get(kind, ()):
        if key not in raw:
            raise SpecError(f"{where}: {key}: missing")
    opts: dict = {}
    if kind == "conv2d":
        opts["filters"] = _int(where, "filters", raw["filters"])
        opts["kernel"] = _pair(where, "kernel", raw["kernel"], 1)
        opts["stride"] = _pair(where, "stride", raw.get("stride", 1), 1)
        opts["padding"] = _pair(where, "padding", raw.get("padding", 0), 0)
    elif kind in POOLS:
        opts["window"] = _pair(where, "window", raw["window"], 1)
        opts["stride"] = _pair(where, "stride", raw.get("stride", raw["window"]), 1)
    elif kind == "dense":
        opts["units"] = _int(where, "units", raw["units"])
    elif kind == "leaky_relu":
        slope = raw.get("slope", DEFAULT_SLOPE)
        if isinstance(slope, bool) or not isinstance(slope, (int, float)) or not 0 <= slope < 1:
            raise SpecError(f"{where}: slope: expected a number in [0, 1), got {slope!r}")
        opts["slope"] = float(slope)
    return LayerSpec(kind, **opts)


def seed_spec(n: int = 6, k: int = 3, pool: int = 2) -> NetworkSpec:
    """The lecture's network at other sizes (``--n``, ``--k``): conv k×k, ReLU, max-pool, dense, BCE.

    >>> seed_spec(5, 2).shapes[-1], seed_spec(28, 3).n_params
    ((1,), 180)
    """
    for key, value in (("n", n), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SpecError(f"{key}: expected an integer >= 1, got {value!r}")
    if k > n:
        raise SpecError(f"k: expected a filter no larger than the input (k <= n = {n}), got {k}")
    conv = n - k + 1
    if conv % pool:
        raise SpecError(
            f"n: the conv output is {conv}×{conv} (n − k + 1), which a {pool}×{pool} max-pool with stride "
            f"{pool} does not tile; expected n − k + 1 to be a multiple of {pool} (e.g. n = {n + 1} or k = {k + 1})"
        )
    return NetworkSpec(
        layers=(
            LayerSpec("conv2d", filters=1, kernel=(k, k)),
            LayerSpec("relu"),
            LayerSpec("maxpool", window=(pool, pool), stride=(pool, pool)),
            LayerSpec("flatten"),
            LayerSpec("dense", units=1),
        ),
        input=(1, n, n),
        loss="bce",
        name="seed" if (n, k) == (6, 3) else f"seed n={n} k={k}",
        input_rank=2,
    )


def presets() -> dict[str, Path]:
    """The built-in presets, by name (shipped inside the package as TOML files).

    >>> sorted(presets())[:3]
    ['lenet-tiny', 'part3', 'seed']
    """
    folder = resources.files("symbolic") / PRESET_DIR
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def preset_summary(path: Path) -> str:
    """The one-line summary of a preset: its first comment line."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def load_spec(where: str | Path | None = None) -> NetworkSpec:
    """A spec from a preset name or a TOML file; None is the seed.

    >>> load_spec("part3").loss, load_spec().stages[1]
    ('softmax_ce', 'Z1')
    >>> load_spec("nope")
    Traceback (most recent call last):
    ...
    symbolic.errors.SpecError: --spec: no preset or file 'nope'; presets: lenet-tiny, part3, seed
    """
    if where is None:
        where = "seed"
    known = presets()
    path = known.get(str(where)) if str(where) in known else Path(where)
    if not path.is_file():
        raise SpecError(f"--spec: no preset or file {str(where)!r}; presets: {', '.join(sorted(known))}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(f"--spec: cannot read {str(path)!r}: {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path.name}: not valid TOML: {err}") from None
    return parse_spec(data, path.name)


__all__ = [
    "LAYER_TYPES",
    "LOSSES",
    "TIES",
    "LayerSpec",
    "NetworkSpec",
    "load_spec",
    "parse_spec",
    "preset_summary",
    "presets",
    "seed_spec",
]
