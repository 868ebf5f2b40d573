"""Section 6 of the lecture's handout: the worked example, with the mask and the tie at work, why each
zero gradient is zero, one entry of the filter gradient by hand, and one step of gradient descent."""

from __future__ import annotations

import numpy as np
import sympy as sp

from render import drawings
from render.blocks import Display, Figure, Heading, Link, Para, Table, words
from render.cells import format_value
from render.lecture.checks import representative
from render.lecture.common import CROSSCHECK, Lecture, count, long_sum, pack, shape, width
from render.lecture.network import A1, A2, B1, B2, P1, W1, W2, Z1, Z2, L, X, Y
from render.notation import Conv, Ind, Partial, S, Stack, T, chain, eq
from render.printer import number, numbers
from symbolic.errors import RenderError

_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def sub(name: str) -> str:
    """An entry name with subscript digits, for the text inside a figure (w_11 → w₁₁).

    >>> sub("w_23"), sub("z_1,12")
    ('w₂₃', 'z₁,₁₂')
    """
    base, _, index = name.partition("_")
    return base + index.translate(_SUB)


class Windows:
    """What the max-pool did in the worked example: each window's winner, and which windows were dead or tied."""

    def __init__(self, lec: Lecture):
        s, o, full = lec.sizes, lec.example.out, lec.full
        c, pool = s.conv, s.pool
        self.a_lab = np.asarray(full.stage_labels["A1"], dtype=object).reshape(c, c)
        self.z_lab = np.asarray(full.stage_labels["Z1"], dtype=object).reshape(c, c)
        p_lab = np.asarray(full.stage_labels["P1"], dtype=object).reshape(s.pooled, s.pooled)
        self.dead, self.tied, self.winners = [], [], {}
        for r in range(s.pooled):
            for q in range(s.pooled):
                rows, cols = slice(r * pool, (r + 1) * pool), slice(q * pool, (q + 1) * pool)
                block, route = o["A1"][rows, cols], o["route(A1)"][rows, cols]
                hits = np.argwhere(route > 0)
                if not len(hits):
                    continue
                win = (r * pool + int(hits[0][0]), q * pool + int(hits[0][1]))
                self.winners[win] = str(p_lab[r, q])
                if o["Z1"][win] <= 0:
                    self.dead.append((str(p_lab[r, q]), win))
                equal = [(r * pool + int(i), q * pool + int(j)) for i, j in np.argwhere(block == block.max())]
                if len(equal) > 1 and block.max() > 0:
                    self.tied.append((str(p_lab[r, q]), win, [e for e in equal if e != win]))

    def a(self, at) -> sp.Symbol:
        return S(str(self.a_lab[at]))

    def z(self, at) -> sp.Symbol:
        return S(str(self.z_lab[at]))


