"""A case for `cnn-derive eval`: one input, one set of parameters and one label, validated.

A case file is a JSON object with exactly the keys X, W1, B1, W2, B2, Y::

    {"X": [[...6 numbers...], ...6 rows...],   n×n input
     "W1": [[...3...], ...3 rows...],          k×k filter
     "B1": 0.1,                                conv bias (a plain number)
     "W2": [[0.1, 0.2, 0.3, 0.4]],             1×m dense weights, or a flat [0.1, 0.2, 0.3, 0.4]
     "B2": -0.2,                               dense bias (a plain number)
     "Y": 1}                                   label in [0, 1]

The sizes n and k come from the arrays; m must be ((n−k+1)/2)².

Every rejection is a `CaseError` whose message is a single line that starts with the field
(or, for problems with the whole file, the file's name) and says what was expected and what
was found, so the CLI can print it as is.

Decisions worth knowing:

* Scalars (B1, B2, Y) must be plain numbers. A 1-element list such as ``[0.5]`` is rejected
  with a message that says to write ``0.5``: accepting it would hide a shape mistake in the
  one place where shapes are otherwise strict.
* Booleans, strings and null are never numbers. NaN and ±Infinity (which Python's json
  module accepts) are rejected, as are numbers too large for a float (``1e400``).
* A repeated key is rejected rather than silently keeping the last value, as json does.
"""
from __future__ import annotations

import json
import math
import numbers
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from symbolic.errors import CaseError, SpecError
from symbolic.spec import NetworkSpec

KEYS = ("X", "W1", "B1", "W2", "B2", "Y")

_MISSING_HINT = {
    "X": "expected an n×n array",
    "W1": "expected a k×k array",
    "B1": "expected a number",
    "W2": "expected a 1×m array or a flat list of m numbers",
    "B2": "expected a number",
    "Y": "expected a number in [0, 1]",
}

# NetworkSpec names its own fields; a case only has arrays, so point at the array that sets the size.
_SPEC_FIELD_TO_CASE_FIELD = {"n": "X", "k": "W1"}

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


def _matrix_rows(name: str, value: object, expected: str) -> list[list[object]]:
    """Check that value is a non-empty rectangular list of lists; returns the rows.

    Entries are not checked here, so W2's 1×m form can reuse the shape checks.
    """
    value = _as_lists(value)
    if not isinstance(value, (list, tuple)) or isinstance(value, _Pairs):
        raise CaseError(f"{name}: expected {expected}, got {_describe(value)}")
    if not value:
        raise CaseError(f"{name}: expected {expected}, got an empty array")
    non_rows = [i for i, row in enumerate(value, 1) if not isinstance(row, (list, tuple)) or isinstance(row, _Pairs)]
    if len(non_rows) == len(value):
        raise CaseError(
            f"{name}: expected {expected}, got a flat list of {len(value)} entries; write one inner list per row"
        )
    if non_rows:
        i = non_rows[0]
        raise CaseError(f"{name}: expected {expected}, got row {i} as {_describe(value[i - 1])} instead of a list")
    width = len(value[0])
    for i, row in enumerate(value, 1):
        if len(row) != width:
            raise CaseError(
                f"{name}: expected {expected}, got a ragged array (row {i} has {len(row)} entries, row 1 has {width})"
            )
    if width == 0:
        raise CaseError(f"{name}: expected {expected}, got an empty array (its rows have no entries)")
    return [list(row) for row in value]


def _check_entries(name: str, expected: str, rows: list[list[object]], where: Callable[[int, int], str]) -> None:
    for i, row in enumerate(rows, 1):
        for j, entry in enumerate(row, 1):
            if not _is_number(entry):
                raise CaseError(f"{name}: expected {expected}, got {_describe(entry)} at {where(i, j)}")
            problem = _number_problem(entry)
            if problem is not None:
                raise CaseError(f"{name}: expected finite numbers, got {problem} at {where(i, j)}")


def _row_col(i: int, j: int) -> str:
    return f"row {i}, column {j}"


def _square(name: str, value: object, side: str) -> np.ndarray:
    expected = f"a square {side}×{side} array of numbers"
    rows = _matrix_rows(name, value, expected)
    if len(rows) != len(rows[0]):
        raise CaseError(f"{name}: expected {expected}, got a {len(rows)}×{len(rows[0])} array")
    _check_entries(name, expected, rows, _row_col)
    return _read_only(rows)


def _spec(X: np.ndarray, W1: np.ndarray) -> NetworkSpec:
    n, k = X.shape[0], W1.shape[0]
    try:
        return NetworkSpec(n=n, k=k)
    except SpecError as error:
        # Keep the spec's wording but name the case's field: the user never wrote "n" or "k".
        spec_field, _, text = str(error).partition(": ")
        field = _SPEC_FIELD_TO_CASE_FIELD.get(spec_field, "case")
        raise CaseError(f"{field}: {text} (X is {n}×{n}, W1 is {k}×{k})") from None


def _weights(value: object, spec: NetworkSpec) -> np.ndarray:
    name = "W2"
    expected = "a 1×m array or a flat list of m numbers"
    value = _as_lists(value)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        rows = _matrix_rows(name, value, expected)
        if len(rows) != 1:
            raise CaseError(f"{name}: expected {expected}, got a {len(rows)}×{len(rows[0])} array")
        _check_entries(name, expected, rows, _row_col)
        flat = rows[0]
    elif isinstance(value, (list, tuple)) and not isinstance(value, _Pairs):
        flat = list(value)
        _check_entries(name, expected, [flat], lambda i, j: f"position {j}")
    else:
        raise CaseError(f"{name}: expected {expected}, got {_describe(value)}")
    if len(flat) != spec.flat:
        p = spec.pool
        raise CaseError(
            f"{name}: expected {spec.flat} weights (((n−k+1)/{p})² for n={spec.n}, k={spec.k}), got {len(flat)}"
        )
    return _read_only(flat)


