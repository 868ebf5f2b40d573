"""The command line, end to end: verify, eval, expand, and one clean line for every bad input.

Most checks run the CLI as a real subprocess (``python -m render.cli`` from the project root,
once through the installed ``cnn-derive`` console script); the cheap ones also call
``render.cli.main`` in-process. Numbers from ``eval`` are held against PyTorch float64 autograd
(``oracles.torch_reference``), which shares no code with the product.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from oracles import torch_reference
from render.cli import main
from symbolic.case import parse_case
from symbolic.numeric import compile_network

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "cnn-derive: "
EVAL_KEYS = {"L", "A2", "dL/dW1", "dL/dB1", "dL/dW2", "dL/dB2"}
RULE_NAMES = list("abcdefghij")
TIMEOUT = 300


def run(*args: str, stdin: str | None = None, exe: list | None = None) -> subprocess.CompletedProcess:
    cmd = (exe or [sys.executable, "-m", "render.cli"]) + list(args)
    return subprocess.run(cmd, cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=TIMEOUT)


def console_script() -> str:
    """The installed `cnn-derive` script: next to the interpreter running the tests, else on PATH."""
    here = Path(sys.executable).parent / "cnn-derive"
    found = str(here) if here.exists() else shutil.which("cnn-derive")
    assert found, "the cnn-derive console script is not installed (pip install -e '.[test]')"
    return found


# --------------------------------------------------------------------------------------------
# cases
# --------------------------------------------------------------------------------------------
def random_case(n: int, k: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    m = ((n - k + 1) // 2) ** 2
    return {
        "X": rng.uniform(-1, 1, (n, n)).tolist(),
        "W1": rng.uniform(-1, 1, (k, k)).tolist(),
        "B1": float(rng.uniform(-0.5, 0.5)),
        "W2": [rng.uniform(-1, 1, m).tolist()],
        "B2": float(rng.uniform(-0.5, 0.5)),
        "Y": float(rng.uniform(0, 1)),
    }


def saturated_case(y: int) -> dict:
    """Integer inputs chosen so that Z2 = -1800 (y = 1) or +1800 (y = 0) exactly.

    X is all ones and W1 picks one pixel, so Z1 = A1 = 1 everywhere (every pool window is a
    4-way tie), F = (1, 1, 1, 1), W2.F = 10, and B2 sets Z2.
    """
    W1 = [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    z2 = -1800 if y == 1 else 1800
    return {"X": [[1] * 6 for _ in range(6)], "W1": W1, "B1": 0, "W2": [[1, 2, 3, 4]], "B2": z2 - 10, "Y": y}


def as_arrays(case: dict):
    return (np.array(case["X"], float), np.array(case["W1"], float), float(case["B1"]),
            np.ravel(np.array(case["W2"], float)), float(case["B2"]), float(case["Y"]))


def check_eval_output(stdout: str, case: dict) -> dict:
    out = json.loads(stdout)  # json.loads rejects trailing data: exactly one JSON value
    assert isinstance(out, dict), out
    assert set(out) == EVAL_KEYS, sorted(out)
    k = len(case["W1"])
    m = len(np.ravel(case["W2"]))
    assert np.array(out["dL/dW1"]).shape == (k, k)
    assert np.array(out["dL/dW2"]).shape == (1, m)
    for key in ("L", "A2", "dL/dB1", "dL/dB2"):
        assert isinstance(out[key], float), (key, out[key])
    return out


def assert_matches_torch(out: dict, case: dict) -> None:
    ref = torch_reference(*as_arrays(case))
    for key in ("L", "A2", "dL/dB1", "dL/dB2"):
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-10, atol=1e-10, err_msg=key)
    np.testing.assert_allclose(np.array(out["dL/dW1"]), ref["dL/dW1"], rtol=1e-10, atol=1e-10, err_msg="dL/dW1")
    np.testing.assert_allclose(np.array(out["dL/dW2"])[0], ref["dL/dW2"], rtol=1e-10, atol=1e-10, err_msg="dL/dW2")


EVAL_CASES = {
    "seed-6x3": random_case(6, 3, seed=1),
    "n5-k2": random_case(5, 2, seed=2),
    "n4-k1": random_case(4, 1, seed=3),
    "saturated-neg": saturated_case(1),
    "saturated-pos": saturated_case(0),
}


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------
RULE_LINE = re.compile(r"^\s*\(([a-z])\)\s+(\S+)")


def rule_lines(stdout: str) -> list:
    return [m.groups() for m in map(RULE_LINE.match, stdout.splitlines()) if m]


def test_verify_text_all_proven():
    proc = run("verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = rule_lines(proc.stdout)
    assert [name for name, _ in lines] == RULE_NAMES, proc.stdout
    assert all(mark == "proven" for _, mark in lines), proc.stdout
    assert "FAILED" not in proc.stdout and "NOT proven" not in proc.stdout


def check_verify_json(text: str) -> None:
    data = json.loads(text)
    assert data["all_proven"] is True
    assert [r["name"] for r in data["rules"]] == RULE_NAMES
    for r in data["rules"]:
        assert {"name", "statement", "proven", "seconds"} <= set(r), r
        assert r["proven"] is True, r
        assert isinstance(r["statement"], str) and r["statement"].strip(), r
        assert isinstance(r["seconds"], (int, float)) and r["seconds"] >= 0, r


def test_verify_json_through_console_script():
    proc = run("verify", "--json", exe=[console_script()])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    check_verify_json(proc.stdout)


def test_verify_json_in_process(capsys):
    assert main(["verify", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    check_verify_json(out)


def test_verify_other_sizes(capsys):
    assert main(["verify", "--n", "5", "--k", "2"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "n=5, k=2" in out
    lines = rule_lines(out)
    assert [name for name, _ in lines] == RULE_NAMES, out
    assert all(mark == "proven" for _, mark in lines), out


# --------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(EVAL_CASES))
def test_eval_file_and_stdin_match_torch(name, tmp_path):
    case = EVAL_CASES[name]
    path = tmp_path / "case.json"
    text = json.dumps(case)
    path.write_text(text, encoding="utf-8")
    from_file = run("eval", str(path))
    from_stdin = run("eval", "-", stdin=text)
    for proc in (from_file, from_stdin):
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
    assert from_file.stdout == from_stdin.stdout
    out = check_eval_output(from_file.stdout, case)
    assert_matches_torch(out, case)


@pytest.mark.parametrize("name", ["seed-6x3", "n5-k2"])
def test_eval_prints_full_precision(name, capsys, tmp_path):
    """The JSON round-trips to exactly the floats the numeric network computes."""
    case = EVAL_CASES[name]
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    assert main(["eval", str(path)]) == 0
    stdout, err = capsys.readouterr()
    assert err == ""
    out = check_eval_output(stdout, case)
    c = parse_case(json.dumps(case))
    direct = compile_network(c.spec)(c.X, c.W1, c.B1, c.W2, c.B2, c.Y)
    for key in ("L", "A2", "dL/dB1", "dL/dB2"):
        assert out[key] == float(direct[key]), key
    assert np.array_equal(np.array(out["dL/dW1"]), np.asarray(direct["dL/dW1"], dtype=float))
    assert np.array_equal(np.array(out["dL/dW2"])[0], np.ravel(np.asarray(direct["dL/dW2"], dtype=float)))


@pytest.mark.parametrize("y", [1, 0])
def test_eval_saturated_sigmoid_is_exact(y, capsys, tmp_path):
    """Z2 = -1800, Y = 1 (and Z2 = +1800, Y = 0): L = 1800 and dL/dB2 = -1 (+1), no overflow, no NaN."""
    case = saturated_case(y)
    path = tmp_path / "case.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    assert main(["eval", str(path)]) == 0
    stdout, err = capsys.readouterr()
    assert err == ""
    out = check_eval_output(stdout, case)
    sign = -1.0 if y == 1 else 1.0
    assert out["L"] == 1800.0
    assert out["dL/dB2"] == sign
    assert out["A2"] == (0.0 if y == 1 else 1.0)
    # dL/dW2 = (A2 - Y) F with F = (1, 1, 1, 1); ties route each window's gradient to one entry,
    # so dL/dB1 = (A2 - Y) * sum(W2) and every dL/dW1 entry equals it too (X is all ones).
    assert out["dL/dW2"] == [[sign] * 4]
    assert out["dL/dB1"] == sign * 10
    assert out["dL/dW1"] == [[sign * 10] * 3] * 3


# --------------------------------------------------------------------------------------------
# expand
# --------------------------------------------------------------------------------------------
def expand_text(*args: str, capsys) -> str:
    assert main(["expand", *args]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def term_lines(out: str) -> list:
    return [ln.strip()[1:].strip() for ln in out.splitlines() if ln.strip().startswith("+ ")]


def test_expand_w11_has_one_term_per_conv_output(capsys):
    out = expand_text("w_11", capsys=capsys)
    terms = term_lines(out)
    assert len(terms) == 16, out  # dz_ij/dw_11 = x_ij for each of the 4x4 conv outputs
    for window in ("p_11", "p_12", "p_21", "p_22"):
        assert window in out, window
    xs = [re.findall(r"\bx_\d\d\b", t) for t in terms]
    assert all(len(found) == 1 for found in xs), terms
    assert sorted(found[0] for found in xs) == sorted(f"x_{i}{j}" for i in range(1, 5) for j in range(1, 5))


def test_expand_w11_subprocess_matches_in_process(capsys):
    proc = run("expand", "w_11")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout == expand_text("w_11", capsys=capsys)


def test_expand_bias_name_case_does_not_matter(capsys):
    upper = expand_text("B_1", capsys=capsys)
    lower = expand_text("b_1", capsys=capsys)
    assert len(term_lines(upper)) == 16
    assert term_lines(upper) == term_lines(lower)


def test_expand_dense_weight(capsys):
    out = expand_text("w2_3", capsys=capsys)
    terms = term_lines(out)
    assert len(terms) == 4, out  # F_3 = p_21, the max of one 2x2 window
    assert "p_21" in out
    assert not re.search(r"\bp_(11|12|22)\b", out), out


def test_expand_output_bias(capsys):
    assert len(term_lines(expand_text("b_2", capsys=capsys))) == 1


def test_expand_latex(capsys):
    out = expand_text("w_11", "--latex", capsys=capsys)
    assert r"\frac{\partial L}" in out
    assert "x_{11}" in out and "x_{44}" in out


# --------------------------------------------------------------------------------------------
# bad input: exit 2, one line on stderr naming the field, nothing on stdout, no traceback
# --------------------------------------------------------------------------------------------
GOOD = {"X": [[(i + j) % 2 for j in range(6)] for i in range(6)], "W1": [[1, 0, -1]] * 3,
        "B1": 0, "W2": [[0.1, 0.2, 0.3, 0.4]], "B2": -0.2, "Y": 1}


def case_text(**changes) -> str:
    case = {key: value for key, value in GOOD.items() if key not in changes or changes[key] is not None}
    case.update({key: value for key, value in changes.items() if value is not None})
    return json.dumps(case)


# name -> (argv, text, regex the message must start with, words it must contain). In argv, CASE
# becomes a file holding `text` (otherwise `text` is stdin); {TMP} is the run's own temp folder.
BAD = {
    "missing-file": (["eval", "{TMP}/no-such-case.json"], None, r"{TMP}/no-such-case\.json: ", []),
    "directory": (["eval", "{TMP}"], None, r"{TMP}: ", []),
    "not-utf8": (["eval", "CASE"], b"\xff\xfe{\x00", r"{TMP}/case\.json: ", []),
    "invalid-json": (["eval", "CASE"], '{"X": [[1, 2], [3, 4]]', r"{TMP}/case\.json: ", ["JSON"]),
    "invalid-json-stdin": (["eval", "-"], '{"X": ', r"stdin\b", ["JSON"]),
    "missing-key": (["eval", "CASE"], case_text(Y=None), r"Y\b", []),
    "ragged-X": (["eval", "CASE"], case_text(X=[[0] * 6] * 5 + [[0] * 5]), r"X\b", []),
    "string-value": (["eval", "CASE"], case_text(B1="0.5"), r"B1\b", []),
    "nan-value": (["eval", "CASE"], case_text().replace('"B2": -0.2', '"B2": NaN'), r"B2\b", []),
    "infinity-in-X": (["eval", "CASE"], case_text().replace("[0, 1, 0, 1, 0, 1]", "[0, 1, Infinity, 1, 0, 1]", 1),
                      r"X\b", []),
    "W2-wrong-length": (["eval", "CASE"], case_text(W2=[[0.1, 0.2, 0.3]]), r"W2\b", []),
    "Y-out-of-range": (["eval", "CASE"], case_text(Y=1.5), r"Y\b", ["1.5"]),
    "k-bigger-than-n": (["eval", "CASE"], case_text(X=[[1, 2], [3, 4]], W2=[0.5]), r"(W1|X)\b", []),
    "conv-not-divisible": (["eval", "CASE"], case_text(X=[[0] * 7] * 7), r"(W1|X)\b", []),
    "unknown-parameter": (["expand", "q_7"], None, r"(?i)(expand: )?(argument )?param\b", ["q_7"]),
    "verify-n-0": (["verify", "--n", "0"], None, r"(verify: )?(argument )?(--)?n\b", []),
    "verify-odd-conv": (["verify", "--n", "7", "--k", "3"], None, r"(verify: )?(argument )?(--)?[nk]\b", []),
    "unknown-subcommand": (["frobnicate"], None, r".*\bcommand\b", ["frobnicate"]),
    "build-format-docx": (["build", "--out", "{TMP}/out/seed", "--format", "docx"], None,
                          r"(build: )?(argument )?--format\b", ["docx"]),
    "n-not-an-int": (["verify", "--n", "abc"], None, r"(verify: )?(argument )?--n\b", ["abc"]),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Run every bad input at once (they are independent), keyed by name."""
    def launch(name):
        argv, text, _, _ = BAD[name]
        tmp = tmp_path_factory.mktemp(name)
        argv = [a.replace("{TMP}", str(tmp)) for a in argv]
        stdin = None
        if "CASE" in argv:
            path = tmp / "case.json"
            path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
            argv = [str(path) if a == "CASE" else a for a in argv]
        elif text is not None:
            stdin = text
        proc = run(*argv, stdin=stdin)
        return name, proc, tmp

    with ThreadPoolExecutor(max_workers=4) as pool:
        return {name: (proc, tmp) for name, proc, tmp in pool.map(launch, BAD)}


def assert_one_clean_line(proc, pattern: str, words: list) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == "", proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith(PREFIX), line
    message = line[len(PREFIX):]
    assert re.match(pattern, message), f"{message!r} does not name the field ({pattern})"
    for word in words:
        assert word in message, (word, message)
    return message


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_gives_one_line_and_exit_2(name, bad_runs):
    proc, tmp = bad_runs[name]
    _, _, pattern, words = BAD[name]
    assert_one_clean_line(proc, pattern.replace("{TMP}", re.escape(str(tmp))), words)
    if name == "build-format-docx":
        assert not (tmp / "out").exists(), "a rejected build must not write anything"


def test_bad_input_in_process(capsys):
    assert main(["verify", "--n", "7", "--k", "3"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1 and err.startswith(PREFIX), err
    assert main(["expand", "w_99"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "w_99" in err, err
