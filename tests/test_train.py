"""`cnn-derive train`: SGD with the symbolic gradients, held against a whole PyTorch trajectory.

The oracle replays a run in PyTorch float64 autograd: the same initial parameters, the same
mini-batches (`TrainResult.batches`, in the same sample order) and learning rate, with a
model written here from the layer names alone (conv2d, relu, max_pool2d, linear, and
binary_cross_entropy_with_logits or cross_entropy), sharing no code with the product. After
100 steps every parameter must agree to 1e-9 relative: a single wrong gradient entry, a wrong
tie or kink convention, a wrong mean over the batch or a wrong update would throw the
trajectories apart long before that.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from render.cli import main
from symbolic.errors import CnnDeriveError
from symbolic.spec import parse_spec, seed_spec
from symbolic.train import EXAMPLE_SPEC, TrainError, check_task, load_digits, train

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PREFIX = "cnn-derive: "
SMALL_SOFTMAX = {
    "name": "digits10-small",
    "input": [8, 8],
    "loss": "softmax_ce",
    "layers": [
        {"type": "conv2d", "filters": 1, "kernel": 3},
        {"type": "relu"},
        {"type": "maxpool", "window": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 10},
    ],
}


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def subset(images, labels, wanted, per_digit):
    rows = np.concatenate([np.flatnonzero(labels == d)[:per_digit] for d in wanted])
    rows.sort()
    return images[rows], labels[rows]


def torch_forward(p: dict, x: torch.Tensor) -> torch.Tensor:
    """conv 3×3 → ReLU → 2×2 max-pool → flatten → dense: the logits (batch × units)."""
    a1 = TF.relu(TF.conv2d(x, p["W1"], p["B1"]))
    return TF.linear(TF.max_pool2d(a1, 2).flatten(1), p["W2"], p["B2"])


def torch_trajectory(init: dict, images, labels, batches, lr: float, loss: str) -> dict:
    """Plain SGD in PyTorch float64 from ``init`` over the given mini-batches."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in init.items()}
        x = torch.tensor(images, dtype=torch.float64).reshape(-1, 1, 8, 8)
        for rows in batches:
            idx = torch.as_tensor(rows)
            z = torch_forward(p, x[idx])
            if loss == "bce":  # label 1 for the second digit, 8
                y = torch.tensor((labels[rows] == 8).astype(float), dtype=torch.float64)
                L = TF.binary_cross_entropy_with_logits(z[:, 0], y)
            else:  # ten classes: the digit is the class index
                L = TF.cross_entropy(z, torch.as_tensor(labels[rows]))
            grads = torch.autograd.grad(L, list(p.values()))
            with torch.no_grad():
                for t, g in zip(p.values(), grads):
                    t -= lr * g
        return {k: t.detach().numpy() for k, t in p.items()}
    finally:
        torch.set_num_threads(threads)


def assert_same_params(ours: dict, theirs: dict, rtol: float = 1e-9) -> None:
    assert ours.keys() == theirs.keys()
    for k in ours:
        a, b = np.asarray(ours[k]).reshape(np.shape(theirs[k])), theirs[k]
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0, err_msg=k)


# --------------------------------------------------------------------------------------------
# the oracle: whole trajectories
# --------------------------------------------------------------------------------------------
def test_bce_trajectory_matches_pytorch_over_100_steps(digits):
    images, labels = subset(*digits, (3, 8), 100)
    result = train(digits=(3, 8), steps=100, lr=0.5, batch_size=16, data=(images, labels), quiet=True)
    assert result.batches.shape == (100, 16)
    theirs = torch_trajectory(result.init_params, images, labels, result.batches, 0.5, "bce")
    assert_same_params(result.params, theirs)
    # The run went somewhere: parameters moved far from the start and the loss fell.
    moved = max(np.abs(result.params[k] - result.init_params[k]).max() for k in theirs)
    assert moved > 0.1
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]


