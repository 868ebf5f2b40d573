"""The lecture's backprop rules: each one's statement and its exact proof.

A rule is proven when, for every entry, the brute-force derivative (``derive``) minus the
rule's expression (``network.backward``) expands to the number 0, with the kinks as free
atoms. Rules about an intermediate gradient (dL/dF, dL/dP1, dL/dA1, dL/dZ1) differentiate L
as a function of that stage's own symbols; the rule side is the backward chain from L down
to that stage, so each proof also covers every rule above it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import symengine as se

from symbolic.atoms import is_zero
from symbolic.derive import gradient
from symbolic.layers import Dense, Flatten, MaxPool, ReLU, obj
from symbolic.network import Network, backward, build
from symbolic.spec import NetworkSpec


@dataclass(frozen=True)
class Rule:
    """A rule: short name, what it states (plain text), and the gradient it concerns."""

    name: str
    statement: str
    quantity: str


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one proof: ``proven`` is True only for an exact symbolic 0 in every entry."""

    rule: Rule
    proven: bool
    seconds: float
    entries: int
    failures: tuple = ()

    def as_json(self) -> dict:
        return {"name": self.rule.name, "statement": self.rule.statement, "proven": self.proven, "seconds": self.seconds}


RULES = (
    Rule("a", "dL/dZ2 = (dL/dA2)(dA2/dZ2) = A2 - Y", "dL/dZ2"),
    Rule("b", "dL/dW2 = (A2 - Y) F^T", "dL/dW2"),
    Rule("c", "dL/dB2 = A2 - Y", "dL/dB2"),
    Rule("d", "dL/dF = (A2 - Y) W2^T", "dL/dF"),
    Rule("e", "flatten backward: dL/dP1 = dL/dF reshaped to the shape of P1", "dL/dP1"),
    Rule("f", "max-pool backward: dL/dA1 = dL/dP1 placed at each window's first argmax, 0 elsewhere", "dL/dA1"),
    Rule("g", "ReLU backward: dL/dZ1 = dL/dA1 * 1[Z1 > 0] (elementwise)", "dL/dZ1"),
    Rule("h", "dL/dB1 = sum over i,j of (dL/dZ1)_ij", "dL/dB1"),
    Rule("i", "dL/dW1 = conv(X, dL/dZ1), the valid cross-correlation of X with dL/dZ1", "dL/dW1"),
    Rule("j", "dL/dW1 = dL/dA2 * dA2/dZ2 * dZ2/dF * dF/dP1 * dP1/dA1 * dA1/dZ1 * dZ1/dW1 (the seven-factor chain)", "dL/dW1"),
)


def _compare(brute: np.ndarray, rule: np.ndarray) -> tuple:
    """Indices where brute - rule does not expand to 0."""
    brute, rule = np.asarray(brute, dtype=object), np.asarray(rule, dtype=object)
    if brute.shape != rule.shape:
        return (("shape", brute.shape, rule.shape),)
    return tuple(idx for idx in np.ndindex(*brute.shape) if not is_zero(brute[idx] - rule[idx]))


# --- the loss lemma, in SymPy: small rational identities ----------------------------------

def loss_lemma() -> bool:
    """The lecture's product (dL/dA2)(dA2/dZ2) is A2 - Y, and softplus(z) - y z is BCE(y, sigmoid(z)).

    With t = exp(z), sigmoid = t / (1 + t) and d/dz = t d/dt, both claims are rational identities
    in t, so ``cancel`` decides them exactly; the second also needs the two functions to agree at
    one point (z = 0: both are log 2), since equal derivatives fix a function up to a constant.

    >>> loss_lemma()
    True
    """
    import sympy as sp

    t, y, a = sp.symbols("t y A_2", positive=True)
    bce = lambda A: -y * sp.log(A) - (1 - y) * sp.log(1 - A)  # noqa: E731
    sig = t / (1 + t)
    dsig_dz = t * sp.diff(sig, t)
    # dA2/dZ2 = A2 (1 - A2)
    ok = sp.cancel(dsig_dz - sig * (1 - sig)) == 0
    # (dL/dA2)(dA2/dZ2) = A2 - Y, as functions of A2
    ok &= sp.cancel(sp.diff(bce(a), a) * a * (1 - a) - (a - y)) == 0
    # d/dz BCE(sigmoid z) = d/dz (softplus z - y z), and both are log 2 at z = 0
    d_bce = sp.diff(bce(sig), t) * t
    d_soft = sp.diff(sp.log(1 + t), t) * t - y
    ok &= sp.cancel(d_bce - d_soft) == 0
    ok &= sp.expand(bce(sig).subs(t, 1) - sp.log(2)) == 0
    return bool(ok)


# --- each rule's proof ---------------------------------------------------------------------

def _stage_rule(spec, start, quantity):
    net = build(spec, start=start)
    rule = np.asarray(backward(net)[quantity], dtype=object).reshape(net.inputs.shape)
    return _compare(gradient(net, net.inputs), rule)


def _param_rule(net: Network, quantity, wrt):
    chain = backward(net)[quantity]
    return _compare(gradient(net, wrt), chain)


