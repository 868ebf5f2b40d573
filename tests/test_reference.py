"""Tests of `reference`: the two oracles against each other, against finite differences and
against small cases computed by hand, so that the oracle the symbolic engine is held to is
itself trustworthy.

Comparisons between PyTorch and numpy use ``|a - b| <= rtol * max(|a|, |b|) + k * eps * s``
with s from `reference.error_scales`: plain relative tolerances cannot work where a result
cancels (a gradient summing terms of both signs differs by 1e-10 relative between two
summation orders; PyTorch's BCE for z << 0 and y = 0 cancels to 0). Cases computed by hand
are compared with plain relative tolerances (atol = 0).
"""

from __future__ import annotations

import copy
import math

import mpmath
import numpy as np
import pytest
import reference as R
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EPS = float(np.finfo(np.float64).eps)
RTOL = 1e-12
# Observed max |torch - numpy| / (eps * s) is about 3 on these specs; 16 leaves room for
# other BLAS builds while staying ~1e-14 relative to each value's own magnitude scale.
ULPS = 16.0


def _conv(filters: int, kernel, stride=None, padding=None) -> dict:
    layer = {"type": "conv2d", "filters": filters, "kernel": kernel}
    if stride is not None:
        layer["stride"] = stride
    if padding is not None:
        layer["padding"] = padding
    return layer


SEED = {
    "name": "seed",
    "input": [6, 6],
    "loss": "bce",
    "layers": [
        _conv(1, 3),
        {"type": "relu"},
        {"type": "maxpool", "window": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 1},
    ],
}

