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

    A direct reading of the expression tree, each distinct node once (``Program``): no SymPy
    conversion, no derivative. ``values`` maps each symbol to an mpmath number.

    >>> import symengine as se, mpmath; x = se.Symbol("x")
    >>> float(evaluate_mp(se.Piecewise((x, se.Gt(x, 0)), (0, True)) + 1, {x: mpmath.mpf(-2)}))
    1.0
    """
    program = _program(expr)
    return program.result(program.evaluate(values))


@lru_cache(maxsize=4)
def _program(expr) -> Program:
    # A check evaluates one loss many times (each parameter moved up and down): list its nodes once.
    return Program(expr)


class _Failed:
    """A node whose evaluation raised: an error only if a branch that is taken needs it."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __bool__(self) -> bool:
        # A failed condition must not read as true (``all`` of an And would take it).
        raise self.error


def _failure(args: list, exc: Exception) -> _Failed:
    # The first failure among the operands is the cause; an operation on it fails with its error.
    cause = next((a for a in args if isinstance(a, _Failed)), None)
    return _Failed(exc) if cause is None else cause


def _leaf(e) -> tuple:
    """The operation of one node: (name, payload), the names being the keys of ``_OPS``."""
    import symengine as se

    if isinstance(e, se.Symbol):
        return "symbol", e
    if isinstance(e, se.Number):
        return "number", e
    for kind, name in ((se.Add, "add"), (se.Mul, "mul"), (se.Pow, "pow"), (se.Piecewise, "piecewise"), (se.And, "and")):
        if isinstance(e, kind):
            return name, None
    if e == se.true:
        return "true", None
    if isinstance(e, se.StrictLessThan):
        return "lt", None
    if isinstance(e, se.LessThan):
        return "le", None
    if isinstance(e, se.FunctionSymbol) and e.get_name() in ("softplus", "sigmoid", "lse", "max_split", "max_all"):
        return e.get_name(), None
    if isinstance(e, se.tanh):
        return "tanh", None
    return "unknown", type(e).__name__


def _number(e):
    import mpmath

    # Rationals exactly (p / q at the working precision); floats from their decimal digits.
    return mpmath.mpf(int(e.p)) / int(e.q) if e.is_Rational else mpmath.mpf(str(e))


def _piecewise(v: list):
    for value, cond in zip(v[0::2], v[1::2]):
        if isinstance(cond, _Failed):
            raise cond.error
        if cond:
            if isinstance(value, _Failed):
                raise value.error
            return value
    raise ValueError("Piecewise: no condition holds")


def _unknown(name: str):
    raise TypeError(f"cannot evaluate {name}")


def _ops() -> dict:
    import mpmath

    return {
        "add": lambda v, _: mpmath.fsum(v),
        "mul": lambda v, _: mpmath.fprod(v),
        "pow": lambda v, _: v[0] ** v[1],
        "piecewise": lambda v, _: _piecewise(v),
        "true": lambda v, _: True,
        "and": lambda v, _: all(v),
        "lt": lambda v, _: v[0] < v[1],
        "le": lambda v, _: v[0] <= v[1],
        "softplus": lambda v, _: mpmath.log1p(mpmath.exp(v[0])),
        "sigmoid": lambda v, _: 1 / (1 + mpmath.exp(-v[0])),
        "lse": lambda v, _: mpmath.log(mpmath.fsum(mpmath.exp(a) for a in v)),
        "max_split": lambda v, _: max(v),
        "max_all": lambda v, _: max(v),
        "tanh": lambda v, _: mpmath.tanh(v[0]),
        "number": lambda v, e: _number(e),
        "unknown": lambda v, name: _unknown(name),
    }


