"""The handout's document model: everything the templates print, built from the symbolic engine.

Formulas are SymPy objects (taken from the engine's own expressions, or display objects from
``notation`` for the names the lecture uses); numbers come from ``symbolic.numeric``; proofs
from ``symbolic.rules``. Nothing here produces text from math: the templates do, through the
printers.

The network is read only through the engine's public model: ``network.build`` (stage values
from any stage on), ``network.backward`` (the backward chain), ``rules.layer_rule`` (one layer's
rule applied to generic upstream-gradient symbols), ``derive.expansion``, ``rules.prove_all``
and ``numeric.compile_network``. The handout is the lecture's: it is written for the seed
network (conv, ReLU, max-pool, flatten, dense, BCE) at any sizes (``spec.seed_spec(n, k)``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from render.notation import Conv, Flow, Hadamard, Ind, Partial, Reshape, Row, S, Stack, SumLines, T, Unpool, chain, eq
from render.printer import Sigma, to_display
from symbolic.check import central_differences
from symbolic.derive import expansion
from symbolic.errors import RenderError, SpecError
from symbolic.lemmas import loss_lemma
from symbolic.network import backward, build, make_layers
from symbolic.numeric import compile_network
from symbolic.rules import layer_rule, prove, rules_for
from symbolic.spec import NetworkSpec, load_spec, seed_spec

# The worked example: small integers, chosen so that the point is smooth (no Z1 entry is 0 and
# no window has a tie among positive values, so central differences are a fair check) while
# ReLU still switches some entries off and every window has a clear winner.
SEED_EXAMPLE = {
    "X": [[2, 1, 3, 3, 2, 1], [2, 0, 2, 1, 3, 0], [0, 1, 1, 1, 0, 3],
          [2, 1, 3, 0, 3, 3], [0, 3, 2, 2, 1, 1], [2, 1, 1, 1, 1, 2]],
    "W1": [[1, -1, 1], [-1, 0, 0], [1, 0, -1]],
    "B1": 0,
    "W2": [1, -2, 1, -1],
    "B2": 1,
    "Y": 1,
}
LEARNING_RATE = 0.1
# The seed's layers, in order: what this handout explains.
SEED_LAYERS = ("conv2d", "relu", "maxpool", "flatten", "dense")
NOT_SEED = "build: handouts for specs other than the seed are not supported yet"


@dataclass(frozen=True)
class SeedSizes:
    """The lecture's sizes of a seed network: input n×n, filter k×k, pool window and stride, and what follows.

    >>> seed_sizes(load_spec())
    SeedSizes(n=6, k=3, pool=2, conv=4, pooled=2, flat=4, n_params=15)
    """

    n: int
    k: int
    pool: int
    conv: int
    pooled: int
    flat: int
    n_params: int


def seed_sizes(spec: NetworkSpec) -> SeedSizes | None:
    """The sizes if ``spec`` is the lecture's network (``seed_spec(n, k, pool)``, whatever its name), else None.

    >>> seed_sizes(seed_spec(5, 2)).conv, seed_sizes(load_spec("part3"))
    (4, None)
    """
    if tuple(la.type for la in spec.layers) != SEED_LAYERS:
        return None
    n, k, pool = spec.input[-1], spec.layers[0].kernel[0], spec.layers[2].window[0]
    try:
        reference = seed_spec(n, k, pool)
    except SpecError:
        return None
    # The name is only a label, and [6, 6] or [1, 6, 6] describe the same input.
    if dataclasses.replace(spec, name="", input_rank=reference.input_rank) != dataclasses.replace(reference, name=""):
        return None
    return SeedSizes(n=n, k=k, pool=pool, conv=spec.shapes[1][1], pooled=spec.shapes[3][1], flat=spec.shapes[4][0],
                     n_params=spec.n_params)


def require_seed(spec: NetworkSpec) -> SeedSizes:
    """The seed's sizes, or RenderError for a network this handout does not explain (yet).

    >>> require_seed(load_spec("part3"))
    Traceback (most recent call last):
    ...
    symbolic.errors.RenderError: build: handouts for specs other than the seed are not supported yet
    """
    sizes = seed_sizes(spec)
    if sizes is None:
        raise RenderError(NOT_SEED)
    return sizes


@dataclass(frozen=True)
class Step:
    """One line of a derivation: a sentence of lead-in (plain text) and a formula."""

    text: str
    expr: object
    rule: str = ""


@dataclass(frozen=True)
class Figure:
    """A picture in ``figures/``: its file name, caption, and what to draw (for ``figures``)."""

    file: str
    caption: str
    kind: str
    data: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Matrix:
    """A named numeric matrix of the worked example, with an optional 0/1 mark (max-pool winners)."""

    name: object
    values: np.ndarray
    note: str = ""


@dataclass(frozen=True)
class Handout:
    """The whole handout, in the lecture's order."""

    spec: NetworkSpec
    sizes: SeedSizes
    title: str
    stages: tuple
    params: tuple
    flow: object
    forward: tuple
    objective: tuple
    fc: tuple
    chain: object
    conv: tuple
    w11_windows: tuple
    w11_name: object
    pattern: tuple
    example: dict
    appendix_expansions: tuple
    proofs: tuple
    other_sizes: tuple
    crosscheck: tuple
    figures: dict
    lemma_proven: bool
    wins_example: object = None
    w11_count: int = 0
    w11_sum: object = None
    appendix_sums: tuple = ()
    example_inputs: object = None
    example_forward: object = None
    example_scalars: object = None
    example_backward: object = None
    example_grads: object = None
    crosscheck_max: float = 0.0

    def proof(self, name: str) -> dict:
        """The proof result of rule ``name`` ("a" ... "j")."""
        return next(p for p in self.proofs if p["name"] == name)


