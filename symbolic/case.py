"""A case for `cnn-derive eval`: one input, the parameters and the label, for a network spec.

A case file is a JSON object with the keys X, Y and one W<i>, B<i> pair per trainable layer
(conv2d and dense, numbered 1, 2, ... in order), in PyTorch's layouts::

    {"X":  channels × height × width, or height × width for one channel,
     "W1": [filters, channels, kh, kw] for a conv2d layer, [units, inputs] for a dense one,
     "B1": [filters] or [units],
     ...,
     "Y":  a number in [0, 1] for bce; a vector of length units for softmax_ce (a
           probability vector) and for mse}

Where a dimension is 1 the squeezed form is accepted as well: the seed's 3×3 ``W1``, its
number ``B1``, its flat ``W2``. So the lecture's cases read as they always did.

Every rejection is a `CaseError` whose message is a single line that starts with the field
(or, for problems with the whole file, the file's name) and says what was expected and what
was found, so the CLI can print it as is. Booleans, strings and null are never numbers; NaN
and ±Infinity (which Python's json module accepts) are rejected, as are numbers too large for
a float (``1e400``), and a repeated key.
"""

from __future__ import annotations

import json
import math
import numbers
import sys
from dataclasses import dataclass

import numpy as np

from symbolic.errors import CaseError, SpecError
from symbolic.numeric import check_labels, squeezed
from symbolic.spec import NetworkSpec, seed_spec

_SNIPPET = 30  # characters of user text quoted in a message; enough to recognise, short enough for one line


class _Huge:
    """A JSON number that does not fit a float; kept as text so the message can quote it."""

    def __init__(self, text: str) -> None:
        self.text = text


class _Pairs(list):
    """A JSON object as its raw key/value pairs, so repeated keys are still visible."""


def _parse_float(text: str) -> float | _Huge:
    value = float(text)
    # json turns 1e400 into inf, which would later be reported as "Infinity" the user never wrote.
    return value if math.isfinite(value) else _Huge(text)


def _parse_int(text: str) -> int | _Huge:
    try:
        value = int(text)
        float(value)
    except (OverflowError, ValueError):  # ValueError: Python's limit on int digits
        return _Huge(text)
    return value


def _quote(text: str) -> str:
    # json.dumps escapes newlines and control characters, which keeps the message on one line.
    shown = text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"
    return json.dumps(shown, ensure_ascii=False)


def _key_name(key: str) -> str:
    return key if key.isidentifier() and len(key) <= _SNIPPET else _quote(key)


def _fmt_number(value: numbers.Real) -> str:
    if isinstance(value, numbers.Integral):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"  # JSON's spelling, as the user wrote it
    return repr(value)


