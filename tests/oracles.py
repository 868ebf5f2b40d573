"""Independent references for the lecture's CNN, written from scratch (nothing from `symbolic/`).

Network: X (n x n) -> valid cross-correlation with W1 (k x k) + scalar B1 -> Z1 (c x c, c = n-k+1)
-> ReLU -> A1 -> 2x2 max-pool, stride 2 -> P1 (c/2 x c/2) -> row-major flatten -> F (m = (c/2)^2)
-> Z2 = W2.F + B2 -> A2 = sigmoid(Z2) -> L = softplus(Z2) - Y*Z2  (BCE with logits, soft Y allowed).

Two references:

* `torch_reference`: PyTorch float64 autograd on CPU. It *defines* the kink conventions the
  project promises (ReLU'(0) = 0; max-pool routes the gradient to the first maximum of each window
  in row-major order), and also gives the intermediate gradients via ``retain_grad``.
* `mpmath_forward` / `mpmath_loss` / `central_difference_gradients`: plain-Python loops at high
  precision. Because the float64 inputs are converted to mpf exactly, these give the exact value
  (to ~dps digits) of the loss and of its derivatives *at the float64 input point*, so a float64
  implementation can be held to a tolerance close to its own rounding error.

And `hard_points`: integer-valued (hence exactly representable, order-of-summation independent)
inputs that sit on the kinks: ties in every pool window, exact zeros in Z1, dead windows,
saturated sigmoid both ways, soft labels.
"""
from __future__ import annotations

import itertools
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import mpmath
import numpy as np
import torch
import torch.nn.functional as TF

POOL = 2

FORWARD_KEYS = ("Z1", "A1", "relu_mask", "pool_mask", "P1", "F", "Z2", "A2", "L")
INTERMEDIATE_GRAD_KEYS = ("dL/dZ1", "dL/dA1", "dL/dP1", "dL/dF", "dL/dZ2")
PARAM_GRAD_KEYS = ("dL/dW1", "dL/dB1", "dL/dW2", "dL/dB2")
ALL_KEYS = FORWARD_KEYS + INTERMEDIATE_GRAD_KEYS + PARAM_GRAD_KEYS
MASK_KEYS = ("relu_mask", "pool_mask")

Point = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


# --------------------------------------------------------------------------------------------
# sizes
# --------------------------------------------------------------------------------------------
def sizes(n: int, k: int) -> Tuple[int, int, int]:
    """(c, c/2, m) for an n x n input and a k x k filter; c must be even."""
    c = n - k + 1
    if k < 1 or c < 2 or c % POOL:
        raise ValueError(f"bad sizes n={n}, k={k}: need k >= 1 and n-k+1 even and >= 2")
    return c, c // POOL, (c // POOL) ** 2


def shape_of(key: str, n: int, k: int) -> Tuple[int, ...]:
    """Unbatched shape of each output key (the contract of `compile_network`)."""
    c, p, m = sizes(n, k)
    if key in ("Z1", "A1", "relu_mask", "pool_mask", "dL/dA1", "dL/dZ1"):
        return (c, c)
    if key in ("P1", "dL/dP1"):
        return (p, p)
    if key in ("F", "dL/dF", "dL/dW2"):
        return (m,)
    if key == "dL/dW1":
        return (k, k)
    if key in ("Z2", "A2", "L", "dL/dZ2", "dL/dB1", "dL/dB2"):
        return ()
    raise KeyError(key)


def _as_point(X, W1, B1, W2, B2, Y) -> Point:
    X, W1, B1, W2, B2, Y = (np.asarray(a, dtype=np.float64) for a in (X, W1, B1, W2, B2, Y))
    if X.ndim != 2 or X.shape[0] != X.shape[1]:
        raise ValueError(f"X must be n x n (unbatched), got {X.shape}")
    if W1.ndim != 2 or W1.shape[0] != W1.shape[1]:
        raise ValueError(f"W1 must be k x k (unbatched), got {W1.shape}")
    n, k = X.shape[0], W1.shape[0]
    _, _, m = sizes(n, k)
    if W2.shape != (m,):
        raise ValueError(f"W2 must have shape ({m},), got {W2.shape}")
    for name, a in (("B1", B1), ("B2", B2), ("Y", Y)):
        if a.shape != ():
            raise ValueError(f"{name} must be a scalar (unbatched), got shape {a.shape}")
    return X, W1, B1, W2, B2, Y