def _sym(expr):
    """A SymEngine expression as SymPy."""
    return sp.sympify(expr)


def _shift(i, k):
    """i + k - 1 in that order (SymPy would print -1 + i + k)."""
    return sp.Add(i, k, -1, evaluate=False)


def _shape(*dims) -> str:
    return "×".join(str(d) for d in dims)


def _display(arr, atoms=None) -> sp.Matrix:
    """An array of engine expressions as a SymPy Matrix ready to print (atoms shown as notation)."""
    arr = np.asarray(arr, dtype=object)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    one = (lambda v: to_display(v, atoms)) if atoms is not None else _sym
    return sp.Matrix(arr.shape[0], arr.shape[1], [one(v) for v in arr.ravel()])


def build_handout(spec: NetworkSpec | None = None, example: dict | None = None,
                  other_sizes=((5, 2), (7, 2), (8, 3))) -> Handout:
    """Derive, prove and evaluate everything the handout shows (the seed network, ``load_spec()`` by default).

    >>> h = build_handout(); h.spec.n_params, len(h.proofs), all(p["proven"] for p in h.proofs)
    (15, 10, True)
    """
    spec = load_spec() if spec is None else spec
    sizes = require_seed(spec)
    n, k, c, p, m, pool = sizes.n, sizes.k, sizes.conv, sizes.pooled, sizes.flat, sizes.pool
    full = build(spec)
    A2, Y, Z2, L = S("A_2"), S("Y"), S("Z_2"), S("L")

    stages = (
        (S("X"), _shape(n, n), "input image"),
        (S("Z_1"), _shape(c, c), f"convolution with the {k}×{k} filter W1, plus B1"),
        (S("A_1"), _shape(c, c), "ReLU"),
        (S("P_1"), _shape(p, p), f"max-pool {pool}×{pool}, stride {pool}"),
        (S("F"), str(m), "flatten (row-major)"),
        (S("Z_2"), "1×1", f"dense: W2 (1×{m}) times F, plus B2"),
        (S("A_2"), "1×1", "sigmoid: the prediction"),
        (S("L"), "1×1", "binary cross-entropy with the label Y"),
    )
    params = (
        (S("W_1"), _shape(k, k), k * k, "the filter"),
        (S("B_1"), "1×1", 1, "the filter's bias"),
        (S("W_2"), _shape(1, m), m, "the dense weights"),
        (S("B_2"), "1×1", 1, "the output neuron's bias"),
    )
    ops = ("conv", "ReLU", "max-pool", "flatten", "dense", "sigmoid", "BCE")
    flow = Flow(*[x for (q, _, _), op in zip(stages, ops + (None,)) for x in ((q, S(op)) if op else (q,))])

    # --- forward equations, from the engine's stage-by-stage builds ---------------------------
    from_z = build(spec, start="Z1")
    from_a = build(spec, start="A1")
    from_p = build(spec, start="P1")
    from_f = build(spec, start="F")
    from_z2 = build(spec, start="Z2")
    i_, j_, k_, l_ = sp.symbols("i j k l", integer=True)
    xI = sp.IndexedBase("x")
    conv_index = sp.Add(sp.Sum(sp.IndexedBase("w")[k_, l_] * xI[_shift(i_, k_), _shift(j_, l_)], (k_, 1, k), (l_, 1, k)),
                        S("B_1"), evaluate=False)
    bce = -(Y * sp.log(A2) + (1 - Y) * sp.log(1 - A2))
    z2 = _first(from_f.stages["Z2"])
    forward = (
        Step(f"Convolution: each of the {c * c} entries of Z1 is a weighted sum of a {k}×{k} patch of X, plus the bias.",
             eq(sp.Indexed("z", i_, j_), conv_index)),
        Step("For example, the first entry, as the engine builds it:",
             eq(_first_label(full, "Z1"), _sym(_first(full.stages["Z1"])))),
        Step("ReLU, entry by entry:", eq(_first_label(from_z, "A1"), _sym(_first(from_z.stages["A1"])))),
        Step("Max-pooling: each entry of P1 is the largest of its window; the conditions read top to bottom, so at a tie the first maximum in row-major order wins:",
             eq(_first_label(from_a, "P1"), _sym(_first(from_a.stages["P1"])))),
        Step("Flattening, row by row:", eq(T("F"), _display(from_p.stages["F"]))),
        Step("The dense layer:", eq(Z2, _sym(z2))),
        Step("The sigmoid gives the prediction:", eq(A2, Sigma(Z2))),
        Step("Binary cross-entropy with the label Y:", eq(L, bce)),
        Step("The engine writes the same loss in terms of Z2 (the two forms are proven equal), which stays exact when the sigmoid saturates:",
             eq(L, _sym(from_z2.L))),
    )
    objective = tuple(Step(f"shape {shp}, like {name}", Partial(L, sym)) for sym, shp, _, name in params)

    # --- the fully connected part --------------------------------------------------------------
    a_ = sp.Symbol("A_2")
    dl_da = sp.diff(bce, a_)
    da_dz = a_ * (1 - a_)
    product = sp.cancel(dl_da * da_dz)
    dz2_dw2 = _display([z2.diff(w) for w in from_f.params["W2"].ravel()])
    fc = (
        Step("Start at the loss. Its derivative with respect to the prediction:", eq(Partial(L, A2), dl_da)),
        Step("The sigmoid's derivative is the sigmoid times one minus itself:", eq(Partial(A2, Z2), da_dz)),
        Step("Their product simplifies; the awkward fractions cancel:", eq(chain(Partial(L, A2), Partial(A2, Z2)), eq(chain(dl_da, da_dz), product)), "a"),
        Step("Z2 depends on each weight of W2 through one entry of F:", eq(Partial(Z2, S("W_2")), eq(dz2_dw2, T("F")))),
        Step("So, by the chain rule:", eq(Partial(L, S("W_2")), eq(chain(Partial(L, A2), Partial(A2, Z2), Partial(Z2, S("W_2"))), chain(product, T("F")))), "b"),
        Step("Z2 depends on B2 with slope 1, so:", eq(Partial(L, S("B_2")), product), "c"),
    )

    # --- the convolutional part --------------------------------------------------------------
    seven = chain(Partial(L, A2), Partial(A2, Z2), Partial(Z2, S("F")), Partial(S("F"), S("P_1")),
                  Partial(S("P_1"), S("A_1")), Partial(S("A_1"), S("Z_1")), Partial(S("Z_1"), S("W_1")))
    chain_eq = eq(Partial(L, S("W_1")), seven)
    gF = backward(from_f)["dL/dF"]
    # Each layer's rule applied to a generic upstream gradient: fbar_j stands for dL/df_j, etc.
    index = {la.type: i for i, la in enumerate(spec.layers, 1)}
    conv_rule, relu_rule, pool_rule, flat_rule = (layer_rule(spec, index[t]) for t in ("conv2d", "relu", "maxpool", "flatten"))
    gP = flat_rule.grad_input.reshape(p, p)
    gA = pool_rule.grad_input.reshape(c, c)
    gZ = relu_rule.grad_input.reshape(c, c)
    gW = conv_rule.grad_params["W1"].reshape(k, k)
    gB = conv_rule.grad_params["B1"].ravel()[0]
    gP_disp, gA_disp, gZ_disp = _display(gP), _display(gA, pool_rule.atoms), _display(gZ, relu_rule.atoms)
    gB_disp = SumLines(Partial(L, S("B_1")), 8, *sp.Add.make_args(_sym(gB)))
    w11_name = str(full.params["W1"].ravel()[0])
    gW11_disp = SumLines(Partial(L, S(w11_name)), 8, *sp.Add.make_args(_sym(gW[0, 0])))

    zI = sp.IndexedBase("zbar")
    w_index = sp.Sum(xI[_shift(i_, k_), _shift(j_, l_)] * zI[i_, j_], (i_, 1, c), (j_, 1, c))
    conv = (
        Step("The first three factors give the gradient at F: the upstream A2 − Y times each weight of W2.",
             eq(Partial(L, S("F")), eq(chain(product, T("W_2")), _display(gF, from_f.atoms).T)), "d"),
        Step("Flatten has no parameters; its backward pass undoes the reshape. Writing the upstream gradient as a bar (the bar over f_j means dL/df_j):",
             eq(Partial(L, S("P_1")), eq(Reshape(Partial(L, S("F")), S("P_1")), gP_disp)), "e"),
        Step("Max-pooling has no parameters either. Only the entry that won its window reached the loss, so the window's gradient goes there and every other entry gets 0:",
             eq(Partial(L, S("A_1")), eq(Unpool(Partial(L, S("P_1"))), gA_disp)), "f"),
        Step("ReLU passes the gradient where its input was positive and blocks it elsewhere (at exactly 0 too):",
             eq(Partial(L, S("Z_1")), eq(Hadamard(Partial(L, S("A_1")), Ind(sp.StrictGreaterThan(S("Z_1"), 0))), gZ_disp)), "g"),
        Step("B1 is added to every entry of Z1 with slope 1, so its gradient is the sum of all entries of the gradient at Z1:",
             gB_disp, "h"),
    )
    pattern = (
        Step("Collecting the terms by the input entry they multiply, every weight follows the same pattern:",
             eq(Partial(L, sp.Indexed("w", k_, l_)), w_index), ""),
        Step("For the first weight of the filter, as the engine writes it:", gW11_disp, ""),
        Step("That is a convolution of the input with the gradient at Z1 — the same sliding window as the forward pass, with the gradient as the filter:",
             eq(Partial(L, S("W_1")), Conv(S("X"), Partial(L, S("Z_1")))), ""),
    )

    def windows_of(name):
        e = expansion(full, name)
        return tuple((S(w) if w else None, tuple(to_display(t.expr, full.atoms, factor=True) for t in ts)) for w, ts in e.windows())

    w11 = windows_of(w11_name)
    appendix = tuple((S(str(w)), windows_of(str(w))) for w in full.params["W1"].ravel())

    # --- proofs --------------------------------------------------------------------------------
    statements = _rule_statements(c)
    proofs = tuple({"name": r.rule.letter, "statement": statements[r.rule.letter], "text": r.rule.text,
                    "proven": r.proven, "entries": r.entries} for r in lecture_proofs(spec))
    others = []
    for nn, kk in other_sizes:
        rs = lecture_proofs(seed_spec(nn, kk))
        others.append({"n": nn, "k": kk, "proven": sum(r.proven for r in rs), "rules": len(rs)})

    if example is None:
        example = SEED_EXAMPLE if (n, k, pool) == (6, 3, 2) else _default_example(sizes)
    example = _worked_example(spec, full, example)
    cross = tuple(central_differences(spec, example["inputs"]["X"], example["param_values"], example["inputs"]["Y"], example["grad_values"]))

    figures = _figures(sizes, example)
    w11_terms = [t for _, ts in w11 for t in ts]
    per_line = 2
    appendix_sums = tuple((name, SumLines(Partial(L, name), per_line, *[t for _, ts in wins for t in ts])) for name, wins in appendix)
    return Handout(
        spec=spec, sizes=sizes, title="Backpropagation through a small CNN, derived and proven", stages=stages, params=params,
        flow=flow, forward=forward, objective=objective, fc=fc, chain=chain_eq, conv=conv, w11_windows=w11, w11_name=S(w11_name),
        pattern=pattern, example=example, appendix_expansions=appendix, proofs=proofs, other_sizes=tuple(others),
        crosscheck=tuple(_Cross(sp.Symbol(d.name), d.derivative, d.central, d.relative) for d in cross), figures=figures,
        lemma_proven=loss_lemma(make_layers(spec)[1], spec.units), wins_example=_wins_example(), w11_count=len(w11_terms),
        w11_sum=SumLines(Partial(L, S(w11_name)), per_line, *w11_terms), appendix_sums=appendix_sums,
        crosscheck_max=max(d.relative for d in cross), **_example_displays(example),
    )