# The brief's part 3 used input [2, 8, 8]: 8 -> conv 3 -> 6, and a 3-window with stride 2
# does not tile 6 (it needs 6 - 3 even), so that spec is invalid; 9 x 9 makes it tile
# (9 -> 7 -> 3 -> 4 -> 2).
PART3 = {
    "name": "part3",
    "input": [2, 9, 9],
    "loss": "softmax_ce",
    "layers": [
        _conv(2, 3),
        {"type": "relu"},
        {"type": "maxpool", "window": 3, "stride": 2},
        _conv(2, 2, stride=1, padding=1),
        {"type": "tanh"},
        {"type": "avgpool", "window": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
    ],
}

STRIDED = {
    "name": "strided",
    "input": [7, 7],
    "loss": "mse",
    "layers": [
        _conv(2, 3, stride=2, padding=1),
        {"type": "leaky_relu", "slope": 0.1},
        {"type": "maxpool", "window": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
        {"type": "sigmoid"},
        {"type": "dense", "units": 2},
    ],
}

# Rectangular kernels, strides, padding and pool windows, two activations in a row.
RECT = {
    "name": "rect",
    "input": [2, 7, 6],
    "loss": "bce",
    "layers": [
        _conv(2, [3, 2], stride=[2, 1], padding=[1, 0]),
        {"type": "leaky_relu"},
        {"type": "tanh"},
        {"type": "maxpool", "window": [2, 3], "stride": [2, 1]},
        {"type": "flatten"},
        {"type": "dense", "units": 1},
    ],
}

LENET = {
    "name": "lenet",
    "input": [1, 12, 12],
    "loss": "softmax_ce",
    "layers": [
        _conv(2, 3),
        {"type": "relu"},
        {"type": "maxpool", "window": 2},
        _conv(3, 2),
        {"type": "relu"},
        {"type": "maxpool", "window": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 4},
        {"type": "relu"},
        {"type": "dense", "units": 3},
    ],
}

SPECS = [SEED, PART3, STRIDED, RECT, LENET]
SPEC_IDS = [s["name"] for s in SPECS]


# ----------------------------------------------------------------------------------------
# comparison helpers
# ----------------------------------------------------------------------------------------
def assert_rel(actual, desired, rtol: float, err_msg: str = "") -> None:
    """Relative comparison with atol = 0; entries that are exactly zero in both agree."""
    a = np.asarray(actual, dtype=np.float64)
    d = np.asarray(desired, dtype=np.float64)
    assert a.shape == d.shape, (err_msg, a.shape, d.shape)
    both_zero = (a == 0) & (d == 0)
    np.testing.assert_allclose(
        np.where(both_zero, 1.0, a),
        np.where(both_zero, 1.0, d),
        rtol=rtol,
        atol=0,
        err_msg=err_msg,
    )


def assert_within(x, y, s, rtol: float = RTOL, ulps: float = ULPS, what: str = "") -> None:
    """|x - y| <= rtol * max(|x|, |y|) + ulps * eps * s, entrywise (s: rounding scale)."""
    x, y, s = (np.asarray(v, dtype=np.float64) for v in (x, y, s))
    assert x.shape == y.shape == s.shape, (what, x.shape, y.shape, s.shape)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(y)), what
    assert np.all(s >= 0), what
    bound = rtol * np.maximum(np.abs(x), np.abs(y)) + ulps * EPS * s
    bad = np.abs(x - y) > bound
    if bad.any():
        i = tuple(np.argwhere(bad)[0])
        raise AssertionError(f"{what}{list(i)}: {x[i]!r} vs {y[i]!r} (scale {s[i]:.3g}), {int(bad.sum())} of {bad.size} entries differ")


def assert_agree(a: dict, b: dict, scales: dict, rtol: float = RTOL, ulps: float = ULPS, what: str = "") -> None:
    """Same keys, and every entry within rtol or within its rounding scale."""
    assert a.keys() == b.keys() == scales.keys(), what
    for key, value in a.items():
        assert_within(value, b[key], scales[key], rtol, ulps, f"{what} {key}")


def check_torch_numpy(spec: dict, case: dict, what: str) -> None:
    t = R.torch_reference(spec, case)
    n = R.numpy_reference(spec, case, ties="first")
    assert_agree(t, n, R.error_scales(spec, case), what=what)


# ----------------------------------------------------------------------------------------
# spec parsing, names, shapes
# ----------------------------------------------------------------------------------------
def test_seed_stage_names_and_shapes():
    assert R.stage_names(SEED) == ["Z1", "A1", "P1", "F", "Z2", "A2"]
    s = R.shapes(SEED)
    assert s == {
        "X": (6, 6),
        "W1": (1, 1, 3, 3),
        "B1": (1,),
        "W2": (1, 4),
        "B2": (1,),
        "Y": (),
        "Z1": (1, 4, 4),
        "A1": (1, 4, 4),
        "P1": (1, 2, 2),
        "F": (4,),
        "Z2": (1,),
        "A2": (1,),
        "output": (1,),
        "L": (),
    }


def test_part3_shapes_by_hand():
    s = R.shapes(PART3)
    # 9 -conv3-> 7 -pool3/2-> 3 -conv2,pad1-> 4 -avg2-> 2; flatten 2*2*2 = 8 -> 3 units.
    expected = {
        "X": (2, 9, 9),
        "W1": (2, 2, 3, 3),
        "B1": (2,),
        "W2": (2, 2, 2, 2),
        "B2": (2,),
        "W3": (3, 8),
        "B3": (3,),
        "Y": (3,),
        "Z1": (2, 7, 7),
        "A1": (2, 7, 7),
        "P1": (2, 3, 3),
        "Z2": (2, 4, 4),
        "A2": (2, 4, 4),
        "P2": (2, 2, 2),
        "F": (8,),
        "Z3": (3,),
        "A3": (3,),
        "output": (3,),
        "L": (),
    }
    assert s == expected
    assert list(s) == list(expected)  # stages in network order


def test_rect_and_strided_shapes_by_hand():
    s = R.shapes(RECT)
    # rows (7 + 2 - 3) // 2 + 1 = 4, cols (6 - 2) // 1 + 1 = 5; pool [2,3]/[2,1] -> 2 x 3
    assert s["Z1"] == (2, 4, 5) and s["P1"] == (2, 2, 3) and s["F"] == (12,)
    assert s["W1"] == (2, 2, 3, 2) and s["W2"] == (1, 12)
    s = R.shapes(STRIDED)
    # (7 + 2 - 3) // 2 + 1 = 4 -> pool 2 -> 2; flatten 2*2*2 = 8
    assert s["Z1"] == (2, 4, 4) and s["P1"] == (2, 2, 2) and s["W2"] == (3, 8)
    assert s["W3"] == (2, 3) and s["Y"] == (2,)


def test_repeated_names_get_suffixes():
    spec = {
        "input": [4, 4],
        "loss": "bce",
        "layers": [
            _conv(1, 1),
            {"type": "relu"},
            {"type": "tanh"},
            {"type": "maxpool", "window": 1},
            {"type": "avgpool", "window": 2},
            {"type": "flatten"},
            {"type": "flatten"},
            {"type": "dense", "units": 1},
            {"type": "sigmoid"},
        ],
    }
    names = ["Z1", "A1", "A1_2", "P1", "P1_2", "F", "F2", "Z2", "A2", "A2_2"]
    assert R.stage_names(spec) == names
    rng = np.random.default_rng(5)
    out = R.numpy_reference(spec, R.random_case(spec, rng))
    assert set(names) <= set(out)
    assert "dL/dA2" in out and "dL/dA2_2" not in out  # the link's output has no gradient


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda s: s["layers"].insert(3, {"type": "maxpool", "window": 3, "stride": 2}), "tile"),
        (lambda s: s["layers"].__delitem__(3), "flat"),  # dense right after a pool
        (lambda s: s["layers"][4].update(units=3), "bce"),
        (lambda s: s["layers"].append({"type": "softmax"}), "unknown type"),
        (lambda s: s["layers"][0].update(strides=2), "unknown keys"),
        (lambda s: s.update(ties="random"), "ties"),
        (lambda s: s.update(loss="hinge"), "loss"),
        (lambda s: s.update(input=[6]), "input"),
        (lambda s: s["layers"][0].update(kernel=0), "kernel"),
        (lambda s: s["layers"][0].update(filters=True), "filters"),
    ],
)
def test_invalid_specs_raise(change, match):
    spec = copy.deepcopy(SEED)
    change(spec)
    with pytest.raises(ValueError, match=match):
        R.shapes(spec)


def test_case_shapes_checked_and_squeezed_forms_accepted():
    rng = np.random.default_rng(1)
    case = R.random_case(SEED, rng)
    full = R.numpy_reference(SEED, case)
    squeezed = dict(
        case,
        W1=case["W1"].reshape(3, 3),
        B1=float(case["B1"][0]),
        W2=case["W2"].reshape(4),
        B2=float(case["B2"][0]),
    )
    for ref in (R.numpy_reference, R.torch_reference):
        out = ref(SEED, squeezed)
        assert out["dL/dW1"].shape == (1, 1, 3, 3)  # gradients always in full layout
        assert out["dL/dB2"].shape == (1,)
    for key, val in R.numpy_reference(SEED, squeezed).items():
        np.testing.assert_array_equal(val, full[key], err_msg=key)
    for bad in (
        dict(case, W1=np.zeros((2, 3, 3))),
        dict(case, W2=np.zeros(5)),
        dict(case, X=np.zeros((5, 5))),
        dict(case, Y=np.zeros(2)),
        dict(case, W3=np.zeros(1)),
        {k: v for k, v in case.items() if k != "B2"},
    ):
        with pytest.raises(ValueError):
            R.numpy_reference(SEED, bad)
        with pytest.raises(ValueError):
            R.torch_reference(SEED, bad)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_outputs_have_the_declared_shapes(spec):
    rng = np.random.default_rng(2)
    shp = R.shapes(spec)
    params = [k for k in shp if k[0] in "WB" and k[1:].isdigit()]
    for batch in (None, 3):
        case = R.random_case(spec, rng, batch=batch)
        lead = () if batch is None else (batch,)
        assert np.shape(case["X"]) == lead + shp["X"]
        assert np.shape(case["Y"]) == lead + shp["Y"]
        out = R.numpy_reference(spec, case)
        for name in R.stage_names(spec) + ["output"]:
            assert out[name].shape == lead + shp[name], name
        assert out["L"].shape == ()
        assert out["dL/dX"].shape == lead + shp["X"]
        for key in params:
            assert np.shape(case[key]) == shp[key]
            assert out["dL/d" + key].shape == shp[key], key  # parameters are never batched


