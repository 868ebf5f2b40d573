"""Each general rule, instantiated at concrete sizes, is the rule the engine proves there.

``symbolic.general`` proves every layer type's backprop rule for all sizes in index notation; the
layer-stack engine (``symbolic.layers``, ``symbolic.rules``) proves each layer's rule per network
by brute force. This file ties the two together, layer by layer: the general rule's SymPy
statement is evaluated (``GeneralRule.instantiate(sizes).rule``) on the engine's *own* symbols
(``rules.layer_rule``: its fresh inputs, parameters and upstream-gradient symbols ḡ), and the
result must be identical to the engine's backward (exact ``expand(difference) == 0``, entry by
entry). The sizes are those of every layer of every preset (with each max-pool tie convention),
and hypothesis-drawn small networks (derandomized; a failure prints the drawn spec).

The engine writes kinks and ties as atoms; the general rules write them as functions. They are
matched in two ways:

* symbolically: the general rule's selector arrays are filled with the engine's atoms (F := the
  "first" atoms, E := the "all" atoms), its ``Heaviside(z, 0)`` becomes the engine's step atom
  1[z > 0], and the engine's split share, sigmoid and softmax atoms become what they stand for
  (E_k / sum E, 1 / (1 + e^-z), e^z_k / sum e^z);
* at exact points: the engine's atoms replaced by their *definitions* (the forward's own
  conditions, and the numerically stable sigmoid/softmax), the general rule evaluated with its own
  definitions (``Heaviside(q, 0)``, the SymPy formulas for F and E), at rational inputs with
  kinks (z = 0) and ties on purpose.

tanh and sigmoid activations have no general rule (``GENERAL_RULES`` has none), so their layers are
the only ones left out. The general rules have one stride ``s`` and one padding ``p``; the drawn
networks use square strides and paddings. With a batch, the engine sums the parameter gradients
over the samples and divides the loss gradient by the batch size (L is the mean); the comparison
does the same with the per-sample general rule.

The mutants (no rot180, off-by-one shift, one-sided crop) differ from the engine's rule wherever
they differ from their own brute force, and at the presets' conv layers as tabulated below.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from fractions import Fraction

import numpy as np
import pytest
import symengine as se
import sympy as sp
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from symbolic.functions import exact
from symbolic.general import GENERAL_RULES, MUTANTS, evaluate_selector_definition, rule_by_name
from symbolic.network import label_symbols, make_layers
from symbolic.rules import LayerRule, layer_rule
from symbolic.spec import TIES, NetworkSpec, load_spec, parse_spec

PRESETS = ("seed", "part3", "lenet-tiny")
NO_GENERAL_RULE = frozenset({"tanh", "sigmoid"})
MUTANT_NAMES = tuple(m.name for m in MUTANTS)


# --- one general rule next to the engine's rule, on the engine's symbols --------------------------


@dataclasses.dataclass(frozen=True)
class Pair:
    """A general rule evaluated on one engine layer's symbols (``general``) and the engine's rule
    there (``engine``), both with the atoms matched, as object arrays of the engine's layout."""

    rule: str
    where: str
    sizes: dict
    general: np.ndarray
    engine: np.ndarray

    def mismatches(self) -> list[tuple[tuple[int, ...], object]]:
        if self.general.shape != self.engine.shape:
            return [((), f"shape {self.general.shape} != {self.engine.shape}")]
        out = []
        for idx in np.ndindex(*self.engine.shape):
            d = _difference(self.general[idx], self.engine[idx])
            if d != 0:
                out.append((idx, d))
        return out

    def assert_identical(self, nonzero: bool = True) -> None:
        bad = self.mismatches()
        assert not bad, f"{self.rule} at {self.where} {self.sizes}: {len(bad)} entries differ from the engine, first {bad[0]}"
        if nonzero:  # two rules that are both 0 everywhere would agree vacuously
            assert any(_difference(v, 0) != 0 for v in self.engine.flat), f"{self.rule} at {self.where}: identically 0"


def _difference(a: object, b: object) -> object:
    if isinstance(a, sp.Basic) or isinstance(b, sp.Basic):
        return sp.expand(sp.sympify(a) - sp.sympify(b))
    return se.expand(se.sympify(a) - se.sympify(b))


