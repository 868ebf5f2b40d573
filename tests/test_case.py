"""Tests for symbolic.case: valid cases become read-only float64 arrays in PyTorch's full layouts;
every bad input is one CaseError whose single line starts with the field (or the file).

Cases are written in the layouts the README promises: full ([filters, channels, kh, kw],
[units, inputs], [filters]), or with axes of length 1 left out (the lecture's 3×3 W1, number
B1, flat W2). The example files in examples/ are the valid cases for the presets.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from symbolic.case import Case, keys_for, load_case, make_case, parse_case, read_array
from symbolic.errors import CaseError, CnnDeriveError
from symbolic.numeric import compile_network
from symbolic.spec import load_spec, seed_spec

ROOT = Path(__file__).resolve().parents[1]
SEED, PART3, LENET = load_spec("seed"), load_spec("part3"), load_spec("lenet-tiny")

# The lecture's worked example (also examples/seed.json).
X6 = [
    [2, 1, 3, 3, 2, 1],
    [2, 0, 2, 1, 3, 0],
    [0, 1, 1, 1, 0, 3],
    [2, 1, 3, 0, 3, 3],
    [0, 3, 2, 2, 1, 1],
    [2, 1, 1, 1, 1, 2],
]
W1_3 = [[1, -1, 1], [-1, 0, 0], [1, 0, -1]]
LECTURE = {"X": X6, "W1": W1_3, "B1": 0, "W2": [1, -2, 1, -1], "B2": 1, "Y": 1}


def example(name: str) -> dict:
    return json.loads((ROOT / "examples" / f"{name}.json").read_text(encoding="utf-8"))


def good(**changes) -> dict:
    case = dict(LECTURE)
    case.update(changes)
    return case


def without(case: dict, key: str) -> dict:
    case = dict(case)
    del case[key]
    return case


def one_line(message: str) -> str:
    assert "\n" not in message and "\r" not in message, message
    return message


def error_for(text: str, spec=None, source: str = "case") -> str:
    with pytest.raises(CaseError) as info:
        parse_case(text, spec, source)
    return one_line(str(info.value))


def error_for_case(spec=None, **changes) -> str:
    return error_for(json.dumps(good(**changes)), spec)


def error_for_values(values: dict, spec) -> str:
    with pytest.raises(CaseError) as info:
        make_case(values, spec)
    return one_line(str(info.value))


def literal(case: dict, text: str) -> str:
    """JSON text of ``case`` with the marker string "HOLE" replaced by raw ``text`` (NaN, 1e400)."""
    return json.dumps(case).replace('"HOLE"', text)


# --------------------------------------------------------------------------------------------
# valid cases
# --------------------------------------------------------------------------------------------
def test_lecture_case_infers_the_seed():
    case = parse_case(json.dumps(LECTURE))
    assert case.spec == SEED
    assert {k: v.shape for k, v in case.arrays.items()} == {
        "X": (1, 6, 6),
        "W1": (1, 1, 3, 3),
        "B1": (1,),
        "W2": (1, 4),
        "B2": (1,),
        "Y": (),
    }
    assert case.given == {"X": (6, 6), "W1": (3, 3), "B1": (), "W2": (4,), "B2": (), "Y": ()}
    assert case.arrays["X"][0].tolist() == X6
    assert case.arrays["W1"][0, 0].tolist() == W1_3
    assert case.arrays["W2"].tolist() == [[1, -2, 1, -1]]
    assert float(case.arrays["B2"][0]) == 1.0 and float(case.arrays["Y"]) == 1.0
    assert set(case.params) == {"W1", "B1", "W2", "B2"}


def test_lecture_case_with_the_seed_spec_given():
    a = parse_case(json.dumps(LECTURE), SEED)
    b = parse_case(json.dumps(LECTURE))
    assert a.spec == b.spec
    for key in a.arrays:
        assert np.array_equal(a.arrays[key], b.arrays[key]), key


@pytest.mark.parametrize(
    "changes",
    [
        {"W1": [[W1_3]]},  # full layout 1×1×3×3
        {"W1": [W1_3]},  # 1×3×3
        {"B1": [0]},
        {"B1": [[0]]},  # axes of length 1 may be added
        {"B2": [1]},
        {"W2": [[1, -2, 1, -1]]},  # a row, the full 1×4 layout
        {"W2": [[1], [-2], [1], [-1]]},  # a column: the same 4 numbers in the same order
        {"X": [X6]},  # 1×6×6
        {"Y": [1]},
    ],
    ids=lambda c: next(iter(c)) + str(np.shape(next(iter(c.values())))),
)
def test_squeezed_and_full_forms_give_the_same_arrays(changes):
    base = parse_case(json.dumps(LECTURE), SEED)
    case = parse_case(json.dumps(good(**changes)), SEED)
    assert case.spec == base.spec
    for key in base.arrays:
        assert case.arrays[key].shape == base.arrays[key].shape, key
        assert np.array_equal(case.arrays[key], base.arrays[key]), key
    key, value = next(iter(changes.items()))
    assert case.given[key] == np.shape(value)


SEED_FULL = {"X": [X6], "W1": [[W1_3]], "B1": [0], "W2": [[1, -2, 1, -1]], "B2": [1], "Y": 1}


def test_seed_case_in_full_layout_with_the_spec():
    case = parse_case(json.dumps(SEED_FULL), SEED)
    assert case.given == {"X": (1, 6, 6), "W1": (1, 1, 3, 3), "B1": (1,), "W2": (1, 4), "B2": (1,), "Y": ()}


@pytest.mark.parametrize("key", ["X", "W1", "all"])
def test_seed_case_in_full_layout_without_a_spec(key):
    values = SEED_FULL if key == "all" else good(**{key: SEED_FULL[key]})
    assert parse_case(json.dumps(values)).spec == SEED


def test_integers_become_read_only_float64():
    case = parse_case(json.dumps(LECTURE))
    for key, array in case.arrays.items():
        assert array.dtype == np.float64, key
        assert not array.flags.writeable, key
    with pytest.raises(ValueError):
        case.arrays["X"][0, 0, 0] = 5.0


def test_case_is_frozen():
    case = parse_case(json.dumps(LECTURE))
    with pytest.raises(AttributeError):
        case.spec = PART3


def test_arrays_from_code_are_copied_and_validated_alike():
    X = np.array(X6, dtype=np.int64)
    W1 = np.array(W1_3, dtype=np.float32)
    case = make_case({"X": X, "W1": W1, "B1": np.float64(0.5), "W2": np.ones((1, 4)), "B2": 0, "Y": np.int64(1)}, SEED)
    X[0, 0] = 99
    assert case.arrays["X"][0, 0, 0] == 2.0 and X.flags.writeable
    assert case.arrays["W1"].dtype == np.float64 and case.arrays["W1"].shape == (1, 1, 3, 3)
    assert float(case.arrays["B1"][0]) == 0.5
    with pytest.raises(CaseError, match=r"^X: expected finite numbers, got NaN"):
        make_case(good(X=np.full((6, 6), np.nan)), SEED)
    with pytest.raises(CaseError, match=r"^X: expected finite numbers, got a boolean \(true\)"):
        make_case(good(X=np.ones((6, 6), dtype=bool)), SEED)
    with pytest.raises(CaseError, match=r"^B1: expected finite numbers, got a boolean \(true\)"):
        make_case(good(B1=np.bool_(True)), SEED)
    with pytest.raises(CaseError, match=r"^B2: expected finite numbers, got a number too large for a float"):
        make_case(good(B2=10**400), SEED)
    with pytest.raises(CaseError, match=r"^W2: expected 1×4 \(or a list of 4\), got a list of 3$"):
        make_case(good(W2=np.zeros(3)), SEED)


def test_y_bounds_are_inclusive_for_bce():
    assert float(parse_case(json.dumps(good(Y=0))).arrays["Y"]) == 0.0
    assert float(parse_case(json.dumps(good(Y=1.0))).arrays["Y"]) == 1.0
    assert float(parse_case(json.dumps(good(Y=0.25))).arrays["Y"]) == 0.25


def test_keys_for_each_preset():
    assert keys_for(SEED) == ("X", "W1", "B1", "W2", "B2", "Y")
    assert keys_for(PART3) == ("X", "W1", "B1", "W2", "B2", "W3", "B3", "Y")
    assert keys_for(LENET) == ("X", "W1", "B1", "W2", "B2", "W3", "B3", "W4", "B4", "Y")


@pytest.mark.parametrize("name", ["seed", "part3", "lenet-tiny"])
def test_example_files_are_valid_cases(name):
    spec = load_spec(name)
    values = example(name)
    case = load_case(str(ROOT / "examples" / f"{name}.json"), spec)
    assert case.spec == spec
    assert list(values) == list(keys_for(spec))
    for key, value in values.items():
        full = spec.input if key == "X" else spec.y_shape if key == "Y" else spec.param_shapes[key]
        assert case.arrays[key].shape == full, key
        assert case.given[key] == np.shape(value), key
        assert np.array_equal(case.arrays[key].ravel(), np.ravel(value)), key


@pytest.mark.parametrize("name", ["part3", "lenet-tiny"])
def test_example_files_use_full_layouts(name):
    spec = load_spec(name)
    values = example(name)
    for key, shape in spec.param_shapes.items():
        assert np.shape(values[key]) == shape, key
    assert np.shape(values["X"]) == spec.input
    assert np.shape(values["Y"]) == spec.y_shape
    assert abs(sum(values["Y"]) - 1) < 1e-12 and min(values["Y"]) >= 0


def test_part3_full_layouts():
    values = example("part3")
    case = make_case(values, PART3)
    assert case.arrays["W1"].shape == (2, 2, 3, 3) and case.arrays["W3"].shape == (3, 2)
    # W3 is [units, inputs]: row 2 is unit 2's weights
    assert case.arrays["W3"][1].tolist() == values["W3"][1]
    assert case.arrays["W2"][1, 0, 2].tolist() == values["W2"][1][0][2]


def test_lenet_tiny_with_its_axes_of_length_1_left_out():
    values = example("lenet-tiny")
    full = make_case(values, LENET)
    short = make_case(
        {**values, "X": np.array(values["X"])[0].tolist(), "W1": np.array(values["W1"])[:, 0].tolist()},
        LENET,
    )
    assert short.given["X"] == (8, 8) and short.given["W1"] == (2, 3, 3)
    for key in full.arrays:
        assert np.array_equal(full.arrays[key], short.arrays[key]), key


def test_seed_at_other_sizes_is_inferred_from_x_and_w1():
    X = np.arange(64.0).reshape(8, 8) % 5 - 2
    case = parse_case(json.dumps(good(X=X.tolist(), W2=[0.5] * 9)))
    # n = 8, k = 3: conv 6×6, pool 3×3, so W2 has 9 weights
    assert case.spec == seed_spec(8, 3)
    assert case.arrays["W2"].shape == (1, 9)
    case = parse_case(json.dumps(good(X=X[:5, :5].tolist(), W1=[[1, 0], [0, 1]], W2=[0.5] * 4)))
    assert case.spec == seed_spec(5, 2)


def test_seed_at_other_sizes_names_the_right_count_of_weights():
    message = error_for_case(X=[[0] * 8] * 8)
    assert message == "W2: expected 1×9 (or a list of 9), got a list of 4"


# --------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("y", [1.5, -0.25, 2])
def test_bce_label_outside_0_1_is_refused(y):
    message = error_for_case(Y=y)
    assert message.startswith("Y: ") and "[0, 1]" in message and str(float(y)) in message, message


@pytest.mark.parametrize("y", [2.0, -0.5])
def test_bce_label_outside_0_1_is_refused_by_the_python_api(y):
    net = compile_network(SEED)
    params = {"W1": W1_3, "B1": 0.0, "W2": [1, -2, 1, -1], "B2": 1.0}
    with pytest.raises(CaseError) as info:
        net(np.array(X6, float), y, **params)
    message = one_line(str(info.value))
    assert message.startswith("Y: ") and "[0, 1]" in message, message
    # one bad label in a batch is enough
    with pytest.raises(CaseError, match=r"^Y: "):
        net(np.stack([np.array(X6, float)] * 2), np.array([0.5, y]), **params)
    # and inside [0, 1] it runs
    out = net(np.array(X6, float), 1.0, **params)
    assert np.isfinite(out["L"]).all()


@pytest.mark.parametrize(
    "y, words",
    [
        ([0.25, 0.5, 0.125], ["sum", "0.875"]),
        ([0.6, 0.6, 0.0], ["sum", "1.2"]),
        ([1.2, -0.2, 0.0], ["[0, 1]"]),
        ([0.0, 0.0, 0.0], ["sum"]),
    ],
)
def test_softmax_ce_label_must_be_a_probability_vector(y, words):
    message = error_for_values({**example("part3"), "Y": y}, PART3)
    assert message.startswith("Y: "), message
    for word in words:
        assert word in message, (word, message)
    net = compile_network(PART3)
    values = example("part3")
    params = {k: v for k, v in values.items() if k not in ("X", "Y")}
    with pytest.raises(CaseError, match=r"^Y: "):
        net(values["X"], y, **params)


@pytest.mark.parametrize("y", [[1, 0, 0], [0, 0, 1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
def test_softmax_ce_accepts_one_hot_and_soft_labels(y):
    case = make_case({**example("part3"), "Y": y}, PART3)
    assert case.arrays["Y"].tolist() == y


@pytest.mark.parametrize(
    "y, expected",
    [([0.5, 0.5], "Y: expected a list of 3, got a list of 2"), (1, "Y: expected a list of 3, got a number")],
)
def test_softmax_ce_label_of_the_wrong_length(y, expected):
    assert error_for_values({**example("part3"), "Y": y}, PART3) == expected


@pytest.mark.parametrize("y, shown", [(True, "a boolean (true)"), ("1", 'a string ("1")'), (None, "null")])
def test_y_not_a_number(y, shown):
    assert error_for_case(Y=y) == f"Y: expected finite numbers, got {shown}"


# --------------------------------------------------------------------------------------------
# the whole document
# --------------------------------------------------------------------------------------------
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


@pytest.mark.parametrize("text", ["", "   \n", "\ufeff"])
def test_empty_input(text):
    assert error_for(text) == "case: expected a JSON object, got an empty input"


def test_deep_nesting_is_a_case_error():
    assert error_for("[" * 100_000 + "]" * 100_000) == "case: invalid JSON: nested too deeply"


def test_bom_is_ignored():
    case = parse_case("\ufeff" + json.dumps(LECTURE))
    assert case.spec == SEED and float(case.arrays["Y"]) == 1.0


def test_case_error_is_a_cnn_derive_error():
    with pytest.raises(CnnDeriveError):
        parse_case("[]")


@pytest.mark.parametrize(
    "key, expected",
    [("X", "1×6×6"), ("W1", "1×1×3×3"), ("B1", "a list of 1"), ("W2", "1×4"), ("B2", "a list of 1"), ("Y", "a number")],
)
def test_missing_key_names_the_field_and_its_shape(key, expected):
    message = error_for(json.dumps(without(LECTURE, key)), SEED)
    assert message.startswith(f"{key}: missing"), message
    assert expected in message and "seed" in message, message


@pytest.mark.parametrize("key, expected", [("W3", "3×2"), ("B3", "a list of 3"), ("X", "2×9×9"), ("Y", "a list of 3")])
def test_missing_key_of_part3(key, expected):
    message = error_for_values(without(example("part3"), key), PART3)
    assert message.startswith(f"{key}: missing") and expected in message and "part3" in message, message


def test_unknown_key():
    assert error_for_case(Q=1) == "Q: unknown key; expected only X, W1, B1, W2, B2, Y"


def test_a_key_of_another_network_is_unknown():
    message = error_for_case(SEED, W3=[1])
    assert message.startswith("W3: unknown key; expected only X, W1, B1, W2, B2, Y"), message
    message = error_for_values({**example("part3"), "W4": [[1]]}, PART3)
    assert message.startswith("W4: unknown key; expected only X, W1, B1, W2, B2, W3, B3, Y"), message


@pytest.mark.parametrize("wrong, right", [("w1", "W1"), ("x", "X"), ("b2", "B2"), ("y", "Y"), (" W2 ", "W2")])
def test_unknown_key_suggests_the_right_one(wrong, right):
    case = without(LECTURE, right)
    case[wrong] = LECTURE[right]
    message = error_for(json.dumps(case))
    assert message.endswith(f"(did you mean {right}?)"), message
    assert "unknown key" in message


def test_unknown_key_with_a_newline_stays_on_one_line():
    message = error_for(json.dumps(good(**{"bad\nkey": 1})))
    assert message.startswith('"bad\\nkey": unknown key;'), message


def test_repeated_key():
    text = json.dumps(LECTURE)[:-1] + ', "Y": 0}'
    assert error_for(text) == "Y: appears more than once; expected each key once"
    text = '{"X": 1, ' + json.dumps(LECTURE)[1:]
    assert error_for(text) == "X: appears more than once; expected each key once"


# --------------------------------------------------------------------------------------------
# arrays: shapes
# --------------------------------------------------------------------------------------------
def test_ragged_x():
    X = [row[:] for row in X6]
    X[2] = X[2][:5]
    message = error_for_case(X=X)
    assert message.startswith("X: ") and "rectangular" in message, message


def test_x_row_that_is_a_number():
    X = [row[:] for row in X6]
    X[1] = 3
    message = error_for_case(SEED, X=X)
    assert message.startswith("X: ") and "rectangular" in message, message


def test_nested_entry_in_a_row():
    X = [row[:] for row in X6]
    X[1][2] = [1]
    message = error_for_case(SEED, X=X)
    assert message.startswith("X: ") and "[1]" in message, message


def test_non_square_x():
    assert error_for_case(X=[row[:5] for row in X6]) == "X: expected 1×6×6 (or 6×6), got a 6×5 array"


def test_flat_x():
    assert error_for_case(X=[0] * 36) == "X: expected 1×6×6 (or 6×6), got a list of 36"


def test_x_a_number():
    assert error_for_case(SEED, X=5) == "X: expected 1×6×6 (or 6×6), got a number"


@pytest.mark.parametrize("value", [[], [[]], [[], []]])
def test_empty_x_with_the_spec_given(value):
    message = error_for_case(SEED, X=value)
    assert message.startswith("X: expected numbers, got an empty list"), message


@pytest.mark.parametrize(
    "W2, expected",
    [
        ([0.1, 0.2, 0.3], "W2: expected 1×4 (or a list of 4), got a list of 3"),
        ([[0.1, 0.2, 0.3]], "W2: expected 1×4 (or a list of 4), got a 1×3 array"),
        ([[1, 2], [3, 4]], "W2: expected 1×4 (or a list of 4), got a 2×2 array"),
        (0.5, "W2: expected 1×4 (or a list of 4), got a number"),
    ],
)
def test_w2_wrong_size(W2, expected):
    assert error_for_case(W2=W2) == expected


@pytest.mark.parametrize("W2", [[], [[]]])
def test_w2_empty(W2):
    message = error_for_case(W2=W2)
    assert message.startswith("W2: expected numbers, got an empty list"), message


@pytest.mark.parametrize(
    "B1, expected",
    [([1, 2], "B1: expected a list of 1 (or a number), got a list of 2"), ([], "B1: expected numbers, got an empty list")],
)
def test_bias_wrong_size(B1, expected):
    assert error_for_case(B1=B1) == expected


def test_w1_of_the_wrong_size_for_the_seed():
    message = error_for_case(SEED, W1=[[1, 0], [0, 1]])
    assert message == "W1: expected 1×1×3×3 (or 3×3), got a 2×2 array"


PART3_SIZES = {
    # key: (a wrong value, the message)
    "X": (np.zeros((9, 9)), "X: expected 2×9×9, got a 9×9 array"),
    "W1": (np.zeros((2, 3, 3)), "W1: expected 2×2×3×3, got a 2×3×3 array"),
    "B1": (np.zeros(3), "B1: expected a list of 2, got a list of 3"),
    "W2": (np.zeros((2, 2, 2, 2)), "W2: expected 2×2×3×3, got a 2×2×2×2 array"),
    "W3": (np.zeros((2, 3)), "W3: expected 3×2, got a 2×3 array"),  # transposed: [units, inputs]
    "B3": (np.zeros(2), "B3: expected a list of 3, got a list of 2"),
}


@pytest.mark.parametrize("key", list(PART3_SIZES))
def test_part3_wrong_sizes_name_the_field_and_the_expected_shape(key):
    value, expected = PART3_SIZES[key]
    assert error_for_values({**example("part3"), key: value.tolist()}, PART3) == expected


def test_lenet_tiny_wrong_sizes():
    values = example("lenet-tiny")
    assert error_for_values({**values, "W4": np.zeros((4, 2)).tolist()}, LENET) == "W4: expected 2×4, got a 4×2 array"
    assert error_for_values({**values, "X": np.zeros((9, 9)).tolist()}, LENET) == "X: expected 1×8×8 (or 8×8), got a 9×9 array"
    # Axes of length 1 carry no order, so 1×2×3×3 holds the numbers of 2×1×3×3 in the same order:
    # accepted, as the README says (any axis of length 1 may be added or left out).
    moved = np.array(values["W1"]).reshape(1, 2, 3, 3)
    case = make_case({**values, "W1": moved.tolist()}, LENET)
    assert np.array_equal(case.arrays["W1"], np.array(values["W1"]))


def test_seed_case_for_part3_is_refused_at_x():
    assert error_for(json.dumps(LECTURE), PART3) == "X: expected 2×9×9, got a 6×6 array"


def test_lenet_case_for_part3_names_a_field():
    message = error_for_values(example("lenet-tiny"), PART3)
    assert message.split(":")[0] in ("X", "W4", "B4"), message


# --------------------------------------------------------------------------------------------
# arrays: entries
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "entry, shown",
    [
        (True, "a boolean (true)"),
        (False, "a boolean (false)"),
        ("1.5", 'a string ("1.5")'),
        (None, "null"),
        ({"v": 1}, "an object"),
    ],
)
def test_x_entry_not_a_number(entry, shown):
    X = [row[:] for row in X6]
    X[1][2] = entry
    assert error_for_case(X=X) == f"X: expected finite numbers, got {shown} at [1][2]"


@pytest.mark.parametrize(
    "value, shown",
    [("abc", 'a string ("abc")'), (None, "null"), ({"a": 1}, "an object"), (True, "a boolean (true)")],
)
def test_x_not_an_array(value, shown):
    assert error_for_case(SEED, X=value) == f"X: expected finite numbers, got {shown}"


@pytest.mark.parametrize(
    "value, shown",
    [(True, "a boolean (true)"), ("0.5", 'a string ("0.5")'), (None, "null"), ({}, "an object")],
)
def test_bias_not_a_number(value, shown):
    assert error_for_case(B1=value) == f"B1: expected finite numbers, got {shown}"


@pytest.mark.parametrize("text, shown", [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity")])
def test_non_finite_numbers(text, shown):
    W1 = [[1, 0, -1], [1, 0, "HOLE"], [1, 0, -1]]
    assert error_for(literal(good(W1=W1), text)) == f"W1: expected finite numbers, got {shown} at [1][2]"
    for key in ("B1", "B2", "Y"):
        assert error_for(literal(good(**{key: "HOLE"}), text)) == f"{key}: expected finite numbers, got {shown}"
    W2 = [[1, "HOLE", 3, 4]]
    assert error_for(literal(good(W2=W2), text)) == f"W2: expected finite numbers, got {shown} at [0][1]"


def test_non_finite_in_part3():
    values = example("part3")
    values["W2"][1][0][2][1] = "HOLE"
    message = error_for(literal(values, "NaN"), PART3)
    assert message == "W2: expected finite numbers, got NaN at [1][0][2][1]"


def test_number_too_large_for_a_float():
    X = [row[:] for row in X6]
    X[0][0] = "HOLE"
    assert error_for(literal(good(X=X), "1e400")) == "X: expected finite numbers, got a number too large for a float (1e400) at [0][0]"
    assert error_for(literal(good(B1="HOLE"), "-1e400")) == "B1: expected finite numbers, got a number too large for a float (-1e400)"
    huge_int = "9" * 5000  # beyond both float range and Python's default int-parsing digit limit
    message = error_for(literal(good(B1="HOLE"), huge_int))
    assert message.startswith("B1: expected finite numbers, got a number too large for a float (999"), message
    assert len(message) < 120


def test_large_but_finite_numbers_are_accepted():
    case = parse_case(literal(good(B1="HOLE"), "1e300"))
    assert float(case.arrays["B1"][0]) == 1e300


def test_long_string_is_shortened():
    message = error_for_case(B1="x" * 500)
    assert message.startswith('B1: expected finite numbers, got a string ("xxx') and len(message) < 120, message


# --------------------------------------------------------------------------------------------
# the seed inferred from X and W1 (no spec given)
# --------------------------------------------------------------------------------------------
def test_filter_larger_than_input():
    message = error_for_case(X=[[1, 2], [3, 4]], W2=[1])
    assert message.split(":")[0] in ("X", "W1"), message
    assert "2×2" in message and "3×3" in message, message


def test_conv_output_not_tiled_by_the_pool():
    message = error_for_case(X=[[0] * 5] * 5, W2=[1])
    assert message.split(":")[0] in ("X", "W1"), message
    assert "multiple of 2" in message and "5×5" in message and "3×3" in message, message


def test_empty_w1_without_spec_names_w1():
    message = error_for_case(W1=[])
    assert message.startswith("W1: "), message


def test_empty_x_without_spec_says_empty():
    message = error_for_case(X=[])
    assert message.startswith("X: ") and "empty" in message, message


def test_non_square_w1_without_spec_shows_its_shape():
    message = error_for_case(W1=W1_3[:2])
    assert message.startswith("W1: ") and "2×3" in message, message


def test_a_three_axis_x_without_spec_is_not_taken_for_a_tiny_seed():
    message = error_for(json.dumps(example("part3")))
    assert message.startswith("X: ") and "2×9×9" in message, message


# --------------------------------------------------------------------------------------------
# read_array
# --------------------------------------------------------------------------------------------
def test_read_array_reshapes_to_the_full_layout():
    arr, given = read_array("W1", W1_3, (1, 1, 3, 3))
    assert arr.shape == (1, 1, 3, 3) and given == (3, 3) and arr.dtype == np.float64
    assert arr[0, 0].tolist() == W1_3
    arr, given = read_array("B1", [[0]], (1,))
    assert arr.tolist() == [0.0] and given == (1, 1)
    arr, given = read_array("B1", 2, (1,))
    assert arr.tolist() == [2.0] and given == ()
    arr, given = read_array("W", [[1, 2, 3]], (3,))
    assert arr.tolist() == [1.0, 2.0, 3.0] and given == (1, 3)


def test_read_array_refuses_other_sizes():
    with pytest.raises(CaseError, match=r"^W1: expected 2×1×3×3 \(or 2×3×3\), got a 3×3 array$"):
        read_array("W1", W1_3, (2, 1, 3, 3))
    with pytest.raises(CaseError, match=r"^W3: expected 3×2, got a 2×3 array$"):
        read_array("W3", [[1, 2, 3], [4, 5, 6]], (3, 2))
    with pytest.raises(CaseError, match=r"^B2: expected a list of 2, got a number$"):
        read_array("B2", 1, (2,))


def test_read_array_keeps_the_order_of_the_numbers():
    # 2×1×2 and 2×2: same entries, row-major
    arr, _ = read_array("W", [[[1, 2]], [[3, 4]]], (2, 2))
    assert arr.tolist() == [[1.0, 2.0], [3.0, 4.0]]


# --------------------------------------------------------------------------------------------
# load_case
# --------------------------------------------------------------------------------------------
def test_load_case_from_file(tmp_path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(LECTURE), encoding="utf-8")
    a, b = load_case(str(path)), parse_case(json.dumps(LECTURE))
    assert a.spec == b.spec and all(np.array_equal(a.arrays[k], b.arrays[k]) for k in b.arrays)


def test_load_case_with_a_spec(tmp_path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(example("part3")), encoding="utf-8")
    assert load_case(str(path), PART3).spec == PART3


def test_load_case_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(LECTURE)))
    assert load_case("-").spec == SEED


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


def test_case_dataclass_holds_what_it_is_given():
    arrays = {"X": np.zeros((1, 6, 6))}
    case = Case(SEED, arrays, {"X": (6, 6)})
    assert case.spec is SEED and case.params == {}