# ----------------------------------------------------------------------------------------
# hand-computed cases
# ----------------------------------------------------------------------------------------
def _pool_spec(input_shape, window, stride=None, kind="maxpool") -> dict:
    pool = {"type": kind, "window": window}
    if stride is not None:
        pool["stride"] = stride
    return {"input": input_shape, "loss": "mse", "layers": [pool, {"type": "flatten"}]}


def _mse_labels_for_upstream(z, g) -> np.ndarray:
    # mse over n units: dL/dz = 2 (z - y) / n, so y = z - n g / 2 makes the upstream gradient g.
    z = np.asarray(z, dtype=np.float64)
    return z - z.size * np.asarray(g, dtype=np.float64) / 2.0


@pytest.mark.parametrize(
    ("ties", "expected"),
    [("first", [0, 6, 0, 0]), ("split", [0, 3, 3, 0]), ("all", [0, 6, 6, 0])],
)
def test_tie_conventions_on_one_window(ties, expected):
    spec = _pool_spec([2, 2], 2)
    case = {"X": np.array([[1.0, 3.0], [3.0, 0.0]]), "Y": _mse_labels_for_upstream([3.0], [6.0])}
    out = R.numpy_reference(spec, case, ties=ties)
    assert_rel(out["P0"], [[[3.0]]], 0)
    assert_rel(out["dL/dP0"], [[[6.0]]], 0)
    assert_rel(out["dL/dX"], np.reshape(expected, (2, 2)), 1e-15)
    if ties == "first":  # the convention PyTorch's CPU kernel follows
        assert_rel(R.torch_reference(spec, case)["dL/dX"], np.reshape(expected, (2, 2)), 0)


def test_default_ties_come_from_the_spec():
    case = {"X": np.array([[1.0, 3.0], [3.0, 0.0]]), "Y": _mse_labels_for_upstream([3.0], [6.0])}
    spec = dict(_pool_spec([2, 2], 2), ties="split")
    assert_rel(R.numpy_reference(spec, case)["dL/dX"], [[0, 3], [3, 0]], 1e-15)


# 3 x 3 input, 2 x 2 windows with stride 1 (overlapping); upstream g = 1, 2, 4, 8 for the
# windows in row-major order. Window maxima (all 3): w00 {(0,1),(1,0),(1,1)},
# w01 {(0,1),(0,2),(1,1)}, w10 {(1,0),(1,1),(2,1)}, w11 {(1,1),(2,1),(2,2)}.
OVERLAP_X = np.array([[1.0, 3.0, 3.0], [3.0, 3.0, 0.0], [2.0, 3.0, 3.0]])
OVERLAP_G = np.array([1.0, 2.0, 4.0, 8.0])
OVERLAP_EXPECTED = {
    # first maxima: w00 -> (0,1), w01 -> (0,1), w10 -> (1,0), w11 -> (1,1)
    "first": [[0, 1 + 2, 0], [4, 8, 0], [0, 0, 0]],
    # thirds of each window's gradient to each of its three maxima, summed per cell
    "split": [
        [0, (1 + 2) / 3, 2 / 3],
        [(1 + 4) / 3, (1 + 2 + 4 + 8) / 3, 0],
        [0, (4 + 8) / 3, 8 / 3],
    ],
    "all": [[0, 1 + 2, 2], [1 + 4, 1 + 2 + 4 + 8, 0], [0, 4 + 8, 8]],
}


@pytest.mark.parametrize("ties", R.TIES)
def test_overlapping_max_windows_by_hand(ties):
    spec = _pool_spec([3, 3], 2, stride=1)
    case = {"X": OVERLAP_X, "Y": _mse_labels_for_upstream([3.0] * 4, OVERLAP_G)}
    out = R.numpy_reference(spec, case, ties=ties)
    assert_rel(out["dL/dP0"], OVERLAP_G.reshape(1, 2, 2), 0)
    assert_rel(out["dL/dX"], OVERLAP_EXPECTED[ties], 1e-15)
    if ties == "first":
        # PyTorch: each window independently records its first maximum, and the backward
        # pass scatter-adds, so a cell that is first in two windows collects both.
        assert_rel(R.torch_reference(spec, case)["dL/dX"], OVERLAP_EXPECTED["first"], 0)


