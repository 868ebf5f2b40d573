"""`cnn-derive train`: mini-batch SGD on the 8×8 handwritten digits with the symbolic gradients.

Every gradient comes from the compiled symbolic expressions (`compile_network`, ``mean=True``
over the mini-batch): the same proven backward chain `eval` prints, nothing hand-written.

The task follows from the spec's loss:

* **bce** (the default network, the lecture's at n = 8, k = 3: conv 3×3, ReLU, 2×2 max-pool,
  dense 1 unit, sigmoid + BCE): two digits A, B (``digits``, default 3 and 8), label Y = 1 for B;
* **softmax_ce**: one class per digit, all ten by default (``digits`` picks fewer), so the last
  layer needs one unit per digit; Y is one-hot.

The images (scikit-learn's ``load_digits``: 1 797 images with values 0..16) are scaled to
[0, 1]. Everything random comes from ``seed`` through three independent streams
(``numpy.random.SeedSequence(seed).spawn(3)``): the initial parameters (weights
normal / √fan-in, biases 0), the held-out split (stratified: the same fraction of every
digit), and the order of the training images (a fresh permutation each epoch, cut into
mini-batches of ``batch_size``, a batch may span two epochs). `TrainResult.batches` holds the
indices of every step's mini-batch, so another implementation can replay the run.

Refusals are `TrainError` (a `CnnDeriveError`: one line naming the option, exit 2 in the CLI).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from symbolic.errors import TrainError
from symbolic.files import prepare_output, replace_folder
from symbolic.spec import NetworkSpec, load_spec, seed_spec

DEFAULT_DIGITS = (3, 8)
DEFAULT_STEPS = 500
DEFAULT_LR = 0.5
DEFAULT_BATCH_SIZE = 32
DEFAULT_HOLDOUT = 0.25
IMAGE = (1, 8, 8)
OUTPUT = Path("output")
OWN_FILES = {"log.json", "training.png"}

EXAMPLE_SPEC = """\
name = "digits10"
input = [8, 8]
loss = "softmax_ce"
layers = [
  {type = "conv2d", filters = 4, kernel = 3},
  {type = "relu"},
  {type = "maxpool", window = 2},
  {type = "flatten"},
  {type = "dense", units = 10},
]
"""


@dataclass
class TrainResult:
    """What a run gives back: the history, the parameters before and after, the data split and the time.

    ``batches[t]`` are the indices (rows of the data) of step t + 1's mini-batch; ``train_idx``
    and ``heldout_idx`` the rows of each split. ``accuracy`` is the final held-out accuracy;
    ``seconds`` the wall time of the training loop alone (the logged evaluations included,
    compiling excluded).
    """

    spec: NetworkSpec
    classes: tuple[int, ...]
    config: dict
    history: list[dict]
    init_params: dict[str, np.ndarray]
    params: dict[str, np.ndarray]
    batches: np.ndarray
    train_idx: np.ndarray
    heldout_idx: np.ndarray
    accuracy: float
    seconds: float
    compile_seconds: float
    out: Path | None = None
    log: dict = field(default_factory=dict, repr=False)

    def summary(self) -> str:
        """One line for the terminal."""
        last = self.history[-1]
        where = f"; wrote {self.out}/" if self.out is not None else ""
        return (
            f"{self.spec.label}, digits {' '.join(map(str, self.classes))}: held-out accuracy {self.accuracy:.4f} "
            f"({len(self.heldout_idx)} images, loss {last['heldout_loss']:.4f}) after {last['step']} steps "
            f"in {self.seconds:.2f} s{where}"
        )


# ----------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits (shipped inside its wheel, no download): images in [0, 1] and labels.

    The table is read straight from the wheel's ``sklearn/datasets/data/digits.csv.gz`` (what
    ``sklearn.datasets.load_digits`` reads), which spares the 2–3 s of importing scikit-learn;
    where that file is not found, ``load_digits`` itself is called.

    >>> images, labels = load_digits(); images.shape, float(images.max()), labels[:5].tolist()
    ((1797, 8, 8), 1.0, [0, 1, 2, 3, 4])
    """
    path = _digits_file()
    if path is not None:
        try:
            table = np.loadtxt(path, delimiter=",")
        except (OSError, ValueError):
            table = None
        if table is not None and table.shape == (1797, 65):
            return table[:, :64].reshape(-1, 8, 8) / 16.0, table[:, 64].astype(np.int64)
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise TrainError("train: needs scikit-learn for the digits data; install it with `pip install scikit-learn`") from None
    data = sk_load_digits()
    return np.asarray(data.images, dtype=np.float64) / 16.0, np.asarray(data.target, dtype=np.int64)


