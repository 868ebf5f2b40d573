"""The general (all-sizes) rules of ``symbolic.general``: proofs, instances, mutants.

The proofs run once per module (``results``). Instances are checked against brute force at the
seed sizes, at preset-like sizes, and at hypothesis-drawn small sizes (derandomized, so a run is
reproducible; a failure prints the drawn sizes).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import symengine as se
import sympy as sp
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from symbolic import general as g
from symbolic.general import (
    GENERAL_RULES,
    LEMMAS,
    MUTANTS,
    PRESET_CONV,
    RECT_CONV,
    SEED_CONV,
    GeneralResult,
    prove_general,
    rule_by_name,
)

LAYERS = {"conv2d", "relu", "leaky_relu", "maxpool", "avgpool", "flatten", "dense", "bce", "softmax_ce", "mse"}

# The lecture's network at the seed: conv 6x6 -> 4x4, ReLU, 2x2/2 pool -> 2x2, flatten 4, dense 1.
SEED_SIZES = {
    "conv2d": SEED_CONV,
    "relu": {"C": 1, "H": 4, "W": 4},
    "leaky_relu": {"C": 1, "H": 4, "W": 4},
    "maxpool": {"C": 1, "H": 4, "W": 4, "kh": 2, "kw": 2, "s": 2},
    "avgpool": {"C": 1, "H": 4, "W": 4, "kh": 2, "kw": 2, "s": 2},
    "flatten": {"C": 1, "H": 2, "W": 2},
    "dense": {"N": 4, "U": 1},
    "bce": {},
    "softmax_ce": {"n": 3},
    "mse": {"m": 2},
}
# Preset-like: channels, stride 2, padding 1, 7x7; a rectangular kernel; overlapping pools.
PRESET_SIZES = {
    "conv2d": (PRESET_CONV, RECT_CONV),
    "relu": ({"C": 2, "H": 3, "W": 2},),
    "leaky_relu": ({"C": 2, "H": 2, "W": 3},),
    "maxpool": ({"C": 2, "H": 5, "W": 6, "kh": 3, "kw": 2, "s": 1}, {"C": 1, "H": 7, "W": 7, "kh": 3, "kw": 3, "s": 2}),
    "avgpool": ({"C": 2, "H": 5, "W": 6, "kh": 3, "kw": 2, "s": 1}, {"C": 1, "H": 7, "W": 7, "kh": 3, "kw": 3, "s": 2}),
    "flatten": ({"C": 2, "H": 3, "W": 2},),
    "dense": ({"N": 3, "U": 5},),
    "bce": ({},),
    "softmax_ce": ({"n": 1}, {"n": 5}),
    "mse": ({"m": 1}, {"m": 4}),
}


@pytest.fixture(scope="module")
def results() -> dict[str, GeneralResult]:
    return {r.rule.name: r for r in prove_general()}


def _agree(rule: g.GeneralRule, sizes: dict[str, int], nonzero: bool = True) -> None:
    inst = rule.instantiate(sizes)
    got = inst.rule(inst.inputs)
    assert got.shape == inst.inputs[inst.wrt].shape, (rule.name, sizes)
    # A rule that is 0 everywhere would agree with a broken brute force that is 0 too. (Drawn sizes
    # may be degenerate on purpose: a 1x1 input whose every window reads padding has gradient 0.)
    if nonzero:
        assert any(v != 0 for v in got.flat), f"{rule.name} at {sizes}: the instantiated rule is identically 0"
    bad = inst.mismatches()
    assert not bad, f"{rule.name} at {sizes}: {len(bad)} entries differ from brute force, first {bad[0]}"


# --- the general proofs ------------------------------------------------------------------------


def test_every_rule_is_proven(results: dict[str, GeneralResult]) -> None:
    assert set(results) == {r.name for r in GENERAL_RULES}
    not_proven = {name: (r.status, r.detail) for name, r in results.items() if r.status != "proven"}
    assert not not_proven


def test_api_shape(results: dict[str, GeneralResult]) -> None:
    names = [r.name for r in GENERAL_RULES]
    assert len(names) == len(set(names))
    assert {r.layer for r in GENERAL_RULES} == LAYERS
    for rule in GENERAL_RULES:
        assert isinstance(rule.statement, sp.Eq)
        assert isinstance(rule.statement.lhs, sp.Derivative)
        assert rule.text and isinstance(rule.forward, sp.Eq)
        res = results[rule.name]
        assert res.status in {"proven", "checked", "failed"} and res.seconds >= 0
        assert res.checked_at == ()
        assert set(res.lemmas) <= {lem.name for lem in LEMMAS}
        assert res.as_json()["name"] == rule.name


def test_steps_are_the_derivation(results: dict[str, GeneralResult]) -> None:
    for name, res in results.items():
        steps = res.steps
        assert steps[0].lhs == sp.Symbol("S"), name
        assert isinstance(steps[1].lhs, sp.Derivative), name
        assert steps[-1].rhs == 0, name
        assert res.rule.statement in steps, name
    # The conv weight gradient, as the handout prints it: diff gives four deltas, which collapse.
    w = results["conv2d.weight"].steps
    assert len(w[1].rhs.atoms(sp.KroneckerDelta)) == 4
    assert not w[-3].rhs.atoms(sp.KroneckerDelta)


def test_conv_input_border_conditions_are_stated(results: dict[str, GeneralResult]) -> None:
    # The reduced brute force carries the border range as an indicator: 0 <= h + p - s i <= K_h - 1.
    h, i = sp.Symbol("h", integer=True, nonnegative=True), sp.Symbol("i", integer=True)
    reduced = [st for st in results["conv2d.input"].steps if isinstance(st, sp.Eq) and st.rhs.atoms(sp.Piecewise)]
    conds = set().union(*(pw.args[0].cond.atoms(sp.Rel) for st in reduced for pw in st.rhs.atoms(sp.Piecewise)))
    lhs = {sp.expand(c.lhs - c.rhs) for c in conds}
    assert sp.expand(h + g.p - g.s * i) in lhs or sp.expand(-(h + g.p - g.s * i)) in lhs


def test_lemmas() -> None:
    by_name = {r.lemma.name: r for r in g.prove_lemmas()}
    for name in ("finite_sums", "delta_sum", "pad_delta", "x_dirac", "bce_softplus", "softmax_ce", "split_forward", "flatten_bijection"):
        assert by_name[name].status == "proven", name
    sel = by_name["selector_definitions"]
    assert sel.status == "checked" and sel.checked_at  # exhaustive at window sizes: never "proven"


def test_a_delta_with_non_unit_coefficient_is_not_collapsed() -> None:
    # delta(s i, u) does not fix i to an integer; collapsing it would be wrong for u = 1, s = 2.
    i, u = sp.Symbol("i", integer=True), sp.Symbol("u", integer=True, nonnegative=True)
    expr = sp.Sum(sp.KroneckerDelta(g.s * i, u) * g.gbar[i], (i, 0, g.n - 1))
    terms = g._reduce(expr, {}, [])
    assert len(terms) == 1 and terms[0].factor.atoms(sp.KroneckerDelta)


# --- wrong rules fail --------------------------------------------------------------------------


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda r: r.name)
def test_mutant_fails_the_general_proof(mutant: g.GeneralRule) -> None:
    res = mutant.prove()
    assert res.status == "failed"
    assert "refuted at" in res.detail  # and a concrete counterexample backs the verdict


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda r: r.name)
@pytest.mark.parametrize("sizes", (PRESET_CONV, RECT_CONV), ids=("preset", "rect"))
def test_mutant_differs_when_instantiated(mutant: g.GeneralRule, sizes: dict[str, int]) -> None:
    assert mutant.instantiate(sizes).mismatches()


def test_one_sided_crop_only_shows_with_padding() -> None:
    # With p = 0 there is nothing to crop: the mutant coincides with the rule at the seed.
    mutant = rule_by_name("conv2d.input[mutant: one-sided crop]")
    assert not mutant.instantiate(SEED_CONV).mismatches()


def _wrong(name: str, rhs: sp.Expr) -> g.GeneralRule:
    rule = rule_by_name(name)
    return dataclasses.replace(rule, name=name + "[wrong]", statement=sp.Eq(rule.statement.lhs, rhs))


WRONG = (
    ("avgpool.input", lambda r: r.statement.rhs * g.k_h * g.k_w),  # forgot the 1/(k_h k_w)
    (
        "maxpool.input[split]",
        lambda r: r.statement.rhs.replace(lambda e: e == g.n_max[e.args[1:]] if isinstance(e, sp.Indexed) else False, lambda e: 1),
    ),
    ("relu.input", lambda r: r.statement.rhs.subs(sp.Heaviside(g.Z[g.fc, g.fi, g.fj], 0), sp.Heaviside(g.Z[g.fc, g.fi, g.fj], 1))),
    ("dense.weight", lambda r: g.gbar[g.fu] * g.fvec[g.fu]),
    ("flatten.input", lambda r: g.gbar[g.fc * g.H * g.W + g.fj * g.H + g.fi]),
)


@pytest.mark.parametrize(("name", "make"), WRONG, ids=[w[0] for w in WRONG])
def test_wrong_statements_fail(name: str, make) -> None:  # noqa: ANN001 - a lambda from the table
    wrong = _wrong(name, make(rule_by_name(name)))
    assert wrong.statement.rhs != rule_by_name(name).statement.rhs
    assert wrong.prove().status == "failed"


# --- instances ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", GENERAL_RULES, ids=lambda r: r.name)
def test_instance_at_the_seed(rule: g.GeneralRule) -> None:
    _agree(rule, SEED_SIZES[rule.layer])


@pytest.mark.parametrize("rule", GENERAL_RULES, ids=lambda r: r.name)
def test_instance_at_presets(rule: g.GeneralRule) -> None:
    for sizes in PRESET_SIZES[rule.layer]:
        _agree(rule, sizes)


def test_bad_sizes_are_refused() -> None:
    conv = rule_by_name("conv2d.weight")
    with pytest.raises(ValueError, match="missing"):
        conv.instantiate({"C": 1})
    with pytest.raises(ValueError, match="does not fit"):
        conv.instantiate({**SEED_CONV, "H": 2, "Kh": 3})
    with pytest.raises(ValueError, match="integer"):
        conv.instantiate({**SEED_CONV, "s": 1.5})
    with pytest.raises(KeyError):
        rule_by_name("conv3d.weight")


def test_first_rule_matches_the_engines_piecewise_max() -> None:
    """Brute force the engine's way: a first-wins Piecewise max (SymEngine), differentiated branch by
    branch, each Piecewise rewritten as sum_k piece_k sel_k with sel_k = [branch k is the first true
    one] = [entry k is the window's first maximum, row-major] = the atom F[c,i,j,a,b]."""
    sizes = {"C": 1, "H": 3, "W": 4, "kh": 2, "kw": 2, "s": 1}  # windows overlap
    inst = rule_by_name("maxpool.input[first]").instantiate(sizes)
    a_, gb, sel = inst.inputs["A"], inst.inputs["gbar"], inst.inputs["F"]
    cells = [(a, b) for a in range(2) for b in range(2)]
    rule = inst.rule(inst.inputs)
    for idx in np.ndindex(*a_.shape):
        brute = 0
        for i, j in np.ndindex(*gb.shape[1:]):
            vals = [a_[0, i + a, j + b] for a, b in cells]
            conds = [se.And(*[se.Ge(v, w) for w in vals if w is not v]) for v in vals]
            pw = se.Piecewise(*zip(vals[:-1], conds[:-1]), (vals[-1], True))
            d = se.diff(pw, a_[idx])
            if isinstance(d, se.Piecewise):
                pieces = d.args[0::2]  # SymEngine keeps every branch, in order
                assert len(pieces) == len(cells)
                d = sum(piece * sel[(0, i, j, *cell)] for piece, cell in zip(pieces, cells))
            brute += gb[0, i, j] * d
        assert se.expand(brute - rule[idx]) == 0, idx


def test_selector_definitions_on_numbers() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = rng.integers(0, 3, size=(2, 3))
        assert np.array_equal(g.evaluate_selector_definition(w, "first"), g.selector_values(w, "first"))
        assert np.array_equal(g.evaluate_selector_definition(w, "all"), g.selector_values(w, "all"))
        assert np.isclose(g.selector_values(w, "split").sum(), 1.0)


# --- hypothesis: small sizes -------------------------------------------------------------------


@st.composite
def conv_sizes(draw: st.DrawFn) -> dict[str, int]:
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    p, s = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    h = draw(st.integers(max(1, kh - 2 * p), 5))
    w = draw(st.integers(max(1, kw - 2 * p), 5))
    return {"C": draw(st.integers(1, 2)), "O": draw(st.integers(1, 2)), "H": h, "W": w, "Kh": kh, "Kw": kw, "s": s, "p": p}


@st.composite
def pool_sizes(draw: st.DrawFn) -> dict[str, int]:
    kh, kw, s = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return {"C": draw(st.integers(1, 2)), "H": draw(st.integers(kh, 6)), "W": draw(st.integers(kw, 6)), "kh": kh, "kw": kw, "s": s}


HYP = settings(derandomize=True, deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow], print_blob=True)


