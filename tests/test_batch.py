"""`cnn-derive eval --batch`: JSON Lines and .npz in, one line per case out.

Every output line must be exactly (character for character) what `eval` prints for that case
alone, in the layouts the case used; a few rows are also held against PyTorch float64 autograd
(``reference.torch_reference``). A bad line or array is one line on stderr naming its place
and field, exit 2, and nothing on stdout. The fast reader must accept exactly what the single
case's checks accept and word every refusal as they do.
"""

from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest
import reference as R

import symbolic.batch as batch_module
from render.cli import eval_case, main
from symbolic.batch import case_json, evaluate_batch, load_batch
from symbolic.case import parse_case
from symbolic.errors import CaseError
from symbolic.spec import load_spec, presets

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PREFIX = "cnn-derive: "
EPS = float(np.finfo(np.float64).eps)


def spec_dict(name: str) -> dict:
    return tomllib.loads(presets()[name].read_text(encoding="utf-8"))


def as_json(case: dict) -> dict:
    return {k: np.asarray(v).tolist() for k, v in case.items()}


def random_cases(name: str, count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [as_json(R.random_case(spec_dict(name), rng)) for _ in range(count)]


def squeeze_some(cases: list[dict]) -> list[dict]:
    """Every other case written with its axes of length 1 left out (both layouts in one file)."""
    out = []
    for i, case in enumerate(cases):
        out.append({k: np.squeeze(np.asarray(v)).tolist() for k, v in case.items()} if i % 2 else case)
    return out


def write_jsonl(path, cases: list) -> str:
    lines = [c if isinstance(c, str) else json.dumps(c) for c in cases]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_clean_line(capsys, *argv: str) -> str:
    code, out, err = cli(capsys, *argv)
    assert "Traceback" not in err, err
    assert (code, out) == (2, ""), (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PREFIX), err
    return lines[0][len(PREFIX) :]


def single_evals(text_lines: list[str], spec) -> list[str]:
    return [json.dumps(eval_case(spec, parse_case(line, spec))) for line in text_lines]


# --------------------------------------------------------------------------------------------
# the numbers: exactly eval's, and PyTorch's
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["seed", "part3", "lenet-tiny"])
def test_jsonl_lines_are_exactly_what_eval_prints_for_each_case(name, capsys, tmp_path):
    cases = squeeze_some(random_cases(name, 6))
    path = write_jsonl(tmp_path / "b.jsonl", cases)
    code, out, err = cli(capsys, "eval", "--batch", path, "--spec", name, "--quiet")  # quiet: no compiler notices
    assert (code, err) == (0, "")
    spec = load_spec(name)
    assert out.splitlines() == single_evals([json.dumps(c) for c in cases], spec)


def test_seed_inferred_from_the_first_line_as_eval_does(capsys, tmp_path):
    cases = squeeze_some(random_cases("seed", 4, seed=3))
    path = write_jsonl(tmp_path / "b.jsonl", cases)
    out = cli(capsys, "eval", "--batch", path)[1]
    assert out == cli(capsys, "eval", "--batch", path, "--spec", "seed")[1]
    first = tmp_path / "one.json"
    first.write_text(json.dumps(cases[0]), encoding="utf-8")
    assert out.splitlines()[0] == cli(capsys, "eval", str(first))[1].strip()


@pytest.mark.parametrize("name", ["seed", "part3"])
def test_rows_match_torch_autograd(name, tmp_path):
    spec = spec_dict(name)
    cases = random_cases(name, 3, seed=7)
    batch = load_batch(write_jsonl(tmp_path / "b.jsonl", cases), load_spec(name))
    outputs = evaluate_batch(batch)
    pred = R.stage_names(spec)[-1]
    for i, values in enumerate(cases):
        got = case_json(batch.spec, outputs, i, batch.given[i])
        case = dict(values, X=np.reshape(values["X"], tuple(spec["input"])))
        ref, scale = R.torch_reference(spec, case), R.error_scales(spec, case)
        pairs = [("L", "L"), (pred, "output")] + [(f"dL/d{p}", f"dL/d{p}") for p in load_spec(name).param_shapes]
        for ours, theirs in pairs:
            a, r, s = (np.ravel(np.asarray(v, dtype=float)) for v in (got[ours], ref[theirs], scale[theirs]))
            assert (np.abs(a - r) <= 1e-10 * np.abs(r) + 64 * EPS * s).all(), (i, ours, a, r)


