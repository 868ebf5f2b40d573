"""The lecture's rules are proven exactly, for several sizes, and the proofs can fail."""
from __future__ import annotations

import pytest
import symengine as se

from symbolic import layers
from symbolic.atoms import Atoms, is_zero
from symbolic.derive import expansion, gradient, param_gradient
from symbolic.errors import ParameterError, SpecError
from symbolic.functions import first_max, relu
from symbolic.network import build
from symbolic.rules import RULES, loss_lemma, prove, prove_all
from symbolic.spec import NetworkSpec

SIZES = [(6, 3), (5, 2), (7, 2), (8, 3)]


@pytest.mark.parametrize("n,k", SIZES)
def test_every_rule_is_proven(n, k):
    results = prove_all(NetworkSpec(n=n, k=k))
    assert [r.rule.name for r in results] == list("abcdefghij")
    for r in results:
        assert r.proven, (r.rule.name, r.failures[:3])
        assert r.entries >= 1


def test_loss_lemma():
    assert loss_lemma()


def test_fifteen_parameters_and_their_names():
    net = build(NetworkSpec())
    assert list(net.params()) == ["w_11", "w_12", "w_13", "w_21", "w_22", "w_23", "w_31", "w_32", "w_33",
                                  "B_1", "w2_1", "w2_2", "w2_3", "w2_4", "B_2"]


@pytest.mark.parametrize("bad", [dict(n=0), dict(k=0), dict(n=3, k=4), dict(n=7, k=3), dict(n=2.5), dict(k=True)])
def test_impossible_sizes_name_the_field(bad):
    with pytest.raises(SpecError) as err:
        NetworkSpec(**bad)
    assert str(err.value).split(":")[0] in {"n", "k"}


def test_unknown_parameter():
    with pytest.raises(ParameterError, match="PARAM: expected one of w_11"):
        param_gradient(build(NetworkSpec()), "q_11")


# --- conventions carried by the definitions -------------------------------------------------

def test_relu_derivative_is_zero_at_zero_and_one_above():
    z = se.Symbol("z")
    d = relu(z).diff(z)
    assert d.subs({z: 0}) == 0
    assert d.subs({z: se.Rational(1, 10**9)}) == 1
    assert d.subs({z: -1}) == 0


def test_first_max_sends_a_tie_to_the_first():
    a, b, c, d = se.symbols("a b c d")
    m = first_max([a, b, c, d])
    tie = {a: 1, b: 3, c: 3, d: 3}
    assert [m.diff(v).subs(tie) for v in (a, b, c, d)] == [0, 1, 0, 0]
    allsame = {a: 2, b: 2, c: 2, d: 2}
    assert [m.diff(v).subs(allsame) for v in (a, b, c, d)] == [1, 0, 0, 0]
    assert m.subs({a: 1, b: 0, c: 5, d: 4}) == 5


def test_sympy_max_would_break_the_convention():
    # The reason we do not use SymPy's Max: its derivative at a tie is Heaviside(0) = 1/2.
    import sympy as sp

    a, b = sp.symbols("a b", real=True)
    assert sp.Max(a, b).diff(a).subs({a: 1, b: 1}) == sp.Rational(1, 2)


def test_canonical_form_is_exact_at_ties():
    # The rewrite Piecewise -> sum of piece * selector, evaluated with the selectors' own
    # meaning, equals the Piecewise itself, here at a point with a four-way tie.
    atoms = Atoms()
    a = [se.Symbol(f"a{i}") for i in range(4)]
    sel = atoms.selectors(a, [f"a{i}" for i in range(4)], "p")
    m = first_max(a)
    canon = atoms.canon(m)
    for point in ({a[0]: 2, a[1]: 2, a[2]: 2, a[3]: 2}, {a[0]: 0, a[1]: 3, a[2]: 3, a[3]: 1}, {a[0]: -1, a[1]: -2, a[2]: 0, a[3]: 0}):
        vals = [point[x] for x in a]
        first = vals.index(max(vals))
        sel_vals = {s: int(i == first) for i, s in enumerate(sel)}
        assert canon.subs({**point, **sel_vals}) == m.subs(point)