@HYP
@given(conv_sizes())
def test_conv_rules_at_drawn_sizes(sizes: dict[str, int]) -> None:
    note(f"sizes = {sizes}")
    for name in ("conv2d.weight", "conv2d.bias", "conv2d.input"):
        _agree(rule_by_name(name), sizes, nonzero=False)


@HYP
@given(conv_sizes().filter(lambda z: z["p"] > 0 and (z["Kh"] > 1 or z["s"] > 1)))
def test_conv_mutants_at_drawn_sizes(sizes: dict[str, int]) -> None:
    note(f"sizes = {sizes}")
    # rot180 and the K-1 shift only matter when a kernel row can be told apart from another one.
    if sizes["Kh"] > 1:
        assert rule_by_name("conv2d.input[mutant: no rot180]").instantiate(sizes).mismatches(), sizes
        assert rule_by_name("conv2d.input[mutant: off by one]").instantiate(sizes).mismatches(), sizes
    assert rule_by_name("conv2d.input[mutant: one-sided crop]").instantiate(sizes).mismatches(), sizes


@HYP
@given(pool_sizes())
def test_pool_rules_at_drawn_sizes(sizes: dict[str, int]) -> None:
    note(f"sizes = {sizes}")
    for name in ("maxpool.input[first]", "maxpool.input[split]", "maxpool.input[all]", "avgpool.input"):
        _agree(rule_by_name(name), sizes, nonzero=False)