def lecture_proofs(spec: NetworkSpec) -> list:
    """The lecture's rules (a)-(j) of a seed network, proven, in that order.

    The engine states more (the conv input gradient, its lemmas and conventions); the handout
    shows the lecture's rules only, so only those are proven here.
    """
    return [prove(rule) for rule in rules_for(spec) if rule.letter]


def _first(arr):
    """The first entry of an engine array (stages carry a batch axis, and a channel axis for images)."""
    return np.asarray(arr, dtype=object).ravel()[0]


def _first_label(net, stage: str) -> sp.Symbol:
    """The name of a stage's first entry as the engine gives it: z_11, a_11, p_11."""
    return S(str(_first(net.stage_labels[stage])))


@dataclass(frozen=True)
class _Cross:
    symbol: object
    derivative: float
    central: float
    relative: float


def _wins_example():
    from render.printer import Wins

    return Wins(sp.Symbol("a_ij"), sp.Symbol("p_rs"))


def _example_displays(ex: dict) -> dict:
    """The worked example's matrices as equations of SymPy number matrices (winners boxed)."""
    from render.printer import number, numbers

    o, i = ex["out"], ex["inputs"]
    P = lambda q: Partial(S("L"), S(q))  # noqa: E731
    return {
        "example_inputs": Stack(Row(eq(S("X"), numbers(i["X"])), eq(S("W_1"), numbers(i["W1"])), eq(S("B_1"), number(i["B1"]))),
                                Row(eq(S("W_2"), numbers(i["W2"])), eq(S("B_2"), number(i["B2"])), eq(S("Y"), number(i["Y"])))),
        "example_forward": Stack(Row(eq(S("Z_1"), numbers(o["Z1"])), eq(S("A_1"), numbers(o["A1"], boxed=o["route(A1)"] > 0))),
                                 Row(eq(S("P_1"), numbers(o["P1"])), eq(T("F"), numbers(o["F"])))),
        "example_scalars": Row(eq(S("Z_2"), number(o["Z2"])), eq(S("A_2"), number(o["A2"])), eq(S("L"), number(o["L"]))),
        "example_backward": Stack(Row(eq(P("Z_2"), number(o["dL/dZ2"])), eq(P("F"), numbers(o["dL/dF"]).T),
                                      eq(P("P_1"), numbers(o["dL/dP1"]))),
                                  Row(eq(P("A_1"), numbers(o["dL/dA1"])), eq(P("Z_1"), numbers(o["dL/dZ1"])))),
        "example_grads": Stack(Row(eq(P("W_1"), numbers(o["dL/dW1"])), eq(P("B_1"), number(o["dL/dB1"]))),
                               Row(eq(P("W_2"), numbers(o["dL/dW2"])), eq(P("B_2"), number(o["dL/dB2"])))),
    }