# --------------------------------------------------------------------------------------------
# reference 1: torch float64 autograd
# --------------------------------------------------------------------------------------------
def torch_reference(X, W1, B1, W2, B2, Y) -> Dict[str, np.ndarray]:
    """Every output key of `compile_network`, for one unbatched point, via torch float64 autograd."""
    X, W1, B1, W2, B2, Y = _as_point(X, W1, B1, W2, B2, Y)
    n, k = X.shape[0], W1.shape[0]
    c, p, m = sizes(n, k)
    f64 = torch.float64

    Xt = torch.tensor(X, dtype=f64)
    W1t = torch.tensor(W1, dtype=f64, requires_grad=True)
    B1t = torch.tensor(B1, dtype=f64, requires_grad=True)  # 0-d leaf
    W2t = torch.tensor(W2, dtype=f64, requires_grad=True)
    B2t = torch.tensor(B2, dtype=f64, requires_grad=True)  # 0-d leaf
    Yt = torch.tensor(Y, dtype=f64)

    Z1 = TF.conv2d(Xt[None, None], W1t[None, None], B1t.reshape(1))[0, 0]  # cross-correlation
    A1 = TF.relu(Z1)
    P1 = TF.max_pool2d(A1[None, None], kernel_size=POOL, stride=POOL)[0, 0]
    Fl = P1.reshape(-1)  # row-major
    Z2 = TF.linear(Fl[None], W2t[None], B2t.reshape(1))[0, 0]
    A2 = torch.sigmoid(Z2)
    L = TF.binary_cross_entropy_with_logits(Z2, Yt)
    for t in (Z1, A1, P1, Fl, Z2):
        t.retain_grad()
    L.backward()

    with torch.no_grad():
        _, idx = TF.max_pool2d(A1.detach()[None, None], kernel_size=POOL, stride=POOL, return_indices=True)
        pool_mask = torch.zeros(c * c, dtype=f64)
        pool_mask[idx.reshape(-1)] = 1.0
        pool_mask = pool_mask.reshape(c, c)
        relu_mask = (Z1.detach() > 0).to(f64)

    def np_(t: torch.Tensor) -> np.ndarray:
        return np.array(t.detach().numpy(), dtype=np.float64, copy=True)

    out = {
        "Z1": np_(Z1), "A1": np_(A1), "relu_mask": np_(relu_mask), "pool_mask": np_(pool_mask),
        "P1": np_(P1), "F": np_(Fl), "Z2": np_(Z2), "A2": np_(A2), "L": np_(L),
        "dL/dZ1": np_(Z1.grad), "dL/dA1": np_(A1.grad), "dL/dP1": np_(P1.grad), "dL/dF": np_(Fl.grad),
        "dL/dZ2": np_(Z2.grad),
        "dL/dW1": np_(W1t.grad), "dL/dB1": np_(B1t.grad), "dL/dW2": np_(W2t.grad), "dL/dB2": np_(B2t.grad),
    }
    for key, val in out.items():
        assert val.shape == shape_of(key, n, k), (key, val.shape)
    return out