class Program:
    """A raw expression as a list of distinct nodes, children first, to evaluate many times.

    Each node is computed from its children by the same mpmath operation, on the same operands
    in the same order, as a recursive reading would (``fsum`` for a sum, ``fprod`` for a
    product), so every value is the same to the last digit. ``evaluate`` computes every node
    (both branches of a Piecewise too: an error in a branch not taken is kept, not raised);
    ``moved`` recomputes, from a full evaluation, only the nodes that depend on one changed
    symbol. A central difference in a conv weight changes most of the network, one in a dense
    weight only the loss.

    >>> import symengine as se, mpmath; x, y = se.symbols("x y")
    >>> prog = Program(se.Piecewise((x * y, se.Gt(x, 0)), (0, True)) + y)
    >>> base = prog.evaluate({x: mpmath.mpf(2), y: mpmath.mpf(3)})
    >>> float(prog.result(base)), float(prog.result(prog.moved(base, x, mpmath.mpf(-1))))
    (9.0, 3.0)

    On a network's loss, moving one weight gives exactly what evaluating everything again gives:

    >>> net = build(seed_spec(5, 2)); prog = Program(net.L); rng = np.random.default_rng(0)
    >>> point = {s: mpmath.mpf(float(rng.normal())) for s in prog.symbols}
    >>> base = prog.evaluate(point); w = net.entries()["w_11"]
    >>> prog.result(prog.moved(base, w, point[w] + 1)) == prog.result(prog.evaluate({**point, w: point[w] + 1}))
    True
    """

    def __init__(self, expr) -> None:
        import symengine as se

        ops = _ops()
        index: dict = {}
        self.nodes: list = []  # (operation, payload, child indices)
        self.symbols: dict = {}  # symbol -> its node
        # Iterative post-order: a large network's loss is deeper than Python's recursion limit allows.
        stack = [(se.sympify(expr), False)]
        while stack:
            e, ready = stack.pop()
            if e in index:
                continue
            kind, payload = _leaf(e)
            args = () if kind in ("symbol", "number", "true", "unknown") else tuple(e.args)
            if not ready and any(a not in index for a in args):
                stack.append((e, True))
                stack.extend((a, False) for a in reversed(args) if a not in index)
                continue
            index[e] = len(self.nodes)
            if kind == "symbol":
                self.symbols[e] = index[e]
            self.nodes.append((ops.get(kind), payload, tuple(index[a] for a in args)))
        self.root = index[se.sympify(expr)]
        self._cones: dict = {}

    def evaluate(self, values: dict) -> list:
        """Every node's value (mpmath numbers, at the caller's working precision)."""
        out: list = []
        for op, payload, children in self.nodes:
            if op is None:
                out.append(values[payload])  # a symbol: a missing value is a KeyError, as it should be
                continue
            args = [out[c] for c in children]
            try:
                out.append(op(args, payload))
            except Exception as exc:  # noqa: BLE001 - raised later, only if a branch taken needs the value
                out.append(_failure(args, exc))
        return out

    def moved(self, base: list, symbol, value) -> list:
        """``base`` with ``symbol`` set to ``value`` and every node that depends on it recomputed."""
        out = list(base)
        start = self.symbols.get(symbol)
        if start is None:
            return out
        out[start] = value
        for i in self._cone(start):
            op, payload, children = self.nodes[i]
            args = [out[c] for c in children]
            try:
                out[i] = op(args, payload)
            except Exception as exc:  # noqa: BLE001 - as in ``evaluate``
                out[i] = _failure(args, exc)
        return out

    def result(self, values: list):
        """The expression's value from ``evaluate`` or ``moved``; raises what computing it raised."""
        got = values[self.root]
        if isinstance(got, _Failed):
            raise got.error
        return got

    def _cone(self, start: int) -> list:
        hit = self._cones.get(start)
        if hit is None:
            users: dict = {}
            for i, (_, _, children) in enumerate(self.nodes):
                for c in set(children):
                    users.setdefault(c, []).append(i)
            reached, todo = set(), [start]
            while todo:
                for u in users.get(todo.pop(), ()):
                    if u not in reached:
                        reached.add(u)
                        todo.append(u)
            hit = self._cones[start] = sorted(reached)
        return hit


@lru_cache(maxsize=4)
def _network(spec: NetworkSpec):
    net = build(spec)
    return net, list(net.stages["X"].ravel()), net.entries(), Program(net.L)


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

    net, xs, params_sym, program = _network(spec)
    with mpmath.workdps(dps):
        hh = mpmath.mpf(h)
        point = {s: mpmath.mpf(float(v)) for s, v in zip(xs, np.asarray(X, dtype=float).ravel())}
        point.update({params_sym[p]: mpmath.mpf(float(params[p])) for p in params_sym})
        point.update({s: mpmath.mpf(float(v)) for s, v in zip(net.Y.ravel(), np.ravel(np.asarray(Y, dtype=float)))})
        base = program.evaluate(point)
        out = []
        for name, sym in params_sym.items():
            up = program.result(program.moved(base, sym, point[sym] + hh))
            down = program.result(program.moved(base, sym, point[sym] - hh))
            c = (up - down) / (2 * hh)
            d = float(derivatives[name])
            out.append((name, d, c))
        # Relative to the largest gradient: an entry that is exactly 0 has no scale of its own.
        scale = max([abs(c) for _, _, c in out] + [mpmath.mpf("1e-300")])
        return [Difference(name, d, float(c), float(abs(mpmath.mpf(d) - c) / scale)) for name, d, c in out]