def _is_number(value: object) -> bool:
    # bool is an int subclass and np.bool_ is not Real; neither is a number here.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _kind(value: object) -> str:
    """The JSON kind of a value, with an article: 'a list', 'an object', 'null'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, _Huge) or _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (_Pairs, dict)):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _describe(value: object) -> str:
    """A value as a message shows it: its kind, plus the value itself when it is short."""
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, _Huge):
        return f"a number too large for a float ({_quote(value.text)[1:-1]})"
    if _is_number(value):
        try:
            float(value)
        except OverflowError:
            return "a number too large for a float"  # str() of a huge int can itself fail
        return _fmt_number(value)
    if isinstance(value, str):
        return f"a string ({_quote(value)})"
    if isinstance(value, (list, tuple)) and not isinstance(value, _Pairs):
        if not value:
            return "an empty list"
        return f"a list of {len(value)} entr{'y' if len(value) == 1 else 'ies'}"
    return _kind(value)


def _number_problem(value: object) -> str | None:
    """Why a value is not a finite number, or None if it is one."""
    if not _is_number(value):
        return _describe(value)
    try:
        as_float = float(value)
    except OverflowError:
        return _describe(value)
    if not math.isfinite(as_float):
        return _fmt_number(as_float)
    return None


def _as_lists(value: object) -> object:
    # Arrays built in code go through the same checks as JSON, so both paths give the same messages.
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()  # also turns np.bool_ into bool, so it is caught as a boolean
    return value


def _read_only(rows: object) -> np.ndarray:
    array = np.array(rows, dtype=np.float64)  # always a copy: freezing it cannot freeze the caller's array
    array.flags.writeable = False
    return array


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "a number" if not shape else "×".join(map(str, shape)) if len(shape) > 1 else f"a list of {shape[0]}"


def _nested(name: str, value: object, path: str = "") -> tuple[list, tuple[int, ...]]:
    """A JSON value as nested lists of floats and its shape; rejects ragged arrays and non-numbers."""
    value = _as_lists(value)
    if isinstance(value, (list, tuple)) and not isinstance(value, _Pairs):
        if not value:
            raise CaseError(f"{name}: expected numbers, got an empty list{' at ' + path if path else ''}")
        parts = [_nested(name, v, f"{path}[{i}]") for i, v in enumerate(value)]
        shapes = {shape for _, shape in parts}
        if len(shapes) > 1:
            raise CaseError(f"{name}: expected a rectangular array, got rows of different shapes{' in ' + path if path else ''}")
        return [p for p, _ in parts], (len(value), *shapes.pop())
    problem = _number_problem(value)
    if problem is not None:
        where = f" at {path}" if path else ""
        raise CaseError(f"{name}: expected finite numbers, got {problem}{where}")
    return float(value), ()  # type: ignore[arg-type]


def read_array(name: str, value: object, full: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """A field as a float64 array in full layout, and the shape it was written in.

    >>> read_array("W1", [[1, 0], [0, 1]], (1, 1, 2, 2))[0].shape
    (1, 1, 2, 2)
    >>> read_array("B1", [[0]], (1,))[0].tolist(), read_array("B1", 0, (1,))[1]
    ([0.0], ())
    >>> read_array("W2", [1, 2], (1, 4))
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: W2: expected 1×4 (or a list of 4), got a list of 2
    """
    data, shape = _nested(name, value)
    arr = np.array(data, dtype=np.float64)
    short = squeezed(full)
    # Axes of length 1 carry no information, so any of them may be left out or added.
    if squeezed(shape) == short:
        return arr.reshape(full), shape
    alt = f" (or {_fmt_shape(short)})" if short != full else ""
    got = _fmt_shape(shape)
    got = f"a {got} array" if len(shape) > 1 else got
    raise CaseError(f"{name}: expected {_fmt_shape(full)}{alt}, got {got}")


@dataclass(frozen=True, eq=False)
class Case:
    """One case for a spec: arrays in full layout, and the shapes they were written in.

    >>> case = parse_case('{"X": [[1, 2], [3, 4]], "W1": [[1]], "B1": 0, "W2": [5], "B2": 0, "Y": 0}')
    >>> case.spec.input, case.given["W2"], case.arrays["W2"].shape
    ((1, 2, 2), (1,), (1, 1))
    """

    spec: NetworkSpec
    arrays: dict
    given: dict

    @property
    def params(self) -> dict:
        """The parameters alone, by name."""
        return {k: v for k, v in self.arrays.items() if k not in ("X", "Y")}


def keys_for(spec: NetworkSpec) -> tuple[str, ...]:
    """The keys a case for ``spec`` has, in order.

    >>> keys_for(seed_spec())
    ('X', 'W1', 'B1', 'W2', 'B2', 'Y')
    """
    return ("X", *spec.param_shapes, "Y")


def _shapes(spec: NetworkSpec) -> dict[str, tuple[int, ...]]:
    return {"X": spec.input, **spec.param_shapes, "Y": spec.y_shape}


def _side(name: str, value: object) -> int | None:
    """The side of a square array written in any layout; None where the value is no array."""
    try:
        _, shape = _nested(name, value)
    except CaseError:
        return None  # read_array names the real problem once the spec is known
    short = squeezed(shape)
    if len(short) == 2 and short[0] == short[1]:
        return short[0]
    if not short:
        return 1 if shape else None
    if len(short) > 2:
        raise CaseError(
            f"{name}: expected a square n×n array for the seed (no spec given), got a {_fmt_shape(shape)} array; "
            "for another network give its spec (--spec)"
        )
    return None


def _infer_seed(values: dict) -> NetworkSpec:
    """With no spec given, the lecture's network at the sizes X and W1 are written in."""
    n = _side("X", values.get("X")) or 6
    k = _side("W1", values.get("W1")) or 3
    try:
        return seed_spec(n, k)
    except SpecError as err:  # the sizes' own message, attributed to the arrays the user wrote
        text = str(err).partition(": ")[2]
        raise CaseError(f"X: {text} (X is {n}×{n}, W1 is {k}×{k})") from None