def _seven_factor_chain(net: Network) -> np.ndarray:
    """dL/dW1 as the product of the lecture's seven factors, each one a Jacobian SymEngine computes.

    The two loss factors multiply to A2 - Y (the loss lemma, proven in SymPy); the others are
    the local Jacobians of dense, flatten, max-pool, ReLU and conv, taken on fresh symbols and
    then evaluated at this network's values.
    """
    import sympy as sp

    spec, atoms = net.spec, net.atoms
    A2 = atoms.sigmoid(net.Z2)
    a_, y_ = sp.symbols("A y")
    loss = sp.cancel(sp.diff(-y_ * sp.log(a_) - (1 - y_) * sp.log(1 - a_), a_) * a_ * (1 - a_))
    dL_dZ2 = se.sympify(loss).subs({se.Symbol("A"): A2, se.Symbol("y"): net.Y})

    c, p, m = spec.conv, spec.pooled, spec.flat
    f = np.array([se.Symbol(f"_f{j}") for j in range(m)], dtype=object)
    P = obj((p, p), lambda i, j: se.Symbol(f"_p{i}_{j}"))
    A = obj((c, c), lambda i, j: se.Symbol(f"_a{i}_{j}"))
    Z = obj((c, c), lambda i, j: se.Symbol(f"_z{i}_{j}"))
    at_A1 = {A[i]: net.A1[i] for i in np.ndindex(c, c)}
    at_Z1 = {Z[i]: net.Z1[i] for i in np.ndindex(c, c)}

    z2 = Dense.forward(f, net.W2, net.B2)
    dZ2_dF = [z2.diff(fj) for fj in f]
    flat = Flatten.forward(P)
    dF_dP1 = {(j, ij): flat[j].diff(P[ij]) for j in range(m) for ij in np.ndindex(p, p)}
    pooled = MaxPool.forward(A, spec.pool, atoms, net.label["A1"], net.label["P1"])
    windows = MaxPool.windows(c, spec.pool)
    dP1_dA1 = {}
    for rs in np.ndindex(p, p):
        for ab in windows[rs]:
            dP1_dA1[rs, ab] = atoms.canon(pooled[rs].diff(A[ab]).subs(at_A1))
    act = obj((c, c), lambda i, j: ReLU.forward(Z[i:i + 1, j:j + 1], atoms, net.label["Z1"][i:i + 1, j:j + 1])[0, 0])
    dA1_dZ1 = {ab: atoms.canon(act[ab].diff(Z[ab]).subs(at_Z1)) for ab in np.ndindex(c, c)}
    dZ1_dW1 = {(ab, kl): net.Z1[ab].diff(net.W1[kl]) for ab in np.ndindex(c, c) for kl in np.ndindex(*net.W1.shape)}

    def entry(kl):
        total = []
        for j in range(m):
            for rs in np.ndindex(p, p):
                if dF_dP1[j, rs] == 0:
                    continue
                for ab in windows[rs]:
                    total.append(dL_dZ2 * dZ2_dF[j] * dF_dP1[j, rs] * dP1_dA1[rs, ab] * dA1_dZ1[ab] * dZ1_dW1[ab, kl])
        return se.Add(*total)

    return obj(net.W1.shape, lambda *kl: entry(kl))


def prove(rule: Rule, spec: NetworkSpec, full: Network | None = None) -> RuleResult:
    """Prove one rule for one network size.

    >>> prove(RULES[2], NetworkSpec(n=5, k=2)).proven
    True
    """
    t0 = time.perf_counter()
    full = full if full is not None else build(spec)
    entries = 1
    if rule.name == "a":
        failures = _stage_rule(spec, "Z2", "dL/dZ2") + (() if loss_lemma() else (("loss lemma",),))
    elif rule.name == "b":
        failures = _param_rule(full, "dL/dW2", full.W2)
        entries = full.W2.size
    elif rule.name == "c":
        failures = _param_rule(full, "dL/dB2", full.B2)
    elif rule.name in "defg":
        start = {"d": "F", "e": "P1", "f": "A1", "g": "Z1"}[rule.name]
        failures = _stage_rule(spec, start, rule.quantity)
        entries = {"d": spec.flat, "e": spec.flat, "f": spec.conv**2, "g": spec.conv**2}[rule.name]
    elif rule.name == "h":
        failures = _param_rule(full, "dL/dB1", full.B1)
    elif rule.name == "i":
        failures = _param_rule(full, "dL/dW1", full.W1)
        entries = full.W1.size
    elif rule.name == "j":
        failures = _compare(gradient(full, full.W1), _seven_factor_chain(full))
        entries = full.W1.size
    else:
        raise ValueError(rule.name)
    return RuleResult(rule, not failures, time.perf_counter() - t0, entries, failures)


def prove_all(spec: NetworkSpec, full: Network | None = None) -> list:
    """Every rule for one size, in the lecture's order.

    >>> all(r.proven for r in prove_all(NetworkSpec()))
    True
    """
    full = full if full is not None else build(spec)
    return [prove(rule, spec, full) for rule in RULES]
