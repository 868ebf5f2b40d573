"""The lecture's network built symbolically from named entries, from any stage upward.

``build(spec)`` starts at the input: X = [x_ij], W1 = [w_kl], B_1, W2 = [w2_j], B_2, Y are
symbols (indices from 1, as in the lecture) and Z1, A1, P1, F, Z2, L are SymEngine
expressions in them. ``build(spec, start="A1")`` starts from fresh symbols a_ij for A1
instead: that is L as a function of A1, whose brute-force gradient is dL/dA1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import symengine as se

from symbolic.atoms import Atoms
from symbolic.layers import Conv2D, Dense, Flatten, MaxPool, ReLU, SigmoidBCE, obj
from symbolic.spec import NetworkSpec

STAGES = ("X", "Z1", "A1", "P1", "F", "Z2")


def entry_name(base: str, idx, side: int) -> str:
    """The name of one entry, 1-based; indices get commas once a side reaches 10.

    >>> entry_name("x", (0, 1), 6), entry_name("x", (0, 11), 28), entry_name("w2", (2,), 4)
    ('x_12', 'x_1,12', 'w2_3')
    """
    parts = [str(i + 1) for i in idx]
    sep = "," if side >= 10 and len(parts) > 1 else ""
    return f"{base}_{sep.join(parts)}"


def named(base: str, shape) -> np.ndarray:
    """An object array of symbols named ``base_ij``."""
    side = max(shape)
    return obj(shape, lambda *i: se.Symbol(entry_name(base, i, side)))


def labels(base: str, shape) -> np.ndarray:
    side = max(shape)
    return obj(shape, lambda *i: entry_name(base, i, side))


@dataclass
class Network:
    """One symbolic build. Stages before ``start`` are None; ``inputs`` are the start stage's symbols."""

    spec: NetworkSpec
    atoms: Atoms
    start: str
    inputs: np.ndarray
    W2: np.ndarray
    B2: se.Symbol
    Y: se.Symbol
    X: np.ndarray | None = None
    W1: np.ndarray | None = None
    B1: se.Symbol | None = None
    Z1: np.ndarray | None = None
    A1: np.ndarray | None = None
    P1: np.ndarray | None = None
    F: np.ndarray | None = None
    Z2: object = None
    L: object = None
    label: dict = field(default_factory=dict)

    def params(self) -> dict:
        """Trainable parameters present in this build, by name, in the lecture's order.

        >>> list(build(NetworkSpec()).params())[:3], len(build(NetworkSpec()).params())
        (['w_11', 'w_12', 'w_13'], 15)
        """
        out = {}
        if self.W1 is not None:
            out.update({str(s): s for s in self.W1.ravel()})
            out[str(self.B1)] = self.B1
        out.update({str(s): s for s in self.W2})
        out[str(self.B2)] = self.B2
        return out


def build(spec: NetworkSpec, start: str = "X", atoms: Atoms | None = None) -> Network:
    """Build the network forward from ``start``, registering every kink as an atom.

    >>> net = build(NetworkSpec()); net.Z1.shape, net.P1.shape, net.F.shape
    ((4, 4), (2, 2), (4,))
    """
    if start not in STAGES:
        raise ValueError(f"start must be one of {STAGES}")
    atoms = atoms if atoms is not None else Atoms()
    c, p, m = spec.conv, spec.pooled, spec.flat
    lab = {"Z1": labels("z", (c, c)), "A1": labels("a", (c, c)), "P1": labels("p", (p, p)), "F": labels("f", (m,))}
    W2, B2, Y = named("w2", (m,)), se.Symbol("B_2"), se.Symbol("Y")
    net = Network(spec=spec, atoms=atoms, start=start, inputs=None, W2=W2, B2=B2, Y=Y, label=lab)
    order = STAGES.index(start)
    if start == "X":
        net.X, net.W1, net.B1 = named("x", (spec.n, spec.n)), named("w", (spec.k, spec.k)), se.Symbol("B_1")
        net.inputs = net.X
        net.Z1 = Conv2D.forward(net.X, net.W1, net.B1)
    elif start == "Z1":
        net.Z1 = net.inputs = named("z", (c, c))
    if order <= STAGES.index("Z1"):
        net.A1 = ReLU.forward(net.Z1, atoms, lab["Z1"])
    elif start == "A1":
        net.A1 = net.inputs = named("a", (c, c))
    if order <= STAGES.index("A1"):
        net.P1 = MaxPool.forward(net.A1, spec.pool, atoms, lab["A1"], lab["P1"])
    elif start == "P1":
        net.P1 = net.inputs = named("p", (p, p))
    if order <= STAGES.index("P1"):
        net.F = Flatten.forward(net.P1)
    elif start == "F":
        net.F = net.inputs = named("f", (m,))
    if order <= STAGES.index("F"):
        net.Z2 = Dense.forward(net.F, W2, B2)
    else:
        net.Z2 = se.Symbol("Z_2")
        net.inputs = np.array([net.Z2], dtype=object)
    net.L = SigmoidBCE.forward(net.Z2, Y)
    return net


def backward(net: Network) -> dict:
    """The lecture's backward chain, rule by rule, from L down to the start stage (canonical form).

    Keys are "dL/dZ2", "dL/dF", "dL/dW2", "dL/dB2", "dL/dP1", "dL/dA1", "dL/dZ1", "dL/dW1",
    "dL/dB1", as far down as the build goes.

    >>> sorted(backward(build(NetworkSpec(), start="P1")))
    ['dL/dB2', 'dL/dF', 'dL/dP1', 'dL/dW2', 'dL/dZ2']
    """
    a, lab, spec = net.atoms, net.label, net.spec
    g = {"dL/dZ2": SigmoidBCE.backward(net.Z2, net.Y, a)}
    if net.F is None:
        return g
    F = obj(net.F.shape, lambda j: a.canon(net.F[j]))
    g["dL/dF"], g["dL/dW2"], g["dL/dB2"] = Dense.backward(F, net.W2, g["dL/dZ2"])
    if net.P1 is None:
        return g
    g["dL/dP1"] = Flatten.backward(net.P1, g["dL/dF"])
    if net.A1 is None:
        return g
    g["dL/dA1"] = MaxPool.backward(net.A1, g["dL/dP1"], spec.pool, a, lab["A1"], lab["P1"])
    if net.Z1 is None:
        return g
    g["dL/dZ1"] = ReLU.backward(net.Z1, g["dL/dA1"], a, lab["Z1"])
    if net.X is None:
        return g
    g["dL/dW1"], g["dL/dB1"] = Conv2D.backward(net.X, net.W1, g["dL/dZ1"])
    return g