def test_softmax_trajectory_matches_pytorch(digits):
    images, labels = subset(*digits, range(10), 20)
    spec = parse_spec(SMALL_SOFTMAX)
    result = train(spec, steps=15, lr=0.5, batch_size=16, data=(images, labels), quiet=True)
    assert result.classes == tuple(range(10))
    theirs = torch_trajectory(result.init_params, images, labels, result.batches, 0.5, "softmax")
    assert_same_params(result.params, theirs)


def test_defaults_reach_the_promised_accuracy():
    result = train(quiet=True)
    assert result.spec == seed_spec(8, 3) and result.classes == (3, 8)
    assert result.accuracy >= 0.9, result.accuracy
    assert result.history[-1]["step"] == 500


# --------------------------------------------------------------------------------------------
# the run's bookkeeping: split, order, determinism
# --------------------------------------------------------------------------------------------
def test_split_is_stratified_and_batches_come_from_the_training_rows(digits):
    images, labels = digits
    r = train(digits=(1, 7), steps=30, batch_size=50, data=(images, labels), quiet=True)
    rows = np.flatnonzero(np.isin(labels, (1, 7)))
    assert not set(r.train_idx) & set(r.heldout_idx)
    assert sorted([*r.train_idx, *r.heldout_idx]) == rows.tolist()
    for d in (1, 7):
        share = np.mean(labels[r.heldout_idx] == d) / np.mean(labels[rows] == d)
        assert abs(share - 1) < 0.05
        assert abs(np.sum(labels[r.heldout_idx] == d) / np.sum(labels[rows] == d) - 0.25) < 0.01
    flat = r.batches.ravel()
    assert set(flat) <= set(r.train_idx)
    epoch = len(r.train_idx)
    assert sorted(flat[:epoch]) == sorted(r.train_idx)  # each epoch is a permutation


def test_same_seed_same_run_other_seed_other_run(digits):
    images, labels = subset(*digits, (3, 8), 40)
    a, b, c = (train(steps=10, batch_size=8, seed=s, data=(images, labels), quiet=True) for s in (4, 4, 5))
    assert np.array_equal(a.batches, b.batches) and all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    assert not np.array_equal(a.batches, c.batches)
    assert not np.array_equal(a.init_params["W1"], c.init_params["W1"])


def test_digits_read_from_the_wheel_are_sklearns(digits, monkeypatch):
    from sklearn.datasets import load_digits as sk_load_digits

    import symbolic.train as train_module

    reference = sk_load_digits()
    images, labels = digits
    assert np.array_equal(images, reference.images / 16.0) and np.array_equal(labels, reference.target)
    monkeypatch.setattr(train_module, "_digits_file", lambda: None)  # the fallback: scikit-learn's own loader
    again = train_module.load_digits()
    assert np.array_equal(again[0], images) and np.array_equal(again[1], labels)


def test_help_example_is_a_spec_train_accepts():
    spec = parse_spec(tomllib.loads(EXAMPLE_SPEC))
    assert check_task(spec, None) == tuple(range(10))


# --------------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------------
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


