"""Many cases at once for `cnn-derive eval --batch FILE`: JSON Lines or ``.npz`` in, JSON Lines out.

A batch file is either

* **JSON Lines** (any name but ``*.npz``; ``-`` reads standard input): one case a line, each in
  `eval`'s format (see `symbolic.case`), every line checked by the very code that checks a
  single case. Blank lines are skipped; line numbers in messages count every line.
* **``.npz``** (numpy's ``savez``): arrays named X, Y, W1, B1, ... Every array has a leading
  batch axis of the same length N (case i is row i of each); a parameter may instead be given
  without the batch axis, and then every case shares it. Axes of length 1 may be left out or
  added within a row, as in a case file.

Everything is read and checked before anything is computed, and everything is computed before
anything is written: a file with a bad line writes nothing on stdout. Every rejection is a
`CaseError` whose single line names the place (``batch.jsonl line 3: W1: expected ...``,
``batch.npz row 4: W1: expected finite numbers, got NaN``, rows counted from 0 as numpy does).

Each case's output is the object `eval` prints for it alone, in the layouts that case used,
computed in one call of the compiled network per `CHUNK` cases (all of them for most files;
the chunks only bound the memory).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TextIO

import numpy as np

from symbolic.case import Case, keys_for, parse_case, read_text
from symbolic.errors import CaseError, SpecError
from symbolic.numeric import check_labels, compile_network, squeezed
from symbolic.spec import NetworkSpec, seed_spec

CHUNK = 8192  # cases per call of the compiled network: bounds the memory of the outputs
PROGRESS_MIN = 10_000  # more cases than this get a progress bar on stderr (unless quiet)


@dataclass(frozen=True, eq=False)
class Batch:
    """Checked cases for one spec, as stacked arrays.

    ``arrays``: X and Y with a leading axis of ``len(batch)``; each parameter either with that
    axis too, or without it when all cases share it (``shared``). ``given``: for each case, the
    shapes its parameters were written in (the output repeats that layout). ``lines``: each
    case's line number in a JSON Lines file (None for ``.npz``, where cases are rows).

    >>> b = load_batch("-", None, text='{"X": [[1, 2], [3, 4]], "W1": [[1]], "B1": 0, "W2": [5], "B2": 0, "Y": 0}')
    >>> len(b), b.spec.input, b.arrays["W1"].shape, b.where(0)
    (1, (1, 2, 2), (1, 1, 1, 1, 1), 'stdin line 1')
    """

    spec: NetworkSpec
    source: str
    arrays: dict
    given: tuple
    shared: frozenset = frozenset()
    lines: tuple | None = None

    def __len__(self) -> int:
        return int(self.arrays["X"].shape[0])

    def where(self, i: int) -> str:
        """How messages name case ``i`` (0-based): its line, or its row of the ``.npz``."""
        return f"{self.source} line {self.lines[i]}" if self.lines is not None else f"{self.source} row {i}"

    def rows(self, start: int, stop: int) -> dict:
        """The arguments of the compiled network for cases ``start:stop`` (shared parameters as they are)."""
        return {k: (v if k in self.shared else v[start:stop]) for k, v in self.arrays.items()}


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------
def load_batch(path: str | Path, spec: NetworkSpec | None = None, quiet: bool = True, text: str | None = None) -> Batch:
    """Read and check every case of a batch file (``-``: JSON Lines on stdin); ``spec`` None infers the seed's sizes.

    ``text`` gives the JSON Lines content directly (``path`` then only names it). ``quiet``
    False shows a progress bar on stderr while reading more than `PROGRESS_MIN` lines.

    >>> load_batch("batch.jsonl", None, text="\\n\\n")
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: batch.jsonl: expected one case per line (JSON Lines), got an empty file
    """
    path = str(path)
    if text is None and path != "-" and path.lower().endswith(".npz"):
        return _load_npz(path, spec)
    if text is None:
        text, source = read_text(path)
    else:
        source = "stdin" if path == "-" else path
    return _load_jsonl(text, source, spec, quiet)


def _load_jsonl(text: str, source: str, spec: NetworkSpec | None, quiet: bool) -> Batch:
    text = text.removeprefix("\ufeff")
    # Split on newlines only: str.splitlines would also split inside JSON strings at U+2028.
    numbered = [(i, line) for i, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not numbered:
        raise CaseError(f"{source}: expected one case per line (JSON Lines), got an empty file")
    columns: dict[str, list] = {}
    given: list[dict] = []
    shapes: dict = {}

    def slow(i: int, line: str) -> Case:
        # The checks of a single case, so a bad line gets the very message `eval` gives for it.
        where = f"{source} line {i}"
        try:
            return parse_case(line, spec, where)
        except CaseError as err:
            raise CaseError(_at(where, str(err), text if not given else None)) from None

    with _progress(len(numbered), quiet, "reading cases") as advance:
        for i, line in numbered:
            fast = _fast_case(line, shapes) if given else None
            if fast is None:
                case = slow(i, line)
                if not given:  # the first line fixes the seed's sizes when no spec was given
                    spec = case.spec
                    shapes = {"X": spec.input, **spec.param_shapes, "Y": spec.y_shape}
                    columns = {k: [] for k in shapes}
                fast = dict(case.arrays), dict(case.given)
            for k, column in columns.items():
                column.append(fast[0][k])
            given.append(fast[1])
            advance(1)
    assert spec is not None
    arrays = {k: np.stack(column) for k, column in columns.items()}
    lines = tuple(i for i, _ in numbered)
    # The fast path leaves these checks to here; the first bad line gets its own message.
    finite = np.logical_and.reduce([np.isfinite(a).reshape(len(lines), -1).all(axis=1) for a in arrays.values()])
    for row in np.flatnonzero(~finite)[:1]:
        slow(*numbered[row])
    try:
        check_labels(spec, arrays["Y"])
    except CaseError:
        for row, (i, line) in enumerate(numbered):
            try:
                check_labels(spec, arrays["Y"][row])
            except CaseError:
                slow(i, line)
        raise
    return Batch(spec, source, arrays, tuple(given), frozenset(), lines)


class _Slow(Exception):
    """The fast path cannot vouch for a line: read it with the single case's checks instead."""


