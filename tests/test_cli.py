"""The command line: presets, verify, eval, expand, and one clean line for every bad input.

Most checks call ``render.cli.main`` in-process (fast); a few run the CLI as a real subprocess
(``python -m render.cli`` from the project root) to see exactly what a user sees: exit codes,
stdout and stderr, no traceback, no warnings. Numbers from ``eval`` are held against PyTorch
float64 autograd (``reference.torch_reference``, which shares no code with the product), with
the tolerance rtol · |ref| + ULPS · eps · s, s being the reference's first-order rounding scale
(``reference.error_scales``): relative everywhere, with no absolute floor. The lecture's worked
example is also checked against values derived by hand.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import reference as R

import symbolic.layers.conv as conv_module
import symbolic.rules as rules_module
from render.cli import main
from symbolic.spec import presets

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PREFIX = "cnn-derive: "
PRESETS = ("seed", "part3", "lenet-tiny")
LETTERS = list("abcdefghij")
EPS = float(np.finfo(np.float64).eps)
RTOL = 1e-10
ULPS = 64.0  # rounding-scale units: two float64 implementations summing in different orders
TIMEOUT = 120


def spec_dict(name: str) -> dict:
    return tomllib.loads(presets()[name].read_text(encoding="utf-8"))


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "render.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=TIMEOUT)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()  # drop anything printed before
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def only_notices(err: str) -> bool:
    """stderr holds nothing but compile reports (printed where compiling took over a second)."""
    return all(line.startswith("cnn-derive: compiled") for line in err.splitlines())


def ok(capsys, *argv: str) -> str:
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    assert only_notices(err), err
    return out


def one_clean_line(code: int, out: str, err: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr starting with the prefix; the message."""
    assert "Traceback" not in err, err
    assert code == 2, (code, err)
    assert out == "", out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(PREFIX), lines[0]
    return lines[0][len(PREFIX) :]


# --------------------------------------------------------------------------------------------
# comparing eval with the reference
# --------------------------------------------------------------------------------------------
def reference_case(spec: dict, values: dict) -> dict:
    """The case in the layouts the reference reads: X as the spec's input says, others as given."""
    case = dict(values)
    case["X"] = np.reshape(np.asarray(values["X"], dtype=float), tuple(spec["input"]))
    return case


