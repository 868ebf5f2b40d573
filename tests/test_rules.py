"""Every rule of every preset is proven, and wrong rules, conventions and lemmas are not.

Each mutant replaces one piece of the engine with a plausible mistake; the proof that guards
that piece must then fail. The proofs are cached per spec, so every mutant clears the caches
before and after it runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import symengine as se

import symbolic.atoms as atoms_mod
import symbolic.functions as functions
import symbolic.layers.activation as activation
import symbolic.layers.conv as conv
import symbolic.layers.dense as dense
import symbolic.layers.loss as loss_mod
import symbolic.layers.pool as pool
from symbolic import rules
from symbolic.atoms import Atoms
from symbolic.derive import expansion, param_gradient
from symbolic.network import build, make_layers
from symbolic.rules import prove_all, rules_for
from symbolic.spec import load_spec, parse_spec, seed_spec

PRESETS = ("seed", "part3", "lenet-tiny")


@pytest.fixture(autouse=True)
def fresh_caches():
    rules.clear_caches()
    yield
    rules.clear_caches()


def _failed(spec, **kw) -> list[str]:
    return [r.rule.name for r in prove_all(spec, **kw) if not r.proven]


@pytest.mark.parametrize("name", PRESETS)
def test_every_rule_of_every_preset_is_proven(name):
    results = prove_all(load_spec(name))
    assert results and all(r.proven for r in results), [(r.rule.name, r.failures[:2]) for r in results if not r.proven]
    # Every layer contributes its rules: one per gradient it passes on.
    spec = load_spec(name)
    layers, _ = make_layers(spec)
    expected = 1 + sum(1 + len(la.params) for la in layers)
    assert sum(r.rule.kind not in ("lemma", "chain") for r in results) == expected


@pytest.mark.parametrize("ties", ["first", "split", "all"])
def test_each_tie_convention_is_proven(ties):
    spec = parse_spec({**_dict("part3"), "ties": ties})
    assert spec.ties == ties
    results = prove_all(spec, end_to_end="none")
    assert all(r.proven for r in results)
    assert any(r.rule.name == f"convention: max-pool ties = {ties}" for r in results)


def _dict(name: str) -> dict:
    import tomllib

    from symbolic.spec import presets

    return tomllib.loads(presets()[name].read_text(encoding="utf-8"))


@pytest.mark.parametrize("n,k", [(6, 3), (5, 2), (7, 2), (8, 3)])
def test_the_seed_at_other_sizes_keeps_every_lecture_rule(n, k):
    results = prove_all(seed_spec(n, k))
    assert [r.rule.letter for r in results[:10]] == list("abcdefghij")
    assert all(r.proven for r in results)


SMALL_PART3 = {
    "input": [2, 5, 5],
    "loss": "softmax_ce",
    "layers": [
        {"type": "conv2d", "filters": 2, "kernel": 3, "stride": 2, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool", "window": 2, "stride": 1},
        {"type": "flatten"},
        {"type": "dense", "units": 2},
    ],
}


def test_end_to_end_all_proves_every_rule_through_the_whole_network():
    # part3 itself takes minutes end to end from X; this has its stride, padding and overlap.
    spec = parse_spec(SMALL_PART3)
    chosen = rules_for(spec, "all")
    assert all("end-to-end" in r.methods for r in chosen if r.kind not in ("lemma", "chain"))
    assert all(rules.prove(r).proven for r in chosen)


def test_batch_of_two_shares_the_parameters():
    spec = parse_spec({**_dict("seed"), "batch": 2})
    net = build(spec)
    assert net.stages["X"].shape == (2, 1, 6, 6)
    # The sample index comes first; the single channel is left out of the name.
    assert str(net.stages["X"][1, 0, 0, 0]) == "x_211"
    assert net.params["W1"].shape == (1, 1, 3, 3) and str(net.params["W1"][0, 0, 0, 0]) == "w_11"
    assert all(r.proven for r in prove_all(spec, end_to_end="all"))


# -- mutants: each must fail the proof that guards it --------------------------------------------------


def test_conv_input_gradient_without_rot180_fails(monkeypatch):
    monkeypatch.setattr(conv, "rot180", lambda a: a.copy())
    failed = _failed(load_spec("part3"), end_to_end="none")
    assert "layer 1 (conv2d): input" in failed and "layer 4 (conv2d): input" in failed


def test_conv_without_stride_dilation_fails(monkeypatch):
    monkeypatch.setattr(conv, "dilate", lambda a, s: a.copy())
    failed = _failed(load_spec("part3"), end_to_end="none")
    # Only the stride-2 layer notices; the stride-1 layer's dilation is the identity anyway.
    assert "layer 4 (conv2d): input" in failed and "layer 4 (conv2d): W2" in failed
    assert "layer 1 (conv2d): input" not in failed


def test_conv_padding_cropped_on_one_side_only_fails(monkeypatch):
    monkeypatch.setattr(conv, "crop", lambda a, ph, pw: a[2 * ph :, 2 * pw :].copy())
    assert "layer 4 (conv2d): input" in _failed(load_spec("part3"), end_to_end="none")


def test_true_convolution_for_the_filter_gradient_fails(monkeypatch):
    real = conv.correlate

    def flipped(a, k, stride=(1, 1)):
        return real(a, k[::-1, ::-1].copy(), stride)

    monkeypatch.setattr(conv, "correlate", flipped)
    failed = _failed(load_spec(), end_to_end="none")
    assert "layer 1 (conv2d): W1" in failed


def test_overlapping_max_pool_keeping_one_contribution_fails(monkeypatch):
    real = pool.zeros

    class KeepLast(np.ndarray):
        pass

    def backward(self, ctx, g):
        x = ctx.saved["x"]
        win = self.windows()
        gx = real(x.shape)
        for idx in np.ndindex(*g.shape):
            n, c, r, s = idx
            cells = [(n, c, *ab) for ab in win[r, s]]
            sel = ctx.atoms.window([x[cell] for cell in cells], self.ties, [ctx.in_labels[cell] for cell in cells], ctx.out_labels[idx])
            for cell, routed in zip(cells, sel):
                gx[cell] = g[idx] * routed  # overwrites what an earlier window sent
        return gx, {}

    monkeypatch.setattr(pool.MaxPool, "backward", backward)
    assert "layer 3 (maxpool): input" in _failed(load_spec("part3"), end_to_end="none")
    # Without overlap, keeping one contribution is the same thing: the seed still proves.
    assert "layer 3 (maxpool): input" not in _failed(load_spec(), end_to_end="none")


def test_avgpool_without_the_area_fails(monkeypatch):
    real = pool.AvgPool.backward

    def backward(self, ctx, g):
        gx, _ = real(self, ctx, g)
        return gx * 4, {}

    monkeypatch.setattr(pool.AvgPool, "backward", backward)
    assert "layer 6 (avgpool): input" in _failed(load_spec("part3"), end_to_end="none")


def test_dense_with_untransposed_weights_fails(monkeypatch):
    def backward(self, ctx, g):
        x, W = ctx.canon(ctx.saved["x"]), ctx.saved["W"]
        gx = np.array(
            [
                [se.Add(*[g[n, u] * W[j % W.shape[0], u % W.shape[1]] for u in range(W.shape[0])]) for j in range(x.shape[1])]
                for n in range(x.shape[0])
            ],
            dtype=object,
        )
        gW = np.array(
            [[se.Add(*[g[n, u] * x[n, j] for n in range(x.shape[0])]) for j in range(W.shape[1])] for u in range(W.shape[0])], dtype=object
        )
        return gx, {self.names["W"]: gW, self.names["B"]: np.array([se.Add(*g[:, u]) for u in range(W.shape[0])], dtype=object)}

    monkeypatch.setattr(dense.Dense, "backward", backward)
    assert "layer 8 (dense): input" in _failed(load_spec("part3"), end_to_end="none")


def test_tanh_with_the_wrong_derivative_fails(monkeypatch):
    monkeypatch.setattr(activation.Tanh, "slope", lambda self, ctx, z: 1 - ctx.atoms.lookup("tanh", (z,)))
    assert "layer 5 (tanh): input" in _failed(load_spec("part3"), end_to_end="none")


def test_leaky_relu_without_the_slope_at_zero_fails(monkeypatch):
    spec = parse_spec(
        {
            "input": [4, 4],
            "loss": "mse",
            "layers": [{"type": "leaky_relu", "slope": 0.1}, {"type": "flatten"}, {"type": "dense", "units": 2}],
        }
    )
    assert not _failed(spec)
    monkeypatch.setattr(activation.LeakyReLU, "slope", lambda self, ctx, z: ctx.atoms.lookup("step", (z,)))
    assert "layer 1 (leaky_relu): input" in _failed(spec)


def test_softmax_gradient_without_the_prediction_fails(monkeypatch):
    monkeypatch.setattr(loss_mod.SoftmaxCE, "prediction", lambda self, ctx: ctx.canon(ctx.saved["x"]) * 0)
    assert "layer 9 (softmax_ce): input" in _failed(load_spec("part3"), end_to_end="none")


def test_mse_without_the_factor_two_fails(monkeypatch):
    spec = parse_spec({"input": [2, 2], "loss": "mse", "layers": [{"type": "flatten"}, {"type": "dense", "units": 3}]})
    real = loss_mod.MSE.backward
    monkeypatch.setattr(loss_mod.MSE, "backward", lambda self, ctx, g: (real(self, ctx, g)[0] / 2, {}))
    assert "layer 3 (mse): input" in _failed(spec)


def test_flatten_column_major_fails(monkeypatch):
    monkeypatch.setattr(
        "symbolic.layers.flatten.Flatten.backward", lambda self, ctx, g: (g.reshape(ctx.saved["shape"], order="F").copy(), {})
    )
    assert "(e)" in [r.rule.label for r in prove_all(load_spec(), end_to_end="none") if not r.proven]


def test_relu_condition_ge_fails_the_convention(monkeypatch):
    # With >= the atoms are rebuilt consistently, so every layer rule still proves: only the
    # convention obligation at exact points can see it.
    monkeypatch.setattr(functions, "relu_condition", lambda z: se.Ge(z, 0))
    monkeypatch.setattr(atoms_mod, "relu_condition", lambda z: se.Ge(z, 0))
    failed = _failed(load_spec(), end_to_end="none")
    assert failed == ["convention: layer 2 (relu)"]


def test_last_max_fails_the_convention(monkeypatch):
    def last_wins(values):
        values = list(values)
        return tuple(se.And(*[se.Gt(values[i], values[j]) for j in range(i + 1, len(values))]) for i in range(len(values) - 1))

    monkeypatch.setattr(functions, "first_max_conditions", last_wins)
    monkeypatch.setattr(atoms_mod, "first_max_conditions", last_wins)
    failed = _failed(load_spec(), end_to_end="none")
    assert failed == ["convention: max-pool ties = first"]


def test_split_routing_as_first_fails_the_split_convention(monkeypatch):
    monkeypatch.setitem(atoms_mod.DEFINITIONS, "split", atoms_mod.DEFINITIONS["first"])
    spec = parse_spec({**_dict("seed"), "ties": "split"})
    assert _failed(spec, end_to_end="none") == ["convention: max-pool ties = split"]


def test_a_wrong_loss_fails_the_loss_lemma(monkeypatch):
    # dL/dZ2 = sigmoid - Y is still "proven" for softplus(z) + y z? No: the rule checks the
    # derivative; but a loss that differs by a constant is only caught by the lemma.
    monkeypatch.setattr(
        loss_mod.BCE,
        "sample_loss",
        lambda self, ctx, z, y, labels, out_labels: (
            ctx.atoms.unary("sigmoid", z[0], labels[0]),
            ctx.atoms.unary("softplus", z[0], labels[0]),
            functions.softplus(z[0]) - y[0] * z[0] + 1,
        )[-1],
    )
    assert _failed(load_spec(), end_to_end="none") == ["lemma: bce loss"]


def test_a_naive_stable_form_fails_the_loss_lemma(monkeypatch):
    monkeypatch.setattr(
        loss_mod.BCE, "stable", lambda self, z, y: functions.log1p(se.exp(z[0])) - y[0] * z[0] + 0 * z[0] + se.log(2) - se.log(2) + 1
    )
    assert "lemma: bce loss" in _failed(load_spec(), end_to_end="none")


def test_a_wrong_chain_factor_fails_rule_j(monkeypatch):
    # A leaky factor in the ReLU Jacobian: the chain of local Jacobians no longer matches brute force.
    real = activation.ReLU.value
    calls = {"n": 0}

    def leaky_in_chain(self, ctx, z, label):
        calls["n"] += 1
        if ctx.atoms is not None and str(label).startswith("z") and str(z).startswith("_u"):
            ctx.atoms.step(z, label)
            return functions.leaky_relu(z, se.Rational(1, 10))
        return real(self, ctx, z, label)

    monkeypatch.setattr(activation.ReLU, "value", leaky_in_chain)
    results = {r.rule.label: r.proven for r in prove_all(load_spec())}
    assert results["(j)"] is False and results["(g)"] is True


# -- the pieces the proofs stand on ------------------------------------------------------------------


def test_relu_derivative_is_zero_at_zero_and_one_above():
    z = se.Symbol("z")
    d = functions.relu(z).diff(z)
    assert [d.subs({z: v}) for v in (-1, 0, 1)] == [0, 0, 1]


def test_first_max_sends_a_tie_to_the_first():
    a, b, c = se.symbols("a b c")
    m = functions.first_max([a, b, c])
    grads = [m.diff(v).subs({a: 3, b: 3, c: 1}) for v in (a, b, c)]
    assert grads == [1, 0, 0]


def test_canonical_form_is_exact_at_ties():
    a, b = se.symbols("a b")
    atoms = Atoms()
    sel = atoms.window([a, b], "first", ["a", "b"], "p")
    expr = atoms.canon(functions.first_max([a, b]))
    assert se.expand(expr - (a * sel[0] + b * sel[1])) == 0


def test_unregistered_piecewise_is_refused():
    z = se.Symbol("z")
    with pytest.raises(KeyError):
        Atoms().canon(functions.relu(z))


def test_expansion_adds_up_to_the_derivative():
    net = build(load_spec())
    for name in ("w_11", "w_23", "B_1", "w2_3", "B_2"):
        e = expansion(net, name)
        total = se.Add(*[t.expr for t in e.terms])
        assert se.expand(total - e.derivative) == 0
        from symbolic.derive import stage_names_map

        assert se.expand(e.derivative - param_gradient(net, name).subs(stage_names_map(net))) == 0


def test_seed_entries_keep_the_lecture_names():
    net = build(load_spec())
    assert list(net.entries()) == [f"w_{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3)] + ["B_1"] + [f"w2_{j}" for j in (1, 2, 3, 4)] + [
        "B_2"
    ]
    assert str(net.stages["X"][0, 0, 1, 2]) == "x_23"


def test_a_wrong_derivative_table_fails_its_lemma(monkeypatch):
    # A table that says sigmoid' = s (1 + s) would still "prove" the sigmoid layer's rule (both
    # sides read the same table); the lemma compares the table with SymPy's own derivative.
    real = atoms_mod.Atoms._derivative

    def wrong(self, expr):
        out = real(self, expr)
        f = expr.args[0].args[0] if isinstance(expr, se.Subs) else expr.args[0]
        if isinstance(f, se.FunctionSymbol) and f.get_name() == "sigmoid":
            s = self.lookup("sigmoid", f.args if not isinstance(expr, se.Subs) else (expr.args[2],))
            return s * (1 + s)
        return out

    monkeypatch.setattr(atoms_mod.Atoms, "_derivative", wrong)
    failed = _failed(load_spec(), end_to_end="none")
    assert "lemma: σ′ = σ(1 − σ)" in failed


def _table_mutant(monkeypatch, name: str, replace):
    real = atoms_mod.Atoms._derivative

    def wrong(self, expr):
        out = real(self, expr)
        f = expr.args[0].args[0] if isinstance(expr, se.Subs) else expr.args[0]
        return replace(self, out) if isinstance(f, se.FunctionSymbol) and f.get_name() == name else out

    monkeypatch.setattr(atoms_mod.Atoms, "_derivative", wrong)


def test_a_wrong_softplus_derivative_fails_its_lemma(monkeypatch):
    _table_mutant(monkeypatch, "softplus", lambda self, out: 1 - out)  # 1 - σ instead of σ
    assert "lemma: softplus′ = σ" in _failed(load_spec(), end_to_end="none")


def test_a_wrong_lse_derivative_fails_its_lemma(monkeypatch):
    _table_mutant(monkeypatch, "lse", lambda self, out: out * out)  # softmax² instead of softmax
    assert "lemma: ∂lse/∂z = softmax" in _failed(load_spec("part3"), end_to_end="none")


def test_a_wrong_softmax_loss_fails_the_loss_lemma(monkeypatch):
    # A loss off by a constant: its gradient is still p - y (the layer rule proves), but it is
    # not the cross-entropy; only the lemma can tell.
    real = loss_mod.SoftmaxCE.sample_loss
    monkeypatch.setattr(
        loss_mod.SoftmaxCE, "sample_loss", lambda self, ctx, z, y, labels, out_labels: real(self, ctx, z, y, labels, out_labels) + 1
    )
    assert _failed(load_spec("part3"), end_to_end="none") == ["lemma: softmax_ce loss"]


def test_a_wrong_mse_stable_form_fails_the_loss_lemma(monkeypatch):
    spec = parse_spec({"input": [2, 2], "loss": "mse", "layers": [{"type": "flatten"}, {"type": "dense", "units": 3}]})
    real = loss_mod.MSE.stable
    monkeypatch.setattr(loss_mod.MSE, "stable", lambda self, z, y: real(self, z, y) * 2)
    assert _failed(spec) == ["lemma: mse loss"]