_NUMBERS = {int, float}
_FITS: dict = {}  # (written shape, full shape) -> whether they differ only by axes of length 1


def _unique_keys(pairs: list) -> dict:
    data = dict(pairs)
    if len(data) != len(pairs):
        raise _Slow
    return data


def _no_constants(name: str) -> float:
    raise _Slow  # NaN, Infinity, -Infinity


def _fast_case(line: str, shapes: dict) -> tuple[dict, dict] | None:
    """A line's arrays (full layout) and written shapes if it is plainly valid, else None.

    Accepts only what `parse_case` accepts, and gives the same arrays: an object with exactly
    the expected keys, each a number or a rectangular list of ints and floats (no booleans,
    strings, nulls or constants), in a layout that differs from the full one by axes of
    length 1. Finiteness (1e400 reads as infinity) and labels are checked for the whole batch
    at once afterwards. Anything else (even if
    valid) goes the slow way, which also words the message.
    """
    try:
        data = json.loads(line, object_pairs_hook=_unique_keys, parse_constant=_no_constants)
    except (_Slow, ValueError, RecursionError):
        return None
    if type(data) is not dict or data.keys() != shapes.keys():
        return None
    arrays, given = {}, {}
    try:
        for key, full in shapes.items():
            value = data[key]
            if type(value) in _NUMBERS:
                arr = np.array(float(value))
            elif type(value) is list:
                cells = np.array(value, dtype=object)  # ragged lists stay lists, caught below
                if cells.size == 0 or not set(map(type, cells.flat)) <= _NUMBERS:
                    return None
                arr = cells.astype(np.float64)
            else:
                return None
            fits = _FITS.get((arr.shape, full))
            if fits is None:
                fits = _FITS[(arr.shape, full)] = squeezed(arr.shape) == squeezed(full)
            if not fits:
                return None
            arrays[key], given[key] = arr.reshape(full), arr.shape
    except (OverflowError, ValueError, TypeError):  # an int too large for a float, ...
        return None
    return arrays, given


def _at(where: str, message: str, whole: str | None) -> str:
    """A line's message, prefixed with the line; a first line that starts a multi-line JSON object says so."""
    if message.startswith(where):
        message = message.replace(" at line 1 column ", " at column ", 1)
        if whole is not None and "invalid JSON" in message:
            try:
                is_object = isinstance(json.loads(whole), dict)
            except ValueError:
                is_object = False
            if is_object:
                message += " (this file is one JSON object over several lines: give it to `cnn-derive eval` without --batch)"
        return message
    return f"{where}: {message}"