def assert_close(actual, ref, scale, what: str) -> None:
    """|actual − ref| <= RTOL·|ref| + ULPS·eps·s entrywise (s: the rounding scale of each entry)."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    assert a.size == r.size == s.size, (what, a.shape, r.shape, s.shape)
    a, r, s = a.ravel(), r.ravel(), s.ravel()
    assert np.isfinite(a).all(), what
    bad = np.abs(a - r) > RTOL * np.abs(r) + ULPS * EPS * s
    if bad.any():
        i = int(np.argmax(bad))
        raise AssertionError(f"{what}[{i}]: {a[i]!r} vs reference {r[i]!r} (scale {s[i]:.3g}); {int(bad.sum())} of {a.size} differ")


def check_against_reference(out: dict, spec: dict, values: dict) -> None:
    case = reference_case(spec, values)
    ref = R.torch_reference(spec, case)
    scales = R.error_scales(spec, case)
    link = R.stage_names(spec)[-1]
    params = [k for k in R.shapes(spec) if k[:1] in "WB" and k[1:].isdigit()]
    # mse has no link function: the prediction is the last stage itself.
    pred = link if spec["loss"] != "mse" else R.stage_names(spec)[-2]
    assert set(out) == {"L", pred, *(f"dL/d{p}" for p in params)}, sorted(out)
    assert isinstance(out["L"], float)
    assert_close(out["L"], ref["L"], scales["L"], "L")
    assert_close(out[pred], ref["output"], scales["output"], pred)
    for p in params:
        assert_close(out[f"dL/d{p}"], ref[f"dL/d{p}"], scales[f"dL/d{p}"], f"dL/d{p}")


def eval_values(capsys, tmp_path, values: dict, *options: str) -> dict:
    path = tmp_path / "case.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    return json.loads(ok(capsys, "eval", str(path), *options))


# --------------------------------------------------------------------------------------------
# presets, --version
# --------------------------------------------------------------------------------------------
def test_presets_lists_every_preset_with_its_summary(capsys):
    out = ok(capsys, "presets")
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert set(PRESETS) <= set(lines), out
    for name in PRESETS:
        first = next(ln for ln in presets()[name].read_text(encoding="utf-8").splitlines() if ln.startswith("#"))
        summary = first.lstrip("#").strip()
        assert summary and summary in lines[name], (name, lines[name])


def test_version_in_process(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code in (0, None)
    out, _ = capsys.readouterr()
    assert re.fullmatch(r"cnn-derive \S+\n", out), out


def test_version_subprocess():
    proc = run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    # The installed distribution's version (pyproject.toml's as of the last `pip install -e .`).
    try:
        expected = metadata.version("cnn-derive")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        expected = "unknown"
    assert proc.stdout == f"cnn-derive {expected}\n", proc.stdout


# --------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------
RULE_LINE = re.compile(r"^  (\S.*?)\s+(proven|FAILED)\s+\d+\.\d+ s\s+\[")


def rule_lines(stdout: str) -> list[tuple[str, str]]:
    return [(m.group(1).strip(), m.group(2)) for m in map(RULE_LINE.match, stdout.splitlines()) if m]


def test_verify_seed_subprocess_all_proven():
    proc = run("verify")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = rule_lines(proc.stdout)
    assert lines, proc.stdout
    labels = [label for label, _ in lines]
    assert labels[:10] == [f"({c})" for c in LETTERS], labels
    assert all(mark == "proven" for _, mark in lines), proc.stdout
    assert f"all {len(lines)} rules proven" in proc.stdout
    assert "FAILED" not in proc.stdout and "NOT proven" not in proc.stdout


def check_verify_json(text: str, spec: str, n: int | None = None, k: int | None = None) -> dict:
    data = json.loads(text)
    assert {"spec", "rules", "all_proven"} <= set(data), data.keys()
    assert data["spec"] == spec
    if n is not None:
        assert (data["n"], data["k"]) == (n, k)
    assert data["all_proven"] is True
    assert data["rules"]
    for r in data["rules"]:
        assert {"name", "statement", "proven", "seconds"} <= set(r), r
        assert r["proven"] is True, r
        assert isinstance(r["name"], str) and r["name"], r
        assert isinstance(r["statement"], str) and r["statement"].strip(), r
        assert isinstance(r["seconds"], (int, float)) and r["seconds"] >= 0, r
    return data


def test_verify_json_seed(capsys):
    data = check_verify_json(ok(capsys, "verify", "--json"), "seed", 6, 3)
    assert [r["name"] for r in data["rules"]][:10] == LETTERS


def test_verify_json_other_sizes(capsys):
    data = check_verify_json(ok(capsys, "verify", "--n", "5", "--k", "2", "--json"), "seed n=5 k=2", 5, 2)
    assert [r["name"] for r in data["rules"]][:10] == LETTERS


def test_verify_part3(capsys):
    out = ok(capsys, "verify", "--spec", "part3")
    lines = rule_lines(out)
    assert lines and all(mark == "proven" for _, mark in lines), out
    assert "part3" in out.splitlines()[0]
    conv_inputs = [ln for ln in out.splitlines() if "(conv2d): input" in ln and "conv input gradient" in ln]
    # conv 2 passes its gradient on to P1 (stride 2, padding 1); conv 1 to X
    assert any("dL/dP1" in ln and "proven" in ln for ln in conv_inputs), out
    assert f"all {len(lines)} rules proven" in out


def test_verify_part3_json_has_no_seed_sizes(capsys):
    data = check_verify_json(ok(capsys, "verify", "--spec", "part3", "--json", "--end-to-end", "none"), "part3")
    assert "n" not in data and "k" not in data
    assert any("conv input gradient" in r["statement"] for r in data["rules"])


@pytest.fixture
def wrong_conv_backward():
    """The conv layer's backward with rot180 replaced by the identity (a classic mistake)."""
    original = conv_module.rot180
    rules_module._local.cache_clear()
    rules_module._from_stage.cache_clear()
    conv_module.rot180 = lambda a: a.copy()
    try:
        yield
    finally:
        conv_module.rot180 = original
        rules_module._local.cache_clear()
        rules_module._from_stage.cache_clear()


