"""Section 5 of the lecture's handout: the convolutional part, rules (d)-(j), the filter gradient made
obvious (∂z_ij/∂w_kl, the identity for z̄_ij, both expansions of ∂L/∂w_11 term by term), and the
backward recipe in one box with the shape at every stage."""

from __future__ import annotations

import numpy as np
import symengine as se
import sympy as sp

from render.blocks import Box, Display, Heading, Link, Para, Table, words
from render.lecture.common import HEAD, TAIL, Lecture, count, first, label, long_sum, mark, shape, shown, terms
from render.lecture.dense import error_term
from render.lecture.network import A1, A2, B1, LL, P1, W1, W2, Z1, Z2, F, I, J, K, L, X, Y, shift
from render.notation import Conv, Hadamard, Ind, IndexSum, Partial, Relu1, Reshape, Row, S, Stack, T, Unpool, Wins, chain, eq
from render.printer import to_display
from symbolic.derive import expansion
from symbolic.errors import RenderError
from symbolic.network import backward, build, stage_symbols
from symbolic.rules import layer_rule

SEVEN = (Partial(L, A2), Partial(A2, Z2), Partial(Z2, F), Partial(F, P1), Partial(P1, A1), Partial(A1, Z1), Partial(Z1, W1))


def _rules(lec: Lecture) -> dict:
    """Each layer's rule applied to a generic upstream gradient (f̄_j stands for ∂L/∂f_j, and so on)."""
    index = {la.type: i for i, la in enumerate(lec.spec.layers, 1)}
    return {t: layer_rule(lec.spec, index[t]) for t in ("conv2d", "relu", "maxpool", "flatten")}


def conv_part(lec: Lecture) -> tuple:
    """Section 5 up to the filter: the seven-factor chain, ∂Z2/∂F = W2, and rules (d)-(h)."""
    s = lec.sizes
    c, p = s.conv, s.pooled
    product = error_term()[2]
    from_f = build(lec.spec, start="F")
    rules = _rules(lec)
    z2 = first(from_f.stages["Z2"])
    dz2_df = shown([z2.diff(f) for f in np.asarray(from_f.stages["F"]).ravel()])
    gF = backward(from_f)["dL/dF"]
    gP = rules["flatten"].grad_input.reshape(p, p)
    gA = rules["maxpool"].grad_input.reshape(c, c)
    gZ = rules["relu"].grad_input.reshape(c, c)
    gB = sp.sympify(rules["conv2d"].grad_params["B1"].ravel()[0])
    gB_show, gB_cut = long_sum(Partial(L, B1), terms(gB), 8)
    return (
        Heading("5. The convolutional part", anchor="conv"),
        Para(
            words(
                W1,
                " sits at the very start of the network, so its gradient is a chain of seven factors, one for each stage "
                "the signal passes on its way to the loss:",
                mark(lec, "j"),
            )
        ),
        Display(eq(Partial(L, W1), chain(*SEVEN))),
        Para(
            words(
                "The factors are not numbers but tensors of different shapes; the box at the end of this section says what "
                "their product means. The first two factors multiply to ",
                product,
                ", as in section 4. We now take the remaining stages one at a time.",
            )
        ),
        Para(words(Z2, " is a weighted sum of the entries of ", F, ", so its derivative with respect to ", F, " is the weights:")),
        Display(eq(Partial(Z2, F), eq(dz2_df, W2))),
        Para(
            words(
                "So the first three factors give the gradient at ",
                F,
                ": the error ",
                product,
                " times each weight of ",
                W2,
                ", as a column like ",
                F,
                ".",
                mark(lec, "d"),
            )
        ),
        Display(eq(Partial(L, F), eq(chain(product, T("W_2")), shown(gF, from_f.atoms).T))),
        Para(
            words(
                "Flatten has no parameters; its backward pass undoes the reshape. Write the upstream gradient with a bar: ",
                S("fbar_j"),
                " means ",
                Partial(L, S("f_j")),
                ".",
                mark(lec, "e"),
            )
        ),
        Display(eq(Partial(L, P1), eq(Reshape(Partial(L, F), P1), shown(gP)))),
        Para(
            words(
                "Max-pooling has no parameters either. Only the entry that won its window reached the loss, so the "
                "window’s gradient goes there and every other entry of the window gets 0.",
                mark(lec, "f"),
            )
        ),
        *_matrix_or_entries(Partial(L, A1), Unpool(Partial(L, P1)), shown(gA, rules["maxpool"].atoms), lec.full.stage_labels["A1"]),
        Para(
            words(
                "Here ",
                Wins(S("a_ij"), S("p_rs")),
                " is 1 when ",
                S("a_ij"),
                " is the first maximum of the window that produces ",
                S("p_rs"),
                " (first in row-major order, so a tie sends the whole gradient to one entry) and 0 otherwise. The routing figure of ",
                Link("section 6", "example"),
                " shows it with numbers.",
            )
        ),
        Para(
            words(
                "ReLU passes the gradient where its input was positive and blocks it elsewhere (at exactly 0 too):",
                mark(lec, "g"),
            )
        ),
        *_matrix_or_entries(
            Partial(L, Z1),
            Hadamard(Partial(L, A1), Ind(sp.StrictGreaterThan(Z1, 0))),
            shown(gZ, rules["relu"].atoms),
            lec.full.stage_labels["Z1"],
        ),
        Para(
            words(
                B1,
                " is added to every entry of ",
                Z1,
                " with slope 1, so its gradient is the sum of all entries of the gradient at ",
                Z1,
                f" ({count(c * c, 'term')}, shortened here)." if gB_cut else ".",
                mark(lec, "h"),
            )
        ),
        Display(gB_show),
    )