def _rule_statements(c: int) -> dict:
    A2, Y, L = S("A_2"), S("Y"), S("L")
    i, j = sp.symbols("i j", integer=True)
    return {
        "a": eq(Partial(L, S("Z_2")), eq(chain(Partial(L, A2), Partial(A2, S("Z_2"))), A2 - Y)),
        "b": eq(Partial(L, S("W_2")), chain(A2 - Y, T("F"))),
        "c": eq(Partial(L, S("B_2")), A2 - Y),
        "d": eq(Partial(L, S("F")), chain(A2 - Y, T("W_2"))),
        "e": eq(Partial(L, S("P_1")), Reshape(Partial(L, S("F")), S("P_1"))),
        "f": eq(Partial(L, S("A_1")), Unpool(Partial(L, S("P_1")))),
        "g": eq(Partial(L, S("Z_1")), Hadamard(Partial(L, S("A_1")), Ind(sp.StrictGreaterThan(S("Z_1"), 0)))),
        "h": eq(Partial(L, S("B_1")), sp.Sum(Partial(L, sp.Indexed("z", i, j)), (i, 1, c), (j, 1, c))),
        "i": eq(Partial(L, S("W_1")), Conv(S("X"), Partial(L, S("Z_1")))),
        "j": eq(Partial(L, S("W_1")), chain(Partial(L, A2), Partial(A2, S("Z_2")), Partial(S("Z_2"), S("F")), Partial(S("F"), S("P_1")),
                                            Partial(S("P_1"), S("A_1")), Partial(S("A_1"), S("Z_1")), Partial(S("Z_1"), S("W_1")))),
    }