def _digits_file() -> Path | None:
    """Where the installed scikit-learn keeps the digits table (found without importing it), or None."""
    import importlib.util

    found = importlib.util.find_spec("sklearn")
    if found is None or not found.submodule_search_locations:
        return None
    path = Path(next(iter(found.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def _check_data(data: tuple) -> tuple[np.ndarray, np.ndarray]:
    try:
        images, labels = data
        images = np.asarray(images, dtype=np.float64)
        raw_labels = np.asarray(labels)
    except (TypeError, ValueError):
        raise TrainError("data: expected a pair (images, labels) of arrays") from None
    if images.ndim < 1 or images.shape[1:] not in ((8, 8), IMAGE):
        raise TrainError(f"data: expected images of shape (n, 8, 8) or (n, 1, 8, 8), got {images.shape}")
    if not np.isfinite(images).all():
        raise TrainError("data: expected finite pixel values, got NaN or infinity")
    if raw_labels.shape != (len(images),) or raw_labels.dtype.kind not in "iu":
        raise TrainError(f"data: expected {len(images)} integer labels, got {raw_labels.dtype} of shape {raw_labels.shape}")
    return images.reshape((len(images), *IMAGE)), raw_labels.astype(np.int64)


def stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows to train on and rows held out: ``round(fraction · count)`` of every label held out (at least one).

    >>> train, held = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.25, np.random.default_rng(0))
    >>> len(train), len(held), sorted(np.array([0, 0, 0, 0, 1, 1, 1, 1])[held].tolist())
    (6, 2, [0, 1])
    """
    held = []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        k = min(len(rows) - 1, max(1, round(fraction * len(rows))))
        held.append(rows[:k])
    heldout = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), heldout), heldout


def init_params(spec: NetworkSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Weights normal / √fan-in (fan-in: channels × kernel, or inputs), biases 0, in ``param_shapes`` order.

    >>> p = init_params(seed_spec(8, 3), np.random.default_rng(0)); {k: v.shape for k, v in p.items()}
    {'W1': (1, 1, 3, 3), 'B1': (1,), 'W2': (1, 9), 'B2': (1,)}
    """
    params = {}
    for name, shape in spec.param_shapes.items():
        if name.startswith("W"):
            params[name] = rng.normal(size=shape) / math.sqrt(math.prod(shape[1:]))
        else:
            params[name] = np.zeros(shape)
    return params


def sample_order(train_idx: np.ndarray, steps: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Every step's mini-batch (steps × batch_size rows): epochs of fresh permutations, cut in order.

    >>> sample_order(np.arange(4), 3, 2, np.random.default_rng(0)).shape
    (3, 2)
    """
    need = steps * batch_size
    epochs = [rng.permutation(train_idx) for _ in range(-(-need // len(train_idx)))]
    return np.concatenate(epochs)[:need].reshape(steps, batch_size)


def targets(spec: NetworkSpec, labels: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Y for each label: 0/1 (1 for the second digit) for bce; one-hot over ``classes`` for softmax_ce.

    >>> targets(seed_spec(8, 3), np.array([3, 8, 8]), (3, 8)).tolist()
    [0.0, 1.0, 1.0]
    """
    position = {c: i for i, c in enumerate(classes)}
    index = np.array([position[int(v)] for v in labels])
    if spec.loss == "bce":
        return index.astype(np.float64)
    return np.eye(len(classes))[index]


# ----------------------------------------------------------------------------------------
# checks
# ----------------------------------------------------------------------------------------
def resolve_spec(spec: NetworkSpec | str | Path | None) -> NetworkSpec:
    """The network to train: a spec, a preset name or TOML file, or None for the seed at n = 8, k = 3.

    >>> resolve_spec(None).label
    'seed n=8 k=3'
    """
    if spec is None:
        return seed_spec(8, 3)
    if isinstance(spec, NetworkSpec):
        return spec
    loaded = load_spec(spec)
    return loaded if loaded.name else _named(loaded, Path(str(spec)).stem)


def _named(spec: NetworkSpec, name: str) -> NetworkSpec:
    import dataclasses

    return dataclasses.replace(spec, name=name)


def check_task(spec: NetworkSpec, digits: Sequence[int] | None) -> tuple[int, ...]:
    """The digits (classes, in order) that ``spec`` is trained to tell apart; TrainError if it does not fit.

    >>> check_task(seed_spec(8, 3), None)
    (3, 8)
    >>> check_task(seed_spec(6, 3), None)
    Traceback (most recent call last):
    ...
    symbolic.errors.TrainError: --spec: seed takes a 6×6 input; train needs an 8×8 input with one channel (the digits' images)
    """
    if spec.input != IMAGE:
        shown = "×".join(map(str, spec.input if spec.input[0] != 1 else spec.input[1:]))
        raise TrainError(f"--spec: {spec.label} takes a {shown} input; train needs an 8×8 input with one channel (the digits' images)")
    if digits is not None:
        digits = tuple(digits)
        bad = [d for d in digits if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d <= 9]
        if bad:
            raise TrainError(f"--digits: expected digits 0 to 9, got {bad[0]!r}")
        if len(set(digits)) != len(digits):
            raise TrainError(f"--digits: expected different digits, got {' '.join(map(str, digits))}")
        digits = tuple(int(d) for d in digits)
    if spec.loss == "bce":
        classes = DEFAULT_DIGITS if digits is None else digits
        if len(classes) != 2:
            raise TrainError(f"--digits: bce tells two digits apart (label 1 for the second); expected two digits, got {len(classes)}")
        return classes
    if spec.loss == "softmax_ce":
        classes = tuple(range(10)) if digits is None else digits
        if spec.units != len(classes):
            which = "all ten digits" if digits is None else f"the {len(classes)} digits of --digits"
            raise TrainError(
                f"--spec: softmax_ce over {which} needs {len(classes)} units in the last layer, got {spec.units}"
                + ("" if digits is not None else f" (or give --digits with {spec.units} digits)")
            )
        if len(classes) < 2:
            raise TrainError("--digits: expected at least two digits")
        return classes
    raise TrainError(f"--spec: loss {spec.loss} is not trained here; expected bce (two digits) or softmax_ce (one unit per digit)")


def _check_options(steps: object, lr: object, batch_size: object, seed: object, holdout: object, log_every: object) -> None:
    def integer(value: object, minimum: int) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum

    if not integer(steps, 1):
        raise TrainError(f"--steps: expected an integer >= 1, got {steps!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise TrainError(f"--lr: expected a positive number, got {lr!r}")
    if not integer(batch_size, 1):
        raise TrainError(f"--batch-size: expected an integer >= 1, got {batch_size!r}")
    if not integer(seed, 0):
        raise TrainError(f"--seed: expected an integer >= 0, got {seed!r}")
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 < holdout < 1:
        raise TrainError(f"holdout: expected a fraction strictly between 0 and 1, got {holdout!r}")
    if log_every is not None and not integer(log_every, 1):
        raise TrainError(f"log_every: expected an integer >= 1, got {log_every!r}")


def default_out(spec: NetworkSpec) -> Path:
    """output/train-<name>: the spec's name with '=' dropped and anything but letters, digits, '.', '_', '-' as '-'.

    >>> str(default_out(seed_spec(8, 3)))
    'output/train-seed-n8-k3'
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", spec.name.replace("=", "")).strip("-.")
    return OUTPUT / f"train-{slug or 'network'}"


# ----------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------
def train(
    spec: NetworkSpec | str | Path | None = None,
    *,
    digits: Sequence[int] | None = None,
    steps: int = DEFAULT_STEPS,
    lr: float = DEFAULT_LR,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    holdout: float = DEFAULT_HOLDOUT,
    log_every: int | None = None,
    data: tuple[np.ndarray, np.ndarray] | None = None,
    out: str | Path | None = None,
    save: bool = False,
    quiet: bool = False,
) -> TrainResult:
    """Train ``spec`` (None: the seed at n = 8, k = 3) on the digits with plain mini-batch SGD.

    Each step: the mean loss of a mini-batch and its gradient from the compiled symbolic
    expressions, then ``p ← p − lr · dL/dp`` for every parameter. Every ``log_every`` steps
    (default: steps / 20) and at the end, the loss and accuracy on the whole training split
    and on the held-out split are logged (step 0 is the start).

    ``data``: (images, labels) instead of scikit-learn's digits (images n×8×8 in [0, 1],
    integer labels); only the rows whose label is one of the task's digits are used, and every
    index in the result refers to these rows. ``out``/``save``: with ``save`` (the CLI) or an
    ``out`` folder, write ``log.json`` and ``training.png`` there (default ``default_out``);
    the folder is written whole or not at all. ``quiet`` silences the progress on stderr.

    >>> images, labels = load_digits()
    >>> r = train(steps=5, batch_size=4, data=(images[:60], labels[:60]), quiet=True)
    >>> r.batches.shape, len(r.history), r.classes
    ((5, 4), 6, (3, 8))
    """
    t_start = time.perf_counter()
    spec = resolve_spec(spec)
    classes = check_task(spec, digits)
    _check_options(steps, lr, batch_size, seed, holdout, log_every)
    log_every = int(log_every) if log_every is not None else max(1, steps // 20)
    images, labels = _check_data(data if data is not None else load_digits())
    for c in classes:
        count = int((labels == c).sum())
        if count < 2:
            raise TrainError(
                f"data: digit {c} has {count} image{'s' if count != 1 else ''}; expected at least 2 (one to train on, one held out)"
            )
    rows = np.flatnonzero(np.isin(labels, classes))
    init_rng, split_rng, order_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    params0 = init_params(spec, init_rng)
    train_local, held_local = stratified_split(labels[rows], holdout, split_rng)
    train_idx, heldout_idx = rows[train_local], rows[held_local]
    if batch_size > len(train_idx):
        raise TrainError(f"--batch-size: expected at most the {len(train_idx)} training images, got {batch_size}")
    batches = sample_order(train_idx, steps, batch_size, order_rng)
    X = images
    Y = np.zeros((len(labels), *spec.y_shape))
    Y[rows] = targets(spec, labels[rows], classes)

    dest = Path(out) if out is not None and str(out) != "" else (default_out(spec) if save else None)
    tmp = (
        prepare_output(dest, OWN_FILES, TrainError, "an earlier `cnn-derive train` output") if dest is not None else None
    )  # a bad --out fails before any training
    try:
        from symbolic.numeric import compile_network

        t0 = time.perf_counter()
        net = compile_network(spec, outputs="gradients", quiet=quiet)
        compile_seconds = time.perf_counter() - t0
        pred = spec.stages[-2]
        evaluated = np.concatenate([train_idx, heldout_idx])

        def measure(step: int, batch_losses: list[float]) -> dict:
            o = net(X[evaluated], Y[evaluated], **params)
            loss = np.asarray(o["L"]).reshape(len(evaluated))
            p = np.asarray(o[pred]).reshape(len(evaluated), -1)
            guess = (p[:, 0] > 0.5).astype(int) if spec.loss == "bce" else p.argmax(axis=1)
            truth = Y[evaluated].astype(int) if spec.loss == "bce" else Y[evaluated].argmax(axis=1)
            right = guess == truth
            n = len(train_idx)
            return {
                "step": step,
                "batch_loss": float(np.mean(batch_losses)) if batch_losses else None,
                "train_loss": float(loss[:n].mean()),
                "train_accuracy": float(right[:n].mean()),
                "heldout_loss": float(loss[n:].mean()),
                "heldout_accuracy": float(right[n:].mean()),
            }

        params = {k: v.copy() for k, v in params0.items()}
        history: list[dict] = []
        t0 = time.perf_counter()
        with _progress(steps, quiet) as report:
            history.append(measure(0, []))
            losses: list[float] = []
            for step in range(1, steps + 1):
                b = batches[step - 1]
                o = net(X[b], Y[b], mean=True, **params)
                for name in params:
                    params[name] = params[name] - lr * o[f"dL/d{name}"].reshape(params[name].shape)
                losses.append(float(o["L"]))
                if step % log_every == 0 or step == steps:
                    history.append(measure(step, losses))
                    losses = []
                report(step, history[-1])
        seconds = time.perf_counter() - t0
        config = {
            "spec": spec.label,
            "network": _describe(spec),
            "digits": list(classes),
            "task": "bce: label 1 for the second digit" if spec.loss == "bce" else "softmax_ce: one-hot over the digits in order",
            "data": "sklearn.datasets.load_digits, pixels / 16" if data is None else "given arrays",
            "images": {"train": int(len(train_idx)), "heldout": int(len(heldout_idx))},
            "steps": steps,
            "lr": lr,
            "batch_size": batch_size,
            "seed": seed,
            "holdout": holdout,
            "log_every": log_every,
            "init": "weights normal / sqrt(fan_in), biases 0 (numpy default_rng, SeedSequence(seed).spawn(3)[0])",
            "backend": getattr(net, "backend", "unknown"),
        }
        final = history[-1]
        log = {
            "config": config,
            "history": history,
            "final": {k: final[k] for k in ("step", "train_loss", "train_accuracy", "heldout_loss", "heldout_accuracy")},
            "params": {k: v.tolist() for k, v in params.items()},
            "seconds": {"compile": compile_seconds, "train": seconds, "total": time.perf_counter() - t_start},
        }
        result = TrainResult(
            spec=spec,
            classes=classes,
            config=config,
            history=history,
            init_params=params0,
            params=params,
            batches=batches,
            train_idx=train_idx,
            heldout_idx=heldout_idx,
            accuracy=final["heldout_accuracy"],
            seconds=seconds,
            compile_seconds=compile_seconds,
            log=log,
        )
        if tmp is not None and dest is not None:
            (tmp / "log.json").write_text(log_text(log), encoding="utf-8")
            plot_history(history, tmp / "training.png", title=f"{spec.label}, digits {' '.join(map(str, classes))}")
            try:
                replace_folder(tmp, dest)
            except OSError as err:
                raise TrainError(f"--out: cannot write {dest}: {err.strerror or err}") from None
            result.out = dest
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _describe(spec: NetworkSpec) -> dict:
    layers = []
    for layer in spec.layers:
        d = {k: v for k, v in asdict(layer).items() if v not in (0, (0, 0)) or k == "type"}
        if layer.type not in ("conv2d", "maxpool", "avgpool"):
            d.pop("stride", None)
        if layer.type != "conv2d":
            d.pop("padding", None)
        if layer.type != "leaky_relu":
            d.pop("slope", None)
        layers.append({k: list(v) if isinstance(v, tuple) else v for k, v in d.items()})
    return {"input": list(spec.input), "loss": spec.loss, "ties": spec.ties, "layers": layers, "parameters": spec.n_params}


@contextmanager
def _progress(steps: int, quiet: bool) -> Iterator[Callable[[int, dict], None]]:
    """A rich progress bar on stderr showing the latest held-out accuracy; a no-op when quiet."""
    if quiet:
        yield lambda step, last: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("[dim]cnn-derive:[/dim] training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True, highlight=False)) as bar:
        task = bar.add_task("", total=steps)

        def report(step: int, last: dict) -> None:
            bar.update(task, completed=step, description=f"held-out accuracy {last['heldout_accuracy']:.3f}")

        yield report


# ----------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------
def plot_history(history: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """Loss and accuracy curves (train and held-out) against the step, as a PNG with no timestamp or version.

    >>> import tempfile; folder = Path(tempfile.mkdtemp())
    >>> h = [{"step": s, "train_loss": 1 / (s + 1), "heldout_loss": 1.1 / (s + 1), "train_accuracy": s / 2, "heldout_accuracy": s / 3} for s in (0, 1, 2)]
    >>> plot_history(h, folder / "a.png").read_bytes()[:4]
    b'\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [h["step"] for h in history]
    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    loss_ax.plot(steps, [h["train_loss"] for h in history], label="train")
    loss_ax.plot(steps, [h["heldout_loss"] for h in history], label="held out")
    loss_ax.set(xlabel="step", ylabel="mean loss", title="loss")
    acc_ax.plot(steps, [h["train_accuracy"] for h in history], label="train")
    acc_ax.plot(steps, [h["heldout_accuracy"] for h in history], label="held out")
    acc_ax.set(xlabel="step", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path


def log_text(log: dict) -> str:
    """log.json's text: one key per line at the top, one line per logged step (easy to read and to diff).

    >>> print(log_text({"config": {"steps": 2}, "history": [{"step": 0}, {"step": 2}]}))
    {
      "config": {"steps": 2},
      "history": [
        {"step": 0},
        {"step": 2}
      ]
    }
    <BLANKLINE>
    """
    parts = []
    for key, value in log.items():
        if isinstance(value, list) and value:
            body = ",\n".join(f"    {json.dumps(v)}" for v in value)
            parts.append(f"  {json.dumps(key)}: [\n{body}\n  ]")
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_DIGITS",
    "DEFAULT_LR",
    "DEFAULT_STEPS",
    "EXAMPLE_SPEC",
    "TrainError",
    "TrainResult",
    "check_task",
    "default_out",
    "init_params",
    "load_digits",
    "log_text",
    "plot_history",
    "resolve_spec",
    "sample_order",
    "stratified_split",
    "targets",
    "train",
]