def _load_npz(path: str, spec: NetworkSpec | None) -> Batch:
    try:
        with np.load(path, allow_pickle=False) as data:
            raw = {}
            for name in data.files:
                try:
                    raw[name] = data[name]
                except ValueError as err:  # object arrays, refused without pickle
                    raise CaseError(f"{path}: {name}: cannot read: {err}") from None
    except CaseError:
        raise
    except OSError as err:
        raise CaseError(f"{path}: cannot read file: {err.strerror or err}") from None
    except (ValueError, EOFError) as err:  # not a zip file, a truncated one, ...
        raise CaseError(f"{path}: cannot read file: not a .npz archive ({err})") from None
    for name, arr in raw.items():
        if arr.dtype.kind not in "iuf":
            kind = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "bytes"}.get(arr.dtype.kind, f"dtype {arr.dtype}")
            raise CaseError(f"{path}: {name}: expected real numbers, got {kind}")
    if "X" not in raw:
        raise CaseError(f"{path}: X: missing; expected arrays X, W1, B1, ..., Y with a leading batch axis")
    if raw["X"].ndim == 0 or raw["X"].shape[0] == 0:
        raise CaseError(f"{path}: X: expected a leading batch axis with at least one case, got shape {raw['X'].shape}")
    spec = spec if spec is not None else _infer_seed(path, raw)
    keys = keys_for(spec)
    for name in raw:
        if name not in keys:
            hint = next((f" (did you mean {k}?)" for k in keys if k.lower() == name.strip().lower()), "")
            raise CaseError(f"{path}: {_shown(name)}: unknown array; expected only {', '.join(keys)}{hint}")
    n = raw["X"].shape[0]
    full_shapes = {"X": spec.input, **spec.param_shapes, "Y": spec.y_shape}
    arrays, given, shared = {}, {}, set()
    for name, full in full_shapes.items():
        if name not in raw:
            raise CaseError(f"{path}: {name}: missing; expected {_fmt(full)} per case for {spec.label}")
        arr = raw[name].astype(np.float64)
        if arr.ndim >= 1 and arr.shape[0] == n and squeezed(arr.shape[1:]) == squeezed(full):
            arrays[name], given[name] = arr.reshape((n, *full)), arr.shape[1:]
        elif name not in ("X", "Y") and squeezed(arr.shape) == squeezed(full):
            arrays[name], given[name] = arr.reshape(full), arr.shape
            shared.add(name)
        else:
            share = "" if name in ("X", "Y") else f", or {_fmt(full)} shared by every case"
            if full:
                each = f"{n}×{_fmt(full)} (a leading batch axis of {n} cases, as X has, then {_fmt(full)}{_short(full)})"
            else:
                each = f"{n} numbers (one per case, as X has)"
            raise CaseError(f"{path}: {name}: expected {each}{share}; got shape {arr.shape}")
        bad = ~np.isfinite(arrays[name])
        if bad.any():
            value = arrays[name][bad].ravel()[0]
            what = "NaN" if np.isnan(value) else "Infinity" if value > 0 else "-Infinity"
            at = ":" if name in shared else f" row {int(np.argwhere(bad)[0][0])}:"
            raise CaseError(f"{path}{at} {name}: expected finite numbers, got {what}")
    y = arrays["Y"]
    try:
        check_labels(spec, y)
    except CaseError:
        for i in range(n):  # only on failure: find the first bad row for the message
            try:
                check_labels(spec, y[i])
            except CaseError as err:
                raise CaseError(f"{path} row {i}: {err}") from None
        raise
    return Batch(spec, path, arrays, (given,) * n, frozenset(shared), None)


def _infer_seed(path: str, raw: dict) -> NetworkSpec:
    """With no spec, the seed at the sizes the arrays are written in (X's rows n×n, W1's k×k)."""
    rows = squeezed(raw["X"].shape[1:])
    if len(rows) != 2 or rows[0] != rows[1]:
        raise CaseError(
            f"{path}: X: expected N×n×n for the seed (no spec given), got shape {_fmt(raw['X'].shape)}; "
            "for another network give its spec (--spec)"
        )
    w1 = squeezed(raw["W1"].shape) if "W1" in raw else ()
    k = w1[-1] if len(w1) >= 2 and w1[-1] == w1[-2] else 3
    try:
        return seed_spec(rows[0], k)
    except SpecError as err:
        raise CaseError(f"{path}: X: {str(err).partition(': ')[2]} (X is {rows[0]}×{rows[0]}, W1 is {k}×{k})") from None


def _fmt(shape: tuple) -> str:
    return "×".join(map(str, shape)) if shape else "a number"


def _short(full: tuple) -> str:
    return f" or {_fmt(squeezed(full))}" if squeezed(full) != full else ""


def _shown(name: str) -> str:
    return name if name.isidentifier() and len(name) <= 30 else json.dumps(name[:30])


