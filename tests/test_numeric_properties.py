"""Property tests: `compile_network` equals torch float64 autograd over random values and sizes.

Sizes: every (n, k) with n <= 8 and n - k + 1 even (including k = 1 and a 2 x 2 conv output).
Values come from three grids, chosen per example:
  * small integers in [-3, 3]           -> ties in pool windows and exact zeros in Z1 are common;
  * quarter-integers in [-4, 4]         -> still exact through Z2 (dyadic, few bits), more variety;
  * floats in [-3, 3]                   -> generic points; here an exact tie in real arithmetic can
    round differently under two summation orders, so kink-sensitive keys (masks, gradients) are
    only compared when the point is clearly away from the kinks; the grids above cover the kinks.
Tolerance as in test_numeric_oracles.py: per entry |a - e| <= 1e-10 |e| + 1e-13, masks exact.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import oracles as O
from symbolic.numeric import compile_network
from symbolic.spec import NetworkSpec

RTOL, ATOL = 1e-10, 1e-13
SETTINGS = settings(max_examples=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

KINDS = {
    "int": st.integers(-3, 3).map(float),
    "quarter": st.integers(-16, 16).map(lambda v: v / 4),
    "float": st.floats(-3, 3, allow_nan=False, allow_infinity=False),
}
LABELS = st.one_of(st.sampled_from([0.0, 1.0, 0.5, 0.3]), st.floats(0, 1))
BIG_B2 = st.sampled_from([1800.0, -1800.0, 800.0, -800.0, 40.0, -40.0])


@st.composite
def points(draw, batch_shape=()):
    n, k = draw(st.sampled_from(O.all_sizes(8)))
    _, _, m = O.sizes(n, k)
    kind = draw(st.sampled_from(sorted(KINDS)))
    el = KINDS[kind]
    bs = tuple(batch_shape)
    X = draw(arrays(np.float64, bs + (n, n), elements=el))
    W1 = draw(arrays(np.float64, bs + (k, k), elements=el))
    B1 = draw(arrays(np.float64, bs, elements=el))
    W2 = draw(arrays(np.float64, bs + (m,), elements=el))
    B2 = draw(arrays(np.float64, bs, elements=st.one_of(el, BIG_B2)))
    Y = draw(arrays(np.float64, bs, elements=LABELS))
    return n, k, kind, (X, W1, B1, W2, B2, Y)


SMOOTH_KEYS = ("Z1", "A1", "P1", "F", "Z2", "A2", "L")


def keys_to_compare(kind, pt):
    if kind != "float":
        return O.ALL_KEYS
    km = O.kink_margins(*pt)
    X, W1, B1 = (np.abs(np.asarray(a)) for a in pt[:3])
    scale = float(np.sum(W1) * np.max(X, initial=0.0) + B1 + 1.0)
    if km["relu"] > 1e-9 * scale and km["pool"] > 1e-9 * scale:
        return O.ALL_KEYS
    return SMOOTH_KEYS


def compare(n, k, kind, pt, out):
    ref = O.torch_reference(*pt)
    bad = O.mismatches(out, ref, keys_to_compare(kind, pt), RTOL, ATOL)
    assert not bad, f"({n},{k}) {kind} point disagrees with torch:\n{O.point_repr(pt)}\n" + "\n".join(bad)


@SETTINGS
@given(points())
def test_matches_torch(case):
    n, k, kind, pt = case
    out = compile_network(NetworkSpec(n=n, k=k))(*pt)
    for key in O.ALL_KEYS:
        assert np.all(np.isfinite(out[key])), (key, out[key])
    compare(n, k, kind, pt, out)


@SETTINGS
@given(st.data())
def test_batched_matches_torch(data):
    """A batch of independent points equals torch on each one (kinks included for the grids)."""
    batch = data.draw(st.sampled_from([(1,), (3,), (2, 2)]))
    n, k, kind, pt = data.draw(points(batch))
    out = compile_network(NetworkSpec(n=n, k=k))(*pt)
    for idx in np.ndindex(*batch):
        single = tuple(np.asarray(a)[idx] for a in pt)
        item = {key: out[key][idx] for key in O.ALL_KEYS}
        compare(n, k, kind, single, item)


@SETTINGS
@given(st.sampled_from(O.all_sizes(8)), st.integers(0, 2 ** 32 - 1), st.sampled_from([0.0, 0.3, 1.0]))
def test_constructed_ties_match_torch(nk, seed, y):
    """Z1 built window by window from the tie/zero patterns, with a random arrangement."""
    n, k = nk
    c, p, m = O.sizes(n, k)
    rng = np.random.default_rng(seed)
    pats = np.array(O.WINDOW_PATTERNS, dtype=float)
    choice = rng.integers(0, len(pats), size=(p, p))
    Z1 = pats[choice].transpose(0, 2, 1, 3).reshape(c, c)  # window (i, j) -> Z1[2i:2i+2, 2j:2j+2]
    W1 = np.zeros((k, k))          # W1[0, 0] = 1 plus one +-1 elsewhere keeps X small (exact, O(10))
    W1[0, 0] = 1.0
    if k > 1:
        a, b = rng.integers(0, k, size=2)
        if (a, b) != (0, 0):
            W1[a, b] = float(rng.choice([-1.0, 1.0]))
    X = O.solve_X_for_Z1(Z1, W1, 0.0, n, rng.integers(-2, 3, size=(n, n)).astype(float))
    W2 = rng.integers(-2, 3, size=m).astype(float)
    pt = (X, W1, np.asarray(0.0), W2, np.asarray(float(rng.integers(-2, 3))), np.asarray(y))
    out = compile_network(NetworkSpec(n=n, k=k))(*pt)
    assert np.array_equal(out["Z1"], Z1)
    compare(n, k, "int", pt, out)