def test_overlapping_avg_windows_by_hand():
    spec = _pool_spec([3, 3], 2, stride=1, kind="avgpool")
    means = [(1 + 3 + 3 + 3) / 4, (3 + 3 + 3 + 0) / 4, (3 + 3 + 2 + 3) / 4, (3 + 0 + 3 + 3) / 4]
    case = {"X": OVERLAP_X, "Y": _mse_labels_for_upstream(means, OVERLAP_G)}
    # each cell gets g / 4 from every window it lies in
    expected = np.array([[1, 1 + 2, 2], [1 + 4, 15, 2 + 8], [4, 4 + 8, 8]]) / 4
    for ref in (R.numpy_reference, R.torch_reference):
        out = ref(spec, case)
        assert_rel(out["P0"], np.reshape(means, (1, 2, 2)), 1e-15)
        assert_rel(out["dL/dX"], expected, 1e-15)


@pytest.mark.parametrize(
    ("layer", "forward", "derivative"),
    [
        ({"type": "relu"}, [0, 0, 0.5, 2], [0, 0, 1, 1]),  # ReLU'(0) = 0
        ({"type": "leaky_relu", "slope": 0.25}, [-0.25, 0, 0.5, 2], [0.25, 0.25, 1, 1]),
        ({"type": "leaky_relu"}, [-0.01, 0, 0.5, 2], [0.01, 0.01, 1, 1]),  # default slope
    ],
)
def test_activation_kinks_by_hand(layer, forward, derivative):
    # X = (-1, 0, 0.5, 2) -> activation -> dense with W = (1, 1, 1, 1) -> mse with
    # upstream dL/dZ = 6, so dL/dX = 6 * activation'(X).
    spec = {
        "input": [1, 4],
        "loss": "mse",
        "layers": [{"type": "flatten"}, layer, {"type": "dense", "units": 1}],
    }
    z = sum(forward)
    case = {
        "X": [[-1.0, 0.0, 0.5, 2.0]],
        "W1": [1.0, 1.0, 1.0, 1.0],
        "B1": 0.0,
        "Y": _mse_labels_for_upstream([z], [6.0]),
    }
    for ref in (R.numpy_reference, R.torch_reference):
        out = ref(spec, case)
        assert_rel(out["A0"], forward, 1e-15)
        assert_rel(out["dL/dZ1"], [6.0], 1e-15)
        assert_rel(out["dL/dX"], 6.0 * np.reshape(derivative, (1, 4)), 1e-15)


def test_tanh_and_sigmoid_derivatives_by_hand():
    x = np.array([-1.0, 0.0, 0.5, 2.0])
    for kind, f, df in (
        ("tanh", np.tanh(x), 1 - np.tanh(x) ** 2),
        ("sigmoid", 1 / (1 + np.exp(-x)), np.exp(-x) / (1 + np.exp(-x)) ** 2),
    ):
        spec = {
            "input": [1, 4],
            "loss": "mse",
            "layers": [{"type": "flatten"}, {"type": kind}, {"type": "dense", "units": 1}],
        }
        case = {"X": [x], "W1": [1.0] * 4, "B1": 0.0, "Y": _mse_labels_for_upstream([f.sum()], [6.0])}
        for ref in (R.numpy_reference, R.torch_reference):
            out = ref(spec, case)
            assert_rel(out["A0"], f, 1e-14)
            assert_rel(out["dL/dX"], [6.0 * df], 1e-13)


def _loss_spec(loss: str, n: int) -> dict:
    return {"input": [1, n], "loss": loss, "layers": [{"type": "flatten"}]}


@pytest.mark.parametrize(
    ("z", "y", "L", "dz"),
    [
        (0.0, 0.3, math.log(2), 0.5 - 0.3),
        (2.0, 1.0, math.log1p(math.exp(-2.0)), 1 / (1 + math.exp(-2.0)) - 1),
        (-1800.0, 1.0, 1800.0, -1.0),  # saturated: softplus(1800) is exactly 1800
        (1800.0, 0.0, 1800.0, 1.0),
        (800.0, 0.3, 0.7 * 800.0, 0.7),
        (-40.0, 0.0, math.log1p(math.exp(-40.0)), 1 / (1 + math.exp(40.0))),
    ],
)
def test_bce_by_hand(z, y, L, dz):
    spec = _loss_spec("bce", 1)
    case = {"X": [[z]], "Y": y}
    out = R.numpy_reference(spec, case)
    assert_rel(out["L"], L, 1e-15)
    assert_rel(out["dL/dX"], [[dz]], 1e-15)
    assert_rel(out["output"], [1 / (1 + math.exp(-z)) if z > -700 else 0.0], 1e-15)
    check_torch_numpy(spec, case, f"bce z={z} y={y}")


def test_bce_tiny_loss_is_accurate_in_numpy():
    # L = softplus(z) - y z at z = -47, y = 0 is log1p(e^-47) ~ 3.9e-21. The stable form
    # keeps all its digits. PyTorch computes (1 - y) z - log_sigmoid(z) = -47 - (-47 - 3.9e-21),
    # which rounds to 0: agreement there holds only within error_scales, not relatively.
    spec = _loss_spec("bce", 1)
    case = {"X": [[-47.0]], "Y": 0.0}
    exact = mpmath.log1p(mpmath.exp(mpmath.mpf(-47)))
    assert_rel(R.numpy_reference(spec, case)["L"], float(exact), 1e-15)
    check_torch_numpy(spec, case, "bce z=-47")