# A matrix of symbolic entries wider than this many columns does not fit the page: its entries are shown instead.
SYMBOLIC_COLS = 4


def _matrix_or_entries(lhs, rule, matrix: sp.Matrix, labels) -> tuple:
    """``lhs = rule = matrix`` where the matrix fits the page; else ``lhs = rule`` and its first entries, one per line."""
    if matrix.cols <= SYMBOLIC_COLS:
        return (Display(eq(lhs, eq(rule, matrix))),)
    names = np.asarray(labels, dtype=object).reshape(matrix.rows, matrix.cols)
    first = [eq(Partial(L, S(str(names[0, j]))), matrix[0, j]) for j in range(2)]
    return (
        Display(eq(lhs, rule)),
        Para(words(f"The matrix is {shape(matrix.rows, matrix.cols)}, too wide to print; entry by entry it reads")),
        Display(Stack(*first, S(r"\vdots"))),
    )


def filter_rule(lec: Lecture) -> tuple:
    """Section 5.1: why ∂L/∂W1 = conv(X, ∂L/∂Z1), step by step, with both expansions of ∂L/∂w_11."""
    s, full = lec.sizes, lec.full
    k, c = s.k, s.conv
    xI = sp.IndexedBase("x")
    # The lecture writes plain letter indices together (z_ij, w_kl); only shifted indices need a comma.
    z_ij, w_kl, zbar_ij = S("z_ij"), S("w_kl"), S("zbar_ij")
    x_shift = xI[shift(I, K), shift(J, LL)]
    # ∂z/∂w at two entries, by the engine's own differentiation of its Z1
    zs = np.asarray(full.stages["Z1"], dtype=object).reshape(c, c)
    zlab = np.asarray(full.stage_labels["Z1"], dtype=object).reshape(c, c)
    ws = np.asarray(full.params["W1"], dtype=object).reshape(k, k)
    ex_at = [((0, 0), (0, 0)), ((min(1, c - 1), min(2, c - 1)), (0, min(1, k - 1)))]
    samples = [eq(Partial(S(str(zlab[i])), S(str(ws[w]))), sp.sympify(zs[i].diff(ws[w]))) for i, w in ex_at]
    # z̄_ij written out: the composition of rules (d)-(g), from the engine's backward chain
    gZ = np.asarray(backward(full)["dL/dZ1"], dtype=object).reshape(c, c)
    identity = eq(
        S("zbar_ij"),
        chain(sp.Add(A2, -Y, evaluate=False), S("w2_r"), Wins(S("a_ij"), S("p_r")), Relu1(S("z_ij"))),
    )
    rows, cut, total = _term_rows(lec, gZ)
    out = [
        Heading("5.1 The filter gradient, step by step", level=2, anchor="filter"),
        Para(
            words(
                "Why is the gradient of the filter a convolution? Write one entry of ",
                Z1,
                " as in section 2:",
            )
        ),
        Display(eq(z_ij, sp.Add(sp.Sum(w_kl * x_shift, (K, 1, k), (LL, 1, k)), B1, evaluate=False))),
        Para(
            words(
                "The weight ",
                w_kl,
                " appears in this sum exactly once, multiplied by ",
                x_shift,
                ": the input entry that sits under ",
                w_kl,
                " when the filter’s corner is at position ",
                sp.Tuple(I, J),
                ". Every other term and the bias do not contain ",
                w_kl,
                ", so",
            )
        ),
        Display(eq(Partial(z_ij, w_kl), x_shift)),
        Para(words("For example, as the engine differentiates its own ", Z1, ":")),
        Display(Row(*samples)),
        Para(
            words(
                "The weight ",
                w_kl,
                " reaches the loss through every entry of ",
                Z1,
                " (the filter is used at every position), so the chain rule sums over all of them. With ",
                eq(zbar_ij, Partial(L, z_ij)),
                ", the gradient arriving at ",
                z_ij,
                ":",
            )
        ),
        Display(
            eq(
                Partial(L, w_kl),
                eq(
                    IndexSum(chain(Partial(L, z_ij), Partial(z_ij, w_kl)), (I, 1, c), (J, 1, c)),
                    IndexSum(chain(x_shift, zbar_ij), (I, 1, c), (J, 1, c)),
                ),
            )
        ),
        Para(
            words(
                "And ",
                zbar_ij,
                " itself? Rules (d) to (g) give it entry by entry: the error, the dense weight ",
                S("w2_r"),
                " of the window ",
                S("p_r"),
                " that contains position ",
                sp.Tuple(I, J),
                " (",
                S("r"),
                " counts the windows row by row, as ",
                F,
                " does: ",
                eq(S("p_1"), label(full, "P1")),
                ", and so on), whether this position won its window, and whether its ReLU was open:",
            )
        ),
        Display(identity),
        Para(words("For example, from the engine’s backward chain:")),
        Display(eq(S("zbar_11"), to_display(gZ[0, 0], full.atoms, factor=True))),
        Para(
            words(
                "So each term ",
                chain(x_shift, zbar_ij),
                " is one path from the loss back to the weight. The engine can also differentiate the complete expression of ",
                L,
                " by brute force and expand every sum (",
                Link("Appendix A", "appendix-a"),
                "). The two expansions of ",
                Partial(L, S("w_11")),
                " list the same terms in the same order, pooling window by pooling window:",
            )
        ),
        Table(
            (words("window"), words("brute force: a path term"), words("the rule: ", chain(S("x"), S("zbar")))),
            rows,
        ),
        Para(
            words(
                f"That is {count(total, 'term')}, one for each position of each pooling window"
                + (f"; the first {HEAD} and the last {TAIL} are shown, and “cnn-derive expand w_11” prints them all." if cut else ".")
                + " Most vanish for a given image: only one position per window wins, and only open ReLUs pass anything. "
                "Collecting them by the input entry they multiply gives the pattern for every weight: ",
                Partial(L, S("W_1")),
                " is the input correlated with the gradient at ",
                Z1,
                ", the same sliding window as the forward pass, with the gradient as the filter.",
                mark(lec, "i"),
            )
        ),
        Display(eq(Partial(L, W1), Conv(X, Partial(L, Z1)))),
        Para(
            words(
                "As in the forward pass, “conv” is cross-correlation: ",
                Partial(L, Z1),
                " slides over ",
                X,
                " unflipped. ",
                Link("Section 6", "by-hand"),
                " works one entry by hand and draws the sliding window.",
            )
        ),
    ]
    return tuple(out)