# ----------------------------------------------------------------------------------------
# computing and writing
# ----------------------------------------------------------------------------------------
def evaluate_batch(batch: Batch, quiet: bool = True) -> dict[str, np.ndarray]:
    """L, the prediction and every parameter gradient of every case, with a leading axis of ``len(batch)``.

    One call of the compiled network per `CHUNK` cases. A case whose forward pass overflows
    is named by its line (or row). ``quiet`` False shows progress for large batches and the
    compiler's notices on stderr.

    >>> b = load_batch("-", None, text='{"X": [[1, 2], [3, 4]], "W1": [[1]], "B1": 0, "W2": [5], "B2": 0, "Y": 0}')
    >>> out = evaluate_batch(b); round(float(out["L"][0]), 6), out["dL/dW1"].shape
    (20.0, (1, 1, 1, 1, 1))
    """
    # The very program `eval` uses for one case (outputs="gradients"): the same expressions
    # compiled with other outputs may round differently in the last bit.
    net = compile_network(batch.spec, outputs="gradients", quiet=quiet)
    n = len(batch)
    parts: list[dict] = []
    with _progress(n, quiet, "evaluating") as advance:
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            parts.append(_call(net, batch, start, stop))
            advance(stop - start)
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _call(net, batch: Batch, start: int, stop: int) -> dict:
    args = batch.rows(start, stop)
    try:
        out = net(args.pop("X"), args.pop("Y"), **args)
        # A batch of one comes back without its batch axis (the network reads it as one case).
        return {k: v.reshape((stop - start, *net.shapes[k])) for k, v in out.items()}
    except CaseError as err:
        if stop - start == 1:
            raise CaseError(f"{batch.where(start)}: {err}") from None
        mid = (start + stop) // 2  # bisect to the first case that fails alone
        _call(net, batch, start, mid)
        _call(net, batch, mid, stop)
        raise


def case_json(spec: NetworkSpec, outputs: dict, i: int, given: dict) -> dict:
    """Case ``i``'s output object, exactly as `eval` prints it for that case alone.

    >>> b = load_batch("-", None, text='{"X": [[1, 2], [3, 4]], "W1": [[1]], "B1": 0, "W2": [5], "B2": 0, "Y": 0}')
    >>> out = case_json(b.spec, evaluate_batch(b), 0, b.given[0]); list(out), round(out["dL/dB1"], 6)
    (['L', 'A2', 'dL/dW1', 'dL/dB1', 'dL/dW2', 'dL/dB2'], 5.0)
    """
    pred = _prediction(spec)
    result: dict = {"L": float(outputs["L"][i])}
    p = np.asarray(outputs[pred][i], dtype=float)
    result[pred] = float(p.reshape(())) if p.size == 1 else p.tolist()
    for name in spec.param_shapes:
        arr = np.asarray(outputs[f"dL/d{name}"][i], dtype=float).reshape(given[name])
        result[f"dL/d{name}"] = float(arr) if arr.ndim == 0 else arr.tolist()
    return result


@lru_cache(maxsize=64)
def _prediction(spec: NetworkSpec) -> str:
    return spec.stages[-2]


def format_batch(batch: Batch, outputs: dict) -> Iterator[str]:
    """One JSON line (no newline) per case, in order.

    >>> b = load_batch("-", None, text='{"X": [[1, 2], [3, 4]], "W1": [[1]], "B1": 0, "W2": [5], "B2": 0, "Y": 0}')
    >>> next(format_batch(b, evaluate_batch(b)))[:12]
    '{"L": 20.000'
    """
    for i in range(len(batch)):
        yield json.dumps(case_json(batch.spec, outputs, i, batch.given[i]))


def run_batch(path: str | Path, spec: NetworkSpec | None = None, quiet: bool = False, stream: TextIO | None = None) -> int:
    """`cnn-derive eval --batch`: read and check ``path``, evaluate, write one JSON line per case; the count.

    Nothing is written unless every case was read and computed. Progress goes to stderr for
    more than `PROGRESS_MIN` cases unless ``quiet``.
    """
    stream = sys.stdout if stream is None else stream
    batch = load_batch(path, spec, quiet=quiet)
    outputs = evaluate_batch(batch, quiet=quiet)
    with _progress(len(batch), quiet, "writing") as advance:
        lines: list[str] = []
        for line in format_batch(batch, outputs):
            lines.append(line)
            if len(lines) == 1024:
                stream.write("\n".join(lines) + "\n")
                advance(len(lines))
                lines = []
        if lines:
            stream.write("\n".join(lines) + "\n")
            advance(len(lines))
    stream.flush()
    return len(batch)


@contextmanager
def _progress(total: int, quiet: bool, what: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr for more than `PROGRESS_MIN` items; a no-op otherwise."""
    if quiet or total <= PROGRESS_MIN:
        yield lambda k: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn(f"[dim]cnn-derive:[/dim] {what}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True, highlight=False)) as bar:
        task = bar.add_task(what, total=total)
        yield lambda k: bar.advance(task, k)


__all__ = ["CHUNK", "PROGRESS_MIN", "Batch", "case_json", "evaluate_batch", "format_batch", "load_batch", "run_batch"]