def test_verify_fails_with_exit_1_when_a_rule_is_wrong(capsys, wrong_conv_backward):
    code, out, err = cli(capsys, "verify")
    assert code == 1, (code, err)
    failed = [label for label, mark in rule_lines(out) if mark == "FAILED"]
    assert failed == ["layer 1 (conv2d): input"], out
    assert "NOT proven" in out
    code, out, _ = cli(capsys, "verify", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["all_proven"] is False
    assert [r["statement"] for r in data["rules"] if not r["proven"]] == [
        next(r["statement"] for r in data["rules"] if "conv input gradient" in r["statement"])
    ]


def test_verify_passes_again_once_the_layer_is_restored(capsys):
    # Runs after the test above: the caches must not keep the wrong rule.
    code, out, _ = cli(capsys, "verify", "--end-to-end", "none")
    assert code == 0 and "FAILED" not in out, out


# --------------------------------------------------------------------------------------------
# eval
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PRESETS)
def test_eval_example_matches_torch(name, capsys):
    out = json.loads(ok(capsys, "eval", str(EXAMPLES / f"{name}.json"), "--spec", name))
    check_against_reference(out, spec_dict(name), example(name))


def test_eval_seed_example_without_spec_is_the_seed(capsys):
    a = ok(capsys, "eval", str(EXAMPLES / "seed.json"))
    b = ok(capsys, "eval", str(EXAMPLES / "seed.json"), "--spec", "seed")
    c = ok(capsys, "eval", str(EXAMPLES / "seed.json"), "--n", "6", "--k", "3")
    assert a == b == c


def test_eval_lecture_example_by_hand(capsys):
    """The lecture's worked example, derived by hand.

    Z1 = X ⋆ W1 = [[1, 1, 1, -1], [3, -1, 3, -6], [-4, 1, -2, 5], [5, -5, 4, -3]]; the 2×2 windows
    of A1 = relu(Z1) have their maxima 3 at (2,1), 3 at (2,3), 5 at (4,1), 5 at (3,4) (1-based),
    so F = (3, 3, 5, 5), Z2 = 3 − 6 + 5 − 5 + 1 = −2, A2 = σ(−2), L = −log σ(−2) = log(1 + e²).
    With g = A2 − 1: dL/dW2 = g F, dL/dB2 = g, dL/dB1 = g (1 − 2 + 1 − 1) = −g, and
    dL/dW1[a, b] = g (X[1+a, b] − 2 X[1+a, 2+b] + X[3+a, b] − X[2+a, 3+b]) (0-based).
    """
    out = json.loads(ok(capsys, "eval", str(EXAMPLES / "seed.json")))
    X = np.array(example("seed")["X"], dtype=float)
    a2 = 1 / (1 + math.exp(2))
    g = a2 - 1
    dW1 = np.array([[g * (X[1 + a, b] - 2 * X[1 + a, 2 + b] + X[3 + a, b] - X[2 + a, 3 + b]) for b in range(3)] for a in range(3)])
    assert out["L"] == pytest.approx(math.log1p(math.exp(2)), rel=1e-14, abs=0)
    assert out["A2"] == pytest.approx(a2, rel=1e-14, abs=0)
    assert out["dL/dB2"] == pytest.approx(g, rel=1e-14, abs=0)
    assert out["dL/dB1"] == pytest.approx(-g, rel=1e-14, abs=0)
    np.testing.assert_allclose(out["dL/dW2"], g * np.array([3, 3, 5, 5]), rtol=1e-14, atol=0)
    dW1_out = np.array(out["dL/dW1"])
    nonzero = dW1 != 0
    np.testing.assert_allclose(dW1_out[nonzero], dW1[nonzero], rtol=1e-14, atol=0)
    # The entry that cancels exactly (X[2,2] − 2 X[2,4] + X[4,2] − X[3,5] = 0) may carry the
    # rounding of |g|-sized terms, no more.
    assert np.all(np.abs(dW1_out[~nonzero]) <= 8 * EPS * abs(g) * 4)