def make_case(values: dict, spec: NetworkSpec | None = None, source: str = "case") -> Case:
    """A checked Case from field values (JSON-like or arrays); ``spec`` None infers the seed's sizes.

    >>> make_case({"X": np.zeros((6, 6)), "W1": np.ones((3, 3)), "B1": 0, "W2": [1, 2, 3], "B2": 0, "Y": 1})
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: W2: expected 1×4 (or a list of 4), got a list of 3
    """
    spec = spec if spec is not None else _infer_seed(values)
    keys = keys_for(spec)
    for key in values:
        if key not in keys:
            hint = next((f" (did you mean {k}?)" for k in keys if k.lower() == str(key).strip().lower()), "")
            raise CaseError(f"{_key_name(str(key))}: unknown key; expected only {', '.join(keys)}{hint}")
    arrays, given = {}, {}
    for key, full in _shapes(spec).items():
        if key not in values:
            raise CaseError(f"{key}: missing; expected {_fmt_shape(full)} for {spec.label}")
        arrays[key], given[key] = read_array(key, values[key], full)
    check_labels(spec, arrays["Y"])
    for arr in arrays.values():
        arr.flags.writeable = False
    return Case(spec, arrays, given)


def parse_case(text: str, spec: NetworkSpec | None = None, source: str = "case") -> Case:
    """Parse and validate a case from JSON text; ``source`` names the text in file-level messages.

    >>> parse_case('{"X": 1, "Q": 2}')
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: Q: unknown key; expected only X, W1, B1, W2, B2, Y
    """
    text = text.removeprefix("\ufeff")  # editors on Windows add a BOM that json rejects
    if not text.strip():
        raise CaseError(f"{source}: expected a JSON object, got an empty input")
    try:
        data = json.loads(text, object_pairs_hook=_Pairs, parse_float=_parse_float, parse_int=_parse_int)
    except json.JSONDecodeError as error:
        raise CaseError(f"{source}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from None
    except RecursionError:
        raise CaseError(f"{source}: invalid JSON: nested too deeply") from None
    return case_from_json(data, spec, source)


def case_from_json(data: object, spec: NetworkSpec | None, source: str) -> Case:
    """A Case from a decoded JSON value (pairs kept, so repeated keys are seen)."""
    if not isinstance(data, _Pairs):
        raise CaseError(f"{source}: expected a JSON object, got {_kind(data)}")
    values: dict[str, object] = {}
    for key, value in data:
        if key in values:
            raise CaseError(f"{key}: appears more than once; expected each key once")
        values[key] = value
    return make_case(values, spec, source)


def read_text(path_or_dash: str) -> tuple[str, str]:
    """The text of a file, or of standard input for ``-``, and the name messages use for it.

    >>> read_text("no-such-case.json")
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: no-such-case.json: cannot read file: No such file or directory
    """
    source = "stdin" if path_or_dash == "-" else path_or_dash
    try:
        if path_or_dash == "-":
            return sys.stdin.read(), source
        with open(path_or_dash, encoding="utf-8") as handle:
            return handle.read(), source
    except UnicodeDecodeError as error:
        raise CaseError(f"{source}: cannot read file: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise CaseError(f"{source}: cannot read file: {error.strerror or error}") from None


def load_case(path_or_dash: str, spec: NetworkSpec | None = None) -> Case:
    """Read a case from a file, or from standard input when the path is ``-``."""
    text, source = read_text(path_or_dash)
    return parse_case(text, spec, source)


__all__ = ["Case", "case_from_json", "keys_for", "load_case", "make_case", "parse_case", "read_array", "read_text"]
