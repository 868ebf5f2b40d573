"""Every number agrees with independent oracles: PyTorch float64 autograd, a hand-written numpy
reference for the tie conventions PyTorch does not have, and mpmath where the loss is smooth.

Two float64 implementations that sum in different orders differ by rounding, which grows
where terms cancel. So a value v passes against a reference r when
|v − r| <= 1e-10 |r| + 64 eps s, where s is the reference's own first-order rounding scale
(``reference.error_scales``: the sum of the magnitudes of every term). It is computed per
entry from the point, not an absolute floor: a wrong formula or routing changes a result by
about its own size, far above 64 eps s.
"""

from __future__ import annotations

import dataclasses
import math

import mpmath
import numpy as np
import pytest
import reference as R
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symbolic.errors import CaseError
from symbolic.numeric import compile_network
from symbolic.rules import prove_all
from symbolic.spec import load_spec, parse_spec, presets

RTOL = 1e-10
EPS = np.finfo(float).eps
PRESETS = ("seed", "part3", "lenet-tiny")


def spec_dict(name: str) -> dict:
    return tomllib.loads(presets()[name].read_text(encoding="utf-8"))


BACKENDS = ("llvm", "numpy")


def run(spec, case: dict, backend: str = "auto") -> dict:
    c = dict(case)
    return compile_network(spec, backend=backend)(c.pop("X"), c.pop("Y"), **c)


def assert_close(ours: dict, ref: dict, scales: dict | None, where: str) -> int:
    """Compare every key both have; returns how many keys were compared."""
    compared = 0
    for key, want in ref.items():
        if key not in ours:
            continue
        got = np.asarray(ours[key], dtype=float)
        want = np.asarray(want, dtype=float).reshape(got.shape)
        tol = RTOL * np.abs(want)
        if scales is not None and key in scales:
            tol = tol + 64 * EPS * np.asarray(scales[key], dtype=float).reshape(got.shape)
        bad = np.abs(got - want) > tol
        assert not bad.any(), f"{where}: {key} differs at {np.argwhere(bad)[0].tolist()}: ours {got[bad][0]!r}, reference {want[bad][0]!r}"
        compared += 1
    return compared


def with_ties(d: dict, ties: str) -> dict:
    return {**d, "ties": ties}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", PRESETS)
def test_random_points_agree_with_torch(name, backend):
    d = spec_dict(name)
    spec = load_spec(name)
    rng = np.random.default_rng(7)
    for _ in range(4):
        case = R.random_case(d, rng)
        n = assert_close(run(spec, case, backend), R.torch_reference(d, case), R.error_scales(d, case), f"{name} ({backend})")
        assert n >= len(spec.stages) - 1  # stages, their gradients and the parameters were all compared


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", PRESETS)
def test_hard_points_agree_with_torch(name, backend):
    d = spec_dict(name)
    spec = load_spec(name)
    rng = np.random.default_rng(11)
    points = R.hard_points(d, rng, 34)
    assert len(points) == 34
    for case in points:
        ours, ref = run(spec, case, backend), R.torch_reference(d, case)
        scales = R.error_scales(d, case)
        # PyTorch's BCE loses the loss itself for z << 0 (its two terms cancel); mpmath is the oracle there.
        ref = {k: v for k, v in ref.items() if not (k == "L" and d["loss"] == "bce")}
        assert_close(ours, ref, scales, f"{name} hard point")


@pytest.mark.parametrize("name", PRESETS)
def test_batched_points_agree_with_torch_per_sample_and_in_the_mean(name):
    d = spec_dict(name)
    spec = load_spec(name)
    case = R.random_case(d, np.random.default_rng(3), batch=5)
    ours = run(spec, case)
    for i in range(5):
        one = {k: (v[i] if k in ("X", "Y") else v) for k, v in case.items()}
        ref = R.torch_reference(d, one)
        assert_close({k: v[i] for k, v in ours.items()}, ref, R.error_scales(d, one), f"{name} sample {i}")
    c = dict(case)
    mean = compile_network(spec)(c.pop("X"), c.pop("Y"), mean=True, **c)
    ref = R.torch_reference(d, case)  # PyTorch on the batch: the mean loss and its gradients
    for key in ("L", *(f"dL/d{p}" for p in spec.param_shapes)):
        np.testing.assert_allclose(mean[key], np.asarray(ref[key]).reshape(np.shape(mean[key])), rtol=1e-9, atol=0)