def _term_rows(lec: Lecture, gZ: np.ndarray) -> tuple:
    """The rows of the term-by-term table (shortened past the long-sum limit), checked: each row's
    brute-force term and x · z̄ expand to the same expression, else the handout is not written."""
    s, full = lec.sizes, lec.full
    c, n = s.conv, s.n
    terms = expansion(full, "w_11").terms
    positions = {str(lab): divmod(i, c) for i, lab in enumerate(np.asarray(full.stage_labels["A1"], dtype=object).ravel())}
    xs = np.asarray(full.stages["X"], dtype=object).reshape(n, n)
    zbar = np.asarray(stage_symbols(lec.spec, "Z1", lec.spec.shapes[1], bar=True), dtype=object).reshape(c, c)
    cut = len(terms) > 24
    picked = list(range(HEAD)) + [None] + list(range(len(terms) - TAIL, len(terms))) if cut else list(range(len(terms)))
    rows = []
    for t in picked:
        if t is None:
            rows.append((words(S(r"\vdots")), words(S(r"\vdots")), words(S(r"\vdots"))))
            continue
        term = terms[t]
        i, j = positions[term.position]
        x = xs[i, j]  # w_11 multiplies x_ij at position (i, j)
        if se.expand(term.expr - x * gZ[i, j]) != 0:
            raise RenderError(f"build: the path term of {term.position} is not x times zbar")
        rows.append(
            (
                words(S(term.window)),
                words(to_display(term.expr, full.atoms, factor=True)),
                words(chain(S(str(x)), S(str(zbar[i, j])))),
            )
        )
    return tuple(rows), cut, len(terms)