@pytest.mark.parametrize("name", PRESETS)
def test_eval_random_and_kink_points_match_torch(name, capsys, tmp_path):
    spec = spec_dict(name)
    rng = np.random.default_rng(2024)
    points = [R.random_case(spec, rng) for _ in range(2)] + R.hard_points(spec, rng, 5)
    for values in points:
        values = {k: np.asarray(v).tolist() for k, v in values.items()}
        check_against_reference(eval_values(capsys, tmp_path, values, "--spec", name), spec, values)


def test_eval_custom_spec_file_matches_torch(capsys, tmp_path):
    """A spec file with what the presets lack: rectangular kernel/stride/padding, leaky ReLU, sigmoid, mse."""
    text = """
name = "mixed"
input = [2, 7, 6]
loss = "mse"

[[layers]]
type = "conv2d"
filters = 2
kernel = [3, 2]
stride = [2, 1]
padding = [1, 0]

[[layers]]
type = "leaky_relu"
slope = 0.1

[[layers]]
type = "maxpool"
window = [2, 3]
stride = [2, 1]

[[layers]]
type = "flatten"

[[layers]]
type = "dense"
units = 3

[[layers]]
type = "sigmoid"

[[layers]]
type = "dense"
units = 2
"""
    path = tmp_path / "mixed.toml"
    path.write_text(text, encoding="utf-8")
    spec = tomllib.loads(text)
    rng = np.random.default_rng(7)
    for values in [R.random_case(spec, rng)] + R.hard_points(spec, rng, 3):
        values = {k: np.asarray(v).tolist() for k, v in values.items()}
        check_against_reference(eval_values(capsys, tmp_path, values, "--spec", str(path)), spec, values)


SEED_FORMS = {
    # name: (changes to the seed example, the shape each gradient must come back in)
    "squeezed": ({}, {"dL/dW1": (3, 3), "dL/dB1": (), "dL/dW2": (4,), "dL/dB2": ()}),
    "full": (
        {"W1": "full", "B1": [0], "W2": [[1, -2, 1, -1]], "B2": [1]},
        {"dL/dW1": (1, 1, 3, 3), "dL/dB1": (1,), "dL/dW2": (1, 4), "dL/dB2": (1,)},
    ),
    "extra-axes": (
        {"B1": [[0]], "W2": [[1], [-2], [1], [-1]], "B2": [[[1]]]},
        {"dL/dW1": (3, 3), "dL/dB1": (1, 1), "dL/dW2": (4, 1), "dL/dB2": (1, 1, 1)},
    ),
}


@pytest.mark.parametrize("form", list(SEED_FORMS))
def test_eval_prints_gradients_in_the_layout_of_the_input(form, capsys, tmp_path):
    changes, shapes = SEED_FORMS[form]
    values = example("seed")
    values.update({k: ([[values["W1"]]] if v == "full" else v) for k, v in changes.items()})
    out = eval_values(capsys, tmp_path, values, "--spec", "seed")
    for key, shape in shapes.items():
        assert np.shape(out[key]) == shape, (key, np.shape(out[key]))
        if shape == ():
            assert isinstance(out[key], float), (key, out[key])
    # Same numbers whatever the layout.
    base = json.loads(ok(capsys, "eval", str(EXAMPLES / "seed.json")))
    for key in shapes:
        assert np.ravel(out[key]).tolist() == np.ravel(base[key]).tolist(), key
    assert out["L"] == base["L"] and out["A2"] == base["A2"]


def test_eval_lenet_tiny_squeezed_and_full_agree(capsys, tmp_path):
    values = example("lenet-tiny")
    full = json.loads(ok(capsys, "eval", str(EXAMPLES / "lenet-tiny.json"), "--spec", "lenet-tiny"))
    assert np.shape(full["dL/dW1"]) == (2, 1, 3, 3) and np.shape(full["dL/dW4"]) == (2, 4)
    short = dict(values, X=np.array(values["X"])[0].tolist(), W1=np.array(values["W1"])[:, 0].tolist())
    out = eval_values(capsys, tmp_path, short, "--spec", "lenet-tiny")
    assert np.shape(out["dL/dW1"]) == (2, 3, 3)
    assert np.ravel(out["dL/dW1"]).tolist() == np.ravel(full["dL/dW1"]).tolist()
    assert out["L"] == full["L"]