# --------------------------------------------------------------------------------------------
# reference 2: mpmath, plain Python
# --------------------------------------------------------------------------------------------
def _mp(a) -> object:
    """Exact conversion float64 -> mpf (mpf(float) is exact), recursively into nested lists."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return mpmath.mpf(float(a))
    return [_mp(x) for x in a]


def _softplus(z):
    # log(1 + e^z) without cancellation for z << 0; mpmath's exponent range is unbounded.
    if z > 0:
        return z + mpmath.log1p(mpmath.exp(-z))
    return mpmath.log1p(mpmath.exp(z))


def _conv(X, W1, B1) -> List[List]:
    n, k = len(X), len(W1)
    c = n - k + 1
    return [[mpmath.fsum(W1[a][b] * X[i + a][j + b] for a in range(k) for b in range(k)) + B1
             for j in range(c)] for i in range(c)]


def _relu(Z1) -> List[List]:
    return [[z if z > 0 else mpmath.mpf(0) for z in row] for row in Z1]


def _pool(A1) -> List[List]:
    c = len(A1)
    return [[max(A1[POOL * i + a][POOL * j + b] for a in range(POOL) for b in range(POOL))
             for j in range(c // POOL)] for i in range(c // POOL)]


def _flatten(P1) -> List:
    return [v for row in P1 for v in row]


def _dense(Fl, W2, B2):
    return mpmath.fsum(w * f for w, f in zip(W2, Fl)) + B2


def _loss_from_Z2(Z2, Y):
    return _softplus(Z2) - Y * Z2


def _loss_from_F(Fl, W2, B2, Y):
    return _loss_from_Z2(_dense(Fl, W2, B2), Y)


def _loss_from_P1(P1, W2, B2, Y):
    return _loss_from_F(_flatten(P1), W2, B2, Y)


def _loss_from_A1(A1, W2, B2, Y):
    return _loss_from_P1(_pool(A1), W2, B2, Y)


def _loss_from_Z1(Z1, W2, B2, Y):
    return _loss_from_A1(_relu(Z1), W2, B2, Y)


def _loss(X, W1, B1, W2, B2, Y):
    return _loss_from_Z1(_conv(X, W1, B1), W2, B2, Y)


def mpmath_forward(X, W1, B1, W2, B2, Y, dps: int = 40) -> Dict[str, object]:
    """Forward values at ``dps`` digits, as mpf / nested lists of mpf (keys Z1, A1, P1, F, Z2, A2, L)."""
    X, W1, B1, W2, B2, Y = _as_point(X, W1, B1, W2, B2, Y)
    with mpmath.workdps(dps):
        X, W1, B1, W2, B2, Y = (_mp(a) for a in (X, W1, B1, W2, B2, Y))
        Z1 = _conv(X, W1, B1)
        A1 = _relu(Z1)
        P1 = _pool(A1)
        Fl = _flatten(P1)
        Z2 = _dense(Fl, W2, B2)
        A2 = 1 / (1 + mpmath.exp(-Z2))
        L = _loss_from_Z2(Z2, Y)
    return {"Z1": Z1, "A1": A1, "P1": P1, "F": Fl, "Z2": Z2, "A2": A2, "L": L}


def mpmath_loss(X, W1, B1, W2, B2, Y, dps: int = 40):
    """The loss at the (exact) float64 input point, to ``dps`` significant digits, as an mpf."""
    return mpmath_forward(X, W1, B1, W2, B2, Y, dps=dps)["L"]


def to_float(v) -> np.ndarray:
    """mpf or nested lists of mpf -> float64 array (correctly rounded)."""
    if isinstance(v, list):
        return np.array([to_float(x) for x in v], dtype=np.float64)
    return np.asarray(float(v), dtype=np.float64)


def _central(f: Callable[[object], object], x, h) -> object:
    return (f(x + h) - f(x - h)) / (2 * h)


def _grad_nested(f: Callable[[list], object], base: list, h) -> list:
    """Central-difference gradient of f w.r.t. every entry of a 1-d or 2-d nested list."""
    if base and isinstance(base[0], list):
        out = []
        for i, row in enumerate(base):
            out_row = []
            for j in range(len(row)):
                def g(v, i=i, j=j):
                    pert = [list(r) for r in base]
                    pert[i][j] = v
                    return f(pert)
                out_row.append(_central(g, base[i][j], h))
            out.append(out_row)
        return out
    out = []
    for i in range(len(base)):
        def g(v, i=i):
            pert = list(base)
            pert[i] = v
            return f(pert)
        out.append(_central(g, base[i], h))
    return out


def central_difference_gradients(X, W1, B1, W2, B2, Y, h: str = "1e-15", dps: int = 50,
                                 intermediates: bool = True) -> Dict[str, np.ndarray]:
    """dL/dW1, dL/dB1, dL/dW2, dL/dB2 (and, if asked, dL/dZ1, dL/dA1, dL/dP1, dL/dF, dL/dZ2) by
    central differences, computed at ``dps`` digits and rounded to float64.

    Why h = 1e-15 and dps = 50: the central difference has truncation error h^2 |L'''| / 6,
    about 1e-31 |L'''|, and rounding error about 10^-dps |L| / h = 1e-35 |L|. L is a composition
    of affine maps, ReLU, max, and softplus, whose third derivative is bounded by
    |W|^3 |X|^3 / 10 or so; for O(1) inputs both terms are > 15 orders of magnitude below the
    1e-12 relative tolerance, so the result is the exact derivative after rounding to float64.
    The inputs are converted exactly, so this is the derivative *at the float64 point*.

    Valid only at smooth points: the step must not cross a kink, i.e. no Z1 entry within about
    h * (|X| + 1) of 0 and, for the intermediate derivatives, no near-tie of the top two A1 values
    in any pool window (an all-zero A1 window is such a tie). See `kink_margins`.
    """
    X, W1, B1, W2, B2, Y = _as_point(X, W1, B1, W2, B2, Y)
    out: Dict[str, np.ndarray] = {}
    with mpmath.workdps(dps):
        hh = mpmath.mpf(h)
        X, W1, B1, W2, B2, Y = (_mp(a) for a in (X, W1, B1, W2, B2, Y))
        out["dL/dW1"] = to_float(_grad_nested(lambda w: _loss(X, w, B1, W2, B2, Y), W1, hh))
        out["dL/dB1"] = to_float(_central(lambda b: _loss(X, W1, b, W2, B2, Y), B1, hh))
        out["dL/dW2"] = to_float(_grad_nested(lambda w: _loss(X, W1, B1, w, B2, Y), W2, hh))
        out["dL/dB2"] = to_float(_central(lambda b: _loss(X, W1, B1, W2, b, Y), B2, hh))
        if intermediates:
            Z1 = _conv(X, W1, B1)
            A1 = _relu(Z1)
            P1 = _pool(A1)
            Fl = _flatten(P1)
            Z2 = _dense(Fl, W2, B2)
            out["dL/dZ1"] = to_float(_grad_nested(lambda z: _loss_from_Z1(z, W2, B2, Y), Z1, hh))
            out["dL/dA1"] = to_float(_grad_nested(lambda a: _loss_from_A1(a, W2, B2, Y), A1, hh))
            out["dL/dP1"] = to_float(_grad_nested(lambda p: _loss_from_P1(p, W2, B2, Y), P1, hh))
            out["dL/dF"] = to_float(_grad_nested(lambda f: _loss_from_F(f, W2, B2, Y), Fl, hh))
            out["dL/dZ2"] = to_float(_central(lambda z: _loss_from_Z2(z, Y), Z2, hh))
    return out


# --------------------------------------------------------------------------------------------
# distance to the kinks, random smooth points
# --------------------------------------------------------------------------------------------
def _windows(A: np.ndarray) -> Iterator[np.ndarray]:
    c = A.shape[0]
    for i in range(0, c, POOL):
        for j in range(0, c, POOL):
            yield A[i:i + POOL, j:j + POOL].reshape(-1)


def kink_margins(X, W1, B1, W2, B2, Y) -> Dict[str, float]:
    """How far a point is from the non-smooth set, from float64 Z1 (good to ~1e-15 relative).

    relu: min |Z1|.  pool: min over windows whose max is > 0 of (largest - second largest A1).
    dead_windows: number of windows whose A1 is all zero (a tie of zeros: harmless for parameter
    derivatives, a kink for dL/dA1 by differences).
    """
    X, W1, B1, W2, B2, Y = _as_point(X, W1, B1, W2, B2, Y)
    c = X.shape[0] - W1.shape[0] + 1
    k = W1.shape[0]
    Z1 = np.array([[np.sum(W1 * X[i:i + k, j:j + k]) + B1 for j in range(c)] for i in range(c)])
    A1 = np.maximum(Z1, 0.0)
    gaps, dead = [], 0
    for w in _windows(A1):
        s = np.sort(w)[::-1]
        if s[0] > 0:
            gaps.append(s[0] - s[1])
        else:
            dead += 1
    return {"relu": float(np.min(np.abs(Z1))), "pool": float(min(gaps)) if gaps else float("inf"),
            "dead_windows": dead}


def random_point(n: int, k: int, rng: np.random.Generator, *, margin: float = 1e-4,
                 allow_dead_windows: bool = True, max_tries: int = 10_000) -> Point:
    """A random float point (standard normal weights, Y uniform in [0, 1]) at least ``margin``
    away from every ReLU kink and every positive pool tie; optionally with no dead windows."""
    c, p, m = sizes(n, k)
    for _ in range(max_tries):
        X = rng.standard_normal((n, n))
        W1 = rng.standard_normal((k, k)) / k
        B1 = np.asarray(rng.uniform(-0.5, 1.0))
        W2 = rng.standard_normal(m)
        B2 = np.asarray(rng.standard_normal())
        Y = np.asarray(rng.uniform(0.0, 1.0))
        km = kink_margins(X, W1, B1, W2, B2, Y)
        if km["relu"] < margin or km["pool"] < margin:
            continue
        if not allow_dead_windows and km["dead_windows"]:
            continue
        return X, W1, B1, W2, B2, Y
    raise RuntimeError("could not draw a smooth point")


# --------------------------------------------------------------------------------------------
# hard points (all integer-valued through Z2, so exact in any summation order)
# --------------------------------------------------------------------------------------------
def exact_conv(X: np.ndarray, W1: np.ndarray) -> np.ndarray:
    """Valid cross-correlation without bias, for integer-valued float arrays (exact)."""
    Xi, Wi = X.astype(np.int64), W1.astype(np.int64)
    assert np.array_equal(Xi, X) and np.array_equal(Wi, W1), "exact_conv needs integer values"
    n, k = X.shape[0], W1.shape[0]
    c = n - k + 1
    return np.array([[int(np.sum(Wi * Xi[i:i + k, j:j + k])) for j in range(c)] for i in range(c)],
                    dtype=np.float64)


def exact_F(X, W1, B1) -> np.ndarray:
    Z1 = exact_conv(np.asarray(X, float), np.asarray(W1, float)) + float(B1)
    A1 = np.maximum(Z1, 0.0)
    c = A1.shape[0]
    P1 = A1.reshape(c // POOL, POOL, c // POOL, POOL).max(axis=(1, 3))
    return P1.reshape(-1)


def with_Z2(X, W1, B1, W2, z2: float) -> np.ndarray:
    """B2 that makes Z2 exactly ``z2`` (integer-valued X, W1, B1, W2)."""
    dot = float(np.dot(np.asarray(W2, float), exact_F(X, W1, B1)))
    b2 = float(z2) - dot
    assert b2 + dot == float(z2)
    return np.asarray(b2)


def _int_array(rng: np.random.Generator, shape, lo: int, hi: int, nonzero: bool = False) -> np.ndarray:
    a = rng.integers(lo, hi + 1, size=shape).astype(np.float64)
    if nonzero:
        a[a == 0] = 1.0
    return a


# 2x2 windows of Z1 (row-major); comments give what a correct backward pass must do.
WINDOW_PATTERNS = (
    ((0, -1), (-2, -3)),   # max Z1 is exactly 0 at the first slot: A1 all 0; ReLU'(0)=0 kills the gradient
    ((-1, 0), (0, -2)),    # A1 all 0 -> first argmax of A1 is slot 0 (argmax of Z1 would be slot 1)
    ((2, 3), (3, 1)),      # positive tie -> slot 1, not slot 2
    ((1, 1), (1, 1)),      # four-way tie -> slot 0
    ((0, 5), (5, 5)),      # three-way tie -> slot 1
    ((-1, -2), (-3, -4)),  # dead window
    ((0, 0), (0, 3)),      # unique max at slot 3, exact zeros elsewhere
    ((4, -1), (4, 2)),     # tie between slots 0 and 2 -> slot 0
    ((0, 0), (0, 0)),      # all exactly zero
    ((-2, 1), (3, 3)),     # tie between slots 2 and 3 -> slot 2
)


def solve_X_for_Z1(Z1: np.ndarray, W1: np.ndarray, B1: float, n: int, border: np.ndarray) -> np.ndarray:
    """An integer X with conv(X, W1) + B1 == Z1 exactly, for W1[0, 0] == 1 (back-substitution).

    Entries of X outside the top-left c x c block are taken from ``border``.
    """
    k = W1.shape[0]
    c = n - k + 1
    assert W1[0, 0] == 1.0
    X = border.astype(np.float64).copy()
    for i in range(c - 1, -1, -1):
        for j in range(c - 1, -1, -1):
            rest = sum(W1[a, b] * X[i + a, j + b] for a in range(k) for b in range(k) if (a, b) != (0, 0))
            X[i, j] = Z1[i, j] - B1 - rest
    assert np.array_equal(exact_conv(X, W1) + B1, Z1), "construction failed"
    assert np.max(np.abs(X)) < 2 ** 40
    return X


def constructed_Z1(c: int, shift: int) -> np.ndarray:
    Z1 = np.zeros((c, c))
    w = 0
    for i in range(0, c, POOL):
        for j in range(0, c, POOL):
            Z1[i:i + POOL, j:j + POOL] = np.array(WINDOW_PATTERNS[(w + shift) % len(WINDOW_PATTERNS)], float)
            w += 1
    return Z1


def hard_points(n: int, k: int, seed: int = 0) -> Dict[str, Point]:
    """Named, integer-valued (exact) points on or near the kinks, for the (n, k) network."""
    c, p, m = sizes(n, k)
    rng = np.random.default_rng(1000 * n + k + seed)
    f = lambda v: np.asarray(float(v))  # noqa: E731
    pts: Dict[str, Point] = {}

    W2 = _int_array(rng, (m,), -2, 2, nonzero=True)
    one = f(1.0)

    # -- constant X: every Z1 entry equal -> every window a four-way tie (positive, zero, negative)
    W1 = _int_array(rng, (k, k), -1, 1)
    W1[0, 0] += 1.0 - W1.sum()                          # sum(W1) == 1, so Z1 == 2 + B1 everywhere
    Xc = np.full((n, n), 2.0)
    pts["constant_X_ties_positive"] = (Xc, W1, f(1), W2, f(0), one)
    pts["constant_X_Z1_all_zero"] = (Xc, W1, f(-2), W2, f(0), one)
    pts["constant_X_all_negative"] = (Xc, W1, f(-5), W2, f(1), f(0))

    # -- repeated columns / rows
    base = _int_array(rng, (n, (n + 1) // 2), -3, 3)
    X_pairs = base[:, np.arange(n) // 2]                 # X[:, 2j] == X[:, 2j+1]
    W1_col = np.zeros((k, k)); W1_col[:, 0] = _int_array(rng, (k,), -2, 2, nonzero=True)
    pts["repeated_column_pairs_left_column_filter"] = (X_pairs, W1_col, f(1), W2, f(0), one)
    W1_row = np.zeros((k, k)); W1_row[0, :] = _int_array(rng, (k,), -2, 2, nonzero=True)
    pts["repeated_row_pairs_top_row_filter"] = (X_pairs.T.copy(), W1_row, f(1), W2, f(0), one)
    v = _int_array(rng, (n,), -3, 3)
    X_cols = np.repeat(v[:, None], n, axis=1)            # all columns equal: Z1 constant along rows
    W1g = _int_array(rng, (k, k), -2, 2, nonzero=True)
    pts["all_columns_equal"] = (X_cols, W1g, f(0), W2, f(0), one)
    pts["all_rows_equal"] = (X_cols.T.copy(), W1g, f(0), W2, f(0), f(0))

    # -- exact zeros in Z1 from a generic integer point
    Xi = _int_array(rng, (n, n), -3, 3)
    W1i = _int_array(rng, (k, k), -2, 2)
    S = exact_conv(Xi, W1i)
    for name, b1 in (("Z1_zero_at_median", -np.sort(S.reshape(-1))[S.size // 2]),
                     ("Z1_zero_at_max", -S.max()),
                     ("Z1_zero_at_min", -S.min())):
        pts[name] = (Xi, W1i, f(b1), W2, f(0), one)
    pts["all_windows_negative"] = (Xi, W1i, f(-S.max() - 1), W2, f(0), one)

    # -- Z1 constructed window by window (ties, zero maxima, dead windows)
    W1d = np.zeros((k, k)); W1d[0, 0] = 1.0
    if k > 1:
        W1d[k - 1, k - 1] = -1.0
        W1d[0, k - 1] = 1.0
    border = _int_array(rng, (n, n), -2, 2)
    windows = p * p
    for s in range(0, len(WINDOW_PATTERNS), windows):
        Z1t = constructed_Z1(c, s)
        Xs = solve_X_for_Z1(Z1t, W1d, 1.0, n, border)
        pts[f"constructed_windows_{s}"] = (Xs, W1d, f(1), W2, f(0), one)

    # -- saturated sigmoid, both ways, hard and soft labels; moderately large logits
    Xs_, W1s, B1s = Xi, W1i, f(-np.sort(S.reshape(-1))[S.size // 2])
    for z2, tag in ((1800, "pos1800"), (-1800, "neg1800"), (800, "pos800"), (-800, "neg800"),
                    (40, "pos40"), (-40, "neg40")):
        b2 = with_Z2(Xs_, W1s, B1s, W2, z2)
        for y, ytag in ((0.0, "y0"), (1.0, "y1"), (0.3, "y0.3")):
            pts[f"saturated_{tag}_{ytag}"] = (Xs_, W1s, B1s, W2, b2, f(y))

    # -- soft labels at a generic integer point, and Z2 exactly 0
    pts["soft_label_0.3"] = (Xi, W1i, f(1), W2, f(0), f(0.3))
    pts["Z2_exactly_zero_y0.5"] = (Xi, W1i, B1s, W2, with_Z2(Xi, W1i, B1s, W2, 0), f(0.5))
    return pts


# --------------------------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------------------------
def mismatches(actual: Dict[str, np.ndarray], expected: Dict[str, np.ndarray], keys: Sequence[str],
               rtol: float, atol: float, *, normwise: bool = False) -> List[str]:
    """Human-readable list of keys where ``actual`` and ``expected`` disagree.

    Per entry (default):  |a - e| <= rtol * |e| + atol.
    Norm-wise:            max|a - e| <= rtol * max|e| + atol.
    Masks must be equal exactly; shapes must match; no nan/inf is ever accepted in ``actual``.
    """
    bad = []
    for key in keys:
        if key not in actual:
            bad.append(f"{key}: missing from actual output")
            continue
        a = np.asarray(actual[key])
        e = np.asarray(expected[key], dtype=np.float64)
        if a.shape != e.shape:
            bad.append(f"{key}: shape {a.shape} != expected {e.shape}")
            continue
        if a.dtype != np.float64:
            bad.append(f"{key}: dtype {a.dtype} != float64")
            continue
        if not np.all(np.isfinite(a)):
            bad.append(f"{key}: non-finite values {a!r}")
            continue
        if key in MASK_KEYS:
            if not np.array_equal(a, e):
                bad.append(f"{key}: mask differs\n actual={a!r}\n expected={e!r}")
            continue
        err = np.abs(a - e)
        if normwise:
            ok = err.max(initial=0.0) <= rtol * np.abs(e).max(initial=0.0) + atol
        else:
            ok = bool(np.all(err <= rtol * np.abs(e) + atol))
        if not ok:
            bad.append(f"{key}: max abs err {err.max(initial=0.0):.3e}\n actual={a!r}\n expected={e!r}")
    return bad


def point_repr(pt: Point) -> str:
    names = ("X", "W1", "B1", "W2", "B2", "Y")
    return "\n".join(f"{nm}={np.asarray(a).tolist()!r}" for nm, a in zip(names, pt))


def all_sizes(max_n: int = 8) -> List[Tuple[int, int]]:
    """Every (n, k) with n <= max_n, k >= 1 and n - k + 1 even and >= 2."""
    return [(n, k) for n, k in itertools.product(range(2, max_n + 1), range(1, max_n + 1))
            if k <= n - 1 and (n - k + 1) % 2 == 0]