def example_section(lec: Lecture, torch_check, slopes: list) -> tuple:
    """Section 6: the worked example from its inputs to one step of gradient descent."""
    s, ex = lec.sizes, lec.example
    o, i = ex.out, ex.inputs
    P = lambda q: Partial(L, S(q))  # noqa: E731
    win = Windows(lec)
    source = {
        "lecture": "Small whole numbers, so that the forward pass can be followed by hand.",
        "case": "The numbers of the case file given to the build.",
        "pattern": words(
            "Small whole numbers drawn once from a fixed random generator (the lecture’s example is for the 6×6 network): "
            "the first draw in which a window is dead and a window ties, with ",
            eq(B1, sp.Rational(1, 2)),
            " so that no entry of ",
            Z1,
            " is exactly 0, and ",
            B2,
            " chosen so that ",
            eq(Z2, 1),
            ".",
        ),
    }[ex.source]
    w2_shown = o["dL/dW2"] if s.flat <= 8 else o["dL/dW2"].reshape(s.pooled, s.pooled)
    out = [
        Heading("6. A worked example", anchor="example"),
        Para(words(source, " The label is ", eq(Y, number(i["Y"])), ".")),
        Display(pack([shown(X, i["X"]), shown(W1, i["W1"]), shown(B1, i["B1"]), shown(W2, i["W2"]), shown(B2, i["B2"])])),
        Heading("Forward pass", level=2),
        Display(pack([shown(Z1, o["Z1"]), shown(A1, o["A1"], boxed=o["route(A1)"] > 0), shown(P1, o["P1"]), shown(T("F"), o["F"])])),
        Para(words("Boxed entries of ", A1, " are the winners of their pooling windows. Then")),
        Display(pack([shown(Z2, o["Z2"]), shown(A2, o["A2"]), shown(L, o["L"])])),
        Figure(
            "forward.png",
            words("Forward pass of the worked example: ", X, ", ", Z1, ", ", A1, " (the winners of the max-pool outlined) and ", P1, "."),
            drawings.panels,
            {
                "mats": [i["X"], o["Z1"], o["A1"], o["P1"]],
                "titles": ["X", "Z₁", "A₁", "P₁"],
                "marks": [None, None, o["route(A1)"] > 0, None],
            },
        ),
        Heading("Backward pass", level=2),
        Para(words("Every matrix follows from the one before it by the rules of section 5:")),
        Display(
            pack(
                [
                    shown(P("Z_2"), o["dL/dZ2"]),
                    shown(P("F"), np.reshape(o["dL/dF"], (-1, 1))),
                    shown(P("P_1"), o["dL/dP1"]),
                    shown(P("A_1"), o["dL/dA1"]),
                    shown(P("Z_1"), o["dL/dZ1"]),
                ]
            )
        ),
        Figure(
            "pool_routing.png",
            words(
                "Max-pool backward in the worked example: each window’s gradient goes to the entry of ",
                A1,
                " that won the window (outlined in the window’s colour); the others get 0. A dashed outline marks an entry "
                "that tied with the winner but came later in row-major order.",
            ),
            drawings.routing,
            {"a1": o["A1"], "mask": o["route(A1)"], "grad_p1": o["dL/dP1"], "grad_a1": o["dL/dA1"], "pool": s.pool},
            1.0,
        ),
        *_mask_and_tie(lec, win),
        Figure(
            "backward.png",
            words(
                "Backward through ReLU: ",
                P("A_1"),
                ", the ReLU mask ",
                Ind(sp.StrictGreaterThan(Z1, 0)),
                " and their product ",
                P("Z_1"),
                ".",
            ),
            drawings.panels,
            {
                "mats": [o["dL/dA1"], o["mask(Z1)"], o["dL/dZ1"]],
                "titles": ["∂L/∂A₁", "1[Z₁ > 0]", "∂L/∂Z₁"],
                "marks": None,
                "shared": (0, 2),
            },
            1.0,
        ),
        *_zeros_of_z(lec, win),
        *by_hand(lec),
        Para(words("The parameter gradients:")),
        Display(
            pack([shown(P("W_1"), o["dL/dW1"]), shown(P("B_1"), o["dL/dB1"]), shown(P("W_2"), o["dL/dW2"]), shown(P("B_2"), o["dL/dB2"])])
        ),
        *_zeros_of_w(lec),
        Figure(
            "gradients.png",
            words(
                "The gradients of the trainable weights: ",
                eq(P("W_1"), Conv(X, P("Z_1"))),
                " and ",
                eq(P("W_2"), chain(sp.Add(A2, -Y, evaluate=False), T("F"))),
                "" if s.flat <= 8 else f" (drawn as {shape(s.pooled, s.pooled)}, in the order of ",
                P1 if s.flat > 8 else "",
                ")." if s.flat > 8 else ".",
            ),
            drawings.panels,
            {"mats": [o["dL/dW1"], np.atleast_2d(w2_shown)], "titles": ["∂L/∂W₁", "∂L/∂W₂"], "marks": None, "shared": True},
            0.75,
        ),
        *_descent(lec),
        *_checked(lec, torch_check, slopes),
    ]
    return tuple(out)


def shown(lhs, value, boxed=None) -> tuple:
    """``lhs = value`` (a number or a numeric matrix, winners boxed) and about how wide it prints."""
    name = 6 if isinstance(lhs, Partial) else 3
    if np.ndim(value) == 0:
        return eq(lhs, number(value)), name + width(value)
    return eq(lhs, numbers(value, boxed=boxed)), name + width(value) + (0 if boxed is None else 2 * np.shape(value)[-1])