def test_eval_from_stdin_in_process(capsys, monkeypatch):
    text = (EXAMPLES / "part3.json").read_text(encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    from_stdin = ok(capsys, "eval", "-", "--spec", "part3")
    from_file = ok(capsys, "eval", str(EXAMPLES / "part3.json"), "--spec", "part3")
    assert from_stdin == from_file
    check_against_reference(json.loads(from_stdin), spec_dict("part3"), example("part3"))


def test_eval_subprocess_file_and_stdin():
    text = (EXAMPLES / "seed.json").read_text(encoding="utf-8")
    from_file = run("eval", "examples/seed.json")
    from_stdin = run("eval", "-", stdin=text)
    for proc in (from_file, from_stdin):
        assert proc.returncode == 0, proc.stderr
        assert only_notices(proc.stderr), proc.stderr
    assert from_file.stdout == from_stdin.stdout
    out = json.loads(from_file.stdout)  # exactly one JSON value
    check_against_reference(out, spec_dict("seed"), example("seed"))


def test_eval_subprocess_part3():
    proc = run("eval", "examples/part3.json", "--spec", "part3")
    assert proc.returncode == 0 and only_notices(proc.stderr), proc.stderr
    check_against_reference(json.loads(proc.stdout), spec_dict("part3"), example("part3"))


# --------------------------------------------------------------------------------------------
# expand
# --------------------------------------------------------------------------------------------
def term_lines(out: str) -> list[str]:
    return [ln.strip()[1:].strip() for ln in out.splitlines() if ln.strip().startswith("+ ")]


def test_expand_w11_has_16_terms_over_4_windows(capsys):
    out = ok(capsys, "expand", "w_11")
    terms = term_lines(out)
    assert len(terms) == 16, out  # dz_ij/dw_11 = x_ij for each of the 4×4 conv outputs
    assert "16 terms" in out and "4 pooling windows" in out, out
    windows = [ln for ln in out.splitlines() if ln.startswith("window ")]
    assert [w.split()[1].rstrip(":") for w in windows] == ["p_11", "p_12", "p_21", "p_22"], out
    xs = [re.findall(r"\bx_\d\d\b", t) for t in terms]
    assert all(len(found) == 1 for found in xs), terms
    assert sorted(found[0] for found in xs) == sorted(f"x_{i}{j}" for i in range(1, 5) for j in range(1, 5))
    # Each term goes through the window that contains its conv output: x_ij with i, j in 1..4
    # lies under p_{⌈i/2⌉⌈j/2⌉}.
    current = None
    for line in out.splitlines():
        if line.startswith("window "):
            current = line.split()[1].rstrip(":")
        elif line.strip().startswith("+ "):
            i, j = map(int, re.search(r"\bx_(\d)(\d)\b", line).groups())
            assert current == f"p_{(i + 1) // 2}{(j + 1) // 2}", line


def test_expand_bias_in_either_case(capsys):
    lower = ok(capsys, "expand", "b_1")
    upper = ok(capsys, "expand", "B_1")
    assert len(term_lines(upper)) == 16, upper
    assert term_lines(upper) == term_lines(lower)
    assert not any(re.search(r"\bx_\d\d\b", t) for t in term_lines(upper))  # dz_ij/db_1 = 1


def test_expand_dense_weight(capsys):
    out = ok(capsys, "expand", "w2_3")
    assert len(term_lines(out)) == 4, out  # F_3 = p_21, the max of one 2×2 window
    assert "p_21" in out
    assert not re.search(r"\bp_(11|12|22)\b", out), out


def test_expand_output_bias(capsys):
    assert len(term_lines(ok(capsys, "expand", "b_2"))) == 1


def test_expand_latex(capsys):
    out = ok(capsys, "expand", "w_11", "--latex")
    assert r"\frac{\partial L}{\partial w_{11}}" in out
    assert "x_{11}" in out and "x_{44}" in out
    assert "+ (" not in out  # not the text form


def test_expand_other_sizes(capsys):
    out = ok(capsys, "expand", "w_11", "--n", "5", "--k", "2")
    assert len(term_lines(out)) == 16  # 4×4 conv outputs again
    assert "x_44" in out and "x_55" not in out


# --------------------------------------------------------------------------------------------
# bad input: exit 2, one line on stderr naming the field, nothing on stdout, no traceback
# --------------------------------------------------------------------------------------------
TAIL = '\n[[layers]]\ntype = "flatten"\n\n[[layers]]\ntype = "dense"\nunits = 1\n'
BAD_SPECS = {
    # file name: (TOML text, the message's start, words it must contain)
    "unknown-type.toml": (
        'input = [6, 6]\nloss = "bce"\n\n[[layers]]\ntype = "conv3d"\n' + TAIL,
        "layer 1: unknown type 'conv3d'",
        ["conv2d"],
    ),
    "stride-0.toml": (
        'input = [6, 6]\nloss = "bce"\n\n[[layers]]\ntype = "conv2d"\nfilters = 1\nkernel = 3\nstride = 0\n' + TAIL,
        "layer 1 (conv2d): stride:",
        [],
    ),
    "pool-misfit.toml": (
        'input = [4, 4]\nloss = "bce"\n\n[[layers]]\ntype = "maxpool"\nwindow = 3\nstride = 2\n' + TAIL,
        "layer 1 (maxpool)",
        ["(4 − 3) is not a multiple of 2"],
    ),
    "big-kernel.toml": (
        'input = [4, 4]\nloss = "bce"\n\n[[layers]]\ntype = "conv2d"\nfilters = 1\nkernel = 7\npadding = 1\n' + TAIL,
        "layer 1 (conv2d): kernel:",
        ["7×7", "6×6"],
    ),
    "bce-3-units.toml": (
        'input = [4, 4]\nloss = "bce"\n\n[[layers]]\ntype = "flatten"\n\n[[layers]]\ntype = "dense"\nunits = 3\n',
        "loss: bce",
        ["layer 2 (dense)", "3"],
    ),
    "duplicate.toml": (
        'input = [4, 4]\nloss = "bce"\nloss = "mse"\n' + TAIL,
        "duplicate.toml: not valid TOML",
        ["line 3"],
    ),
    "unknown-key.toml": (
        'input = [4, 4]\nloss = "bce"\nlearning_rate = 0.1\n' + TAIL,
        "unknown-key.toml: unknown key 'learning_rate'",
        [],
    ),
    "unknown-layer-key.toml": (
        'input = [6, 6]\nloss = "bce"\n\n[[layers]]\ntype = "conv2d"\nfilters = 1\nkernel = 3\nstrides = 2\n' + TAIL,
        "layer 1 (conv2d): unknown key 'strides'",
        [],
    ),
}


@pytest.mark.parametrize("command", ["verify", "expand", "eval"])
@pytest.mark.parametrize("file", list(BAD_SPECS))
def test_malformed_spec_file(file, command, capsys, tmp_path):
    text, start, words = BAD_SPECS[file]
    path = tmp_path / file
    path.write_text(text, encoding="utf-8")
    argv = {
        "verify": ["verify", "--spec", str(path)],
        "expand": ["expand", "w_11", "--spec", str(path)],
        "eval": ["eval", str(EXAMPLES / "seed.json"), "--spec", str(path)],
    }[command]
    message = one_clean_line(*cli(capsys, *argv))
    assert message.startswith(start), message
    for word in words:
        assert word in message, (word, message)


def test_malformed_spec_file_subprocess(tmp_path):
    text, start, words = BAD_SPECS["pool-misfit.toml"]
    path = tmp_path / "pool-misfit.toml"
    path.write_text(text, encoding="utf-8")
    proc = run("verify", "--spec", str(path))
    message = one_clean_line(proc.returncode, proc.stdout, proc.stderr)
    assert message.startswith(start) and words[0] in message, message


def write_case(tmp_path, values: dict, raw: str | None = None) -> str:
    path = tmp_path / "case.json"
    path.write_text(raw if raw is not None else json.dumps(values), encoding="utf-8")
    return str(path)


def test_spec_and_n_together(capsys):
    for argv in (["verify", "--spec", "part3", "--n", "8"], ["eval", str(EXAMPLES / "seed.json"), "--spec", "seed", "--k", "3"]):
        message = one_clean_line(*cli(capsys, *argv))
        assert message.startswith("--spec: ") and "--n" in message, message


def test_no_such_spec(capsys):
    message = one_clean_line(*cli(capsys, "verify", "--spec", "nosuch"))
    assert message.startswith("--spec: no preset or file 'nosuch'"), message
    assert all(name in message for name in PRESETS)


def test_verify_n_7_blames_n_not_k(capsys):
    message = one_clean_line(*cli(capsys, "verify", "--n", "7"))
    assert re.match(r"(--)?n\b", message), message
    assert not re.match(r"(--)?k\b", message), message
    assert "5×5" in message  # the conv output that the pool does not tile


def test_verify_n_500_is_refused_quickly(capsys):
    t0 = time.perf_counter()
    message = one_clean_line(*cli(capsys, "verify", "--n", "500"))
    assert time.perf_counter() - t0 < 5
    assert message.startswith("--n: ")
    assert re.search(r"about \d+ (min|s)\b", message), message
    assert "--force" in message


def test_eval_huge_x_is_refused_without_warnings(tmp_path):
    values = example("seed")
    values["X"] = [[1e308] * 6 for _ in range(6)]
    proc = run("eval", write_case(tmp_path, values))
    message = one_clean_line(proc.returncode, proc.stdout, proc.stderr)  # a numpy warning would be a second line
    assert message.startswith("X: "), message
    assert "Warning" not in proc.stderr


def test_eval_huge_x_in_process(capsys, tmp_path):
    values = example("part3")
    values["X"] = (np.full((2, 9, 9), 1e308)).tolist()
    with np.errstate(all="raise"):  # no floating-point warning may escape either
        message = one_clean_line(*cli(capsys, "eval", write_case(tmp_path, values), "--spec", "part3"))
    assert message.startswith("X: "), message


BAD_CASES = {
    # name: (example, changes (None removes the key), spec options, the message's start, words)
    "Y-is-2": ("seed", {"Y": 2}, [], "Y: ", ["[0, 1]", "2"]),
    "Y-negative": ("seed", {"Y": -0.5}, [], "Y: ", ["[0, 1]"]),
    "softmax-Y-not-summing-to-1": ("part3", {"Y": [0.5, 0.25, 0.125]}, ["--spec", "part3"], "Y: ", ["sum"]),
    "missing-key": ("seed", {"Y": None}, [], "Y: missing", []),
    "unknown-key": ("seed", {"Q": 1}, [], "Q: unknown key", []),
    "wrong-size": ("seed", {"W2": [1, 2, 3]}, [], "W2: ", ["1×4", "3"]),
    "part3-wrong-size": ("part3", {"W3": [[1, 2, 3], [4, 5, 6]]}, ["--spec", "part3"], "W3: ", ["3×2", "2×3"]),
    "string-value": ("seed", {"B1": "0.5"}, [], "B1: ", ['"0.5"']),
    "seed-case-for-part3": ("seed", {}, ["--spec", "part3"], "X: ", ["2×9×9"]),
    "part3-case-for-the-seed": ("part3", {}, ["--spec", "seed"], "W3: unknown key", []),
}


@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_eval_case(name, capsys, tmp_path):
    base, changes, options, start, words = BAD_CASES[name]
    values = {k: v for k, v in {**example(base), **changes}.items() if v is not None}
    message = one_clean_line(*cli(capsys, "eval", write_case(tmp_path, values), *options))
    assert message.startswith(start), message
    for word in words:
        assert word in message, (word, message)


def test_bad_json(capsys, tmp_path, monkeypatch):
    path = write_case(tmp_path, {}, raw='{"X": [[1, 2], [3, 4]]')
    message = one_clean_line(*cli(capsys, "eval", path))
    assert message.startswith(f"{path}: invalid JSON"), message
    monkeypatch.setattr("sys.stdin", io.StringIO('{"X": '))
    message = one_clean_line(*cli(capsys, "eval", "-"))
    assert message.startswith("stdin: invalid JSON"), message


def test_missing_case_file(capsys, tmp_path):
    path = str(tmp_path / "no-such-case.json")
    message = one_clean_line(*cli(capsys, "eval", path))
    assert message.startswith(f"{path}: cannot read file"), message


@pytest.mark.parametrize("param", ["q_7", "w_99", "w_44", "b_3"])
def test_expand_unknown_param(param, capsys):
    message = one_clean_line(*cli(capsys, "expand", param))
    assert message.startswith("PARAM: "), message
    assert repr(param) in message and "w_11" in message, message


@pytest.mark.parametrize(
    "argv, start, words",
    [
        (["frobnicate"], "", ["frobnicate"]),
        ([], "", ["command"]),
        (["verify", "--n", "abc"], "verify: argument --n", ["abc"]),
        (["verify", "--n", "0"], "n: ", [">= 1"]),
        (["verify", "--n", "5", "--k", "9"], "k: ", ["k <= n = 5"]),
        (["verify", "--end-to-end", "bogus"], "verify: argument --end-to-end", ["bogus"]),
        (["eval"], "eval: ", ["case"]),
        (["expand"], "expand: ", ["param"]),
    ],
)
def test_bad_arguments(argv, start, words, capsys):
    message = one_clean_line(*cli(capsys, *argv))
    assert message.startswith(start), message
    for word in words:
        assert word in message, (word, message)


# --------------------------------------------------------------------------------------------
# build: the command line only turns its arguments into one call of render.build.build_handout
# --------------------------------------------------------------------------------------------
@pytest.fixture
def build_calls(monkeypatch):
    """Replace the orchestrator; record each call with the SIGTERM handler in force during it."""
    import signal

    import render.build

    calls = []

    def fake(spec, **kw):
        calls.append({"spec": spec, **kw, "sigterm": signal.getsignal(signal.SIGTERM)})
        return Path(kw["out"] or "output/x")

    monkeypatch.setattr(render.build, "build_handout", fake)
    return calls


def test_build_arguments_become_one_call(build_calls, capsys):
    import signal

    before = signal.getsignal(signal.SIGTERM)
    ok(capsys, "build")
    ok(
        capsys,
        "build",
        "--spec",
        "part3",
        "--out",
        "x",
        "--format",
        "md,html",
        "--quiet",
        "--case",
        "c.json",
        "--train",
        "--train-steps",
        "5",
    )
    plain, full = build_calls
    assert plain["spec"].name == "seed" and full["spec"].name == "part3"
    keys = ("out", "formats", "quiet", "train", "train_steps", "case")
    assert {k: plain[k] for k in keys} == dict(out=None, formats=None, quiet=False, train=False, train_steps=None, case=None)
    assert {k: full[k] for k in keys} == dict(out="x", formats="md,html", quiet=True, train=True, train_steps=5, case="c.json")
    # SIGTERM ends a build through Python (so it removes its temporary folder), and only during the build.
    assert plain["sigterm"] not in (before, signal.SIG_DFL) and callable(plain["sigterm"])
    assert signal.getsignal(signal.SIGTERM) == before


def test_build_help_names_every_format_and_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main(["build", "--help"])
    assert info.value.code in (0, None)
    out = " ".join(capsys.readouterr().out.split())
    for word in ("md,tex,pdf,html", "--case", "'-' for stdin", "--train-steps", "output/seed-train", "figures/", "refuse"):
        assert word in out, word


def test_build_bad_case_from_stdin_subprocess(tmp_path):
    """What a user sees: one line naming the field, exit 2, no traceback, nothing written."""
    values = {**example("seed"), "W1": [[1, 2], [3, 4]]}
    proc = run("build", "--case", "-", "--out", str(tmp_path / "seed"), stdin=json.dumps(values))
    message = one_clean_line(proc.returncode, proc.stdout, proc.stderr)
    assert message.startswith("W1: "), message
    assert list(tmp_path.iterdir()) == []


def test_build_train_steps_alone_is_refused(capsys, tmp_path):
    message = one_clean_line(*cli(capsys, "build", "--train-steps", "5", "--out", str(tmp_path / "s")))
    assert message.startswith("--train-steps: "), message
    assert list(tmp_path.iterdir()) == []