def _scalar(name: str, value: object, expected: str = "a finite number", low=-math.inf, high=math.inf) -> float:
    value = _as_lists(value)  # a 0-d array built in code is a plain number
    problem = _number_problem(value)
    if problem is None:
        if not low <= float(value) <= high:
            raise CaseError(f"{name}: expected {expected}, got {_fmt_number(value)}")  # as written: 2, not 2.0
        return float(value)
    if isinstance(value, (list, tuple)) and len(value) == 1 and _number_problem(value[0]) is None:
        only = _fmt_number(value[0])
        raise CaseError(
            f"{name}: expected {expected}, got a 1-element list ([{only}]); "
            f"only plain numbers are accepted, so write {only}"
        )
    raise CaseError(f"{name}: expected {expected}, got {problem}")


@dataclass(frozen=True, eq=False)
class Case:
    """One input, the network's parameters and the label, checked against each other.

    Built from JSON by `parse_case`/`load_case`, or directly in code; either way the arrays
    become read-only float64 copies and any mismatch raises `CaseError`.

    >>> import numpy as np
    >>> case = Case(X=np.zeros((6, 6)), W1=np.ones((3, 3)), B1=0, W2=[[1, 2, 3, 4]], B2=0.5, Y=1)
    >>> case.spec, case.W2, case.B1
    (NetworkSpec(n=6, k=3, pool=2), array([1., 2., 3., 4.]), 0.0)
    >>> Case(X=np.zeros((6, 6)), W1=np.ones((3, 3)), B1=0, W2=[1, 2, 3], B2=0, Y=1)
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: W2: expected 4 weights (((n−k+1)/2)² for n=6, k=3), got 3
    """

    X: np.ndarray
    W1: np.ndarray
    B1: float
    W2: np.ndarray
    B2: float
    Y: float

    def __post_init__(self) -> None:
        # Sizes first: W2's expected length depends on n and k.
        X = _square("X", self.X, "n")
        W1 = _square("W1", self.W1, "k")
        spec = _spec(X, W1)
        checked = {
            "X": X,
            "W1": W1,
            "B1": _scalar("B1", self.B1),
            "W2": _weights(self.W2, spec),
            "B2": _scalar("B2", self.B2),
            "Y": _scalar("Y", self.Y, "a number in [0, 1]", low=0.0, high=1.0),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # frozen: the only way to store the normalised values

    @property
    def spec(self) -> NetworkSpec:
        """The network these numbers fit: n from X, k from W1.

        >>> parse_case('{"X": [[1, 2], [3, 4]], "W1": [[1]], "B1": 0, "W2": [5], "B2": 0, "Y": 0}').spec
        NetworkSpec(n=2, k=1, pool=2)
        """
        return NetworkSpec(n=self.X.shape[0], k=self.W1.shape[0])

    # Arrays make the generated __eq__ ambiguous; compare by value instead. The arrays are
    # read-only, so hashing by value is safe.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Case):
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self))

    def __hash__(self) -> int:
        return hash(tuple(tuple(np.ravel(getattr(self, f.name)).tolist()) for f in fields(self)))


def parse_case(text: str, source: str = "case") -> Case:
    """Parse and validate a case from JSON text; ``source`` names the text in file-level messages.

    >>> case = parse_case('''{"X": [[0,1,0,1,0,1],[1,0,1,0,1,0],[0,1,0,1,0,1],
    ...                              [1,0,1,0,1,0],[0,1,0,1,0,1],[1,0,1,0,1,0]],
    ...                       "W1": [[1,0,-1],[1,0,-1],[1,0,-1]], "B1": 0,
    ...                       "W2": [[0.1, 0.2, 0.3, 0.4]], "B2": -0.2, "Y": 1}''')
    >>> case.X.shape, case.W2.dtype, case.Y
    ((6, 6), dtype('float64'), 1.0)
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
    if not isinstance(data, _Pairs):
        raise CaseError(f"{source}: expected a JSON object, got {_kind(data)}")

    values: dict[str, object] = {}
    for key, value in data:
        if key not in KEYS:
            hint = next((f" (did you mean {k}?)" for k in KEYS if k.lower() == key.strip().lower()), "")
            raise CaseError(f"{_key_name(key)}: unknown key; expected only {', '.join(KEYS)}{hint}")
        if key in values:
            raise CaseError(f"{key}: appears more than once; expected each key once")
        values[key] = value
    for key in KEYS:
        if key not in values:
            raise CaseError(f"{key}: missing; {_MISSING_HINT[key]}")
    return Case(**values)


def load_case(path_or_dash: str) -> Case:
    """Read a case from a file, or from standard input when the path is ``-``.

    File-level messages name the path (or ``stdin``); field messages name the field.

    >>> load_case("no-such-case.json")
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: no-such-case.json: cannot read file: No such file or directory
    """
    source = "stdin" if path_or_dash == "-" else path_or_dash
    try:
        if path_or_dash == "-":
            text = sys.stdin.read()
        else:
            with open(path_or_dash, encoding="utf-8") as handle:
                text = handle.read()
    except UnicodeDecodeError as error:
        raise CaseError(f"{source}: cannot read file: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise CaseError(f"{source}: cannot read file: {error.strerror or error}") from None
    return parse_case(text, source)