def _mask_and_tie(lec: Lecture, win: Windows) -> tuple:
    """What the dead window and the tied window do, in words (the first of each, and how many)."""
    o, s = lec.example.out, lec.sizes
    total = s.pooled * s.pooled
    says = []
    if win.dead:
        name, at = win.dead[0]
        says.append(
            words(
                f"{'The' if len(win.dead) == 1 else f'{len(win.dead)} of the {total} windows are dead; the first,'} window ",
                S(name),
                f"{' is dead' if len(win.dead) == 1 else ','}: every ",
                S("z"),
                " in it is at most 0, so ReLU makes all its entries 0 and the first of them, ",
                eq(win.a(at), number(o["A1"][at])),
                ", wins. The max-pool routes the window’s gradient there, but ",
                eq(win.z(at), number(o["Z1"][at])),
                " is not positive, so the ReLU mask blocks it: ",
                eq(S("zbar_" + str(win.z_lab[at]).partition("_")[2]), 0),
                ". Nothing from this window reaches the filter.",
            )
        )
    if win.tied:
        name, at, others = win.tied[0]
        says.append(
            words(
                f"{'Window' if len(win.tied) == 1 else f'{len(win.tied)} windows tie; the first,'} ",
                S(name),
                " ties" if len(win.tied) == 1 else ",",
                f"{'' if len(win.tied) == 1 else ' ties'}: ",
                tie_equation(win, o["A1"], at, others),
                ". The first maximum in row-major order, ",
                win.a(at),
                ", takes the whole gradient and ",
                *[x for e in others for x in (win.a(e), ", ")][:-1],
                " gets 0 although it is just as large: the convention PyTorch uses too.",
            )
        )
    if not says:
        says.append(words("In this example no window is dead and none ties, so the mask and the tie convention do not show."))
    return tuple(Para(w) for w in says)


def tie_equation(win: Windows, a1: np.ndarray, first: tuple, others: list):
    """The tied entries of a window and their common value, a_32 = a_41 = 1, as one formula."""
    return _equal([win.a(e) for e in [first, *others]] + [number(a1[first])])


def listing(items: list) -> list:
    """Parts joined as a list in words: a, b and c (each part a formula, a string or a Words).

    >>> listing(["a", "b", "c"])
    ['a', ', ', 'b', ' and ', 'c']
    """
    out: list = []
    for k, item in enumerate(items):
        if k:
            out.append(" and " if k == len(items) - 1 else ", ")
        out.append(item)
    return out


def _equal(items: list):
    """a = b = … = v as one formula."""
    out = items[-1]
    for item in reversed(items[:-1]):
        out = eq(item, out)
    return out


def _zeros_of_z(lec: Lecture, win: Windows) -> tuple:
    """Why the zero entries of dL/dZ1 are zero: a lost window, a closed ReLU, or a zero upstream factor."""
    o = lec.example.out
    zero = o["dL/dZ1"] == 0
    lost = int(np.sum(zero & (o["route(A1)"] == 0)))
    blocked = int(np.sum(zero & (o["route(A1)"] > 0) & (o["Z1"] <= 0)))
    other = int(np.sum(zero)) - lost - blocked
    parts = [f"{lost} lost their window, so the max-pool sends them nothing"] if lost else []
    if blocked:
        parts.append(
            words(
                f"{blocked} won {'its window' if blocked == 1 else 'their windows'} with ",
                sp.LessThan(S("z"), 0),
                ", so the ReLU blocks the gradient",
            )
        )
    if other:
        parts.append(words(f"{other} won with ", sp.StrictGreaterThan(S("z"), 0), " but the error or the window’s dense weight is 0"))
    if not parts:
        return ()
    return (
        Para(
            words(
                "Why the zeros of ",
                Partial(L, Z1),
                f" are zero: of its {o['dL/dZ1'].size} entries, ",
                *[x for part in parts for x in ("; ", part)][1:],
                ". Only the winners with an open ReLU carry the error back.",
            )
        ),
    )


