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

from render.notation import (
    Between,
    Broken,
    Conv,
    Flow,
    Hadamard,
    Ind,
    IndexSum,
    Lines,
    Partial,
    Reshape,
    Row,
    S,
    Spaced,
    Stack,
    SumLines,
    T,
    Unpool,
    chain,
    eq,
)
from render.printer import Sigma, tidy_add, to_display
from symbolic import general
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
    "X": [[2, 1, 3, 3, 2, 1], [2, 0, 2, 1, 3, 0], [0, 1, 1, 1, 0, 3], [2, 1, 3, 0, 3, 3], [0, 3, 2, 2, 1, 1], [2, 1, 1, 1, 1, 2]],
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
    return SeedSizes(n=n, k=k, pool=pool, conv=spec.shapes[1][1], pooled=spec.shapes[3][1], flat=spec.shapes[4][0], n_params=spec.n_params)


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
class Training:
    """The optional section "The gradients at work": the deterministic facts of one ``symbolic.train.train`` run.

    Never its seconds (they vary from run to run); ``figure`` is the loss/accuracy plot drawn
    from ``history`` (``symbolic.train.plot_history``).
    """

    input: str
    kernel: str
    n_params: int
    digits: tuple
    steps: int
    lr: float
    batch_size: int
    seed: int
    log_every: int
    train_images: int
    heldout_images: int
    heldout_correct: int
    heldout_accuracy: float
    train_loss: float
    heldout_loss: float
    figure: Figure


def training_block(result) -> Training:
    """The handout's training block from a ``symbolic.train.TrainResult`` of a seed network (bce, two digits).

    >>> from symbolic.train import load_digits, train
    >>> images, labels = load_digits()
    >>> t = training_block(train(steps=5, batch_size=4, data=(images[:60], labels[:60]), quiet=True))
    >>> t.input, t.kernel, t.digits, t.steps, t.figure.file
    ('8×8', '3×3', (3, 8), 5, 'training.png')
    """
    sizes = require_seed(result.spec)
    cfg, last = result.config, result.history[-1]
    heldout = len(result.heldout_idx)
    digits = tuple(result.classes)
    caption = (
        f"Training the lecture's network at {_shape(sizes.n, sizes.n)} on the digits {digits[0]} and {digits[1]} with the derived "
        f"gradients: the mean loss and the accuracy on the training and the held-out images, every {cfg['log_every']} steps."
    )
    title = f"{_shape(sizes.n, sizes.n)} input, {_shape(sizes.k, sizes.k)} filter, digits {digits[0]} and {digits[1]}"
    return Training(
        input=_shape(sizes.n, sizes.n),
        kernel=_shape(sizes.k, sizes.k),
        n_params=sizes.n_params,
        digits=digits,
        steps=int(cfg["steps"]),
        lr=float(cfg["lr"]),
        batch_size=int(cfg["batch_size"]),
        seed=int(cfg["seed"]),
        log_every=int(cfg["log_every"]),
        train_images=len(result.train_idx),
        heldout_images=heldout,
        heldout_correct=round(result.accuracy * heldout),
        heldout_accuracy=float(result.accuracy),
        train_loss=float(last["train_loss"]),
        heldout_loss=float(last["heldout_loss"]),
        figure=Figure("training.png", caption, "training", {"history": tuple(result.history), "title": title}),
    )


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
    general: tuple = ()
    general_table: object = None
    general_intro: object = None
    training: Training | None = None

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