@settings(derandomize=True, deadline=None, max_examples=15, print_blob=True)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5))
def test_small_layers_at_drawn_sizes(c: int, h: int, w: int, n_in: int, units: int) -> None:
    note(f"C={c} H={h} W={w} N={n_in} U={units}")
    for name in ("relu.input", "leaky_relu.input", "flatten.input"):
        _agree(rule_by_name(name), {"C": c, "H": h, "W": w})
    for name in ("dense.weight", "dense.bias", "dense.input"):
        _agree(rule_by_name(name), {"N": n_in, "U": units})
    _agree(rule_by_name("softmax_ce.logits"), {"n": n_in})
    _agree(rule_by_name("mse.prediction"), {"m": units})


def test_instances_match_a_numeric_gradient_too() -> None:
    """One end-to-end sanity check outside SymPy: the conv input rule at the preset, in numbers,
    against central differences of the numeric forward (cross-correlation with padding)."""
    sizes = PRESET_CONV
    inst = rule_by_name("conv2d.input").instantiate(sizes)
    rng = np.random.default_rng(1)
    vals = {name: rng.standard_normal(arr.shape) for name, arr in inst.inputs.items()}
    subs = {inst.inputs[k][idx]: vals[k][idx] for k in ("W", "gbar") for idx in np.ndindex(*vals[k].shape)}
    rule = np.array([float(e.subs(subs)) if not isinstance(e, int) else float(e) for e in inst.rule(inst.inputs).flat])
    xw, wt, gb = vals["X"], vals["W"], vals["gbar"]
    p, s = sizes["p"], sizes["s"]

    def loss(x: np.ndarray) -> float:
        xp = np.pad(x, ((0, 0), (p, p), (p, p)))
        total = 0.0
        for o, i, j in itertools.product(*(range(d) for d in gb.shape)):
            patch = xp[:, s * i : s * i + wt.shape[2], s * j : s * j + wt.shape[3]]
            total += gb[o, i, j] * float((wt[o] * patch).sum())
        return total

    eps, num = 1e-6, np.zeros(xw.size)
    for k in range(xw.size):
        d = np.zeros(xw.size)
        d[k] = eps
        num[k] = (loss(xw + d.reshape(xw.shape)) - loss(xw - d.reshape(xw.shape))) / (2 * eps)
    # The loss is linear in X, so a central difference errs only by rounding: about
    # eps_machine * (sum of the magnitudes of the loss's terms) / h per entry, no floor beyond that.
    magnitude = float(np.sum(np.abs(gb)) * np.max(np.abs(wt)) * np.max(np.abs(xw)) * wt.shape[1] * wt.shape[2] * wt.shape[3])
    tol = 1e-9 * np.abs(rule) + 100 * np.finfo(float).eps * magnitude / eps
    assert (np.abs(rule - num) <= tol).all(), np.max(np.abs(rule - num) - tol)


def test_a_condition_outside_its_sum_is_refused() -> None:
    """SymPy's Sum constructor folds a Piecewise summand up through inner sums, leaving a condition
    on a, b outside the sum that binds them; the reducer must refuse that, not reduce it."""
    rule = rule_by_name("conv2d.input")
    spec = dataclasses.replace(rule.spec, proof_defs={g.Xpad: g._XPAD_DEF, g.Gpad: rule.spec.defs[g.Gpad]})
    res = dataclasses.replace(rule, spec=spec).prove()
    assert res.status == "failed" and "capture" in res.detail


def test_wrong_rules_are_refuted_with_a_counterexample() -> None:
    wrong = _wrong("dense.input", g.Sum(g.gbar[g.bu] * g.Wt[g.fj, g.bu], (g.bu, 0, g.U - 1)))  # W not transposed
    res = wrong.prove()
    assert res.status == "failed" and "refuted at" in res.detail