@pytest.mark.parametrize("ties", ["first", "split", "all"])
@pytest.mark.parametrize("name", ["seed", "part3"])
def test_tie_conventions_agree_with_the_numpy_reference(name, ties):
    d = with_ties(spec_dict(name), ties)
    spec = parse_spec(d)
    rng = np.random.default_rng(5)
    points = R.hard_points(d, rng, 12) + [R.random_case(d, rng)]
    differs = 0
    for case in points:
        ours, ref = run(spec, case), R.numpy_reference(d, case, ties)
        assert_close(ours, ref, R.error_scales(d, case), f"{name} ties={ties}")
        first = R.numpy_reference(d, case, "first")
        differs += any(not np.array_equal(first[k], ref[k]) for k in ref if k.startswith("dL/d"))
    if ties != "first":
        assert differs, "no point had a tie: the convention was not exercised"


def test_split_and_all_differ_from_first_on_a_tied_window():
    d = with_ties(spec_dict("seed"), "split")
    case = {"X": np.ones((6, 6)), "W1": np.ones((3, 3)), "B1": 0.0, "W2": np.array([1.0, -2.0, 0.5, 1.0]), "B2": 0.0, "Y": 1.0}
    split = run(parse_spec(d), case)["dL/dA1"][0]
    first = run(load_spec(), case)["dL/dA1"][0]
    every = run(parse_spec(with_ties(d, "all")), case)["dL/dA1"][0]
    # All of A1 ties (every entry is 9): first sends each window's gradient to its top-left cell.
    assert np.count_nonzero(first) == 4 and np.count_nonzero(split) == 16 and np.count_nonzero(every) == 16
    np.testing.assert_allclose(split.sum(), first.sum(), rtol=1e-14)
    np.testing.assert_allclose(every.sum(), 4 * first.sum(), rtol=1e-14)


# -- mpmath: the loss over its whole range ------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("y", [0.0, 0.3, 1.0])
def test_bce_loss_has_full_relative_precision_everywhere(y, backend):
    spec = load_spec()
    z2 = np.concatenate(
        [
            np.linspace(-1800, 1800, 361),
            [-40, -36, -30, -1e-3, 0.0, 1e-3, 30, 36, 40],
            -np.log(np.linspace(1e-3, 0.2, 50)),
            np.log(np.linspace(1e-3, 0.2, 50)),
        ]
    )
    # Zero input and weights make Z2 = B2 exactly: L as a function of Z2 alone.
    out = compile_network(spec, backend=backend)(np.zeros((6, 6)), y, W1=np.zeros((3, 3)), B1=0.0, W2=np.zeros(4), B2=z2)
    worst = 0.0
    with mpmath.workdps(1000):  # enough digits that log1p(e^z) − y z does not cancel even at |z| = 1800
        for z, L, g in zip(z2, out["L"], out["dL/dB2"][:, 0]):
            mz = mpmath.mpf(float(z))
            exact = mpmath.log1p(mpmath.exp(mz)) - mpmath.mpf(y) * mz
            dexact = 1 / (1 + mpmath.exp(-mz)) - mpmath.mpf(y)
            assert L >= 0
            if abs(exact) < mpmath.mpf("2.3e-308"):  # below float64's normal range: 0 or a subnormal is right
                assert 0 <= L < 2.3e-308, (z, L, exact)
            else:
                worst = max(worst, float(abs((mpmath.mpf(float(L)) - exact) / exact)))
            # dL/dZ2 = A2 - Y cancels where A2 is near Y (PyTorch's too): its error scale is A2 + Y.
            sigma = 1 / (1 + mpmath.exp(-mz))
            # (Below float64's smallest number only the rounded value can be asked for.)
            assert abs(mpmath.mpf(float(g)) - dexact) <= max(4 * EPS * (sigma + y), 2.3e-308), (z, g, dexact)
    assert worst < 1e-13, worst


def test_smooth_network_gradients_agree_with_mpmath_central_differences():
    from symbolic.check import central_differences
    from symbolic.network import build

    spec = load_spec("lenet-tiny")  # tanh, avg-pool and softmax: smooth everywhere
    d = spec_dict("lenet-tiny")
    case = R.random_case(d, np.random.default_rng(2))
    out = run(spec, case)
    net = build(spec)
    names = list(net.entries())
    values = np.concatenate([np.ravel(case[p]) for p in spec.param_shapes])
    grads = np.concatenate([np.ravel(out[f"dL/d{p}"]) for p in spec.param_shapes])
    diffs = central_differences(spec, case["X"], dict(zip(names, values)), case["Y"], dict(zip(names, grads)), dps=40)
    assert len(diffs) == spec.n_params
    for d_ in diffs:
        assert abs(d_.derivative - d_.central) <= 1e-12 * abs(d_.central), d_