def build_handout(
    spec: NetworkSpec | None = None, example: dict | None = None, other_sizes=((5, 2), (7, 2), (8, 3)), training=None
) -> Handout:
    """Derive, prove and evaluate everything the handout shows (the seed network, ``load_spec()`` by default).

    ``training``: a ``symbolic.train.TrainResult``; with it, the handout gets the section "The
    gradients at work" (``Handout.training``) and its figure.

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
    conv_index = sp.Add(
        sp.Sum(sp.IndexedBase("w")[k_, l_] * xI[_shift(i_, k_), _shift(j_, l_)], (k_, 1, k), (l_, 1, k)), S("B_1"), evaluate=False
    )
    bce = -(Y * sp.log(A2) + (1 - Y) * sp.log(1 - A2))
    z2 = _first(from_f.stages["Z2"])
    forward = (
        Step(
            f"Convolution: each of the {c * c} entries of Z1 is a weighted sum of a {k}×{k} patch of X, plus the bias.",
            eq(sp.Indexed("z", i_, j_), conv_index),
        ),
        Step("For example, the first entry, as the engine builds it:", eq(_first_label(full, "Z1"), _sym(_first(full.stages["Z1"])))),
        Step("ReLU, entry by entry:", eq(_first_label(from_z, "A1"), _sym(_first(from_z.stages["A1"])))),
        Step(
            "Max-pooling: each entry of P1 is the largest of its window; the conditions read top to bottom, so at a tie the first maximum in row-major order wins:",
            eq(_first_label(from_a, "P1"), _sym(_first(from_a.stages["P1"]))),
        ),
        Step("Flattening, row by row:", eq(T("F"), _display(from_p.stages["F"]))),
        Step("The dense layer:", eq(Z2, _sym(z2))),
        Step("The sigmoid gives the prediction:", eq(A2, Sigma(Z2))),
        Step("Binary cross-entropy with the label Y:", eq(L, bce)),
        Step(
            "The engine writes the same loss in terms of Z2 (the two forms are proven equal), which stays exact when the sigmoid saturates:",
            eq(L, _sym(from_z2.L)),
        ),
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
        Step(
            "Their product simplifies; the awkward fractions cancel:",
            eq(chain(Partial(L, A2), Partial(A2, Z2)), eq(chain(dl_da, da_dz), product)),
            "a",
        ),
        Step("Z2 depends on each weight of W2 through one entry of F:", eq(Partial(Z2, S("W_2")), eq(dz2_dw2, T("F")))),
        Step(
            "So, by the chain rule:",
            eq(Partial(L, S("W_2")), eq(chain(Partial(L, A2), Partial(A2, Z2), Partial(Z2, S("W_2"))), chain(product, T("F")))),
            "b",
        ),
        Step("Z2 depends on B2 with slope 1, so:", eq(Partial(L, S("B_2")), product), "c"),
    )

    # --- the convolutional part --------------------------------------------------------------
    seven = chain(
        Partial(L, A2),
        Partial(A2, Z2),
        Partial(Z2, S("F")),
        Partial(S("F"), S("P_1")),
        Partial(S("P_1"), S("A_1")),
        Partial(S("A_1"), S("Z_1")),
        Partial(S("Z_1"), S("W_1")),
    )
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
        Step(
            "The first three factors give the gradient at F: the upstream A2 − Y times each weight of W2.",
            eq(Partial(L, S("F")), eq(chain(product, T("W_2")), _display(gF, from_f.atoms).T)),
            "d",
        ),
        Step(
            "Flatten has no parameters; its backward pass undoes the reshape. Writing the upstream gradient as a bar (the bar over f_j means dL/df_j):",
            eq(Partial(L, S("P_1")), eq(Reshape(Partial(L, S("F")), S("P_1")), gP_disp)),
            "e",
        ),
        Step(
            "Max-pooling has no parameters either. Only the entry that won its window reached the loss, so the window's gradient goes there and every other entry gets 0:",
            eq(Partial(L, S("A_1")), eq(Unpool(Partial(L, S("P_1"))), gA_disp)),
            "f",
        ),
        Step(
            "ReLU passes the gradient where its input was positive and blocks it elsewhere (at exactly 0 too):",
            eq(Partial(L, S("Z_1")), eq(Hadamard(Partial(L, S("A_1")), Ind(sp.StrictGreaterThan(S("Z_1"), 0))), gZ_disp)),
            "g",
        ),
        Step(
            "B1 is added to every entry of Z1 with slope 1, so its gradient is the sum of all entries of the gradient at Z1:", gB_disp, "h"
        ),
    )
    pattern = (
        Step(
            "Collecting the terms by the input entry they multiply, every weight follows the same pattern:",
            eq(Partial(L, sp.Indexed("w", k_, l_)), w_index),
            "",
        ),
        Step("For the first weight of the filter, as the engine writes it:", gW11_disp, ""),
        Step(
            "That is a convolution of the input with the gradient at Z1 — the same sliding window as the forward pass, with the gradient as the filter:",
            eq(Partial(L, S("W_1")), Conv(S("X"), Partial(L, S("Z_1")))),
            "",
        ),
    )

    def windows_of(name):
        e = expansion(full, name)
        return tuple((S(w) if w else None, tuple(to_display(t.expr, full.atoms, factor=True) for t in ts)) for w, ts in e.windows())

    w11 = windows_of(w11_name)
    appendix = tuple((S(str(w)), windows_of(str(w))) for w in full.params["W1"].ravel())

    # --- proofs --------------------------------------------------------------------------------
    statements = _rule_statements(c)
    proofs = tuple(
        {"name": r.rule.letter, "statement": statements[r.rule.letter], "text": r.rule.text, "proven": r.proven, "entries": r.entries}
        for r in lecture_proofs(spec)
    )
    others = []
    for nn, kk in other_sizes:
        rs = lecture_proofs(seed_spec(nn, kk))
        others.append({"n": nn, "k": kk, "proven": sum(r.proven for r in rs), "rules": len(rs)})

    if example is None:
        example = SEED_EXAMPLE if (n, k, pool) == (6, 3, 2) else _default_example(sizes)
    example = _worked_example(spec, full, example)
    cross = tuple(
        central_differences(spec, example["inputs"]["X"], example["param_values"], example["inputs"]["Y"], example["grad_values"])
    )

    figures = _figures(sizes, example)
    block = training_block(training) if training is not None else None
    if block is not None:
        figures["training"] = block.figure
    w11_terms = [t for _, ts in w11 for t in ts]
    per_line = 2
    appendix_sums = tuple((name, SumLines(Partial(L, name), per_line, *[t for _, ts in wins for t in ts])) for name, wins in appendix)
    return Handout(
        spec=spec,
        sizes=sizes,
        title="Backpropagation through a small CNN, derived and proven",
        stages=stages,
        params=params,
        flow=flow,
        forward=forward,
        objective=objective,
        fc=fc,
        chain=chain_eq,
        conv=conv,
        w11_windows=w11,
        w11_name=S(w11_name),
        pattern=pattern,
        example=example,
        appendix_expansions=appendix,
        proofs=proofs,
        other_sizes=tuple(others),
        crosscheck=tuple(_Cross(sp.Symbol(d.name), d.derivative, d.central, d.relative) for d in cross),
        figures=figures,
        lemma_proven=loss_lemma(make_layers(spec)[1], spec.units),
        wins_example=_wins_example(),
        w11_count=len(w11_terms),
        w11_sum=SumLines(Partial(L, S(w11_name)), per_line, *w11_terms),
        appendix_sums=appendix_sums,
        crosscheck_max=max(d.relative for d in cross),
        **_example_displays(example),
        **_general_section(spec),
        training=block,
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
        "example_inputs": Stack(
            Row(eq(S("X"), numbers(i["X"])), eq(S("W_1"), numbers(i["W1"])), eq(S("B_1"), number(i["B1"]))),
            Row(eq(S("W_2"), numbers(i["W2"])), eq(S("B_2"), number(i["B2"])), eq(S("Y"), number(i["Y"]))),
        ),
        "example_forward": Stack(
            Row(eq(S("Z_1"), numbers(o["Z1"])), eq(S("A_1"), numbers(o["A1"], boxed=o["route(A1)"] > 0))),
            Row(eq(S("P_1"), numbers(o["P1"])), eq(T("F"), numbers(o["F"]))),
        ),
        "example_scalars": Row(eq(S("Z_2"), number(o["Z2"])), eq(S("A_2"), number(o["A2"])), eq(S("L"), number(o["L"]))),
        "example_backward": Stack(
            Row(eq(P("Z_2"), number(o["dL/dZ2"])), eq(P("F"), numbers(o["dL/dF"]).T), eq(P("P_1"), numbers(o["dL/dP1"]))),
            Row(eq(P("A_1"), numbers(o["dL/dA1"])), eq(P("Z_1"), numbers(o["dL/dZ1"]))),
        ),
        "example_grads": Stack(
            Row(eq(P("W_1"), numbers(o["dL/dW1"])), eq(P("B_1"), number(o["dL/dB1"]))),
            Row(eq(P("W_2"), numbers(o["dL/dW2"])), eq(P("B_2"), number(o["dL/dB2"]))),
        ),
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
        "j": eq(
            Partial(L, S("W_1")),
            chain(
                Partial(L, A2),
                Partial(A2, S("Z_2")),
                Partial(S("Z_2"), S("F")),
                Partial(S("F"), S("P_1")),
                Partial(S("P_1"), S("A_1")),
                Partial(S("A_1"), S("Z_1")),
                Partial(S("Z_1"), S("W_1")),
            ),
        ),
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
    step = tuple(
        {"name": S(nm), "before": float(b), "grad": float(g), "after": float(a)}
        for nm, b, g, a in zip(names, before_vals, grads, after_vals)
    )
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
    shapes = [
        ("X", _shape(sizes.n, sizes.n), f"conv {k}×{k}\nW1, B1"),
        ("Z1", _shape(c, c), "ReLU"),
        ("A1", _shape(c, c), f"max-pool\n{pool}×{pool}"),
        ("P1", _shape(p, p), "flatten"),
        ("F", str(m), "dense\nW2, B2"),
        ("Z2", "1×1", "sigmoid"),
        ("A2", "1×1", "BCE"),
        ("L", "1×1", None),
    ]
    return {
        "architecture": Figure(
            "architecture.png",
            "The network, with the shape of every stage; W1, B1, W2 and B2 are trained.",
            "architecture",
            {"shapes": shapes},
        ),
        "forward": Figure(
            "forward.png",
            "Forward pass of the worked example: X, Z1, A1 (winners of the max-pool outlined) and P1.",
            "panel",
            {
                "mats": [inp["X"], o["Z1"], o["A1"], o["P1"]],
                "titles": ["X", "Z1", "A1", "P1"],
                "marks": [None, None, o["route(A1)"] > 0, None],
            },
        ),
        "pool": Figure(
            "pool_routing.png",
            "Max-pool backward: each window's gradient goes to the entry that won the window; the others get 0.",
            "pool",
            {"a1": o["A1"], "mask": o["route(A1)"], "grad_p1": o["dL/dP1"], "grad_a1": o["dL/dA1"], "pool": pool},
        ),
        "backward": Figure(
            "backward.png",
            "Backward through ReLU: dL/dA1, the ReLU mask 1[Z1 > 0], and their product dL/dZ1.",
            "panel",
            {"mats": [o["dL/dA1"], o["mask(Z1)"], o["dL/dZ1"]], "titles": ["dL/dA1", "1[Z1 > 0]", "dL/dZ1"], "marks": None},
        ),
        "params": Figure(
            "gradients.png",
            "The gradients of the trainable weights: dL/dW1 = conv(X, dL/dZ1) and dL/dW2 = (A2 − Y) Fᵀ.",
            "panel",
            {"mats": [o["dL/dW1"], o["dL/dW2"].reshape(1, -1)], "titles": ["dL/dW1", "dL/dW2"], "marks": None},
        ),
    }


# --- the same rules for every size (symbolic.general) ------------------------------------------------

# The general derivations the handout prints step by step; every general rule is in the table.
GENERAL_SHOWN = ("conv2d.weight", "conv2d.input")
_GENERAL_TITLES = {"conv2d.weight": "The filter gradient", "conv2d.input": "The input gradient"}
# What each shown rule says, in words (text and inline formulas), next to its statement.
_GENERAL_RULE_WORDS = {
    "conv2d.weight": ("the padded input, correlated with the upstream gradient at stride ", general.s),
    "conv2d.input": (
        "the upstream gradient dilated by the stride and zero-padded by ",
        tidy_add(general.K_h - 1),
        " rows and ",
        tidy_add(general.K_w - 1),
        " columns (",
        general.Gpad,
        "), convolved in full with the filter turned by 180 degrees, then cropped by the padding ",
        general.p,
    ),
}


@dataclass(frozen=True)
class Words:
    """A sentence: plain text (str) and inline formulas (SymPy objects), in reading order."""

    parts: tuple


def _words(*parts) -> Words:
    return Words(tuple(parts))


@dataclass(frozen=True)
class GeneralStep:
    """One step of a general derivation: what happened, in words, and the formula SymPy produced."""

    says: Words
    expr: object


@dataclass(frozen=True)
class GeneralDerivation:
    """A general rule's proof as SymPy ran it (``GeneralResult.steps``), ready to print.

    ``definitions`` are the forward rule and the auxiliary objects; ``steps`` one entry per
    ``GeneralResult.steps``; ``borders`` the range conditions that stay in the reduced rule.
    """

    name: str
    title: str
    status: str
    definitions: tuple
    steps: tuple
    borders: tuple
    lemmas: tuple
    verdict: Words
    border_intro: Words | None = None
    border_display: object = None
    border_note: Words | None = None


@dataclass(frozen=True)
class GeneralTable:
    """Every general rule with its status and number of derivation steps (never its seconds)."""

    header: tuple
    rows: tuple


def _general_section(spec: NetworkSpec) -> dict:
    """The general section and the appendix table, from one ``prove_general()`` run (deterministic:
    the proofs' seconds are not kept)."""
    results = general.prove_general()
    by_name = {r.rule.name: r for r in results}
    layer = make_layers(spec)[0][0]  # the seed's conv layer: what the border conditions mean here
    (kh, kw), (_, h, w), (_, ho, wo) = layer.spec.kernel, layer.in_shape, layer.out_shape
    conv = {"s": layer.spec.stride[0], "p": layer.spec.padding[0], "Kh": kh, "Kw": kw, "H": h, "W": w, "H_o": ho, "W_o": wo}
    shown = tuple(_general_derivation(by_name[name], conv) for name in GENERAL_SHOWN)
    rows = []
    for r in results:
        status = {"proven": "proven", "checked": "checked"}.get(r.status, "NOT proven")
        rows.append((_words(r.rule.name), _words(r.rule.layer), _words(status), _words(str(len(r.steps))), _words(", ".join(r.lemmas))))
    table = GeneralTable(("rule", "layer", "status", "steps", "lemmas used"), tuple(rows))
    intro = _words(
        "Sections 4 and 5 proved each rule at this network's sizes, entry by entry. The same rules hold for every size, and "
        "cnn-derive proves them that way too, in index notation: the sizes are symbols (",
        general.C,
        " input channels, ",
        general.O,
        " filters, a filter of ",
        general.K_h,
        " rows and ",
        general.K_w,
        " columns, stride ",
        general.s,
        ", zero padding ",
        general.p,
        ", an input of ",
        general.H,
        " rows and ",
        general.W,
        " columns, an output of ",
        general.H_o,
        " rows and ",
        general.W_o,
        " columns), every index starts at 0, and SymPy does each step below. ",
        general.gbar[general.fo, general.fi, general.fj],
        " is the upstream gradient, the derivative of L with respect to ",
        general.Z[general.fo, general.fi, general.fj],
        ", held fixed; ",
        Ind(sp.Symbol("q")),
        " is 1 when the condition q holds and 0 otherwise; ",
        general.Wt[general.fo, general.fc, general.fa, general.fb],
        " is the filter, while a plain ",
        general.W,
        " is the width of the input.",
    )
    return {"general": shown, "general_table": table, "general_intro": intro}


def _index_display(expr):
    """A general step as the handout prints it: the same SymPy expression in the lecture's notation.

    Display only: sums as one sigma over stacked index ranges, Piecewise indicators as 1[range],
    derivatives as fractions of partials, terms in a lecture's order (h + p - s i).
    """
    if isinstance(expr, sp.Eq):
        return eq(_index_display(expr.lhs), _index_display(expr.rhs))
    if isinstance(expr, sp.Derivative):
        return Partial(_index_display(expr.expr), _index_display(expr.variables[0]))
    if isinstance(expr, sp.Sum):
        # The ranges in SymPy's order of its limits (finite sums commute, so any order is the same sum).
        limits = [(v, lo, tidy_add(hi)) for v, lo, hi in expr.limits]
        return IndexSum(_index_display(expr.function), *limits)
    if isinstance(expr, sp.Piecewise) and len(expr.args) == 2 and expr.args[1] == (0, True):
        value, cond = expr.args[0]
        return _product([Ind(r) for r in _ranges(cond)] + [_index_display(value)])
    if isinstance(expr, sp.Indexed):
        return expr.base[tuple(tidy_add(_index_display(i)) for i in expr.indices)]
    if isinstance(expr, sp.KroneckerDelta):
        return sp.KroneckerDelta(*(tidy_add(_index_display(a)) for a in expr.args), evaluate=False)
    if isinstance(expr, sp.Mul):
        if all(a.is_Number or (isinstance(a, sp.Symbol) and a.is_integer) for a in expr.args):
            # index arithmetic: the stride (a size) first, thin spaces between the letters
            coeff = sp.Mul(*(a for a in expr.args if a.is_Number))
            letters = sorted((_undummy(a) for a in expr.args if not a.is_Number), key=lambda a: (a not in general.SIZES, a.name))
            return coeff * Spaced(*letters) if len(letters) > 1 else coeff * letters[0]
        return _product([_index_display(a) for a in expr.args])
    if isinstance(expr, sp.Add):
        return tidy_add(sp.Add(*(_index_display(a) for a in expr.args)))
    if isinstance(expr, sp.Symbol):
        return _undummy(expr)
    return expr


def _undummy(sym: sp.Symbol) -> sp.Symbol:
    """The general module's dummy variables (c_, u_, v_: a trailing underscore keeps them apart) as plain letters."""
    return S(sym.name[:-1]) if sym.name.endswith("_") and len(sym.name) > 1 else sym


def _product(factors: list):
    """An unevaluated product: a sign first, then plain factors, sums in parentheses, and sums over indices last."""
    coeff = sp.Mul(*(f for f in factors if f.is_Number))
    rest = [f for f in factors if not f.is_Number]
    rest.sort(key=lambda f: (isinstance(f, IndexSum), isinstance(f, sp.Add)))
    body = chain(*rest) if len(rest) > 1 else rest[0]
    return body if coeff == 1 else (-body if coeff == -1 else chain(coeff, body))


def _as_nonneg(rel) -> sp.Expr:
    """An integer condition as d with d >= 0 (a < b is b - a - 1 >= 0)."""
    if isinstance(rel, (sp.GreaterThan, sp.StrictGreaterThan)):
        d = rel.lhs - rel.rhs
    elif isinstance(rel, (sp.LessThan, sp.StrictLessThan)):
        d = rel.rhs - rel.lhs
    else:
        raise RenderError(f"build: cannot show the condition {rel}")
    return sp.expand(d - (1 if isinstance(rel, (sp.StrictGreaterThan, sp.StrictLessThan)) else 0))


def _raw_ranges(cond) -> list:
    """The conjuncts of an index condition as (d, top) for 0 <= d <= top, paired where they can be
    (d >= 0 and top - d >= 0 with top a size expression); an unpaired d >= 0 has top None."""
    parts = [_as_nonneg(r) for r in (cond.args if isinstance(cond, sp.And) else (cond,))]
    out, used = [], set()
    for a, d in enumerate(parts):
        for b in range(a + 1, len(parts)):
            total = sp.expand(d + parts[b])
            if a in used or b in used or not total.free_symbols <= general.SIZES:
                continue
            # The middle of the range is the side that does not mention the bound's sizes.
            out.append((d if not d.free_symbols & total.free_symbols else parts[b], total))
            used |= {a, b}
    return out + [(d, None) for k, d in enumerate(parts) if k not in used]


def _show_range(middle, top):
    shown = tidy_add(_index_display(middle))
    return sp.GreaterThan(shown, 0) if top is None else Between(0, shown, tidy_add(top))


def _ranges(cond) -> list:
    """An index condition as the lecture writes it: ranges 0 <= d <= size where the conjuncts pair up."""
    return sorted((_show_range(*r) for r in _raw_ranges(cond)), key=sp.default_sort_key)


def _has_base(expr, base) -> bool:
    return any(q.base == base for q in expr.atoms(sp.Indexed))


def _bound_vars(expr) -> set:
    return {v for q in expr.atoms(sp.Sum) for v in q.variables}


def _conditions(expr) -> set:
    out = set()
    for pw in expr.atoms(sp.Piecewise):
        for _, cond in pw.args:
            if cond is not sp.true:
                out |= set(cond.args if isinstance(cond, sp.And) else (cond,))
    return out


def _collapse(prev, cur, lead: str = "The delta ") -> Words:
    """What one use of lemma delta_sum did between two steps: which delta, which sum, which condition."""
    gone = sorted(_bound_vars(prev) - _bound_vars(cur), key=sp.default_sort_key)
    if len(gone) != 1:
        raise RenderError(f"build: a general step collapses {len(gone)} sums, expected one")
    x = gone[0]
    hi = next(h for q in prev.atoms(sp.Sum) for v, _, h in q.limits if v == x)
    deltas, after = prev.atoms(sp.KroneckerDelta), cur.atoms(sp.KroneckerDelta)
    for d in sorted((d for d in deltas if x in d.free_symbols), key=sp.default_sort_key):
        sol = sp.solve(d.args[0] - d.args[1], x)
        if len(sol) != 1:
            continue
        rest = {e.subs(x, sol[0]) for e in deltas - {d}} - {sp.Integer(1)}
        if rest == after:
            break
    else:
        raise RenderError(f"build: no Kronecker delta explains the collapse of the sum over {x}")
    sol = sol[0]
    cond = _show_range(sol, hi)
    new = _conditions(cur) - {c.subs(x, sol) for c in _conditions(prev)}
    says = [
        lead,
        _index_display(d),
        " collapses the sum over ",
        x,
        " (lemma delta_sum): ",
        eq(x, tidy_add(_index_display(sol))),
        ", under the range condition ",
        cond,
        ". ",
    ]
    if new:
        says.append("That condition does not always hold, so it stays, as an indicator.")
    else:
        says.append("That holds for every entry in range, so nothing is left of it.")
    return Words(tuple(says))


def _general_derivation(result, conv: dict | None = None) -> GeneralDerivation:
    """Each of ``result.steps`` with a sentence saying what happened (the steps' structure decides)."""
    rule = result.rule
    steps = list(result.steps)
    stmt = steps.index(rule.statement)
    entry = rule.statement.lhs.variables[0]
    out = []
    for k, st in enumerate(steps):
        shown = _index_display(st)
        if k == 0:
            primed = sorted((v for v in _bound_vars(st.rhs) if v.name.endswith("'")), key=sp.default_sort_key)
            says = [
                "Hold the upstream gradient fixed and write ",
                S("S"),
                ", the sum of it times the forward rule over every output entry. By the chain rule, the gradient of L with respect to ",
                entry,
                " is the derivative of ",
                S("S"),
                ".",
            ]
            if primed:
                says += [" The summation indices ", *_listing(primed), " are primed, so that none is captured by the entry's own indices."]
            if "pad_delta" in rule.lemmas:
                says.append(
                    " The zero padding is written as a sum of Kronecker deltas (lemma pad_delta), so that SymPy can differentiate through it."
                )
        elif k == 1:
            new = sorted(st.rhs.atoms(sp.KroneckerDelta) - steps[0].rhs.atoms(sp.KroneckerDelta), key=sp.default_sort_key)
            says = [
                "SymPy differentiates term by term: the derivative of the sum is a sum of Kronecker deltas, ",
                _product([_index_display(d) for d in new]),
                ", which is 1 where the summed entry is ",
                entry,
                " and 0 elsewhere.",
            ]
            if _has_base(steps[0].rhs, general.bias) and not _has_base(st.rhs, general.bias):
                says += [" The bias does not depend on ", entry, ", so it drops out."]
        elif k < stmt:
            says = list(_collapse(steps[k - 1].rhs, st.rhs).parts)
            if not st.rhs.atoms(sp.KroneckerDelta):
                says.append(" No delta is left: this is the gradient, reduced.")
        elif k == stmt:
            says = ["The rule to prove: ", *_GENERAL_RULE_WORDS.get(rule.name, ("the rule as stated",)), "."]
        elif k == len(steps) - 1:
            says = [
                "Both sides are reduced. They are the same sum in another order of summation (finite sums commute: "
                "lemma finite_sums), so the difference is exactly 0, for every size:"
            ]
            shown = Lines(sp.Integer(0), *(_index_display(t) for t in sp.Add.make_args(st.lhs)))
        elif k == stmt + 1 and _has_base(st.lhs, general.Gpad) and not _has_base(st.rhs, general.Gpad):
            says = ["The rule's right-hand side with ", general.Gpad, " written out by its definition, a sum of deltas:"]
            shown = Broken(_index_display(st.lhs), _index_display(st.rhs))
        else:
            says = list(_collapse(steps[k - 1].rhs, st.rhs, "In the rule, the delta ").parts)
            shown = Broken(_index_display(st.lhs), _index_display(st.rhs))
        out.append(GeneralStep(Words(tuple(says)), shown))
    defs = [GeneralStep(_words("The forward rule, 0-based:"), _index_display(rule.forward))]
    for d in rule.definitions:
        defs.append(GeneralStep(_words("where"), _index_display(d)))
    final = steps[stmt - 1].rhs
    raw = sorted({r for pw in final.atoms(sp.Piecewise) for r in _raw_ranges(pw.args[0][1])}, key=sp.default_sort_key)
    borders = tuple(_show_range(*r) for r in raw)
    lemmas = ", ".join(result.lemmas)
    verdict = {
        "proven": _words(f"Proven for every size: the difference reduced to exactly 0 with every size a symbol (lemmas {lemmas})."),
        "checked": _words(f"Checked only: a lemma it uses ({lemmas}) was checked at concrete sizes, not proven."),
    }.get(result.status, _words(f"NOT proven: {result.detail}"))
    return GeneralDerivation(
        rule.name,
        _GENERAL_TITLES.get(rule.name, rule.name),
        result.status,
        tuple(defs),
        tuple(out),
        borders,
        result.lemmas,
        verdict,
        _words("The border conditions: the entry ", entry, " receives from the output position (i, j) only when") if borders else None,
        Row(*borders) if borders else None,
        _border_note(raw, conv) if raw and conv is not None else None,
    )


def _border_note(raw: list, conv: dict) -> Words:
    """What the border conditions mean at this network's conv layer: how many output positions reach an entry."""
    ho, wo = conv["H_o"], conv["W_o"]
    sizes = {general.s: conv["s"], general.p: conv["p"], general.K_h: conv["Kh"], general.K_w: conv["Kw"]}

    def reached(h: int, w: int) -> int:
        at = {**sizes, general.fh: h, general.fw: w}

        def reads(i: int, j: int) -> bool:
            return all(0 <= d.subs({**at, general.bi: i, general.bj: j}) <= (sp.oo if top is None else top.subs(at)) for d, top in raw)

        return sum(reads(i, j) for i in range(ho) for j in range(wo))

    mid = (conv["H"] // 2, conv["W"] // 2)
    return _words(
        "That is, the filter tap that reads the entry must lie inside the filter; near the border fewer output positions "
        "qualify. In this network (",
        eq(general.s, conv["s"]),
        ", ",
        eq(general.p, conv["p"]),
        ", ",
        eq(general.K_h, conv["Kh"]),
        ", ",
        eq(general.K_w, conv["Kw"]),
        ", ",
        eq(general.H_o, ho),
        ", ",
        eq(general.W_o, wo),
        ") the corner entry ",
        general.X[0, 0, 0],
        " is reached from ",
        _count(reached(0, 0), "output position"),
        ", the inner entry ",
        general.X[0, mid[0], mid[1]],
        " from ",
        _count(reached(*mid), "output position"),
        ".",
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _listing(items) -> list:
    """Inline formulas joined as a list in words: a, b and c."""
    out = []
    for k, item in enumerate(items):
        if k:
            out.append(" and " if k == len(items) - 1 else ", ")
        out.append(item)
    return out
