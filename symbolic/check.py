"""An independent numeric oracle for printed numbers: central differences of L at high precision.

Only the forward loss is used (the raw Piecewise expression, with softplus read as
log(1 + e^z)), evaluated with mpmath at ``dps`` digits; no derivative of ours is involved. It is
valid where L is smooth: at a ReLU kink or a max-pool tie a central difference averages the two
one-sided slopes, which is not the convention PyTorch (and cnn-derive) uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from symbolic.network import build
from symbolic.spec import NetworkSpec, seed_spec  # noqa: F401 - seed_spec: for the doctests


@dataclass(frozen=True)
class Difference:
    """One parameter: our derivative, the central difference, and their gap relative to the largest gradient."""

    name: str
    derivative: float
    central: float
    relative: float


def evaluate_mp(expr, values: dict):
    """The value of a raw network expression (Piecewise, relations, softplus) in mpmath arithmetic.

    A direct reading of the expression tree, memoised per node: no SymPy conversion, no
    derivative. ``values`` maps each symbol to an mpmath number.

    >>> import symengine as se, mpmath; x = se.Symbol("x")
    >>> float(evaluate_mp(se.Piecewise((x, se.Gt(x, 0)), (0, True)) + 1, {x: mpmath.mpf(-2)}))
    1.0
    """
    import mpmath
    import symengine as se

    memo: dict = {}

    def ev(e):
        if e in memo:
            return memo[e]
        if isinstance(e, se.Symbol):
            out = values[e]
        elif isinstance(e, se.Number):
            # Rationals exactly (p / q at full precision); floats from their decimal digits.
            out = mpmath.mpf(int(e.p)) / int(e.q) if e.is_Rational else mpmath.mpf(str(e))
        elif isinstance(e, se.Add):
            out = mpmath.fsum(ev(a) for a in e.args)
        elif isinstance(e, se.Mul):
            out = mpmath.fprod(ev(a) for a in e.args)
        elif isinstance(e, se.Pow):
            out = ev(e.args[0]) ** ev(e.args[1])
        elif isinstance(e, se.Piecewise):
            a = e.args
            out = next(ev(a[i]) for i in range(0, len(a), 2) if ev(a[i + 1]))
        elif e == se.true:
            out = True
        elif isinstance(e, se.And):
            out = all(ev(a) for a in e.args)
        elif isinstance(e, se.StrictLessThan):
            out = ev(e.args[0]) < ev(e.args[1])
        elif isinstance(e, se.LessThan):
            out = ev(e.args[0]) <= ev(e.args[1])
        elif isinstance(e, se.FunctionSymbol) and e.get_name() == "softplus":
            out = mpmath.log1p(mpmath.exp(ev(e.args[0])))
        elif isinstance(e, se.FunctionSymbol) and e.get_name() == "sigmoid":
            out = 1 / (1 + mpmath.exp(-ev(e.args[0])))
        elif isinstance(e, se.FunctionSymbol) and e.get_name() == "lse":
            out = mpmath.log(mpmath.fsum(mpmath.exp(ev(a)) for a in e.args))
        elif isinstance(e, se.FunctionSymbol) and e.get_name() in ("max_split", "max_all"):
            out = max(ev(a) for a in e.args)
        elif isinstance(e, se.tanh):
            out = mpmath.tanh(ev(e.args[0]))
        else:
            raise TypeError(f"cannot evaluate {type(e).__name__}")
        memo[e] = out
        return out

    return ev(expr)


@lru_cache(maxsize=4)
def _network(spec: NetworkSpec):
    net = build(spec)
    return net, list(net.stages["X"].ravel()), net.entries()


def central_differences(spec: NetworkSpec, X, params: dict, Y, derivatives: dict, dps: int = 40, h: str = "1e-15") -> list:
    """Central differences (L(θ + h) − L(θ − h)) / 2h for every parameter, at ``dps`` digits.

    With 40 digits and h = 1e-15 the truncation error (~h²) and the rounding error (~10^-40 / h)
    are both far below 1e-20, so the comparison measures our float64 derivative alone.

    >>> spec = seed_spec(5, 2); import numpy as np
    >>> ps = {"w_11": 1.0, "w_12": -1.0, "w_21": 0.5, "w_22": 2.0, "B_1": 0.25, "w2_1": 1.0, "w2_2": -2.0,
    ...       "w2_3": 0.5, "w2_4": 1.5, "B_2": 0.1}
    >>> X = np.arange(25.0).reshape(5, 5) % 7 - 3
    >>> rows = central_differences(spec, X, ps, 1.0, {name: 0.0 for name in ps})
    >>> len(rows), rows[0].name
    (10, 'w_11')
    """
    import mpmath

    net, xs, params_sym = _network(spec)
    with mpmath.workdps(dps):
        hh = mpmath.mpf(h)
        point = {s: mpmath.mpf(float(v)) for s, v in zip(xs, np.asarray(X, dtype=float).ravel())}
        point.update({params_sym[p]: mpmath.mpf(float(params[p])) for p in params_sym})
        point.update({s: mpmath.mpf(float(v)) for s, v in zip(net.Y.ravel(), np.ravel(np.asarray(Y, dtype=float)))})
        out = []
        for name, sym in params_sym.items():
            up, down = dict(point), dict(point)
            up[sym] += hh
            down[sym] -= hh
            c = (evaluate_mp(net.L, up) - evaluate_mp(net.L, down)) / (2 * hh)
            d = float(derivatives[name])
            out.append((name, d, c))
        # Relative to the largest gradient: an entry that is exactly 0 has no scale of its own.
        scale = max([abs(c) for _, _, c in out] + [mpmath.mpf("1e-300")])
        return [Difference(name, d, float(c), float(abs(mpmath.mpf(d) - c) / scale)) for name, d, c in out]