def test_expansion_adds_up_to_the_derivative():
    net = build(NetworkSpec())
    for name in ("w_11", "w_23", "B_1", "w2_2", "B_2"):
        e = expansion(net, name)
        assert is_zero(se.Add(*[t.expr for t in e.terms]) - e.derivative)
    e = expansion(net, "w_11")
    assert len(e.terms) == 16
    assert [w for w, _ in e.windows()] == ["p_11", "p_12", "p_21", "p_22"]


def test_expansion_for_mnist_size_groups_by_window():
    net = build(NetworkSpec(n=12, k=3))
    e = expansion(net, "w_22")
    assert len(e.windows()) == 25 and len(e.terms) == 100


# --- the proofs can fail: break one backward rule at a time --------------------------------

def _last_wins_mask(A, size, atoms, labels, out_labels):
    mask = layers.MaxPool.mask(A, size, atoms, labels, out_labels)
    out = layers.obj(A.shape, lambda *i: se.Integer(0))
    for cells in layers.MaxPool.windows(A.shape[0], size).values():
        sel = [mask[c] for c in cells]
        for c, s in zip(cells, reversed(sel)):
            out[c] = s
    return out


def _flipped_conv(X, W, gZ):
    # True convolution (filter rotated 180 degrees) instead of cross-correlation.
    k, c = W.shape[0], gZ.shape[0]
    gW = layers.obj(W.shape, lambda a, e: se.Add(*[X[i + k - 1 - a, j + k - 1 - e] * gZ[i, j] for i in range(c) for j in range(c)]))
    return gW, se.Add(*gZ.ravel())


MUTANTS = {
    "a": ("SigmoidBCE", lambda orig: lambda Z, Y, atoms: atoms.sigmoid(Z) - 1),
    "d": ("Dense", lambda orig: lambda F, W, gZ: (orig(F, W[::-1], gZ)[0], orig(F, W, gZ)[1], gZ)),
    "e": ("Flatten", lambda orig: lambda P, gF: gF.reshape(P.shape, order="F").copy()),
    "f": ("MaxPool", lambda orig: lambda A, gP, size, atoms, labels, out_labels: layers.obj(
        A.shape, lambda i, j: gP[i // size, j // size] * _last_wins_mask(A, size, atoms, labels, out_labels)[i, j])),
    "g": ("ReLU", lambda orig: lambda Z, gA, atoms, labels: gA),
    "h": ("Conv2D", lambda orig: lambda X, W, gZ: (orig(X, W, gZ)[0], 2 * orig(X, W, gZ)[1])),
    "i": ("Conv2D", lambda orig: _flipped_conv),
}


@pytest.mark.parametrize("rule_name", sorted(MUTANTS))
def test_a_wrong_rule_is_not_proven(monkeypatch, rule_name):
    cls_name, make = MUTANTS[rule_name]
    cls = getattr(layers, cls_name)
    monkeypatch.setattr(cls, "backward", staticmethod(make(cls.backward)))
    rule = next(r for r in RULES if r.name == rule_name)
    result = prove(rule, NetworkSpec())
    assert not result.proven
    assert result.failures


def test_a_wrong_chain_factor_is_not_proven(monkeypatch):
    # The seven-factor chain takes each factor from a layer's forward rule. Build the network
    # first, then make ReLU leaky for the chain alone: dA1/dZ1 changes and the proof must fail.
    from symbolic import rules

    full = build(NetworkSpec())
    assert not rules._compare(gradient(full, full.W1), rules._seven_factor_chain(full))
    real_forward = layers.ReLU.forward

    def leaky(Z, atoms, labels):
        out = real_forward(Z, atoms, labels)
        return layers.obj(Z.shape, lambda *i: out[i] + Z[i] / 100)

    monkeypatch.setattr(layers.ReLU, "forward", staticmethod(leaky))
    assert rules._compare(gradient(full, full.W1), rules._seven_factor_chain(full))


def test_gradient_of_stage_symbols_matches_rule_shape():
    net = build(NetworkSpec(n=5, k=2), start="A1")
    g = gradient(net, net.inputs)
    assert g.shape == (4, 4)