def _zeros_of_w(lec: Lecture) -> tuple:
    """Why a zero entry of dL/dW1 is zero: every nonzero z̄ meets a 0 of X there, or the terms cancel."""
    s, o, full = lec.sizes, lec.example.out, lec.full
    gz, x = o["dL/dZ1"], lec.example.inputs["X"]
    ws = np.asarray(full.params["W1"], dtype=object).reshape(s.k, s.k)
    xs = np.asarray(full.stages["X"], dtype=object).reshape(s.n, s.n)
    live = np.argwhere(gz != 0)
    says = []
    for k, col in np.argwhere(o["dL/dW1"] == 0)[:3]:
        under = [x[i + k, j + col] for i, j in live]
        name = S(str(ws[k, col]))
        if not len(live):
            says.append(words(Partial(L, name), " is 0 because every entry of ", Partial(L, Z1), " is 0."))
        elif all(v == 0 for v in under):
            shown = [S(str(xs[i + k, j + col])) for i, j in live[:4]]
            says.append(
                words(
                    Partial(L, name),
                    " is 0 because each nonzero entry of ",
                    Partial(L, Z1),
                    " meets a 0 of ",
                    X,
                    " when the window sits at that weight: ",
                    *[p for q in shown for p in (q, ", ")][:-1],
                    ", …" if len(live) > 4 else "",
                    " are all 0. No path from the loss reaches it with a nonzero input.",
                )
            )
        else:
            says.append(words(Partial(L, name), " is 0 because its nonzero terms cancel exactly."))
    return tuple(Para(w) for w in says)


def by_hand(lec: Lecture) -> tuple:
    """One entry of the filter gradient by hand, ∂L/∂w_11 = Σ x_ij z̄_ij, and the sliding-window figure."""
    s, o, full = lec.sizes, lec.example.out, lec.full
    x, gz = lec.example.inputs["X"], o["dL/dZ1"]
    c, k = s.conv, s.k
    xs = np.asarray(full.stages["X"], dtype=object).reshape(s.n, s.n)
    zbar = [S("zbar_" + str(lab).partition("_")[2]) for lab in np.asarray(full.stage_labels["Z1"], dtype=object).ravel()]
    live = [(i, j) for i, j in np.argwhere(gz != 0)]
    value = float(o["dL/dW1"][0, 0])
    if abs(sum(x[i, j] * gz[i, j] for i, j in live) - value) > 1e-9 * max(1.0, abs(value)):
        raise RenderError("build: the hand computation of dL/dw_11 does not give the engine's value")
    sym = [chain(S(str(xs[i, j])), zbar[i * c + j]) for i, j in live]
    num = [sp.Mul(number(x[i, j]), number(gz[i, j]), evaluate=False) for i, j in live]
    w11 = S(str(np.asarray(full.params["W1"], dtype=object).ravel()[0]))
    lead = words(
        "Take ",
        Partial(L, w11),
        ". Of the ",
        count(c * c, "term"),
        " ",
        chain(S("x_ij"), S("zbar_ij")),
        f" only the {len(live)} with a nonzero ",
        S("zbar_ij"),
        " (the winners with an open ReLU) count; the numbers are ",
        X,
        " and ",
        Partial(L, Z1),
        " above:",
    )
    if not live:
        shown = [Display(eq(Partial(L, w11), 0))]
    elif len(live) <= 3:
        shown = [Display(eq(Partial(L, w11), eq(sp.Add(*sym, evaluate=False), eq(sp.Add(*num, evaluate=False), number(value)))))]
    elif len(live) <= 6:  # one line would run off the page: the terms, then their numbers
        shown = [Display(Stack(eq(Partial(L, w11), sp.Add(*sym, evaluate=False)), eq(sp.Add(*num, evaluate=False), number(value))))]
    else:
        first, _ = long_sum(Partial(L, w11), num, 4)
        shown = [Display(first), Para(words("which adds up to ", eq(Partial(L, w11), number(value)), "."))]
    zero = [tuple(int(v) for v in at) for at in np.argwhere(o["dL/dW1"] == 0)]
    # w_11, the entry worked above, and a zero entry (else the last) to see why it is zero
    offsets = [(0, 0), zero[0] if zero and zero[0] != (0, 0) else (k - 1, k - 1)]
    wn = np.asarray(full.params["W1"], dtype=object).reshape(k, k)
    # each window's sum as the engine computed it (dL/dW1), rounded as everywhere (4 significant digits)
    titles = ["∂L/∂Z₁", *[f"X at {sub(str(wn[a]))}: sum {format_value(o['dL/dW1'][a]).replace('-', '−')}" for a in offsets]]
    return (
        Heading("The filter gradient by hand", level=2, anchor="by-hand"),
        Para(lead),
        *shown,
        Para(
            words(
                "This is the entry of ",
                Partial(L, W1),
                " below. The figure shows all of them at once: ",
                Partial(L, Z1),
                " slides over ",
                X,
                " like a filter, unflipped; at each offset the products of the entries under it add up to one entry of ",
                Partial(L, W1),
                ".",
            )
        ),
        Figure(
            "sliding.png",
            words(
                Partial(L, Z1),
                " (left) slides over ",
                X,
                " unflipped. At each coloured position the products of the entries under it add up to one entry of ",
                Partial(L, W1),
                " (in the title): here the entry worked by hand above, and ",
                words("one that is 0 (it meets only zeros of ", X, " where the gradient is not 0).") if zero else "the last one.",
            ),
            drawings.sliding,
            {"x": x, "grad": gz, "offsets": offsets, "titles": titles},
            1.0,
        ),
    )