def test_softmax_ce_and_mse_by_hand():
    out = R.numpy_reference(_loss_spec("softmax_ce", 3), {"X": [[0.0, 0.0, 0.0]], "Y": [0, 1, 0]})
    assert_rel(out["L"], math.log(3), 1e-15)
    assert_rel(out["output"], [1 / 3] * 3, 1e-15)
    assert_rel(out["dL/dX"], [[1 / 3, 1 / 3 - 1, 1 / 3]], 1e-15)
    # labels that do not sum to 1 (PyTorch accepts them): dL/dz = p * sum(y) - y
    case = {"X": [[0.0, 0.0]], "Y": [1.0, 1.0]}
    out = R.numpy_reference(_loss_spec("softmax_ce", 2), case)
    assert_rel(out["L"], 2 * math.log(2), 1e-15)
    assert_rel(out["dL/dX"], [[0.0, 0.0]], 0)
    check_torch_numpy(_loss_spec("softmax_ce", 2), case, "softmax unnormalized")
    # saturated: z = (1800, -1800, 0), soft label: L = -sum y log p with log p = (0, -3600, -1800)
    case = {"X": [[1800.0, -1800.0, 0.0]], "Y": [0.5, 0.25, 0.25]}
    out = R.numpy_reference(_loss_spec("softmax_ce", 3), case)
    assert_rel(out["L"], 0.25 * 3600 + 0.25 * 1800, 1e-15)
    assert_rel(out["dL/dX"], [[1 - 0.5, -0.25, -0.25]], 1e-15)
    check_torch_numpy(_loss_spec("softmax_ce", 3), case, "softmax saturated")
    # mse: mean over units, then over the batch
    case = {"X": [[[1.0, 2.0]], [[0.0, 4.0]]], "Y": [[0.0, 0.0], [1.0, 1.0]]}
    out = R.numpy_reference(_loss_spec("mse", 2), case)
    assert_rel(out["L"], ((1 + 4) / 2 + (1 + 9) / 2) / 2, 1e-15)
    assert_rel(out["dL/dX"], [[[2 * 1 / 4, 2 * 2 / 4]], [[2 * -1 / 4, 2 * 3 / 4]]], 1e-15)
    check_torch_numpy(_loss_spec("mse", 2), case, "mse batch")


def test_seed_by_hand():
    # X = 1, W1 = 1, B1 = 0: Z1 = 9 everywhere, every pool window ties (first = top-left),
    # F = (9, 9, 9, 9), W2 = (1, -1, 1, -1), B2 = 0: Z2 = 0, A2 = 1/2, Y = 1: L = log 2,
    # dL/dZ2 = -1/2, dL/dF = -W2 / 2, dL/dW2 = -9/2, dL/dB2 = -1/2.
    case = {
        "X": np.ones((6, 6)),
        "W1": np.ones((3, 3)),
        "B1": 0.0,
        "W2": [1.0, -1.0, 1.0, -1.0],
        "B2": 0.0,
        "Y": 1.0,
    }
    dA1 = np.zeros((1, 4, 4))
    dA1[0, 0, 0], dA1[0, 0, 2], dA1[0, 2, 0], dA1[0, 2, 2] = -0.5, 0.5, -0.5, 0.5
    # dW1[u, v] = sum dZ1[i, j] X[i+u, j+v] = sum dZ1 = 0; dX[r, c] = sum dZ1[i, j] W1[..]
    dX = np.zeros((6, 6))
    for (i, j), g in (((0, 0), -0.5), ((0, 2), 0.5), ((2, 0), -0.5), ((2, 2), 0.5)):
        dX[i : i + 3, j : j + 3] += g
    expected = {
        "Z1": np.full((1, 4, 4), 9.0),
        "P1": np.full((1, 2, 2), 9.0),
        "F": np.full(4, 9.0),
        "Z2": [0.0],
        "A2": [0.5],
        "output": [0.5],
        "L": math.log(2),
        "dL/dZ2": [-0.5],
        "dL/dF": [-0.5, 0.5, -0.5, 0.5],
        "dL/dA1": dA1,
        "dL/dZ1": dA1,
        "dL/dW1": np.zeros((1, 1, 3, 3)),
        "dL/dB1": [0.0],
        "dL/dW2": np.full((1, 4), -4.5),
        "dL/dB2": [-0.5],
        "dL/dX": dX,
    }
    for ref in (R.numpy_reference, R.torch_reference):
        out = ref(SEED, case)
        for key, val in expected.items():
            assert_rel(out[key], val, 1e-15, err_msg=f"{ref.__name__} {key}")


def test_conv_stride_padding_by_hand():
    # One 3x3 input, 2x2 kernel, stride 2, padding 1: the padded input is 5x5 and the four
    # windows start at (0,0), (0,2), (2,0), (2,2). With W = [[1, 2], [3, 4]], B = 0.5:
    x = np.arange(1.0, 10.0).reshape(3, 3)
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    xp = np.pad(x, 1)
    z = np.array([[np.sum(xp[r : r + 2, c : c + 2] * w) + 0.5 for c in (0, 2)] for r in (0, 2)])
    assert_rel(z, [[4 * 1 + 0.5, 3 * 2 + 4 * 3 + 0.5], [2 * 4 + 4 * 7 + 0.5, 1 * 5 + 2 * 6 + 3 * 8 + 4 * 9 + 0.5]], 0)
    spec = {
        "input": [3, 3],
        "loss": "mse",
        "layers": [_conv(1, 2, stride=2, padding=1), {"type": "flatten"}],
    }
    g = np.array([1.0, 2.0, 4.0, 8.0])
    case = {"X": x, "W1": w, "B1": 0.5, "Y": _mse_labels_for_upstream(z.ravel(), g)}
    # dW[u, v] = sum_windows g * xp[r+u, c+v]; dX = sum_windows g * W on the window's cells
    dW = sum(gk * xp[r : r + 2, c : c + 2] for gk, (r, c) in zip(g, [(0, 0), (0, 2), (2, 0), (2, 2)]))
    dxp = np.zeros((5, 5))
    for gk, (r, c) in zip(g, [(0, 0), (0, 2), (2, 0), (2, 2)]):
        dxp[r : r + 2, c : c + 2] += gk * w
    for ref in (R.numpy_reference, R.torch_reference):
        out = ref(spec, case)
        assert_rel(out["Z1"], z.reshape(1, 2, 2), 1e-15)
        assert_rel(out["dL/dW1"], dW.reshape(1, 1, 2, 2), 1e-15)
        assert_rel(out["dL/dB1"], [g.sum()], 1e-15)
        assert_rel(out["dL/dX"], dxp[1:4, 1:4], 1e-15)