def _arr(shape: tuple[int, ...], fill: Callable[..., object]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = fill(*idx)
    return out


def _map(a: np.ndarray, f: Callable[[object], object]) -> np.ndarray:
    a = np.asarray(a, dtype=object)
    return _arr(a.shape, lambda *i: f(a[i]))


def _sympy(a: np.ndarray) -> np.ndarray:
    return _map(a, sp.sympify)


def _scalar(v: object) -> np.ndarray:
    out = np.empty((), dtype=object)
    out[()] = v
    return out


def _batched(name: str, per_sample: list[np.ndarray]) -> np.ndarray:
    """Parameters are shared by the samples (gradients add up); inputs get one gradient each."""
    if name.endswith(("weight", "bias")):
        return functools.reduce(np.add, per_sample)
    return np.stack(per_sample)


def _where(spec: NetworkSpec, r: LayerRule) -> str:
    return f"{spec.label} {r.layer.title} ties={spec.ties} batch={spec.batch}"


def _square(pair: tuple[int, int], what: str) -> int:
    assert pair[0] == pair[1], f"the general rules have one {what}, got {pair}"
    return pair[0]


def _chw(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """An image shape as is; a flat (N,) shape as 1 x 1 x N (entrywise layers do not care)."""
    return shape if len(shape) == 3 else (1, 1, shape[0])  # type: ignore[return-value]


def conv_sizes(r: LayerRule) -> dict[str, int]:
    la = r.layer
    c, h, w = la.in_shape
    kh, kw = la.spec.kernel
    s, p = _square(la.spec.stride, "stride"), _square(la.spec.padding, "padding")
    return {"C": c, "O": la.spec.filters, "H": h, "W": w, "Kh": kh, "Kw": kw, "s": s, "p": p}


def pool_sizes(r: LayerRule) -> dict[str, int]:
    la = r.layer
    c, h, w = la.in_shape
    kh, kw = la.spec.window
    return {"C": c, "H": h, "W": w, "kh": kh, "kw": kw, "s": _square(la.spec.stride, "stride")}


def _instance(name: str, sizes: Mapping[str, int], r: LayerRule):  # noqa: ANN202 - an Instance
    inst = rule_by_name(name).instantiate(sizes)
    for key, got in (("H_o", 1), ("W_o", 2)):
        if key in inst.sizes:  # the general rule's derived output size is the engine's
            assert inst.sizes[key] == r.layer.out_shape[got], (name, inst.sizes, r.layer.out_shape)
    return inst


def _conv(spec: NetworkSpec, r: LayerRule, names: tuple[str, ...] = ("conv2d.weight", "conv2d.bias", "conv2d.input")) -> list[Pair]:
    la = r.layer
    sizes = conv_sizes(r)
    W, B = r.params[la.names["W"]], r.params[la.names["B"]]
    samples = [{"X": r.inputs[n], "W": W, "b": B, "gbar": r.gbar[n]} for n in range(spec.batch)]
    engine = {"conv2d.weight": r.grad_params[la.names["W"]], "conv2d.bias": r.grad_params[la.names["B"]]}
    out = []
    for name in names:
        inst = _instance(name, sizes, r)
        general = _batched(name, [inst.rule(a) for a in samples])
        out.append(Pair(name, _where(spec, r), sizes, general, engine.get(name, r.grad_input)))
    return out


def _dense(spec: NetworkSpec, r: LayerRule) -> list[Pair]:
    la = r.layer
    sizes = {"N": la.in_shape[0], "U": la.spec.units}
    W, B = r.params[la.names["W"]], r.params[la.names["B"]]
    samples = [{"f": r.inputs[n], "W": W, "b": B, "gbar": r.gbar[n]} for n in range(spec.batch)]
    engine = {"dense.weight": r.grad_params[la.names["W"]], "dense.bias": r.grad_params[la.names["B"]], "dense.input": r.grad_input}
    out = []
    for name, want in engine.items():
        inst = _instance(name, sizes, r)
        out.append(Pair(name, _where(spec, r), sizes, _batched(name, [inst.rule(a) for a in samples]), want))
    return out


def _flatten(spec: NetworkSpec, r: LayerRule) -> list[Pair]:
    shape = r.layer.in_shape
    c, h, w = _chw(shape)
    sizes = {"C": c, "H": h, "W": w}
    inst = _instance("flatten.input", sizes, r)
    per = [inst.rule({"P": r.inputs[n].reshape(c, h, w), "gbar": r.gbar[n]}).reshape(shape) for n in range(spec.batch)]
    return [Pair("flatten.input", _where(spec, r), sizes, np.stack(per), r.grad_input)]


def step_atoms(r: LayerRule) -> dict[sp.Basic, sp.Basic]:
    """z -> the engine's atom 1[z > 0] (SymPy symbols), checked to be a step atom of that z."""
    out = {}
    for z in r.inputs.flat:
        atom = r.atoms.lookup("step", (z,))
        info = r.atoms.by_symbol[atom]
        assert info.kind == "step" and info.args == (z,)
        out[sp.sympify(z)] = sp.sympify(atom)
    return out


def _activation(spec: NetworkSpec, r: LayerRule) -> list[Pair]:
    la = r.layer
    shape = la.in_shape
    c, h, w = _chw(shape)
    sizes = {"C": c, "H": h, "W": w}
    name = f"{la.kind}.input"
    inst = _instance(name, sizes, r)
    steps = step_atoms(r)
    extra = {"alpha": _scalar(sp.sympify(exact(la.spec.slope)))} if la.kind == "leaky_relu" else {}
    per = []
    for n in range(spec.batch):
        got = inst.rule({"Z": _sympy(r.inputs[n].reshape(c, h, w)), "gbar": _sympy(r.gbar[n].reshape(c, h, w)), **extra})
        # The general rule's Heaviside(z, 0) is the engine's atom 1[z > 0].
        per.append(_map(got, lambda e: e.replace(sp.Heaviside, lambda z, *_: steps[z])).reshape(shape))
    return [Pair(name, _where(spec, r), sizes, np.stack(per), _sympy(r.grad_input))]


def windows(r: LayerRule, n: int) -> dict[tuple[int, int, int], tuple]:
    """(c, i, j) -> the window's input symbols, row-major (the engine's order and the rule's a, b)."""
    la = r.layer
    (kh, kw), (sh, sw) = la.spec.window, la.spec.stride
    _, ho, wo = la.out_shape
    x = r.inputs[n]
    return {
        (c, i, j): tuple(x[c, sh * i + a, sw * j + b] for a in range(kh) for b in range(kw))
        for c in range(la.in_shape[0])
        for i in range(ho)
        for j in range(wo)
    }


def selector_atoms(r: LayerRule, n: int) -> np.ndarray:
    """The engine's selector atoms of sample n as the general rule's F / E array [c, i, j, a, b]."""
    la = r.layer
    kh, kw = la.spec.window
    sel = np.empty((*la.out_shape, kh, kw), dtype=object)
    for (c, i, j), values in windows(r, n).items():
        for k in range(kh * kw):
            if len(values) == 1:
                sel[c, i, j, 0, 0] = se.Integer(1)  # a 1 x 1 window has no choice to make, so no atom
                continue
            atom = r.atoms.lookup(la.ties, values, k)
            info = r.atoms.by_symbol[atom]
            assert (info.kind, info.args, info.position) == (la.ties, values, k)
            sel[c, i, j, k // kw, k % kw] = atom
    return sel


def _maxpool(spec: NetworkSpec, r: LayerRule) -> list[Pair]:
    la = r.layer
    sizes = pool_sizes(r)
    name = f"maxpool.input[{la.ties}]"
    inst = _instance(name, sizes, r)
    per, engine = [], []
    for n in range(spec.batch):
        sel = selector_atoms(r, n)
        arrays = {"A": r.inputs[n], "gbar": r.gbar[n]}
        want = r.grad_input[n]
        if la.ties == "first":
            arrays["F"] = sel  # the first-argmax indicator F is the engine's "first" atom
        elif la.ties == "all":
            arrays["E"] = sel  # the is-a-maximum indicator E is the engine's "all" atom
        else:
            # E free; the engine's split share of entry k is E_k / M with M = sum_k E_k (its definition).
            e = _arr(sel.shape, lambda *i, n=n: se.Symbol("E_" + "_".join(map(str, (n, *i)))))
            arrays["E"] = e
            share = {}
            for idx in np.ndindex(*sel.shape[:3]):
                m = se.Add(*e[idx].flat)
                share.update({atom: ev / m for atom, ev in zip(sel[idx].flat, e[idx].flat) if isinstance(atom, se.Symbol)})
            want = _map(want, lambda v, share=share: se.sympify(v).subs(share))
        per.append(inst.rule(arrays))
        engine.append(want)
    return [Pair(name, _where(spec, r), sizes, np.stack(per), np.stack(engine))]


def _avgpool(spec: NetworkSpec, r: LayerRule) -> list[Pair]:
    sizes = pool_sizes(r)
    inst = _instance("avgpool.input", sizes, r)
    per = [inst.rule({"A": r.inputs[n], "gbar": r.gbar[n]}) for n in range(spec.batch)]
    return [Pair("avgpool.input", _where(spec, r), sizes, np.stack(per), r.grad_input)]


def link_meanings(r: LayerRule) -> dict[sp.Basic, sp.Basic]:
    """The engine's sigmoid and softmax atoms -> what they stand for, 1/(1 + e^-z) and e^z_k / sum e^z."""
    out = {}
    for atom, info in r.atoms.by_symbol.items():
        z = [sp.sympify(a) for a in info.args]
        if info.kind == "sigmoid":
            out[sp.sympify(atom)] = 1 / (1 + sp.exp(-z[0]))
        elif info.kind == "softmax":
            out[sp.sympify(atom)] = sp.exp(z[info.position]) / sp.Add(*(sp.exp(q) for q in z))
    return out


def _loss(spec: NetworkSpec, r: LayerRule) -> list[Pair]:
    kind = r.layer.kind
    x, y, batch = r.inputs, label_symbols(spec), spec.batch
    units = x.shape[1]
    if kind == "mse":
        name, sizes = "mse.prediction", {"m": units}
        inst = _instance(name, sizes, r)
        per = [inst.rule({"yhat": x[n], "y": y[n]}) for n in range(batch)]
        return [Pair(name, _where(spec, r), sizes, _map(np.stack(per), lambda e: e / batch), r.grad_input)]
    if kind == "bce":
        name, sizes = "bce.logit", {}
        inst = _instance(name, sizes, r)
        per = [inst.rule({"z": _scalar(sp.sympify(x[n, 0])), "y": _scalar(sp.sympify(y[n, 0]))}).reshape(1) for n in range(batch)]
    else:
        name, sizes = "softmax_ce.logits", {"n": units}
        inst = _instance(name, sizes, r)
        per = [inst.rule({"z": _sympy(x[n]), "y": _sympy(y[n])}) for n in range(batch)]
    meaning = link_meanings(r)
    engine = _map(_sympy(r.grad_input), lambda e: e.xreplace(meaning))
    return [Pair(name, _where(spec, r), sizes, _map(np.stack(per), lambda e: e / batch), engine)]


PAIRERS: dict[str, Callable[[NetworkSpec, LayerRule], list[Pair]]] = {
    "conv2d": _conv,
    "dense": _dense,
    "flatten": _flatten,
    "relu": _activation,
    "leaky_relu": _activation,
    "maxpool": _maxpool,
    "avgpool": _avgpool,
    "bce": _loss,
    "softmax_ce": _loss,
    "mse": _loss,
}


def pairs(spec: NetworkSpec, index: int) -> list[Pair]:
    r = layer_rule(spec, index)
    return PAIRERS[r.layer.kind](spec, r)


def layer_indices(spec: NetworkSpec) -> list[int]:
    layers, loss = make_layers(spec)
    return [la.index for la in [*layers, loss] if la.kind not in NO_GENERAL_RULE]


def with_ties(spec: NetworkSpec, ties: str) -> NetworkSpec:
    return dataclasses.replace(spec, ties=ties)


# --- every layer of every preset ---------------------------------------------------------------

PRESET_LAYERS = [(name, i) for name in PRESETS for i in layer_indices(load_spec(name))]


@pytest.mark.parametrize(("preset", "index"), PRESET_LAYERS, ids=[f"{p}-layer{i}" for p, i in PRESET_LAYERS])
def test_general_rule_is_the_engines_rule_at_the_presets(preset: str, index: int) -> None:
    for pair in pairs(load_spec(preset), index):
        pair.assert_identical()


@pytest.mark.parametrize("ties", [t for t in TIES if t != "first"])
@pytest.mark.parametrize("preset", ["seed", "part3"])
def test_every_tie_convention_at_the_presets_max_pools(preset: str, ties: str) -> None:
    # part3's max-pool has overlapping windows (3 x 3, stride 2): a cell gets what each window sends.
    spec = with_ties(load_spec(preset), ties)
    pools = [i for i in layer_indices(spec) if layer_rule(spec, i).layer.kind == "maxpool"]
    assert pools
    for index in pools:
        for pair in pairs(spec, index):
            assert pair.rule == f"maxpool.input[{ties}]"
            pair.assert_identical()


def test_the_presets_use_every_general_rule_they_can() -> None:
    """Which general rules the presets exercise; the drawn networks below cover the rest."""
    used, skipped = set(), set()
    for name in PRESETS:
        spec = load_spec(name)
        layers, loss = make_layers(spec)
        skipped |= {la.kind for la in [*layers, loss] if la.kind in NO_GENERAL_RULE}
        for index in layer_indices(spec):
            used |= {p.rule for p in pairs(spec, index)}
    assert skipped == {"tanh"}
    drawn_only = {"leaky_relu.input", "mse.prediction", "maxpool.input[split]", "maxpool.input[all]"}
    assert used == {r.name for r in GENERAL_RULES} - drawn_only
    assert set(PAIRERS) == {r.layer for r in GENERAL_RULES}


# --- the mutants --------------------------------------------------------------------------------

# At the presets' conv layers: which mutant the engine's rule tells apart (True) from itself.
MUTANT_TABLE = {
    # seed conv: 3x3, stride 1, padding 0; nothing to crop, so the one-sided crop coincides.
    ("seed", 1): {
        "conv2d.input[mutant: no rot180]": True,
        "conv2d.input[mutant: off by one]": True,
        "conv2d.input[mutant: one-sided crop]": False,
    },
    ("part3", 1): {
        "conv2d.input[mutant: no rot180]": True,
        "conv2d.input[mutant: off by one]": True,
        "conv2d.input[mutant: one-sided crop]": False,
    },
    # part3's second conv: stride 2, padding 1: every mutant shows.
    ("part3", 4): {
        "conv2d.input[mutant: no rot180]": True,
        "conv2d.input[mutant: off by one]": True,
        "conv2d.input[mutant: one-sided crop]": True,
    },
    ("lenet-tiny", 1): {
        "conv2d.input[mutant: no rot180]": True,
        "conv2d.input[mutant: off by one]": True,
        "conv2d.input[mutant: one-sided crop]": False,
    },
    ("lenet-tiny", 4): {
        "conv2d.input[mutant: no rot180]": True,
        "conv2d.input[mutant: off by one]": True,
        "conv2d.input[mutant: one-sided crop]": False,
    },
}


@pytest.mark.parametrize(("preset", "index"), list(MUTANT_TABLE), ids=[f"{p}-layer{i}" for p, i in MUTANT_TABLE])
def test_mutants_differ_from_the_engines_rule(preset: str, index: int) -> None:
    spec = load_spec(preset)
    assert layer_rule(spec, index).layer.kind == "conv2d"
    got = {p.rule: bool(p.mismatches()) for p in _conv(spec, layer_rule(spec, index), MUTANT_NAMES)}
    assert got == MUTANT_TABLE[preset, index]


def test_every_preset_conv_layer_is_in_the_mutant_table() -> None:
    convs = {(name, i) for name in PRESETS for i in layer_indices(load_spec(name)) if layer_rule(load_spec(name), i).layer.kind == "conv2d"}
    assert convs == set(MUTANT_TABLE)


# --- kinks and ties: the atoms' definitions against the general rule's functions, at exact points --


def _atom_values(r: LayerRule, point: Mapping[se.Symbol, se.Expr]) -> dict[se.Symbol, se.Expr]:
    """Every atom of the layer at an exact point, through the engine's own definition of it."""
    return {atom: se.sympify(r.atoms.definition(atom).subs(point)) for atom in r.atoms.by_symbol}


def _kink_point(r: LayerRule, rng: np.random.Generator, values: tuple[Fraction, ...]) -> dict[se.Symbol, se.Expr]:
    return {
        x: se.Rational(int(v.numerator), int(v.denominator))
        for x, v in zip(r.inputs.flat, rng.choice(np.array(values, dtype=object), r.inputs.size))
    }


KINKS = (Fraction(-1), Fraction(0), Fraction(0), Fraction(1, 2), Fraction(2))  # z = 0 often: the kink
TIES_AT = (Fraction(0), Fraction(1), Fraction(1), Fraction(2), Fraction(2))  # few values: many ties


def assert_agree_at_points(spec: NetworkSpec, index: int, seed: int = 0, points: int = 3) -> None:
    """At exact points with kinks and ties: the engine's rule with every atom replaced by its
    definition equals the general rule evaluated with its own definitions (Heaviside(q, 0), F, E)."""
    r = layer_rule(spec, index)
    la = r.layer
    rng = np.random.default_rng(seed)
    for _ in range(points):
        if la.kind in ("relu", "leaky_relu"):
            point = _kink_point(r, rng, KINKS)
            atoms = _atom_values(r, point)
            engine = _map(r.grad_input, lambda e, atoms=atoms: sp.sympify(se.sympify(e).subs(atoms)))
            shape = la.in_shape
            c, h, w = _chw(shape)
            inst = rule_by_name(f"{la.kind}.input").instantiate({"C": c, "H": h, "W": w})
            extra = {"alpha": _scalar(sp.sympify(exact(la.spec.slope)))} if la.kind == "leaky_relu" else {}
            at = _map(r.inputs, lambda x, point=point: sp.sympify(point[x]))
            general = np.stack(
                [
                    inst.rule({"Z": at[n].reshape(c, h, w), "gbar": _sympy(r.gbar[n].reshape(c, h, w)), **extra}).reshape(shape)
                    for n in range(spec.batch)
                ]
            )
        elif la.kind == "maxpool":
            point = _kink_point(r, rng, TIES_AT)
            atoms = _atom_values(r, point)
            engine = _map(r.grad_input, lambda e, atoms=atoms: se.sympify(e).subs(atoms))
            (kh, kw), tie = la.spec.window, la.ties
            inst = rule_by_name(f"maxpool.input[{tie}]").instantiate(pool_sizes(r))
            per = []
            for n in range(spec.batch):
                sel = np.empty((*la.out_shape, kh, kw), dtype=object)
                for (c, i, j), values in windows(r, n).items():
                    window = np.array([float(point[v]) for v in values]).reshape(kh, kw)  # halves and integers: exact in floats
                    # The general module's SymPy formulas for F (first) and E (is a maximum).
                    chosen = evaluate_selector_definition(window, "first" if tie == "first" else "all")
                    sel[c, i, j] = _map(chosen, lambda v: se.Integer(int(v)))
                per.append(inst.rule({"A": r.inputs[n], "gbar": r.gbar[n], ("F" if tie == "first" else "E"): sel}))
            general = np.stack(per)
        else:
            raise AssertionError(f"no exact points for {la.kind}")
        pair = Pair(f"{la.kind} at a point", _where(spec, r), {}, general, engine)
        pair.assert_identical(nonzero=False)


def _point_layers() -> list[tuple[str, str, int]]:
    out = []
    for preset in ("seed", "part3"):
        for index in layer_indices(load_spec(preset)):
            kind = layer_rule(load_spec(preset), index).layer.kind
            # The ReLU does not depend on the tie convention; the max-pool is checked under each.
            out += [(preset, t, index) for t in (TIES if kind == "maxpool" else ("first",) if kind == "relu" else ())]
    return out


POINT_LAYERS = _point_layers()


@pytest.mark.parametrize(("preset", "ties", "index"), POINT_LAYERS, ids=[f"{p}-{t}-layer{i}" for p, t, i in POINT_LAYERS])
def test_kinks_and_ties_at_exact_points(preset: str, ties: str, index: int) -> None:
    assert_agree_at_points(with_ties(load_spec(preset), ties), index)


def _exp_free(e: sp.Expr, t: sp.Symbol, den: int) -> sp.Expr:
    """exp(q) -> t**(q den) for rational q: with t = e^(1/den) every claim is a rational identity in t."""
    return e.replace(sp.exp, lambda q: t ** int(q * den))


@pytest.mark.parametrize("preset", PRESETS)
def test_the_link_atoms_are_sigmoid_and_softmax_at_exact_points(preset: str) -> None:
    """The engine's sigmoid/softmax atoms are defined by their stable (max-shifted) forms; at exact
    rational logits, ties and both signs included, they equal the general rule's formulas."""
    spec = load_spec(preset)
    r = layer_rule(spec, len(spec.layers) + 1)
    meaning = link_meanings(r)
    assert meaning
    t = sp.Symbol("t", positive=True)
    for values in (
        (Fraction(-3, 2), Fraction(0), Fraction(3, 2), Fraction(3, 2)),
        (Fraction(1, 2), Fraction(-2), Fraction(0), Fraction(1)),
    ):
        point = {x: se.Rational(v.numerator, v.denominator) for x, v in zip(r.inputs.flat, values)}
        for atom in r.atoms.by_symbol:
            if sp.sympify(atom) not in meaning:
                continue
            stable = sp.sympify(r.atoms.definition(atom).subs(point))
            formula = meaning[sp.sympify(atom)].subs({sp.sympify(x): sp.sympify(v) for x, v in point.items()})
            assert sp.cancel(_exp_free(stable - formula, t, 2)) == 0, (preset, r.atoms.by_symbol[atom])


# --- hypothesis: small networks -----------------------------------------------------------------

HYP = settings(derandomize=True, deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow], print_blob=True)


def _spec(data: dict) -> NetworkSpec:
    note(f"spec = {data}")
    return parse_spec(data)


@st.composite
def conv_networks(draw: st.DrawFn) -> dict:
    """input -> conv2d (channels, filters, rectangular kernel, stride, padding) -> flatten, mse."""
    kh, kw, s = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    p = draw(st.integers(0, min(kh, kw) - 1))
    # Output size first, then the input that gives it: (H + 2p - K) must be a multiple of s.
    lo_h, lo_w = (max(1, 1 - (-(2 * p + 1 - k) // s)) for k in (kh, kw))
    ho, wo = draw(st.integers(lo_h, lo_h + 2)), draw(st.integers(lo_w, lo_w + 2))
    h, w = s * (ho - 1) + kh - 2 * p, s * (wo - 1) + kw - 2 * p
    conv = {"type": "conv2d", "filters": draw(st.integers(1, 2)), "kernel": [kh, kw], "stride": s, "padding": p}
    return {
        "input": [draw(st.integers(1, 2)), h, w],
        "loss": "mse",
        "batch": draw(st.integers(1, 2)),
        "layers": [conv, {"type": "flatten"}],
    }


def _conv_net(c: int, h: int, w: int, filters: int, kernel: list[int], stride: int, padding: int, batch: int = 1) -> dict:
    conv = {"type": "conv2d", "filters": filters, "kernel": kernel, "stride": stride, "padding": padding}
    return {"input": [c, h, w], "loss": "mse", "batch": batch, "layers": [conv, {"type": "flatten"}]}


# Always run, besides the drawn ones: stride and padding together (as part3's second conv, at
# other sizes), padding 2 with stride 2, a rectangular kernel with padding, and a batch.
CONV_EXAMPLES = (
    _conv_net(2, 5, 5, 2, [3, 3], 2, 1),
    _conv_net(1, 5, 3, 1, [3, 3], 2, 2),
    _conv_net(2, 4, 3, 2, [2, 3], 1, 1, batch=2),
)


@HYP
@given(conv_networks())
@example(CONV_EXAMPLES[0])
@example(CONV_EXAMPLES[1])
@example(CONV_EXAMPLES[2])
def test_conv_rules_at_drawn_sizes(data: dict) -> None:
    spec = _spec(data)
    for pair in pairs(spec, 1):
        pair.assert_identical(nonzero=pair.rule != "conv2d.input")  # a 1x1 input read only by padding gets 0


@settings(derandomize=True, deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
@given(conv_networks())
@example(CONV_EXAMPLES[0])
@example(CONV_EXAMPLES[1])
@example(CONV_EXAMPLES[2])
def test_mutants_at_drawn_sizes(data: dict) -> None:
    """The engine's rule judges each mutant as the mutant's own brute force does: it differs from
    the engine exactly where it is wrong."""
    spec = _spec(dict(data, batch=1))
    r = layer_rule(spec, 1)
    sizes = conv_sizes(r)
    for pair in _conv(spec, r, MUTANT_NAMES):
        wrong = bool(rule_by_name(pair.rule).instantiate(sizes).mismatches())
        assert bool(pair.mismatches()) == wrong, (pair.rule, sizes)
        if pair.rule.endswith("one-sided crop]") and sizes["p"] == 0:
            assert not wrong  # nothing to crop


@st.composite
def pool_networks(draw: st.DrawFn) -> dict:
    """input -> maxpool (any tie convention) or avgpool, windows overlapping or not -> flatten, mse."""
    kh, kw, s = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ho, wo = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pool = {"type": draw(st.sampled_from(["maxpool", "avgpool"])), "window": [kh, kw], "stride": s}
    return {
        "input": [draw(st.integers(1, 2)), s * (ho - 1) + kh, s * (wo - 1) + kw],
        "loss": "mse",
        "ties": draw(st.sampled_from(TIES)),
        "batch": draw(st.integers(1, 2)),
        "layers": [pool, {"type": "flatten"}],
    }


def _pool_net(kind: str, ties: str, c: int, h: int, w: int, window: list[int], stride: int, batch: int = 1) -> dict:
    pool = {"type": kind, "window": window, "stride": stride}
    return {"input": [c, h, w], "loss": "mse", "ties": ties, "batch": batch, "layers": [pool, {"type": "flatten"}]}


@HYP
@given(pool_networks())
@example(_pool_net("maxpool", "split", 2, 5, 5, [3, 3], 2, batch=2))  # overlapping windows
@example(_pool_net("maxpool", "all", 1, 5, 4, [3, 2], 1))
@example(_pool_net("maxpool", "first", 1, 4, 5, [2, 3], 1))
@example(_pool_net("avgpool", "first", 2, 5, 5, [3, 3], 2))
def test_pool_rules_at_drawn_sizes(data: dict) -> None:
    spec = _spec(data)
    for pair in pairs(spec, 1):
        pair.assert_identical()
    if data["layers"][0]["type"] == "maxpool":
        assert_agree_at_points(spec, 1, points=2)


@st.composite
def small_networks(draw: st.DrawFn) -> dict:
    """An activation (on an image or on a flat vector), flatten, dense, and a loss."""
    c, h, w = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    act = {"type": draw(st.sampled_from(["relu", "leaky_relu"]))}
    if act["type"] == "leaky_relu":
        act["slope"] = draw(st.sampled_from([0.0, 0.01, 0.1, 0.25, 0.5]))
    loss = draw(st.sampled_from(["bce", "softmax_ce", "mse"]))
    units = {"bce": 1, "softmax_ce": draw(st.integers(2, 4)), "mse": draw(st.integers(1, 4))}[loss]
    layers = [act, {"type": "flatten"}] if draw(st.booleans()) else [{"type": "flatten"}, act]
    layers.append({"type": "dense", "units": units})
    return {"input": [c, h, w], "loss": loss, "batch": draw(st.integers(1, 2)), "layers": layers}


@settings(derandomize=True, deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
@given(small_networks())
@example(
    {
        "input": [2, 2, 3],
        "loss": "mse",
        "batch": 2,
        "layers": [{"type": "leaky_relu", "slope": 0.25}, {"type": "flatten"}, {"type": "dense", "units": 3}],
    }
)
@example(
    {"input": [1, 2, 2], "loss": "softmax_ce", "batch": 1, "layers": [{"type": "relu"}, {"type": "flatten"}, {"type": "dense", "units": 4}]}
)
def test_small_layers_and_losses_at_drawn_sizes(data: dict) -> None:
    spec = _spec(data)
    for index in layer_indices(spec):  # the activation, flatten, dense and the loss
        for pair in pairs(spec, index):
            pair.assert_identical()
    act = next(i for i, la in enumerate(data["layers"], 1) if la["type"] in ("relu", "leaky_relu"))
    assert_agree_at_points(spec, act, points=2)