def _descent(lec: Lecture) -> tuple:
    """One step of gradient descent: a table of every parameter (a representative subset at large sizes)."""
    ex, spec = lec.example, lec.spec
    names = list(ex.names)
    picked = representative(names, spec.param_shapes)
    at = {name: k for k, name in enumerate(names)}
    rows = tuple(
        (words(S(n)), words(number(ex.values[at[n]])), words(number(ex.grads[at[n]])), words(number(ex.after[at[n]]))) for n in picked
    )
    note = "" if len(picked) == len(names) else f" (the first and the last entry of each parameter, {len(picked)} of {len(names)})"
    return (
        Heading("One step of gradient descent", level=2),
        Para(
            words(
                "With learning rate ",
                eq(S("eta"), number(ex.lr)),
                ", each parameter moves to ",
                sp.Add(S("theta"), -chain(S("eta"), Partial(L, S("theta"))), evaluate=False),
                note,
                ":",
            )
        ),
        Table((words("parameter"), words("before"), words("gradient"), words("after")), rows, "lrrr"),
        Para(words("The loss goes from ", number(ex.out["L"]), " to ", number(ex.loss_after), " after this one step.")),
    )


def _checked(lec: Lecture, torch_check, slopes: list) -> tuple:
    """What checked these numbers, as it ran: PyTorch where installed, and the mpmath differences."""
    kinks = [sl for sl in slopes if sl.central is None]
    entries = len(lec.example.grads)
    if torch_check.status == "ran":
        first = words(
            f"Checked against PyTorch: the same example in PyTorch float64 autograd gives all {entries} gradient entries; "
            "the largest difference from the engine’s, relative to the largest gradient, is below ",
            bound(torch_check.relative),
            ".",
        )
    else:
        first = words(f"Not checked against PyTorch: {torch_check.detail}, so that comparison did not run.")
    second = words(
        " Independently, ",
        Link("Appendix C", CROSSCHECK),
        (f" compares all {entries}" if len(slopes) == entries else f" compares {len(slopes)} of the {entries}")
        + " gradient entries with high-precision differences of the loss",
        f"; at {count(len(kinks), 'parameter')} the point sits on a kink, and it says which one-sided slope the engine takes."
        if kinks
        else ".",
    )
    return (Para(words(first, second)),)


# Relative errors are printed as a bound, never to the last bit: a float64 result may differ in its last
# bit between machines or backends, and the handout must be the same everywhere.
FLOOR = -15


def bound(relative: float) -> sp.Symbol:
    """The power of ten a relative error is below (at least 10^-15): the same wherever the last bit falls.

    >>> from render.printer import latex
    >>> latex(bound(0.0)), latex(bound(3e-17)), latex(bound(2.5e-12))
    ('10^{-15}', '10^{-15}', '10^{-11}')
    """
    exponent = FLOOR if relative < 10.0**FLOOR else int(np.floor(np.log10(relative))) + 1
    return S(f"10^{{{exponent}}}")
