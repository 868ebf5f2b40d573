"""The opening of the lecture's handout: its context, section 1 (the network), section 2 (forward
propagation, in matrix form first) and section 3 (what backpropagation has to find)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from render import drawings
from render.blocks import Display, Figure, Heading, Items, Link, Para, Strong, Table, words
from render.lecture.common import CROSSCHECK, PROOFS, Lecture, count, first, label, long_sum, shape, shown, terms
from render.notation import Conv, Flow, Partial, S, Sigma, Softplus, Stack, T, chain, eq
from symbolic.network import build

X, W1, B1, W2, B2, Y, L = (S(n) for n in ("X", "W_1", "B_1", "W_2", "B_2", "Y", "L"))
Z1, A1, P1, F, Z2, A2 = (S(n) for n in ("Z_1", "A_1", "P_1", "F", "Z_2", "A_2"))
I, J, K, LL = sp.symbols("i j k l", integer=True)  # noqa: E741 - the lecture's index names


def shift(i, k):
    """i + k − 1, in that order (SymPy would print −1 + i + k)."""
    return sp.Add(i, k, -1, evaluate=False)


def bce():
    """The binary cross-entropy of the prediction A2 and the label Y."""
    return -(Y * sp.log(A2) + (1 - Y) * sp.log(1 - A2))


def window_map(full) -> object:
    """Which entry of F is which window of P1, and which dense weight it meets: f_r = p_ij, weight w_r^(2)."""
    fs = [S(str(v)) for v in np.asarray(full.stage_labels["F"], dtype=object).ravel()]
    ps = [S(str(v)) for v in np.asarray(full.stage_labels["P1"], dtype=object).ravel()]
    pairs = [eq(f, p) for f, p in zip(fs, ps)]
    if len(pairs) > 6:
        pairs = [*pairs[:2], S(r"\dots"), pairs[-1]]
    shown = [x for pair in pairs for x in (pair, ", ")][:-1]
    return words(
        "So ",
        *shown,
        ": entry ",
        S("f_r"),
        " of ",
        F,
        " is window number ",
        S("r"),
        " of the max-pool in row-major order, and the dense weight it meets is ",
        S("w2_r"),
        ". Below, ",
        S("p_r"),
        " names that window.",
    )


def context(lec: Lecture) -> tuple:
    """The lecture's one-paragraph context, and how to read the handout."""
    return (
        Para(
            words(
                "Backpropagation in a CNN is a very important and conceptual topic, and a difficult one: it takes real "
                "mathematics, and it is worth following more than once, with pen and paper at hand. Deep-learning libraries "
                "compute it for you, but understanding it lets you use them better. The lecture takes it in three parts: how "
                "backpropagation runs through a whole CNN (part 1), how it passes the convolution, the max-pooling and the "
                "flattening (part 2), and a larger network (part 3). This handout follows parts 1 and 2, on the lecture’s "
                "own small network and in its notation."
            )
        ),
        Para(
            words(
                "Every formula below is printed from the expressions of the computer-algebra engine of cnn-derive (“the "
                "engine” below), which builds the whole network as one expression and differentiates it; every rule is proven "
                "exactly: a mark such as ",
                Link("✓ proven (a)", PROOFS),
                " links to the table of proofs in Appendix B. Every number comes from functions generated from the same "
                "expressions; Appendix C checks them independently.",
            )
        ),
    )