# ----------------------------------------------------------------------------------------
# the two references against each other
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_torch_and_numpy_agree_at_random_points(spec):
    rng = np.random.default_rng(10)
    for k in range(6):
        batch = (None, 4)[k % 2]
        case = R.random_case(spec, rng, batch=batch)
        check_torch_numpy(spec, case, f"{spec['name']} random {k}")


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_torch_and_numpy_agree_at_hard_points(spec):
    rng = np.random.default_rng(11)
    for k, case in enumerate(R.hard_points(spec, rng, 15)):
        check_torch_numpy(spec, case, f"{spec['name']} hard {k}")


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_error_scales_are_tight(spec):
    # The scale must stay far below the values themselves, or comparisons through it would
    # accept anything: at random points ULPS * eps * s is below 1e-10 of each array's size.
    rng = np.random.default_rng(16)
    case = R.random_case(spec, rng, batch=2)
    out, scales = R.numpy_reference(spec, case), R.error_scales(spec, case)
    for key, value in out.items():
        s = scales[key]
        assert s.shape == np.shape(value) and np.all(s >= np.abs(value) * (1 - 1e-12)), key
        assert ULPS * EPS * s.max() <= 1e-10 * np.abs(value).max(), key


def test_plain_relative_agreement_where_nothing_cancels():
    # The seed at a point with all-positive X, W1 and W2 (no sum cancels) and a label that
    # keeps dL/dZ2 away from 0: here plain rtol = 1e-12 with atol = 0 must hold everywhere.
    rng = np.random.default_rng(12)
    for _ in range(5):
        case = {
            "X": rng.uniform(0.5, 1.5, (6, 6)),
            "W1": rng.uniform(0.1, 0.3, (1, 1, 3, 3)),
            "B1": [0.1],
            "W2": rng.uniform(0.1, 0.3, (1, 4)),
            "B2": [-0.2],
            "Y": 0.0,
        }
        t, n = R.torch_reference(SEED, case), R.numpy_reference(SEED, case)
        for key in t:
            assert_rel(t[key], n[key], RTOL, err_msg=key)


@pytest.mark.parametrize("spec", [SEED, PART3], ids=["seed", "part3"])
def test_batch_is_the_mean_of_samples(spec):
    rng = np.random.default_rng(13)
    case = R.random_case(spec, rng, batch=3)
    scales = R.error_scales(spec, case)
    for ref in (R.numpy_reference, R.torch_reference):
        whole = ref(spec, case)
        parts = []
        for b in range(3):
            one = {k: (v[b] if k in ("X", "Y") else v) for k, v in case.items()}
            parts.append(ref(spec, one))
        for key in whole:
            stacked = np.stack([p[key] for p in parts])
            if key == "L" or (key[:4] == "dL/d" and key[4] in "WB" and key[5:].isdigit()):
                want = stacked.mean(axis=0)  # L and parameter gradients: batch means
            elif key.startswith("dL/d"):
                want = stacked / 3  # per-sample gradients carry the mean's 1/3
            else:
                want = stacked  # stage values: the samples side by side
            assert_within(whole[key], want, scales[key], what=f"{ref.__name__} {key}")


def test_tie_conventions_coincide_without_ties():
    # At random points the only ties are windows of ReLU zeros; those change dL/dA (where
    # the gradient lands among the zeros) but nothing else, because ReLU'(z < 0) = 0 then.
    rng = np.random.default_rng(14)
    for spec in SPECS:
        names = R.stage_names(spec)
        pool_inputs = {"dL/d" + (names[i - 1] if i else "X") for i, layer in enumerate(spec["layers"]) if layer["type"] == "maxpool"}
        case = R.random_case(spec, rng, batch=2)
        first = R.numpy_reference(spec, case, ties="first")
        for ties in ("split", "all"):
            other = R.numpy_reference(spec, case, ties=ties)
            for key in first:
                a, b = other[key], first[key]
                if key in pool_inputs:
                    value = first[key[4:]] if key != "dL/dX" else case["X"]
                    a, b = a[value != 0], b[value != 0]
                np.testing.assert_array_equal(a, b, err_msg=f"{spec['name']} {ties} {key}")


@pytest.mark.parametrize("spec", [SEED, PART3, LENET], ids=["seed", "part3", "lenet"])
def test_tie_conventions_conserve_the_window_gradient(spec):
    # Per max-pool: "first" and "split" pass on exactly the gradient each window receives
    # (sum of dL/dA over the pool's input = sum of dL/dP, up to rounding).
    rng = np.random.default_rng(15)
    pools = [(i, layer) for i, layer in enumerate(spec["layers"]) if layer["type"] == "maxpool"]
    names = R.stage_names(spec)
    differs = False
    for case in R.hard_points(spec, rng, 10):
        for ties in R.TIES:
            out = R.numpy_reference(spec, case, ties=ties)
            for i, _ in pools:
                dP = out["dL/d" + names[i]]
                dA = out["dL/d" + names[i - 1]]
                if ties != "all":
                    assert abs(dA.sum() - dP.sum()) <= 1e-12 * np.abs(dP).sum(), (ties, i)
        first = R.numpy_reference(spec, case, ties="first")
        split = R.numpy_reference(spec, case, ties="split")
        differs |= any(not np.array_equal(first["dL/d" + names[i - 1]], split["dL/d" + names[i - 1]]) for i, _ in pools)
    assert differs, "hard points never put a tie where the gradient is nonzero"


