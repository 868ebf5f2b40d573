"""The handout's document model: everything the templates print, built from the symbolic engine.

Formulas are SymPy objects (taken from the engine's own expressions, or display objects from
``notation`` for the names the lecture uses); numbers come from ``symbolic.numeric``; proofs
from ``symbolic.rules``. Nothing here produces text from math: the templates do, through the
printers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from render.notation import Flow, Row, Stack, SumLines, Conv, Hadamard, Ind, Partial, Reshape, S, T, Unpool, chain, eq
from render.printer import Sigma, to_display
from symbolic.check import central_differences
from symbolic.derive import expansion
from symbolic.layers import Conv2D, Flatten, MaxPool, ReLU
from symbolic.network import backward, build, named
from symbolic.numeric import compile_network
from symbolic.rules import loss_lemma, prove_all
from symbolic.spec import NetworkSpec

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


def build_handout(spec: NetworkSpec = NetworkSpec(), example: dict | None = None, other_sizes=((5, 2), (7, 2), (8, 3))) -> Handout:
    """Derive, prove and evaluate everything the handout shows.

    >>> h = build_handout(); h.spec.n_params, len(h.proofs), all(p["proven"] for p in h.proofs)
    (15, 10, True)
    """
    n, k, c, p, m = spec.n, spec.k, spec.conv, spec.pooled, spec.flat
    full = build(spec)
    A2, Y, Z2, L = S("A_2"), S("Y"), S("Z_2"), S("L")

    stages = (
        (S("X"), _shape(n, n), "input image"),
        (S("Z_1"), _shape(c, c), f"convolution with the {k}×{k} filter W1, plus B1"),
        (S("A_1"), _shape(c, c), "ReLU"),
        (S("P_1"), _shape(p, p), f"max-pool {spec.pool}×{spec.pool}, stride {spec.pool}"),
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
    xI, wI = sp.IndexedBase("x"), sp.IndexedBase("w")
    conv_index = sp.Add(sp.Sum(wI[k_, l_] * xI[_shift(i_, k_), _shift(j_, l_)], (k_, 1, k), (l_, 1, k)), S("B_1"), evaluate=False)
    bce = -(Y * sp.log(A2) + (1 - Y) * sp.log(1 - A2))
    forward = (
        Step(f"Convolution: each of the {c * c} entries of Z1 is a weighted sum of a {k}×{k} patch of X, plus the bias.",
             eq(sp.Indexed("z", i_, j_), conv_index)),
        Step("For example, the first entry, as the engine builds it:", eq(S("z_11"), _sym(full.Z1[0, 0]))),
        Step("ReLU, entry by entry:", eq(S("a_11"), _sym(from_z.A1[0, 0]))),
        Step("Max-pooling: each entry of P1 is the largest of its window; the conditions read top to bottom, so at a tie the first maximum in row-major order wins:",
             eq(S("p_11"), _sym(from_a.P1[0, 0]))),
        Step("Flattening, row by row:", eq(T("F"), _display(from_p.F))),
        Step("The dense layer:", eq(Z2, _sym(from_f.Z2))),
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
    dz2_dw2 = _display([from_f.Z2.diff(w) for w in from_f.W2])
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
    # The backward rules applied to a generic upstream gradient: fbar_j stands for dL/df_j, etc.
    fbar, pbar = named("fbar", (m,)), named("pbar", (p, p))
    abar, zbar = named("abar", (c, c)), named("zbar", (c, c))
    gP = Flatten.backward(from_p.P1, fbar)
    gA = MaxPool.backward(from_a.A1, pbar, spec.pool, from_a.atoms, from_a.label["A1"], from_a.label["P1"])
    gZ = ReLU.backward(from_z.Z1, abar, from_z.atoms, from_z.label["Z1"])
    gW, gB = Conv2D.backward(full.X, full.W1, zbar)
    gP_disp, gA_disp, gZ_disp = _display(gP), _display(gA, from_a.atoms), _display(gZ, from_z.atoms)
    gB_disp = SumLines(Partial(L, S("B_1")), 8, *sp.Add.make_args(_sym(gB)))
    gW11_disp = SumLines(Partial(L, S("w_11")), 8, *sp.Add.make_args(_sym(gW[0, 0])))

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

    w11 = windows_of(full.params() and str(full.W1[0, 0]))
    appendix = tuple((S(str(w)), windows_of(str(w))) for w in full.W1.ravel())

    # --- proofs --------------------------------------------------------------------------------
    results = prove_all(spec, full)
    statements = _rule_statements(c)
    proofs = tuple({"name": r.rule.name, "statement": statements[r.rule.name], "text": r.rule.statement,
                    "proven": r.proven, "entries": r.entries} for r in results)
    others = []
    for nn, kk in other_sizes:
        rs = prove_all(NetworkSpec(n=nn, k=kk))
        others.append({"n": nn, "k": kk, "proven": sum(r.proven for r in rs), "rules": len(rs)})

    example = _worked_example(spec, full, example if example is not None else (SEED_EXAMPLE if spec == NetworkSpec() else _default_example(spec)))
    cross = tuple(central_differences(spec, example["inputs"]["X"], example["param_values"], example["inputs"]["Y"], example["grad_values"]))

    figures = _figures(spec, example)
    w11_terms = [t for _, ts in w11 for t in ts]
    per_line = 2
    appendix_sums = tuple((name, SumLines(Partial(L, name), per_line, *[t for _, ts in wins for t in ts])) for name, wins in appendix)
    return Handout(
        spec=spec, title="Backpropagation through a small CNN, derived and proven", stages=stages, params=params, flow=flow,
        forward=forward, objective=objective, fc=fc, chain=chain_eq, conv=conv, w11_windows=w11, w11_name=S("w_11"),
        pattern=pattern, example=example, appendix_expansions=appendix, proofs=proofs, other_sizes=tuple(others),
        crosscheck=tuple(_Cross(sp.Symbol(d.name), d.derivative, d.central, d.relative) for d in cross), figures=figures,
        lemma_proven=loss_lemma(), wins_example=_wins_example(), w11_count=len(w11_terms),
        w11_sum=SumLines(Partial(L, S("w_11")), per_line, *w11_terms), appendix_sums=appendix_sums,
        crosscheck_max=max(d.relative for d in cross), **_example_displays(example),
    )


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
        "example_forward": Stack(Row(eq(S("Z_1"), numbers(o["Z1"])), eq(S("A_1"), numbers(o["A1"], boxed=o["pool_mask"] > 0))),
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


def _default_example(spec: NetworkSpec) -> dict:
    """Small integers for other sizes: a fixed pattern, so builds stay deterministic."""
    n, k, m = spec.n, spec.k, spec.flat
    X = [[(3 * i + 2 * j + i * j) % 4 for j in range(n)] for i in range(n)]
    W1 = [[(1, -1, 0)[(i + 2 * j) % 3] for j in range(k)] for i in range(k)]
    W2 = [(1, -2, 1, -1)[j % 4] for j in range(m)]
    return {"X": X, "W1": W1, "B1": 0, "W2": W2, "B2": 1, "Y": 1}


def _worked_example(spec: NetworkSpec, full, ex: dict) -> dict:
    net = compile_network(spec)
    X, W1 = np.asarray(ex["X"], float), np.asarray(ex["W1"], float)
    B1, W2, B2, Y = float(ex["B1"]), np.asarray(ex["W2"], float), float(ex["B2"]), float(ex["Y"])
    out = net(X, W1, B1, W2, B2, Y)
    lr = LEARNING_RATE
    new = {"W1": W1 - lr * out["dL/dW1"], "B1": B1 - lr * out["dL/dB1"], "W2": W2 - lr * out["dL/dW2"], "B2": B2 - lr * out["dL/dB2"]}
    after = net(X, new["W1"], new["B1"], new["W2"], new["B2"], Y)
    names = list(full.params())
    before_vals = list(W1.ravel()) + [B1] + list(W2) + [B2]
    grads = list(out["dL/dW1"].ravel()) + [float(out["dL/dB1"])] + list(out["dL/dW2"]) + [float(out["dL/dB2"])]
    after_vals = list(new["W1"].ravel()) + [float(new["B1"])] + list(new["W2"]) + [float(new["B2"])]
    step = tuple({"name": S(nm), "before": float(b), "grad": float(g), "after": float(a)} for nm, b, g, a in zip(names, before_vals, grads, after_vals))
    return {
        "inputs": {"X": X, "W1": W1, "B1": B1, "W2": W2, "B2": B2, "Y": Y},
        "out": out,
        "lr": lr,
        "step": step,
        "loss_before": float(out["L"]),
        "loss_after": float(after["L"]),
        "param_values": dict(zip(names, before_vals)),
        "grad_values": dict(zip(names, grads)),
        "smooth": bool((out["Z1"] != 0).all()),
    }


def _figures(spec: NetworkSpec, ex: dict) -> dict:
    o, inp = ex["out"], ex["inputs"]
    c, p, m = spec.conv, spec.pooled, spec.flat
    shapes = [("X", _shape(spec.n, spec.n), f"conv {spec.k}×{spec.k}\nW1, B1"), ("Z1", _shape(c, c), "ReLU"),
              ("A1", _shape(c, c), f"max-pool\n{spec.pool}×{spec.pool}"), ("P1", _shape(p, p), "flatten"),
              ("F", str(m), "dense\nW2, B2"), ("Z2", "1×1", "sigmoid"), ("A2", "1×1", "BCE"), ("L", "1×1", None)]
    return {
        "architecture": Figure("architecture.png", "The network, with the shape of every stage; W1, B1, W2 and B2 are trained.", "architecture", {"shapes": shapes}),
        "forward": Figure("forward.png", "Forward pass of the worked example: X, Z1, A1 (winners of the max-pool outlined) and P1.", "panel",
                          {"mats": [inp["X"], o["Z1"], o["A1"], o["P1"]], "titles": ["X", "Z1", "A1", "P1"],
                           "marks": [None, None, o["pool_mask"] > 0, None]}),
        "pool": Figure("pool_routing.png", "Max-pool backward: each window's gradient goes to the entry that won the window; the others get 0.", "pool",
                       {"a1": o["A1"], "mask": o["pool_mask"], "grad_p1": o["dL/dP1"], "grad_a1": o["dL/dA1"], "pool": spec.pool}),
        "backward": Figure("backward.png", "Backward through ReLU: dL/dA1, the ReLU mask 1[Z1 > 0], and their product dL/dZ1.", "panel",
                           {"mats": [o["dL/dA1"], o["relu_mask"], o["dL/dZ1"]], "titles": ["dL/dA1", "1[Z1 > 0]", "dL/dZ1"], "marks": None}),
        "params": Figure("gradients.png", "The gradients of the trainable weights: dL/dW1 = conv(X, dL/dZ1) and dL/dW2 = (A2 − Y) Fᵀ.", "panel",
                         {"mats": [o["dL/dW1"], o["dL/dW2"].reshape(1, -1)], "titles": ["dL/dW1", "dL/dW2"], "marks": None}),
    }