def test_cli_writes_log_and_figure(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = cli(capsys, "train", "--steps", "40", "--out", str(out), "--quiet")
    assert (code, err) == (0, "")
    assert "held-out accuracy" in stdout and str(out) in stdout
    assert sorted(p.name for p in out.iterdir()) == ["log.json", "training.png"]
    log = json.loads((out / "log.json").read_text(encoding="utf-8"))
    assert log["config"]["steps"] == 40 and log["config"]["digits"] == [3, 8] and log["config"]["seed"] == 0
    assert [h["step"] for h in log["history"]] == list(range(0, 41, 2))
    assert set(log["history"][-1]) == {"step", "batch_loss", "train_loss", "train_accuracy", "heldout_loss", "heldout_accuracy"}
    assert log["final"]["heldout_accuracy"] == log["history"][-1]["heldout_accuracy"]
    assert set(log["seconds"]) == {"compile", "train", "total"} and set(log["params"]) == {"W1", "B1", "W2", "B2"}
    png = (out / "training.png").read_bytes()
    # Again into the same folder: replaced whole, byte-identical figure (no timestamps), nothing left over.
    assert cli(capsys, "train", "--steps", "40", "--out", str(out), "--quiet")[0] == 0
    assert (out / "training.png").read_bytes() == png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_cli_progress_on_stderr(capsys, tmp_path):
    code, _, err = cli(capsys, "train", "--steps", "10", "--out", str(tmp_path / "run"))
    assert code == 0 and "training" in err and "held-out accuracy" in err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--spec", "part3"], "--spec: part3 takes a 2×9×9 input; train needs an 8×8 input with one channel"),
        (["--digits", "1", "2", "3"], "--digits: bce tells two digits apart"),
        (["--digits", "3", "3"], "--digits: expected different digits, got 3 3"),
        (["--digits", "3", "12"], "--digits: expected digits 0 to 9, got 12"),
        (["--steps", "0"], "--steps: expected an integer >= 1, got 0"),
        (["--lr", "-1"], "--lr: expected a positive number, got -1.0"),
        (["--lr", "nan"], "--lr: expected a positive number, got nan"),
        (["--batch-size", "5000"], "--batch-size: expected at most the 267 training images, got 5000"),
        (["--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
        (["--steps", "ten"], "train: argument --steps: invalid int value: 'ten'"),
    ],
)
def test_cli_refusals(argv, expected, capsys, tmp_path):
    msg = one_clean_line(capsys, "train", "--quiet", "--out", str(tmp_path / "run"), *argv)
    assert msg.startswith(expected), msg
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary folder


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"loss": "mse"}, "--spec: loss mse is not trained here"),
        ({}, "--spec: softmax_ce over all ten digits needs 10 units in the last layer, got 3"),
    ],
)
def test_cli_refuses_specs_that_do_not_fit(change, expected, capsys, tmp_path):
    spec = dict(SMALL_SOFTMAX, name="three", **change)
    spec["layers"] = [*SMALL_SOFTMAX["layers"][:-1], {"type": "dense", "units": 3}]
    path = tmp_path / "three.toml"
    lines = [f'name = "{spec["name"]}"', "input = [8, 8]", f'loss = "{spec["loss"]}"']
    for layer in spec["layers"]:
        lines.append("[[layers]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in layer.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert one_clean_line(capsys, "train", "--spec", str(path), "--quiet").startswith(expected)


def test_softmax_with_fewer_digits(digits):
    spec = parse_spec(dict(SMALL_SOFTMAX, layers=[*SMALL_SOFTMAX["layers"][:-1], {"type": "dense", "units": 3}]))
    assert check_task(spec, (0, 1, 2)) == (0, 1, 2)
    with pytest.raises(TrainError, match="needs 3 units"):
        check_task(parse_spec(SMALL_SOFTMAX), (0, 1, 2))


def test_unwritable_out_fails_before_training_and_leaves_nothing(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    msg = one_clean_line(capsys, "train", "--quiet", "--out", str(blocker / "run"))
    assert msg == f"--out: cannot create {blocker / 'run'}: {blocker} is a file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep", encoding="utf-8")
    msg = one_clean_line(capsys, "train", "--quiet", "--out", str(foreign))
    assert msg.startswith(f"--out: {foreign} holds other files (notes.txt)")
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mine"]


def test_a_failure_while_writing_removes_the_temporary_folder(monkeypatch, tmp_path, digits):
    import symbolic.train as train_module

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(train_module, "plot_history", broken)
    images, labels = subset(*digits, (3, 8), 20)
    with pytest.raises(OSError):
        train(steps=2, batch_size=4, data=(images, labels), out=tmp_path / "run", quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_injected_data_is_checked():
    with pytest.raises(CnnDeriveError, match=r"data: expected images of shape \(n, 8, 8\)"):
        train(data=(np.zeros((10, 6, 6)), np.zeros(10, dtype=int)), quiet=True)
    with pytest.raises(CnnDeriveError, match="data: digit 8 has 0 images"):
        train(data=(np.zeros((10, 8, 8)), np.full(10, 3)), quiet=True)