def _default_example(sizes: SeedSizes) -> dict:
    """Small integers for other sizes: a fixed pattern, so builds stay deterministic."""
    n, k, m = sizes.n, sizes.k, sizes.flat
    X = [[(3 * i + 2 * j + i * j) % 4 for j in range(n)] for i in range(n)]
    W1 = [[(1, -1, 0)[(i + 2 * j) % 3] for j in range(k)] for i in range(k)]
    W2 = [(1, -2, 1, -1)[j % 4] for j in range(m)]
    return {"X": X, "W1": W1, "B1": 0, "W2": W2, "B2": 1, "Y": 1}


# Outputs of the worked example shown as single numbers (the engine gives them as 1-entry arrays).
_SCALARS = ("Z2", "A2", "L", "dL/dZ2", "dL/dB1", "dL/dB2")


def _plain(key: str, value) -> object:
    """One numeric output in the lecture's shapes: images (one channel, one filter) as matrices,
    W2 and F as vectors, the scalars as floats.

    >>> _plain("dL/dW1", np.zeros((1, 1, 3, 3))).shape, _plain("dL/dW2", np.zeros((1, 4))).shape, _plain("Z2", np.ones(1))
    ((3, 3), (4,), 1.0)
    """
    a = np.asarray(value, dtype=float)
    if key in _SCALARS:
        return float(a.reshape(()))
    if a.ndim >= 3:
        return a.reshape(a.shape[-2:])
    return a.ravel()


