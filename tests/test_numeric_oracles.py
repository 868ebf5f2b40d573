"""`symbolic.numeric.compile_network` against two independent references (see tests/oracles.py).

Tolerances
----------
* Against central differences at 50 digits (exact derivative at the float64 point, see
  `oracles.central_difference_gradients`): norm-wise per key, max|a - e| <= 1e-12 * max|e|.
  Norm-wise, because a single entry such as dL/dW1[a, b] = sum_ij dL/dZ1[i, j] X[i+a, j+b] can
  cancel, and then its float64 rounding error (~ c^2 * eps * sum|terms| ~ 1e-14 * scale of the key)
  is large relative to that entry but not relative to the key. The absolute floor (1e-300) only
  lets an all-zero key match an all-zero reference.
* Against torch float64: per entry, |a - e| <= 1e-10 * |e| + 1e-13. Both sides are float64 with
  different summation orders, so they differ by a few ulps of the *terms*; for the O(1)-O(100)
  values used here that is < 1e-13 absolute, which is the floor. Masks must match exactly, and
  at the hard points every value up to Z2 is an integer, so ties and zeros are exact in any order.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import oracles as O
from symbolic.numeric import compile_network
from symbolic.spec import NetworkSpec

SIZES = [(6, 3), (5, 2), (7, 2), (8, 3)]
TORCH_RTOL, TORCH_ATOL = 1e-10, 1e-13
CD_RTOL, CD_ATOL = 1e-12, 1e-300
FORWARD_FLOAT_KEYS = ("Z1", "A1", "P1", "F", "Z2", "A2", "L")


def run(n: int, k: int, pt):
    return compile_network(NetworkSpec(n=n, k=k))(*pt)


def check(bad, pt, what):
    assert not bad, f"{what} disagrees at\n{O.point_repr(pt)}\n" + "\n".join(bad)


# ----------------------------------------------------------------------------------- contract
@pytest.mark.parametrize("n,k", SIZES)
def test_output_keys_shapes_dtypes(n, k):
    out = run(n, k, O.random_point(n, k, np.random.default_rng(7)))
    missing = set(O.ALL_KEYS) - set(out)
    assert not missing, f"missing keys {sorted(missing)}"
    for key in O.ALL_KEYS:
        a = out[key]
        assert isinstance(a, np.ndarray), (key, type(a))
        assert a.dtype == np.float64, (key, a.dtype)
        assert a.shape == O.shape_of(key, n, k), (key, a.shape)


def test_compile_network_is_cached_per_spec():
    a = compile_network(NetworkSpec(n=6, k=3))
    assert compile_network(NetworkSpec(n=6, k=3)) is a
    assert compile_network(NetworkSpec(n=5, k=2)) is not a


def test_accepts_lists_and_python_scalars_and_does_not_mutate_inputs():
    n, k = 6, 3
    pt = O.random_point(n, k, np.random.default_rng(3))
    copies = [np.array(a, copy=True) for a in pt]
    out_arr = run(n, k, pt)
    for a, b in zip(pt, copies):
        assert np.array_equal(a, b), "compile_network mutated an input"
    as_lists = [np.asarray(a).tolist() for a in pt]  # B1, B2, Y become Python floats
    out_list = run(n, k, as_lists)
    check(O.mismatches(out_list, out_arr, O.ALL_KEYS, 0.0, 0.0), pt, "list input vs array input")


# ------------------------------------------------------------------- (a) central differences
@pytest.mark.parametrize("n,k", SIZES)
@pytest.mark.parametrize("seed", [0, 1])
def test_central_differences_all_gradients(n, k, seed):
    """Every gradient, including the intermediates, at a point away from all kinks (no dead windows)."""
    pt = O.random_point(n, k, np.random.default_rng(100 + seed), allow_dead_windows=False)
    out = run(n, k, pt)
    ref = O.central_difference_gradients(*pt, h="1e-15", dps=50)
    check(O.mismatches(out, ref, list(ref), CD_RTOL, CD_ATOL, normwise=True), pt, "central differences")


@pytest.mark.parametrize("n,k", SIZES)
def test_central_differences_parameters_with_dead_windows(n, k):
    """Parameter gradients where some pool windows are entirely negative (smooth for parameters)."""
    rng = np.random.default_rng(200 + n)
    for _ in range(1000):
        pt = O.random_point(n, k, rng)
        if O.kink_margins(*pt)["dead_windows"]:
            break
    else:
        pytest.fail("no point with a dead window found")
    out = run(n, k, pt)
    ref = O.central_difference_gradients(*pt, intermediates=False)
    check(O.mismatches(out, ref, O.PARAM_GRAD_KEYS, CD_RTOL, CD_ATOL, normwise=True), pt,
          "central differences (parameters)")


@pytest.mark.parametrize("n,k", SIZES)
def test_forward_against_mpmath(n, k):
    pt = O.random_point(n, k, np.random.default_rng(300 + n))
    out = run(n, k, pt)
    fwd = O.mpmath_forward(*pt, dps=40)
    ref = {key: O.to_float(fwd[key]) for key in FORWARD_FLOAT_KEYS}
    check(O.mismatches(out, ref, FORWARD_FLOAT_KEYS, CD_RTOL, CD_ATOL, normwise=True), pt, "mpmath forward")
    assert abs(out["L"] - float(O.mpmath_loss(*pt))) <= 1e-12 * abs(float(O.mpmath_loss(*pt)))


# ------------------------------------------------------------------------------ (b) torch
@pytest.mark.parametrize("n,k", SIZES)
@pytest.mark.parametrize("seed", range(4))
def test_torch_random_points(n, k, seed):
    rng = np.random.default_rng(400 + seed)
    X = rng.standard_normal((n, n)) * 2
    W1 = rng.standard_normal((k, k))
    B1 = np.asarray(rng.standard_normal())
    W2 = rng.standard_normal(O.sizes(n, k)[2])
    B2 = np.asarray(rng.standard_normal())
    Y = np.asarray(rng.uniform())
    pt = (X, W1, B1, W2, B2, Y)
    check(O.mismatches(run(n, k, pt), O.torch_reference(*pt), O.ALL_KEYS, TORCH_RTOL, TORCH_ATOL),
          pt, "torch")


HARD = [(n, k, name) for n, k in SIZES for name in O.hard_points(n, k)]


@pytest.mark.parametrize("n,k,name", HARD, ids=[f"{n}x{k}-{name}" for n, k, name in HARD])
def test_torch_hard_points(n, k, name):
    pt = O.hard_points(n, k)[name]
    check(O.mismatches(run(n, k, pt), O.torch_reference(*pt), O.ALL_KEYS, TORCH_RTOL, TORCH_ATOL),
          pt, f"torch at hard point {name}")


def test_hard_points_really_are_hard():
    """Guard against the helpers silently drifting away from the kinks they are meant to hit."""
    for n, k in SIZES:
        pts = O.hard_points(n, k)
        r = O.torch_reference(*pts["constant_X_ties_positive"])
        assert np.all(r["Z1"] == r["Z1"][0, 0]) and r["Z1"][0, 0] > 0
        r = O.torch_reference(*pts["constant_X_Z1_all_zero"])
        assert np.all(r["Z1"] == 0.0)
        r = O.torch_reference(*pts["Z1_zero_at_median"])
        assert np.any(r["Z1"] == 0.0) and np.any(r["Z1"] > 0) and np.any(r["Z1"] < 0)
        r = O.torch_reference(*pts["all_windows_negative"])
        assert np.all(r["Z1"] < 0)
        r = O.torch_reference(*pts["repeated_column_pairs_left_column_filter"])
        assert np.array_equal(r["Z1"][:, 0::2], r["Z1"][:, 1::2])
        r = O.torch_reference(*pts["repeated_row_pairs_top_row_filter"])
        assert np.array_equal(r["Z1"][0::2, :], r["Z1"][1::2, :])
        for tag, z in (("pos1800", 1800.0), ("neg1800", -1800.0)):
            assert O.torch_reference(*pts[f"saturated_{tag}_y0"])["Z2"] == z
    # the constructed windows cover every pattern, and torch picks the first maximum
    r = O.torch_reference(*O.hard_points(6, 3)["constructed_windows_0"])
    assert np.array_equal(r["Z1"], O.constructed_Z1(4, 0))
    assert r["pool_mask"][0:2, 2:4].tolist() == [[1, 0], [0, 0]]   # pattern 1: all-zero A1 -> slot 0
    assert r["pool_mask"][2:4, 0:2].tolist() == [[0, 1], [0, 0]]   # pattern 2: tie 3,3 -> slot 1


# ------------------------------------------------------------------------------- batching
@pytest.mark.parametrize("n,k", [(6, 3), (5, 2)])
def test_batched_equals_stack_of_unbatched(n, k):
    c, p, m = O.sizes(n, k)
    rng = np.random.default_rng(500 + n)
    # batch shape (2, 3) from broadcasting differently-shaped leading axes; some entries integer
    # valued (ties and zeros) so the kink handling is exercised in batched form too
    X = rng.integers(-2, 3, size=(2, 3, n, n)).astype(float)
    X[1] = rng.standard_normal((3, n, n))
    W1 = rng.integers(-2, 3, size=(k, k)).astype(float)             # unbatched
    B1 = np.array([0.0, -1.0, 0.5])                                    # (3,)
    W2 = rng.standard_normal((2, 1, m))                                # (2, 1, m)
    B2 = np.asarray(0.25)                                              # ()
    Y = np.array([[0.0, 1.0, 0.3], [1.0, 0.5, 0.0]])                   # (2, 3)
    out = run(n, k, (X, W1, B1, W2, B2, Y))
    for key in O.ALL_KEYS:
        assert out[key].shape == (2, 3) + O.shape_of(key, n, k), (key, out[key].shape)
    for i, j in itertools.product(range(2), range(3)):
        pt = (X[i, j], W1, B1[j], W2[i, 0], B2, Y[i, j])
        single = run(n, k, pt)
        item = {key: out[key][i, j] for key in O.ALL_KEYS}
        check(O.mismatches(item, single, O.ALL_KEYS, 1e-14, 1e-300, normwise=True), pt,
              f"batched[{i},{j}] vs unbatched")
        check(O.mismatches(item, O.torch_reference(*pt), O.ALL_KEYS, TORCH_RTOL, TORCH_ATOL), pt,
              f"batched[{i},{j}] vs torch")


def test_batch_of_one_keeps_its_axis():
    n, k = 6, 3
    pt = O.random_point(n, k, np.random.default_rng(9))
    batched = [np.asarray(a)[None] for a in pt]
    out = run(n, k, batched)
    for key in O.ALL_KEYS:
        assert out[key].shape == (1,) + O.shape_of(key, n, k), key


# ----------------------------------------------------------------------- saturation acceptance
@pytest.mark.parametrize("z2,y,dB2", [(-1800.0, 1.0, -1.0), (1800.0, 0.0, 1.0)])
def test_saturation_acceptance(z2, y, dB2):
    n, k = 6, 3
    rng = np.random.default_rng(11)
    X = rng.integers(-3, 4, size=(n, n)).astype(float)
    W1 = rng.integers(-2, 3, size=(k, k)).astype(float)
    B1 = np.asarray(1.0)
    W2 = rng.integers(-2, 3, size=O.sizes(n, k)[2]).astype(float)
    B2 = O.with_Z2(X, W1, B1, W2, z2)
    pt = (X, W1, B1, W2, B2, np.asarray(y))
    out = run(n, k, pt)
    for key, v in out.items():
        assert np.all(np.isfinite(v)), f"{key} is not finite: {v!r}"
    assert out["Z2"] == z2
    assert abs(out["L"] - 1800.0) <= 1e-12 * 1800.0, out["L"]
    assert abs(out["dL/dB2"] - dB2) <= 1e-12, out["dL/dB2"]
    assert abs(out["dL/dZ2"] - dB2) <= 1e-12, out["dL/dZ2"]
    assert out["A2"] == (0.0 if z2 < 0 else 1.0)
    check(O.mismatches(out, O.torch_reference(*pt), O.ALL_KEYS, TORCH_RTOL, TORCH_ATOL), pt, "torch")


# ---------------------------------------------------------------------------- test self-checks
def test_oracles_agree_with_each_other():
    """torch and central differences agree, so neither oracle is wrong in the same way as the other."""
    for n, k in SIZES:
        pt = O.random_point(n, k, np.random.default_rng(600 + n), allow_dead_windows=False)
        ref = O.central_difference_gradients(*pt)
        check(O.mismatches(O.torch_reference(*pt), ref, list(ref), CD_RTOL * 10, CD_ATOL, normwise=True),
              pt, "torch vs central differences")


def test_comparison_can_fail():
    """The comparison helper rejects a wrong tie-break, a ReLU'(0) = 1 and a tiny gradient error."""
    pt = O.hard_points(6, 3)["constructed_windows_0"]
    ref = O.torch_reference(*pt)
    wrong = dict(ref)
    wrong["pool_mask"] = ref["pool_mask"][::-1, ::-1].copy()
    assert O.mismatches(wrong, ref, ["pool_mask"], TORCH_RTOL, TORCH_ATOL)
    wrong = dict(ref)
    wrong["dL/dZ1"] = ref["dL/dA1"] * (ref["Z1"] >= 0)              # ReLU'(0) = 1
    assert O.mismatches(wrong, ref, ["dL/dZ1"], TORCH_RTOL, TORCH_ATOL)
    wrong = dict(ref)
    wrong["dL/dW2"] = ref["dL/dW2"] * (1 + 1e-9)
    assert O.mismatches(wrong, ref, ["dL/dW2"], TORCH_RTOL, TORCH_ATOL)