# ----------------------------------------------------------------------------------------
# central differences (numpy forward only, at points away from every kink)
# ----------------------------------------------------------------------------------------
def _smooth_case(spec: dict, rng: np.random.Generator, batch=None, margin=1e-2) -> dict:
    for _ in range(200):
        case = R.random_case(spec, rng, batch=batch)
        if R.kink_margin(spec, case) > margin:
            return case
    raise AssertionError("no smooth random point found")


def _loss_at(spec: dict, case: dict) -> float:
    return float(R.numpy_reference(spec, case)["L"])


@pytest.mark.parametrize(
    ("spec", "batch"),
    [(SEED, None), (PART3, None), (STRIDED, 2), (RECT, None), (LENET, None)],
    ids=["seed", "part3", "strided-batch", "rect", "lenet"],
)
def test_central_differences_agree_with_numpy(spec, batch):
    rng = np.random.default_rng(20)
    case = _smooth_case(spec, rng, batch=batch)
    grads = R.numpy_reference(spec, case)
    h = 1e-4  # 4th-order stencil: truncation ~h^4, rounding ~eps/h, both far below 1e-6
    keys = ["X"] + [k for k in R.shapes(spec) if k[0] in "WB" and k[1:].isdigit()]
    checked = 0
    for key in keys:
        base = np.asarray(case[key], dtype=np.float64)
        # Every entry of small arrays, a random sample of large ones (time).
        flat = np.arange(base.size)
        if base.size > 8:
            flat = rng.choice(base.size, size=8, replace=False)
        for f in flat:
            idx = np.unravel_index(f, base.shape)
            vals = []
            for step in (-2, -1, 1, 2):
                moved = base.copy()
                moved[idx] += step * h
                vals.append(_loss_at(spec, dict(case, **{key: moved})))
            # Differences first: where L does not move at all, this is exactly 0.
            cd = (8 * (vals[2] - vals[1]) - (vals[3] - vals[0])) / (12 * h)
            want = grads["dL/d" + key][idx]
            assert_rel(cd, want, 1e-6, err_msg=f"{spec['name']} dL/d{key}{list(idx)}")
            checked += 1
    assert checked >= 20


def test_kink_margin_sees_kinks():
    case = {"X": np.ones((6, 6)), "W1": np.ones((3, 3)), "B1": 0.0, "W2": np.ones(4), "B2": 0.0, "Y": 1.0}
    assert R.kink_margin(SEED, case) == 0.0  # every pool window ties
    case["B1"] = -9.0  # Z1 = 0 exactly: a ReLU kink
    assert R.kink_margin(SEED, case) == 0.0
    case["B1"] = -20.0  # all dead: ties among zeros that stay zeros nearby are no kink
    assert R.kink_margin(SEED, case) == 11.0
    x = np.zeros((6, 6))
    x[0, 0] = 1.0  # Z1[0, 0] = 1 + B1 is the only positive cell when B1 = -0.5
    case.update(X=x, B1=-0.5)
    assert R.kink_margin(SEED, case) == 0.5


# ----------------------------------------------------------------------------------------
# the generators of test points
# ----------------------------------------------------------------------------------------
TANH_POOL = [{"type": "tanh"}, {"type": "maxpool", "window": [1, 2]}]
AVG_CONV_RELU = [{"type": "avgpool", "window": [1, 2]}, _conv(1, 1), {"type": "relu"}]


@pytest.mark.parametrize(
    ("layers", "x", "ambiguous"),
    [
        # tanh(19) is 1.0 in numpy but 1 - 2^-53 in PyTorch: whether the window ties
        # depends on the implementation ...
        (TANH_POOL, [[19.0, 20.0]], True),
        # ... unless the tied values come from equal inputs, which tie in any implementation
        (TANH_POOL, [[19.0, 19.0]], False),
        (TANH_POOL, [[1.0, 2.0]], False),
        ([{"type": "maxpool", "window": [1, 2]}], [[3.0, 3.0]], False),  # integers: exact
        # 3 * (1/3 + 1/3) / 2 - 1 is 0 or 1e-16 depending on rounding: the ReLU's side is
        # not defined; with integer inputs it is exactly 2
        (AVG_CONV_RELU, [[1 / 3, 1 / 3]], True),
        (AVG_CONV_RELU, [[1.0, 1.0]], False),
    ],
)
def test_ambiguous_kinks_are_recognised(layers, x, ambiguous):
    spec = {"input": [1, 2], "loss": "mse", "layers": [*layers, {"type": "flatten"}]}
    case = {"X": x, "Y": np.zeros(R.shapes(spec)["Y"])}
    if layers is AVG_CONV_RELU:
        case.update(W1=3.0, B1=-1.0)
    plan = R.parse_spec(spec)
    assert R._ambiguous_kinks(plan, R._normalize_case(plan, case)) is ambiguous


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
def test_hard_points_are_exact_deterministic_and_valid(spec):
    a = R.hard_points(spec, np.random.default_rng(30), 12)
    b = R.hard_points(spec, np.random.default_rng(30), 12)
    assert len(a) == 12
    shp = R.shapes(spec)
    for ca, cb in zip(a, b):
        assert ca.keys() == cb.keys()
        for key in ca:
            np.testing.assert_array_equal(ca[key], cb[key])
            arr = np.asarray(ca[key], dtype=np.float64)
            assert arr.shape == shp[key], key
            if key != "Y":
                # integers, so sums are exact in float64 whatever the order
                assert np.all(arr == np.round(arr)) and np.all(np.abs(arr) < 2.0**40), key
    ys = [c["Y"] for c in a]
    if spec["loss"] == "bce":
        assert {float(y) for y in ys} == {0.0, 0.3, 1.0}
    elif spec["loss"] == "softmax_ce":
        for y in ys:
            assert np.all(np.asarray(y) >= 0) and math.isclose(np.sum(y), 1.0)
        assert any(np.max(y) == 1.0 for y in ys) and any(np.max(y) < 1.0 for y in ys)
    last_bias = [k for k in shp if k.startswith("B")][-1]
    biases = {float(v) for c in a for v in np.ravel(c[last_bias])}
    assert {40.0, -40.0, 800.0, -800.0, 1800.0, -1800.0} <= biases