def _worked_example(spec: NetworkSpec, full, ex: dict) -> dict:
    net = compile_network(spec)
    X, W1 = np.asarray(ex["X"], float), np.asarray(ex["W1"], float)
    B1, W2, B2, Y = float(ex["B1"]), np.asarray(ex["W2"], float).ravel(), float(ex["B2"]), float(ex["Y"])

    def run(params: dict) -> dict:
        # Everything in the full layout, so that no axis of length 1 can be read as a batch axis.
        full_params = {name: np.reshape(params[name], shape) for name, shape in spec.param_shapes.items()}
        return net(X.reshape(spec.input), Y, **full_params)

    out = {key: _plain(key, value) for key, value in run({"W1": W1, "B1": B1, "W2": W2, "B2": B2}).items()}
    lr = LEARNING_RATE
    new = {"W1": W1 - lr * out["dL/dW1"], "B1": B1 - lr * out["dL/dB1"], "W2": W2 - lr * out["dL/dW2"], "B2": B2 - lr * out["dL/dB2"]}
    after = run(new)
    names = list(full.entries())
    before_vals = list(W1.ravel()) + [B1] + list(W2) + [B2]
    grads = list(out["dL/dW1"].ravel()) + [out["dL/dB1"]] + list(out["dL/dW2"]) + [out["dL/dB2"]]
    after_vals = list(new["W1"].ravel()) + [float(new["B1"])] + list(new["W2"]) + [float(new["B2"])]
    step = tuple({"name": S(nm), "before": float(b), "grad": float(g), "after": float(a)} for nm, b, g, a in zip(names, before_vals, grads, after_vals))
    return {
        "inputs": {"X": X, "W1": W1, "B1": B1, "W2": W2, "B2": B2, "Y": Y},
        "out": out,
        "lr": lr,
        "step": step,
        "loss_before": out["L"],
        "loss_after": float(after["L"]),
        "param_values": dict(zip(names, before_vals)),
        "grad_values": dict(zip(names, grads)),
        "smooth": bool((out["Z1"] != 0).all()),
    }