def the_network(lec: Lecture) -> tuple:
    """Section 1: the architecture, the shape of every stage, the trainable parameters."""
    s = lec.sizes
    n, k, c, p, m, pool = s.n, s.k, s.conv, s.pooled, s.flat, s.pool
    stages = (
        (X, shape(n, n), words("the input image")),
        (Z1, shape(c, c), words(f"convolution with the {shape(k, k)} filter ", W1, ", plus ", B1)),
        (A1, shape(c, c), words("ReLU")),
        (P1, shape(p, p), words(f"max-pool {shape(pool, pool)}, stride {pool}")),
        (F, shape(m), words("flatten (row by row)")),
        (Z2, shape(1, 1), words("dense: ", W2, f" ({shape(1, m)}) times ", F, ", plus ", B2)),
        (A2, shape(1, 1), words("sigmoid: the prediction ", S("yhat"))),
        (L, shape(1, 1), words("binary cross-entropy with the label ", Y)),
    )
    params = (
        (W1, shape(k, k), k * k, "the filter"),
        (B1, shape(1, 1), 1, "the filter’s bias"),
        (W2, shape(1, m), m, "the dense weights"),
        (B2, shape(1, 1), 1, "the output neuron’s bias"),
    )
    arch = [
        ("X", shape(n, n), f"conv {shape(k, k)}\nW1, B1"),
        ("Z1", shape(c, c), "ReLU"),
        ("A1", shape(c, c), f"max-pool\n{shape(pool, pool)}"),
        ("P1", shape(p, p), "flatten"),
        ("F", shape(m), "dense\nW2, B2"),
        ("Z2", shape(1, 1), "sigmoid"),
        ("A2", shape(1, 1), "BCE"),
        ("L", shape(1, 1), None),
    ]
    return (
        Heading("1. The network", anchor="network"),
        Para(
            words(
                "An image ",
                X,
                f" of size {shape(n, n)} goes through one convolution (a {shape(k, k)} filter ",
                W1,
                " and a bias ",
                B1,
                f"), a ReLU, a max-pool ({shape(pool, pool)} windows, stride {pool}), a flattening step and one output neuron (weights ",
                W2,
                ", bias ",
                B2,
                ") with a sigmoid. The loss is binary cross-entropy, as for a yes/no question such as “is this a dog?”.",
            )
        ),
        Figure(
            "architecture.png",
            words("The network, with the shape of every stage; ", W1, ", ", B1, ", ", W2, " and ", B2, " are trained."),
            drawings.architecture,
            {"shapes": arch},
        ),
        Table(
            (words("quantity"), words("shape"), words("what it is")),
            tuple((words(q), words(shp), what) for q, shp, what in stages),
        ),
        Para(
            words(
                "Only two places hold numbers that training changes: the convolution (its filter and bias) and the fully "
                "connected layer (its weights and bias)."
            )
        ),
        Table(
            (words("parameter"), words("shape"), words("count"), words("what it is")),
            tuple((words(q), words(shp), words(str(cnt)), words(what)) for q, shp, cnt, what in params)
            + ((words(Strong("total")), words(""), words(Strong(str(s.n_params))), words("trainable parameters")),),
            "llrl",
        ),
    )