def recipe(lec: Lecture) -> tuple:
    """Section 5.2: the backward recipe in one box, with the shape at every stage and what the
    seven-factor product means."""
    s = lec.sizes
    k, c, p, m = s.k, s.conv, s.pooled, s.flat
    err = error_term()[2]
    zij = S("z_ij")
    steps = (
        (Z2, err, shape(1, 1)),
        (W2, chain(err, T("F")), shape(1, m)),
        (S("B_2"), err, shape(1, 1)),
        (F, chain(err, T("W_2")), shape(m, 1)),
        (P1, Reshape(Partial(L, F), P1), shape(p, p)),
        (A1, Unpool(Partial(L, P1)), shape(c, c)),
        (Z1, Hadamard(Partial(L, A1), Ind(sp.StrictGreaterThan(Z1, 0))), shape(c, c)),
        (B1, IndexSum(Partial(L, zij), (I, 1, c), (J, 1, c)), shape(1, 1)),
        (W1, Conv(X, Partial(L, Z1)), shape(k, k)),
    )
    factors = (
        shape(1, 1),
        shape(1, 1),
        shape(1, m),
        f"{m}×({shape(p, p)})",
        f"({shape(p, p)})×({shape(c, c)})",
        f"({shape(c, c)})×({shape(c, c)})",
        f"({shape(c, c)})×({shape(k, k)})",
    )
    return (
        Heading("5.2 The backward recipe", level=2, anchor="recipe"),
        Box(
            "The backward recipe, with the shape at every stage",
            (
                Para(
                    words(
                        "From the loss down. Each line uses gradients already computed above it (",
                        Partial(L, W2),
                        ", ",
                        Partial(L, S("B_2")),
                        " and ",
                        Partial(L, F),
                        " all start from ",
                        Partial(L, Z2),
                        "; ",
                        Partial(L, W1),
                        " uses ",
                        Partial(L, Z1),
                        ", two lines up) and what the forward pass kept; nothing is computed twice.",
                    )
                ),
                Table(
                    (words("gradient"), words("rule"), words("shape")),
                    tuple((words(Partial(L, q)), words(rule), words(shp)) for q, rule, shp in steps),
                    "llr",
                ),
                Para(
                    words(
                        "The seven-factor product of section 5 is this recipe in one line. Its factors are Jacobians, one per "
                        "stage, of shapes ",
                        ", ".join(factors),
                        ": each is (the shape of its top) × (the shape of its bottom). “Multiplying” two neighbours means "
                        "summing over every entry of the stage they share, as section 5.1 does over every entry ",
                        zij,
                        " of ",
                        Z1,
                        f". The product is 1×({shape(k, k)}), the shape of ",
                        W1,
                        ". The recipe evaluates it from the left, one stage at a time, so each step only carries a gradient "
                        f"of one stage’s shape; the large, mostly-zero Jacobians (the ReLU’s has {c**4} entries, {c * c} of "
                        "them on its diagonal) are never built.",
                    )
                ),
            ),
        ),
    )