def test_npz_with_batched_and_shared_parameters(capsys, tmp_path):
    rng = np.random.default_rng(11)
    n = 5
    arrays = {
        "X": rng.normal(size=(n, 6, 6)),
        "W1": rng.normal(size=(3, 3)),  # shared, squeezed
        "B1": rng.normal(size=(n,)),  # one per case, squeezed
        "W2": rng.normal(size=(n, 1, 4)),  # one per case, full
        "B2": np.array(0.25),  # shared number
        "Y": rng.uniform(size=(n,)),
    }
    path = tmp_path / "b.npz"
    np.savez(path, **arrays)
    code, out, err = cli(capsys, "eval", "--batch", str(path), "--quiet")
    assert (code, err) == (0, "")
    rows = []
    for i in range(n):
        row = {k: (v[i] if k in ("X", "B1", "W2", "Y") else v) for k, v in arrays.items()}
        rows.append(json.dumps(as_json(row)))
    assert out.splitlines() == single_evals(rows, load_spec("seed"))
    first = json.loads(out.splitlines()[0])
    assert np.shape(first["dL/dW1"]) == (3, 3) and np.shape(first["dL/dW2"]) == (1, 4) and isinstance(first["dL/dB1"], float)


def test_stdin_and_chunks(capsys, monkeypatch, tmp_path):
    cases = random_cases("part3", 5, seed=5)
    path = write_jsonl(tmp_path / "b.jsonl", cases)
    expected = cli(capsys, "eval", "--batch", path, "--spec", "part3")[1]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n\n".join(json.dumps(c) for c in cases)))
    assert cli(capsys, "eval", "--batch", "-", "--spec", "part3")[1] == expected
    monkeypatch.setattr(batch_module, "CHUNK", 2)  # three calls of the network instead of one
    assert cli(capsys, "eval", "--batch", path, "--spec", "part3")[1] == expected


def test_progress_on_stderr_for_large_batches_unless_quiet(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(batch_module, "PROGRESS_MIN", 3)
    path = write_jsonl(tmp_path / "b.jsonl", random_cases("seed", 4))
    code, out, err = cli(capsys, "eval", "--batch", path)
    assert code == 0 and len(out.splitlines()) == 4
    assert "reading cases" in err and "evaluating" in err and "writing" in err
    code, quiet_out, err = cli(capsys, "eval", "--batch", path, "--quiet")
    assert (code, quiet_out, err) == (0, out, "")


# --------------------------------------------------------------------------------------------
# refusals: one line, exit 2, nothing on stdout
# --------------------------------------------------------------------------------------------
def test_bad_line_is_named_and_nothing_is_written(capsys, tmp_path):
    cases = random_cases("seed", 4)
    cases[2]["W1"] = [[1, 2], [3, 4]]
    path = write_jsonl(tmp_path / "batch.jsonl", cases)
    msg = one_clean_line(capsys, "eval", "--batch", path)
    assert msg == f"{path} line 3: W1: expected 1×1×3×3 (or 3×3), got a 2×2 array"


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"X": NaN}', "line 2: X: expected finite numbers, got NaN"),  # never NaN, although Python's json reads it
        ("[1, 2]", "line 2: expected a JSON object, got a list"),
        ("{", "line 2: invalid JSON at column 2"),
    ],
)
def test_line_level_messages(line, expected, capsys, tmp_path):
    good = json.dumps(random_cases("seed", 1)[0])
    path = write_jsonl(tmp_path / "b.jsonl", [good, line])
    msg = one_clean_line(capsys, "eval", "--batch", path)
    assert msg.startswith(f"{path} {expected}"), msg