def _has_tied_window(a: np.ndarray, layer: dict) -> bool:
    """Does some max-pool window of the (c, h, w) map `a` hold its maximum twice?"""
    kh, kw = np.broadcast_to(layer["window"], 2)
    sh, sw = np.broadcast_to(layer.get("stride", layer["window"]), 2)
    a = a.reshape((-1, *a.shape[-2:]))
    for r in range(0, a.shape[1] - kh + 1, sh):
        for c in range(0, a.shape[2] - kw + 1, sw):
            win = a[:, r : r + kh, c : c + kw].reshape(a.shape[0], -1)
            if np.any((win == win.max(axis=1, keepdims=True)).sum(axis=1) > 1):
                return True
    return False


@pytest.mark.parametrize("spec", [SEED, PART3, LENET, RECT], ids=["seed", "part3", "lenet", "rect"])
def test_hard_points_hit_kinks(spec):
    names = R.stage_names(spec)
    layers = spec["layers"]
    zero_pre_relu = tie_in_pool = saturated = False
    for case in R.hard_points(spec, np.random.default_rng(31), 10):
        out = R.numpy_reference(spec, case)
        for i, layer in enumerate(layers):
            inp = out[names[i - 1]] if i else np.asarray(case["X"])
            if layer["type"] in ("relu", "leaky_relu") and np.any(inp == 0):
                zero_pre_relu = True
            if layer["type"] == "maxpool":
                tie_in_pool |= _has_tied_window(inp, layer)
        z = out[names[-2]]
        saturated |= bool(np.max(np.abs(z)) >= 40)
    assert zero_pre_relu and tie_in_pool and saturated


def test_random_case_labels_are_valid():
    rng = np.random.default_rng(32)
    y = R.random_case(SEED, rng)["Y"]
    assert isinstance(y, float) and 0 <= y <= 1
    ys = R.random_case(SEED, rng, batch=5)["Y"]
    assert ys.shape == (5,) and np.all((ys >= 0) & (ys <= 1))
    p = R.random_case(PART3, rng, batch=4)["Y"]
    assert p.shape == (4, 3) and np.allclose(p.sum(axis=1), 1) and np.all(p >= 0)
    assert R.random_case(STRIDED, rng)["Y"].shape == (2,)


# ----------------------------------------------------------------------------------------
# random specs
# ----------------------------------------------------------------------------------------
@st.composite
def specs(draw) -> dict:
    c = draw(st.integers(1, 2))
    h, w = draw(st.integers(3, 8)), draw(st.integers(3, 8))
    spec_input = [h, w] if c == 1 and draw(st.booleans()) else [c, h, w]
    shape = (c, h, w)
    layers: list[dict] = []
    for _ in range(draw(st.integers(0, 3))):
        C, H, W = shape
        kind = draw(st.sampled_from(["conv2d", "maxpool", "avgpool", "act"]))
        if kind == "conv2d":
            ph, pw = draw(st.integers(0, 1)), draw(st.integers(0, 1))
            kh, kw = draw(st.integers(1, min(3, H + 2 * ph))), draw(st.integers(1, min(3, W + 2 * pw)))
            sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
            f = draw(st.integers(1, 2))
            layers.append(_conv(f, [kh, kw], stride=[sh, sw], padding=[ph, pw]))
            shape = (f, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1)
        elif kind in ("maxpool", "avgpool"):
            rows = [(k, s) for k in range(1, 4) for s in range(1, 4) if k <= H and (H - k) % s == 0]
            cols = [(k, s) for k in range(1, 4) for s in range(1, 4) if k <= W and (W - k) % s == 0]
            (kh, sh), (kw, sw) = draw(st.sampled_from(rows)), draw(st.sampled_from(cols))
            layers.append({"type": kind, "window": [kh, kw], "stride": [sh, sw]})
            shape = (C, (H - kh) // sh + 1, (W - kw) // sw + 1)
        else:
            act = draw(st.sampled_from(R.ACTIVATIONS))
            layers.append({"type": act, "slope": 0.2} if act == "leaky_relu" else {"type": act})
    layers.append({"type": "flatten"})
    if draw(st.booleans()):
        layers.append({"type": "dense", "units": draw(st.integers(1, 3))})
        layers.append({"type": draw(st.sampled_from(R.ACTIVATIONS))})
    loss = draw(st.sampled_from(R.LOSSES))
    units = 1 if loss == "bce" else draw(st.integers(1, 3))
    layers.append({"type": "dense", "units": units})
    return {"name": "random", "input": spec_input, "loss": loss, "layers": layers}


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(spec=specs(), seed=st.integers(0, 2**32 - 1))
def test_torch_and_numpy_agree_on_random_specs(spec, seed):
    rng = np.random.default_rng(seed)
    check_torch_numpy(spec, R.random_case(spec, rng, batch=2), f"{spec} random")
    for k, case in enumerate(R.hard_points(spec, rng, 3)):
        check_torch_numpy(spec, case, f"{spec} hard {k}")