def forward(lec: Lecture) -> tuple:
    """Section 2: the forward pass in matrix form (the lecture's seven equations), then one entry of each."""
    s, full = lec.sizes, lec.full
    k, c = s.k, s.conv
    yhat = S("yhat")
    relu, maxpool, flatten = (sp.Function(name) for name in ("ReLU", "maxpool", "flatten"))
    matrix_form = Stack(
        eq(Z1, sp.Add(Conv(X, W1), B1, evaluate=False)),
        eq(A1, relu(Z1)),
        eq(P1, maxpool(A1)),
        eq(F, flatten(P1)),
        eq(Z2, sp.Add(chain(W2, F), B2, evaluate=False)),
        eq(A2, eq(Sigma(Z2), yhat)),
        eq(L, eq(sp.Function("BCE")(Y, A2), bce())),
    )
    from_z, from_a, from_p = (build(lec.spec, start=st) for st in ("Z1", "A1", "P1"))
    from_f, from_z2 = build(lec.spec, start="F"), build(lec.spec, start="Z2")
    xI = sp.IndexedBase("x")
    conv_index = sp.Add(sp.Sum(S("w_kl") * xI[shift(I, K), shift(J, LL)], (K, 1, k), (LL, 1, k)), B1, evaluate=False)
    z11 = sp.sympify(first(full.stages["Z1"]))
    z11_show, _ = long_sum(label(full, "Z1"), terms(z11), 10 if s.n < 10 else 5)
    z2 = sp.sympify(first(from_f.stages["Z2"]))
    z2_show, z2_cut = long_sum(Z2, terms(z2), 8 if s.n < 10 else 5)
    out = [
        Heading("2. Forward propagation", anchor="forward"),
        Para(words("The whole computation, stage by stage:")),
        Display(Flow(X, S("conv"), Z1, S("ReLU"), A1, S("max-pool"), P1, S("flatten"), F, S("dense"), Z2, S("sigmoid"), A2, S("BCE"), L)),
        Para(words("In matrix form, as the lecture writes it:")),
        Display(matrix_form),
        Para(
            words(
                "Here “conv” is cross-correlation, as in every deep-learning library: the filter slides over ",
                X,
                " as it is, without being flipped first (a convolution in the mathematician’s sense would flip it). "
                f"Entry by entry, each of the {c * c} entries of ",
                Z1,
                f" is a weighted sum of a {shape(k, k)} patch of ",
                X,
                ", plus the bias:",
            )
        ),
        Display(eq(S("z_ij"), conv_index)),
        Para(words("For example the first entry, as the engine builds it:")),
        Display(z11_show),
        Para(words("ReLU, entry by entry:")),
        Display(eq(label(from_z, "A1"), sp.sympify(first(from_z.stages["A1"])))),
        Para(
            words(
                "Max-pooling: each entry of ",
                P1,
                " is the largest of its window. The conditions read top to bottom, so at a tie the first maximum in row-major order wins:",
            )
        ),
        Display(eq(label(from_a, "P1"), sp.sympify(first(from_a.stages["P1"])))),
        Para(words("Flattening, row by row:")),
        Display(eq(T("F"), shown(from_p.stages["F"]))),
        Para(window_map(full)),
        Para(words("The dense layer", f" ({count(s.flat, 'term')} and the bias, shortened here):" if z2_cut else ":")),
        Display(z2_show),
        Para(words("The sigmoid gives the prediction, and binary cross-entropy with the label ", Y, " the loss:")),
        Display(Stack(eq(A2, Sigma(Z2)), eq(L, bce()))),
        Para(
            words(
                "The engine writes the same loss in terms of ",
                Z2,
                " (the two forms are proven equal), which stays exact when the sigmoid saturates; here ",
                eq(Softplus(S("z")), sp.log(sp.Add(1, sp.exp(S("z")), evaluate=False))),
                ":",
            )
        ),
        Display(eq(L, sp.sympify(from_z2.L))),
    ]
    return tuple(out)


def objective(lec: Lecture) -> tuple:
    """Section 3: the four gradients gradient descent needs, and the two parts of the network."""
    s = lec.sizes
    grads = (
        (W1, shape(s.k, s.k), "the filter"),
        (B1, shape(1, 1), "the filter’s bias"),
        (W2, shape(1, s.flat), "the dense weights"),
        (B2, shape(1, 1), "the output neuron’s bias"),
    )
    return (
        Heading("3. What backpropagation has to find", anchor="objective"),
        Para(
            words(
                "Gradient descent moves each parameter against the slope of the loss, so it needs four gradients, each "
                "with the same shape as its parameter:"
            )
        ),
        Items(tuple(words(Partial(L, q), f": shape {shp}, like {what}") for q, shp, what in grads)),
        Para(
            words(
                "We work backwards from the loss, in two parts: first the fully connected part (everything after the flattening, from ",
                F,
                " on), then the convolutional part (the convolution, the ReLU and the max-pool). The worked example of ",
                Link("section 6", "example"),
                " puts numbers on every step; ",
                Link("Appendix C", CROSSCHECK),
                " checks them.",
            )
        ),
    )