def _figures(sizes: SeedSizes, ex: dict) -> dict:
    o, inp = ex["out"], ex["inputs"]
    c, p, m, k, pool = sizes.conv, sizes.pooled, sizes.flat, sizes.k, sizes.pool
    shapes = [("X", _shape(sizes.n, sizes.n), f"conv {k}×{k}\nW1, B1"), ("Z1", _shape(c, c), "ReLU"),
              ("A1", _shape(c, c), f"max-pool\n{pool}×{pool}"), ("P1", _shape(p, p), "flatten"),
              ("F", str(m), "dense\nW2, B2"), ("Z2", "1×1", "sigmoid"), ("A2", "1×1", "BCE"), ("L", "1×1", None)]
    return {
        "architecture": Figure("architecture.png", "The network, with the shape of every stage; W1, B1, W2 and B2 are trained.", "architecture", {"shapes": shapes}),
        "forward": Figure("forward.png", "Forward pass of the worked example: X, Z1, A1 (winners of the max-pool outlined) and P1.", "panel",
                          {"mats": [inp["X"], o["Z1"], o["A1"], o["P1"]], "titles": ["X", "Z1", "A1", "P1"],
                           "marks": [None, None, o["route(A1)"] > 0, None]}),
        "pool": Figure("pool_routing.png", "Max-pool backward: each window's gradient goes to the entry that won the window; the others get 0.", "pool",
                       {"a1": o["A1"], "mask": o["route(A1)"], "grad_p1": o["dL/dP1"], "grad_a1": o["dL/dA1"], "pool": pool}),
        "backward": Figure("backward.png", "Backward through ReLU: dL/dA1, the ReLU mask 1[Z1 > 0], and their product dL/dZ1.", "panel",
                           {"mats": [o["dL/dA1"], o["mask(Z1)"], o["dL/dZ1"]], "titles": ["dL/dA1", "1[Z1 > 0]", "dL/dZ1"], "marks": None}),
        "params": Figure("gradients.png", "The gradients of the trainable weights: dL/dW1 = conv(X, dL/dZ1) and dL/dW2 = (A2 − Y) Fᵀ.", "panel",
                         {"mats": [o["dL/dW1"], o["dL/dW2"].reshape(1, -1)], "titles": ["dL/dW1", "dL/dW2"], "marks": None}),
    }
