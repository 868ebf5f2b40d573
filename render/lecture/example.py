"""The worked example: its numbers (the lecture's integers, a user's case, or a fixed pattern at other
sizes), every output of the compiled network at that point, and one step of gradient descent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from render.document import SeedSizes
from symbolic.case import make_case
from symbolic.numeric import compile_network
from symbolic.spec import NetworkSpec

# The lecture's worked example, small integers chosen so that every convention is at work:
# window p_11 and p_22 have clear winners; window p_12 is dead (all of z_13, z_14, z_23, z_24 are
# negative, so its first maximum a_13 = 0 has z ≤ 0 and the ReLU mask blocks its gradient); window
# p_21 ties (a_32 = a_41 = 1, so the first maximum in row-major order, a_32, takes the gradient);
# no entry of Z1 is exactly 0; and dL/dw_23 = 0 because every path to w_23 meets a 0 of X.
SEED_EXAMPLE = {
    "X": [[0, 1, 1, 1, 2, 0], [3, 3, 0, 1, 2, 3], [3, 2, 0, 3, 1, 1], [2, 3, 1, 0, 0, 1], [2, 3, 1, 0, 2, 3], [1, 3, 0, 1, 2, 0]],
    "W1": [[-1, 1, 0], [0, -1, -1], [1, 1, -1]],
    "B1": 0,
    "W2": [1, -2, 1, -1],
    "B2": -1,
    "Y": 1,
}
LEARNING_RATE = 0.1
# Outputs shown as single numbers (the engine gives them as 1-entry arrays).
_SCALARS = ("Z2", "A2", "L", "dL/dZ2", "dL/dB1", "dL/dB2")


@dataclass(frozen=True)
class Example:
    """The worked example at one point: inputs and outputs in the lecture's shapes, and one descent step.

    ``source`` says where the numbers come from ("lecture", "case" or "pattern"); ``names`` are
    the parameter entries in the engine's order (w_11, …, B_1, w2_1, …, B_2), with ``values``
    and ``grads`` in that order; ``after`` are the values after one step with rate ``lr``.
    """

    source: str
    inputs: dict
    out: dict
    names: tuple
    values: tuple
    grads: tuple
    after: tuple
    lr: float
    loss_after: float


def default_values(sizes: SeedSizes, net=None) -> dict:
    """The lecture's integers at its sizes; at any others, small integers from a fixed random generator
    (deterministic), the first draw with a dead window and a tied one, B1 = 1/2 (so that no entry of
    Z1 is exactly 0) and B2 set so that Z2 = 1.

    ``net`` is the compiled network (``symbolic.numeric.compile_network``), needed at other sizes.

    >>> default_values(SeedSizes(6, 3, 2, 4, 2, 4, 15)) is SEED_EXAMPLE
    True
    >>> from symbolic.spec import seed_spec
    >>> v = default_values(SeedSizes(8, 3, 2, 6, 3, 9, 20), compile_network(seed_spec(8, 3))); len(v["W2"]), v["B1"]
    (9, 0.5)
    """
    if (sizes.n, sizes.k, sizes.pool) == (6, 3, 2):
        return SEED_EXAMPLE
    n, k, m = sizes.n, sizes.k, sizes.flat
    W2 = [(1, -1)[j % 2] for j in range(m)]
    for seed in range(100):
        rng = np.random.default_rng(seed)
        X, W1 = rng.integers(0, 4, (n, n)), rng.integers(-1, 2, (k, k))
        out = net(X.astype(float), 1.0, W1=W1.astype(float).reshape(1, 1, k, k), B1=0.5, W2=np.reshape(W2, (1, m)).astype(float), B2=0.0)
        if _shows_mask_and_tie({key: plain(key, v) for key, v in out.items()}, sizes.pool):
            break
    # B1 = 1/2 keeps every entry of Z1 off 0 (the data are integers): the only kinks are the ties.
    return {"X": X.tolist(), "W1": W1.tolist(), "B1": 0.5, "W2": W2, "B2": round(1 - float(np.ravel(out["Z2"])[0]), 6), "Y": 1}


def _shows_mask_and_tie(out: dict, pool: int) -> bool:
    """Whether some window's winner has z ≤ 0 and some window ties between positive entries."""
    dead = bool(np.any((out["route(A1)"] > 0) & (out["Z1"] <= 0)))
    a = out["A1"]
    r = a.shape[0] // pool
    blocks = a[: r * pool, : r * pool].reshape(r, pool, r, pool).transpose(0, 2, 1, 3).reshape(r * r, pool * pool)
    best = blocks.max(axis=1, keepdims=True)
    tie = bool(np.any(((blocks == best).sum(axis=1) > 1) & (best[:, 0] > 0)))
    return dead and tie


def plain(key: str, value) -> object:
    """One numeric output in the lecture's shapes: images as matrices, W2 and F as vectors, scalars as floats.

    >>> plain("dL/dW1", np.zeros((1, 1, 3, 3))).shape, plain("dL/dW2", np.zeros((1, 4))).shape, plain("Z2", np.ones(1))
    ((3, 3), (4,), 1.0)
    """
    a = np.asarray(value, dtype=float)
    if key in _SCALARS:
        return float(a.reshape(()))
    if a.ndim >= 3:
        return a.reshape(a.shape[-2:])
    return a.ravel()


def worked_example(spec: NetworkSpec, sizes: SeedSizes, entries: list, case: dict | None = None) -> Example:
    """Evaluate the compiled network at the example's point (``case``, in ``eval``'s format, replaces it).

    ``entries`` are the parameter entry names in the engine's order (``Network.entries()``).
    A bad case is a ``CaseError`` naming its field.

    >>> from symbolic.spec import load_spec; from symbolic.network import build
    >>> ex = worked_example(load_spec(), SeedSizes(6, 3, 2, 4, 2, 4, 15), list(build(load_spec()).entries()))
    >>> ex.source, ex.out["Z2"], ex.names[0], ex.grads[5]
    ('lecture', 1.0, 'w_11', 0.0)
    """
    net = compile_network(spec)
    values = default_values(sizes, net) if case is None else case
    arrays = make_case(values, spec).arrays  # checked, in the full layouts
    out = {key: plain(key, v) for key, v in net(arrays["X"], arrays["Y"], **{p: arrays[p] for p in spec.param_shapes}).items()}
    inputs = {key: plain(key, arrays[key]) for key in ("X", "W1", "W2")}
    inputs.update({key: float(np.ravel(arrays[key])[0]) for key in ("B1", "B2", "Y")})
    flat = {p: np.ravel(arrays[p]) for p in spec.param_shapes}
    grads = {p: np.ravel(out[f"dL/d{p}"]) for p in spec.param_shapes}
    new = {p: flat[p] - LEARNING_RATE * grads[p] for p in spec.param_shapes}
    after = net(arrays["X"], arrays["Y"], **{p: new[p].reshape(spec.param_shapes[p]) for p in spec.param_shapes})
    join = lambda d: tuple(float(v) for p in spec.param_shapes for v in d[p])  # noqa: E731
    source = "case" if case is not None else ("lecture" if values is SEED_EXAMPLE else "pattern")
    return Example(source, inputs, out, tuple(entries), join(flat), join(grads), join(new), LEARNING_RATE, float(np.ravel(after["L"])[0]))