# -- hypothesis: random valid specs -----------------------------------------------------------------------


@st.composite
def specs(draw) -> dict:
    c, h, w = draw(st.integers(1, 2)), draw(st.integers(2, 6)), draw(st.integers(2, 6))
    layers: list[dict] = []
    shape = (c, h, w)
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["conv2d", "relu", "leaky_relu", "tanh", "sigmoid", "maxpool", "avgpool"]))
        _, hh, ww = shape
        if kind == "conv2d":
            k = draw(st.integers(1, min(3, hh, ww)))
            p = draw(st.integers(0, k - 1))
            s = draw(st.sampled_from([s for s in (1, 2) if (hh + 2 * p - k) % s == 0 and (ww + 2 * p - k) % s == 0]))
            f = draw(st.integers(1, 2))
            layers.append({"type": "conv2d", "filters": f, "kernel": k, "stride": s, "padding": p})
            shape = (f, (hh + 2 * p - k) // s + 1, (ww + 2 * p - k) // s + 1)
        elif kind in ("maxpool", "avgpool"):
            win = draw(st.integers(1, min(3, hh, ww)))
            strides = [s for s in (1, 2, 3) if s <= win and (hh - win) % s == 0 and (ww - win) % s == 0]
            s = draw(st.sampled_from(strides))
            layers.append({"type": kind, "window": win, "stride": s})
            shape = (shape[0], (hh - win) // s + 1, (ww - win) // s + 1)
        elif kind == "leaky_relu":
            layers.append({"type": kind, "slope": draw(st.sampled_from([0.01, 0.1, 0.25]))})
        else:
            layers.append({"type": kind})
    layers.append({"type": "flatten"})
    loss = draw(st.sampled_from(["bce", "softmax_ce", "mse"]))
    units = {"bce": 1, "softmax_ce": draw(st.integers(2, 3)), "mse": draw(st.integers(1, 3))}[loss]
    layers.append({"type": "dense", "units": units})
    return {"input": [c, h, w], "loss": loss, "ties": draw(st.sampled_from(["first", "split", "all"])), "layers": layers}


@settings(max_examples=25, deadline=None, derandomize=True, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
@given(d=specs(), seed=st.integers(0, 2**31 - 1), hard=st.booleans())
def test_random_specs_are_proven_and_agree_with_the_references(d, seed, hard):
    spec = parse_spec(d)
    results = prove_all(spec, end_to_end="none")
    assert all(r.proven for r in results), [r.rule.name for r in results if not r.proven]
    rng = np.random.default_rng(seed)
    case = R.hard_points(d, rng, 1)[0] if hard else R.random_case(d, rng)
    ours = run(spec, case)
    ref = R.torch_reference(d, case) if d["ties"] == "first" else R.numpy_reference(d, case, d["ties"])
    if hard and d["loss"] == "bce":
        ref.pop("L")  # PyTorch's BCE form loses the tiny loss itself; mpmath checks it above
    assert_close(ours, ref, R.error_scales(d, case), f"spec {d}")


# -- the API's own guards ---------------------------------------------------------------------------------


def test_a_one_by_m_weight_is_one_weight_not_a_batch():
    net = compile_network(load_spec())
    out = net(np.ones((6, 6)), 1.0, W1=np.ones((3, 3)), B1=0.0, W2=np.ones((1, 4)), B2=0.0)
    assert out["dL/dW2"].shape == (1, 4) and out["L"].shape == ()


def test_labels_out_of_range_are_refused_by_the_api():
    net = compile_network(load_spec())
    with pytest.raises(CaseError, match="^Y: "):
        net(np.ones((6, 6)), 2.0, W1=np.ones((3, 3)), B1=0.0, W2=np.ones(4), B2=0.0)


def test_overflow_is_refused_not_printed_as_nan():
    net = compile_network(load_spec())
    with pytest.raises(CaseError, match="^X: .*overflow"):
        net(np.full((6, 6), 1e308), 1.0, W1=np.ones((3, 3)), B1=0.0, W2=np.ones(4), B2=0.0)


def test_symbolic_batch_spec_evaluates_per_sample():
    d = {**spec_dict("seed"), "batch": 2}
    spec = parse_spec(d)
    case = R.random_case(spec_dict("seed"), np.random.default_rng(1))
    a, b = run(spec, case), run(load_spec(), case)
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
    assert dataclasses.replace(spec, batch=1) == dataclasses.replace(load_spec(), name=spec.name)
    assert math.isfinite(float(a["L"]))
