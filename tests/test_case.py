"""Tests for symbolic.case: valid cases parse to read-only float64 arrays; every bad input is one clear line."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from symbolic.case import Case, load_case, parse_case
from symbolic.errors import CaseError, CnnDeriveError
from symbolic.spec import NetworkSpec

X6 = [[(i + j) % 2 for j in range(6)] for i in range(6)]
W1_3 = [[1, 0, -1], [1, 0, -1], [1, 0, -1]]


def good(**changes) -> dict:
    case = {"X": X6, "W1": W1_3, "B1": 0, "W2": [[0.1, 0.2, 0.3, 0.4]], "B2": -0.2, "Y": 1}
    case.update(changes)
    return case


def without(key: str) -> dict:
    case = good()
    del case[key]
    return case


def error_for(text: str, source: str = "case") -> str:
    with pytest.raises(CaseError) as info:
        parse_case(text, source)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    return message


def error_for_case(**changes) -> str:
    return error_for(json.dumps(good(**changes)))


# --- valid inputs -----------------------------------------------------------------------------


def test_valid_case_with_w2_as_row():
    case = parse_case(json.dumps(good()))
    assert case.spec == NetworkSpec(n=6, k=3)
    assert case.X.shape == (6, 6) and case.W1.shape == (3, 3) and case.W2.shape == (4,)
    assert case.W2.tolist() == [0.1, 0.2, 0.3, 0.4]
    assert (case.B1, case.B2, case.Y) == (0.0, -0.2, 1.0)


def test_valid_case_with_w2_flat_equals_row_form():
    assert parse_case(json.dumps(good(W2=[0.1, 0.2, 0.3, 0.4]))) == parse_case(json.dumps(good()))


def test_integers_become_float64():
    case = parse_case(json.dumps(good(W2=[1, 2, 3, 4], B1=1, B2=0, Y=0)))
    for array in (case.X, case.W1, case.W2):
        assert array.dtype == np.float64
    for scalar in (case.B1, case.B2, case.Y):
        assert type(scalar) is float


def test_arrays_are_read_only():
    case = parse_case(json.dumps(good()))
    for array in (case.X, case.W1, case.W2):
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[0] = 5


def test_case_is_frozen_and_hashable():
    case = parse_case(json.dumps(good()))
    with pytest.raises(AttributeError):
        case.B1 = 2.0
    assert hash(case) == hash(parse_case(json.dumps(good())))


def test_other_sizes_take_n_and_k_from_the_arrays():
    case = parse_case(json.dumps({"X": [[1, 2], [3, 4]], "W1": [[1]], "B1": 0, "W2": [5], "B2": 0, "Y": 0.5}))
    assert case.spec == NetworkSpec(n=2, k=1)
    case = parse_case(json.dumps(good(X=[[0] * 8] * 8, W2=[0] * 9)))
    assert case.spec.flat == 9


def test_y_bounds_are_inclusive():
    assert parse_case(json.dumps(good(Y=0))).Y == 0.0
    assert parse_case(json.dumps(good(Y=1.0))).Y == 1.0


def test_built_in_code_copies_and_freezes_without_touching_the_caller():
    X = np.arange(36.0).reshape(6, 6)
    case = Case(X=X, W1=np.ones((3, 3), dtype=np.int64), B1=np.float32(0.5), W2=np.ones((1, 4)), B2=0, Y=np.int64(1))
    assert X.flags.writeable and not case.X.flags.writeable
    X[0, 0] = 99.0
    assert case.X[0, 0] == 0.0
    assert case.W1.dtype == np.float64 and case.W2.shape == (4,)
    assert (case.B1, case.Y) == (0.5, 1.0)


def test_built_in_code_is_validated_with_the_same_messages():
    with pytest.raises(CaseError, match=r"^W2: expected 4 weights .*got 3$"):
        Case(X=np.zeros((6, 6)), W1=np.zeros((3, 3)), B1=0, W2=np.zeros(3), B2=0, Y=1)
    with pytest.raises(CaseError, match=r"^X: expected finite numbers, got NaN at row 1, column 1$"):
        Case(X=np.full((6, 6), np.nan), W1=np.zeros((3, 3)), B1=0, W2=np.zeros(4), B2=0, Y=1)
    with pytest.raises(CaseError, match=r"^X: .*got a boolean \(true\) at row 1, column 1$"):
        Case(X=np.ones((6, 6), dtype=bool), W1=np.zeros((3, 3)), B1=0, W2=np.zeros(4), B2=0, Y=1)
    with pytest.raises(CaseError, match=r"^B1: expected a finite number, got a boolean \(true\)$"):
        Case(X=np.zeros((6, 6)), W1=np.zeros((3, 3)), B1=np.bool_(True), W2=np.zeros(4), B2=0, Y=1)
    with pytest.raises(CaseError, match=r"^B2: expected a finite number, got a number too large for a float$"):
        Case(X=np.zeros((6, 6)), W1=np.zeros((3, 3)), B1=0, W2=np.zeros(4), B2=10**400, Y=1)


def test_case_error_is_a_cnn_derive_error():
    with pytest.raises(CnnDeriveError):
        parse_case("[]")


def test_bom_is_ignored():
    assert parse_case("\ufeff" + json.dumps(good())).Y == 1.0


# --- the whole document -----------------------------------------------------------------------


def test_invalid_json_names_line_and_column():
    assert error_for('{"X": 1,\n  "W1" 2}') == "case: invalid JSON at line 2 column 8: Expecting ':' delimiter"
    assert error_for('{"X": [1\n    2]}') == "case: invalid JSON at line 2 column 5: Expecting ',' delimiter"


def test_source_names_the_document():
    assert error_for("[1, 2]", source="my.json") == "my.json: expected a JSON object, got a list"


@pytest.mark.parametrize(
    "text, kind",
    [("[1, 2]", "a list"), ('"X"', "a string"), ("3", "a number"), ("null", "null"), ("true", "a boolean")],
)
def test_not_an_object(text, kind):
    assert error_for(text) == f"case: expected a JSON object, got {kind}"


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_input(text):
    assert error_for(text) == "case: expected a JSON object, got an empty input"


def test_deep_nesting_is_a_case_error():
    assert error_for("[" * 100_000 + "]" * 100_000) == "case: invalid JSON: nested too deeply"


@pytest.mark.parametrize(
    "key, hint",
    [
        ("X", "expected an n×n array"),
        ("W1", "expected a k×k array"),
        ("B1", "expected a number"),
        ("W2", "expected a 1×m array or a flat list of m numbers"),
        ("B2", "expected a number"),
        ("Y", "expected a number in [0, 1]"),
    ],
)
def test_missing_key(key, hint):
    assert error_for(json.dumps(without(key))) == f"{key}: missing; {hint}"


def test_unknown_key():
    assert error_for(json.dumps(good(Q=1))) == "Q: unknown key; expected only X, W1, B1, W2, B2, Y"


def test_unknown_key_suggests_the_right_case():
    case = without("W1")
    case["w1"] = W1_3
    assert error_for(json.dumps(case)) == "w1: unknown key; expected only X, W1, B1, W2, B2, Y (did you mean W1?)"


def test_unknown_key_with_newline_stays_on_one_line():
    message = error_for(json.dumps(good(**{"bad\nkey": 1})))
    assert message.startswith('"bad\\nkey": unknown key;')


def test_repeated_key():
    text = json.dumps(good())[:-1] + ', "Y": 0}'
    assert error_for(text) == "Y: appears more than once; expected each key once"


# --- X and W1 ---------------------------------------------------------------------------------


def test_ragged_x():
    X = [row[:] for row in X6]
    X[2] = X[2][:5]
    assert error_for_case(X=X) == (
        "X: expected a square n×n array of numbers, got a ragged array (row 3 has 5 entries, row 1 has 6)"
    )


def test_non_square_x():
    assert error_for_case(X=[row[:5] for row in X6]) == "X: expected a square n×n array of numbers, got a 6×5 array"


def test_non_square_w1():
    assert error_for_case(W1=W1_3[:2]) == "W1: expected a square k×k array of numbers, got a 2×3 array"


@pytest.mark.parametrize("value", [[], [[]], [[], []]])
def test_empty_x(value):
    assert error_for_case(X=value).startswith("X: expected a square n×n array of numbers, got an empty array")


def test_empty_w1():
    assert error_for_case(W1=[]) == "W1: expected a square k×k array of numbers, got an empty array"


def test_flat_x():
    assert error_for_case(X=[0] * 36) == (
        "X: expected a square n×n array of numbers, got a flat list of 36 entries; write one inner list per row"
    )


def test_x_row_not_a_list():
    X = [row[:] for row in X6]
    X[1] = 3
    assert error_for_case(X=X) == "X: expected a square n×n array of numbers, got row 2 as 3 instead of a list"


@pytest.mark.parametrize(
    "value, shown",
    [("abc", 'a string ("abc")'), (5, "5"), (None, "null"), ({"a": 1}, "an object"), (True, "a boolean (true)")],
)
def test_x_not_an_array(value, shown):
    assert error_for_case(X=value) == f"X: expected a square n×n array of numbers, got {shown}"


@pytest.mark.parametrize(
    "entry, shown",
    [
        (True, "a boolean (true)"),
        (False, "a boolean (false)"),
        ("1.5", 'a string ("1.5")'),
        (None, "null"),
        ([1], "a list of 1 entry"),
        ({"v": 1}, "an object"),
    ],
)
def test_x_entry_not_a_number(entry, shown):
    X = [row[:] for row in X6]
    X[1][2] = entry
    assert error_for_case(X=X) == f"X: expected a square n×n array of numbers, got {shown} at row 2, column 3"


@pytest.mark.parametrize("literal, shown", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity")])
def test_w1_non_finite(literal, shown):
    text = json.dumps(good(W1=[[1, 0, -1], [1, 0, "HOLE"], [1, 0, -1]])).replace('"HOLE"', literal)
    assert error_for(text) == f"W1: expected finite numbers, got {shown} at row 2, column 3"


def test_x_entry_too_large_for_a_float():
    text = json.dumps(good()).replace("[[0, 1,", "[[1e400, 1,", 1)
    assert error_for(text) == (
        "X: expected a square n×n array of numbers, got a number too large for a float (1e400) at row 1, column 1"
    )


def test_long_string_is_shortened():
    message = error_for_case(B1="x" * 500)
    assert message.startswith('B1: expected a finite number, got a string ("xxx') and len(message) < 120


def test_filter_larger_than_input_names_w1():
    message = error_for_case(X=[[1, 2], [3, 4]], W1=W1_3, W2=[1])
    assert message == "W1: expected a filter no larger than the input (k <= n = 2), got 3 (X is 2×2, W1 is 3×3)"


def test_conv_output_not_divisible_by_pool_names_w1():
    message = error_for_case(X=[[0] * 5] * 5, W2=[1])
    assert message.startswith("W1: the conv output is 3x3 (n - k + 1)")
    assert "expected n - k + 1 to be a multiple of 2" in message
    assert message.endswith("(X is 5×5, W1 is 3×3)")


# --- W2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("W2", [[0.1, 0.2, 0.3], [[0.1, 0.2, 0.3]]])
def test_w2_wrong_length(W2):
    assert error_for_case(W2=W2) == "W2: expected 4 weights (((n−k+1)/2)² for n=6, k=3), got 3"


@pytest.mark.parametrize("W2", [[], [[]]])
def test_w2_empty(W2):
    message = error_for_case(W2=W2)
    assert message.startswith("W2: expected ") and "got" in message


def test_w2_column_is_not_a_row():
    assert error_for_case(W2=[[1], [2], [3], [4]]) == (
        "W2: expected a 1×m array or a flat list of m numbers, got a 4×1 array"
    )


def test_w2_not_a_list():
    assert error_for_case(W2=0.5) == "W2: expected a 1×m array or a flat list of m numbers, got 0.5"


def test_w2_flat_entry_not_a_number():
    assert error_for_case(W2=[1, 2, "3", 4]) == (
        'W2: expected a 1×m array or a flat list of m numbers, got a string ("3") at position 3'
    )


def test_w2_mixed_nesting():
    assert error_for_case(W2=[1, [2], 3, 4]) == (
        "W2: expected a 1×m array or a flat list of m numbers, got a list of 1 entry at position 2"
    )


def test_w2_row_entry_nan():
    text = json.dumps(good(W2=[[1, "HOLE", 3, 4]])).replace('"HOLE"', "NaN")
    assert error_for(text) == "W2: expected finite numbers, got NaN at row 1, column 2"


# --- B1, B2, Y --------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["B1", "B2"])
@pytest.mark.parametrize("literal, shown", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity")])
def test_bias_non_finite(field, literal, shown):
    text = json.dumps(good(**{field: "HOLE"})).replace('"HOLE"', literal)
    assert error_for(text) == f"{field}: expected a finite number, got {shown}"


@pytest.mark.parametrize(
    "value, shown",
    [(True, "a boolean (true)"), ("0.5", 'a string ("0.5")'), (None, "null"), ({}, "an object"), ([], "an empty list")],
)
def test_bias_not_a_number(value, shown):
    assert error_for_case(B1=value) == f"B1: expected a finite number, got {shown}"


def test_bias_as_one_element_list_is_rejected_with_a_fix():
    assert error_for_case(B1=[0.5]) == (
        "B1: expected a finite number, got a 1-element list ([0.5]); only plain numbers are accepted, so write 0.5"
    )


def test_bias_as_longer_list():
    assert error_for_case(B2=[1, 2]) == "B2: expected a finite number, got a list of 2 entries"


def test_bias_too_large():
    assert error_for(json.dumps(good()).replace('"B1": 0', '"B1": 1e400')) == (
        "B1: expected a finite number, got a number too large for a float (1e400)"
    )
    huge_int = "9" * 5000  # beyond both float range and Python's default int-parsing digit limit
    assert error_for(json.dumps(good()).replace('"B1": 0', f'"B1": {huge_int}')).startswith(
        "B1: expected a finite number, got a number too large for a float (999"
    )


@pytest.mark.parametrize("value, shown", [(1.5, "1.5"), (-0.25, "-0.25"), (2, "2")])
def test_y_out_of_range(value, shown):
    assert error_for_case(Y=value) == f"Y: expected a number in [0, 1], got {shown}"


@pytest.mark.parametrize("value, shown", [(True, "a boolean (true)"), ("1", 'a string ("1")')])
def test_y_not_a_number(value, shown):
    assert error_for_case(Y=value) == f"Y: expected a number in [0, 1], got {shown}"


def test_y_nan():
    text = json.dumps(good(Y="HOLE")).replace('"HOLE"', "NaN")
    assert error_for(text) == "Y: expected a number in [0, 1], got NaN"


# --- load_case --------------------------------------------------------------------------------


def test_load_case_from_file(tmp_path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(good()), encoding="utf-8")
    assert load_case(str(path)) == parse_case(json.dumps(good()))


def test_load_case_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(good())))
    assert load_case("-").spec == NetworkSpec()


def test_load_case_stdin_errors_name_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("{"))
    with pytest.raises(CaseError, match=r"^stdin: invalid JSON at line 1 column 2: "):
        load_case("-")


def test_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CaseError) as info:
        load_case("case.json")
    assert str(info.value) == "case.json: cannot read file: No such file or directory"


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(CaseError, match=r": cannot read file: Is a directory$"):
        load_case(str(tmp_path))


def test_non_utf8_file(tmp_path):
    path = tmp_path / "case.json"
    path.write_bytes(b'{"X": "\xff"}')
    with pytest.raises(CaseError) as info:
        load_case(str(path))
    assert str(info.value) == f"{path}: cannot read file: not UTF-8 text (byte 7)"


def test_file_json_errors_name_the_file(tmp_path):
    path = tmp_path / "case.json"
    path.write_text('{"X": [1\n    2]}', encoding="utf-8")
    with pytest.raises(CaseError) as info:
        load_case(str(path))
    assert str(info.value) == f"{path}: invalid JSON at line 2 column 5: Expecting ',' delimiter"