def test_nan_value_is_refused(capsys, tmp_path):
    good = random_cases("seed", 2)
    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps(good[0]) + "\n" + json.dumps(dict(good[1], B1=float("nan"))) + "\n", encoding="utf-8")
    msg = one_clean_line(capsys, "eval", "--batch", str(path))
    assert msg == f"{path} line 2: B1: expected finite numbers, got NaN", msg


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_empty_file(content, capsys, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    assert one_clean_line(capsys, "eval", "--batch", str(path)) == f"{path}: expected one case per line (JSON Lines), got an empty file"


def test_a_pretty_printed_case_gets_a_hint(capsys, tmp_path):
    path = tmp_path / "case.json"
    path.write_text(json.dumps(random_cases("seed", 1)[0], indent=2), encoding="utf-8")
    msg = one_clean_line(capsys, "eval", "--batch", str(path))
    assert msg.startswith(f"{path} line 1: invalid JSON") and "without --batch" in msg


def test_overflow_names_the_line(capsys, tmp_path):
    cases = random_cases("seed", 3)
    cases[1]["X"] = np.full((6, 6), 1e200).tolist()
    cases[1]["W1"] = np.full((3, 3), 1e200).tolist()
    path = write_jsonl(tmp_path / "b.jsonl", cases)
    msg = one_clean_line(capsys, "eval", "--batch", path)
    assert msg.startswith(f"{path} line 2: X: the forward pass overflows float64"), msg


def test_case_and_batch_are_exclusive(capsys, tmp_path):
    path = write_jsonl(tmp_path / "b.jsonl", random_cases("seed", 1))
    assert "--batch" in one_clean_line(capsys, "eval", path, "--batch", path)
    assert "--batch" in one_clean_line(capsys, "eval")


# Lines that take the fast reader's "ask the slow path" branches, valid and not.
def seed_line(**changes: str) -> str:
    fields = {
        "X": json.dumps([[1, 0, 1, 0, 1, 0]] * 6),
        "W1": "[[1, 0, 0], [0, 1, 0], [0, 0, 1]]",
        "B1": "0",
        "W2": "[1, 2, 3, 4]",
        "B2": "0",
        "Y": "1",
    }
    fields.update(changes)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


TRICKY = [
    '{"X": 1}',
    '{"X": [[0]], "X": 1}',
    seed_line(X="true"),
    seed_line(X="Infinity"),
    seed_line(X="1e400"),
    seed_line(B1="9" * 400),
    seed_line(X="[[1, 2], [3]]"),
    seed_line(X="[]"),
    seed_line(W2='[1, 2, 3, "4"]'),
    seed_line(W2="[1, 2, 3, null]"),
    seed_line(W2='[1, 2, 3, {"a": 1}]'),
    seed_line(W2='{"a": 1}'),
    seed_line(
        X=json.dumps([[[[0] * 6] * 6]]), W1="[[[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]]", B1="[0]", W2="[[1, 2, 3, 4]]", B2="[[0]]", Y="[1]"
    ),
    seed_line(Y="1.5"),
    seed_line(W2="[1, 2, 3]"),
    seed_line(Q="0"),
    seed_line(B1="[[0.5]]"),
]


@pytest.mark.parametrize("line", TRICKY)
def test_fast_reader_agrees_with_the_single_case_checks(line, tmp_path):
    spec = load_spec("seed")
    good = json.dumps(random_cases("seed", 1)[0])
    path = write_jsonl(tmp_path / "b.jsonl", [good, line])
    where = f"{path} line 2"
    try:
        case = parse_case(line, spec, where)
    except CaseError as err:
        expected = str(err) if str(err).startswith(where) else f"{where}: {err}"
        with pytest.raises(CaseError) as info:
            load_batch(path, spec)
        assert str(info.value) == expected.replace(" at line 1 column ", " at column ")
        return
    batch = load_batch(path, spec)
    assert batch.given[1] == case.given
    for key, arr in case.arrays.items():
        assert np.array_equal(batch.arrays[key][1], arr), key


# --------------------------------------------------------------------------------------------
# .npz refusals
# --------------------------------------------------------------------------------------------
def npz(tmp_path, **changes) -> str:
    rng = np.random.default_rng(2)
    arrays = {
        "X": rng.normal(size=(4, 6, 6)),
        "W1": rng.normal(size=(4, 3, 3)),
        "B1": np.zeros(4),
        "W2": rng.normal(size=(4, 4)),
        "B2": 0.0,
        "Y": np.ones(4),
    }
    arrays.update(changes)
    path = tmp_path / "batch.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return str(path)


@pytest.mark.parametrize(
    "changes, expected",
    [
        (
            {"W1": np.zeros((3, 3, 2))},
            ": W1: expected 4×1×1×3×3 (a leading batch axis of 4 cases, as X has, then 1×1×3×3 or 3×3), or 1×1×3×3 shared",
        ),
        ({"Y": np.ones(3)}, ": Y: expected 4 numbers (one per case, as X has); got shape (3,)"),
        ({"X": np.zeros((6, 6))}, ": X: expected N×n×n for the seed"),
        ({"Y": None}, ": Y: missing"),
        ({"Q": np.zeros(4)}, ": Q: unknown array; expected only X, W1, B1, W2, B2, Y"),
        ({"W2": np.ones((4, 4), dtype=bool)}, ": W2: expected real numbers, got booleans"),
        ({"B1": np.array([0, 0, np.nan, 0])}, " row 2: B1: expected finite numbers, got NaN"),
        ({"B2": np.inf}, ": B2: expected finite numbers, got Infinity"),
        ({"Y": np.array([1, 1, 1, 2.0])}, " row 3: Y: expected a label in [0, 1] for bce, got 2.0"),
        ({"X": np.zeros((0, 6, 6))}, ": X: expected a leading batch axis with at least one case"),
    ],
)
def test_npz_refusals_name_the_array(changes, expected, capsys, tmp_path):
    path = npz(tmp_path, **changes)
    msg = one_clean_line(capsys, "eval", "--batch", path)
    assert msg.startswith(path + expected), msg


def test_not_an_npz(capsys, tmp_path):
    path = tmp_path / "fake.npz"
    path.write_text("hello", encoding="utf-8")
    assert one_clean_line(capsys, "eval", "--batch", str(path)).startswith(f"{path}: cannot read file: not a .npz archive")
