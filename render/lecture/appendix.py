"""Appendices A-C of the lecture's handout (one weight's derivative in full, the proofs, the numeric
checks) and the optional section on training."""

from __future__ import annotations

import numpy as np
import sympy as sp

from render import drawings
from render.blocks import Display, Figure, Heading, PageBreak, Para, Table, Words, words
from render.document import require_seed
from render.lecture.checks import H
from render.lecture.common import CROSSCHECK, PROOFS, Lecture, count, long_sum, shape
from render.lecture.conv import SEVEN
from render.lecture.network import A1, A2, B1, B2, P1, W1, W2, Z1, Z2, F, I, J, L, X, Y
from render.lecture.worked import Windows, bound, listing, tie_equation
from render.notation import Conv, Hadamard, Ind, IndexSum, Partial, Reshape, S, T, Unpool, chain, eq
from render.printer import number, to_display
from symbolic.derive import expansion
from symbolic.rules import prove, rules_for
from symbolic.spec import NetworkSpec, seed_spec

OTHER_SIZES = ((5, 2), (7, 2), (8, 3))


def lecture_proofs(spec: NetworkSpec) -> dict:
    """The lecture's rules (a)-(j) of a seed network, proven, by letter.

    The engine states more (the conv input gradient, its lemmas and conventions); the handout
    shows the lecture's rules only, so only those are proven here.

    >>> sorted(lecture_proofs(seed_spec(5, 2)))
    ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']
    """
    return {rule.letter: prove(rule) for rule in rules_for(spec) if rule.letter}


def statements(c: int) -> dict:
    """The lecture's rules (a)-(j) as the handout states them."""
    z = S("z_ij")
    return {
        "a": eq(Partial(L, Z2), eq(chain(Partial(L, A2), Partial(A2, Z2)), A2 - Y)),
        "b": eq(Partial(L, W2), chain(A2 - Y, T("F"))),
        "c": eq(Partial(L, B2), A2 - Y),
        "d": eq(Partial(L, F), chain(A2 - Y, T("W_2"))),
        "e": eq(Partial(L, P1), Reshape(Partial(L, F), P1)),
        "f": eq(Partial(L, A1), Unpool(Partial(L, P1))),
        "g": eq(Partial(L, Z1), Hadamard(Partial(L, A1), Ind(sp.StrictGreaterThan(Z1, 0)))),
        "h": eq(Partial(L, B1), IndexSum(Partial(L, z), (I, 1, c), (J, 1, c))),
        "i": eq(Partial(L, W1), Conv(X, Partial(L, Z1))),
        "j": eq(Partial(L, W1), chain(*SEVEN)),
    }


def appendix_a(lec: Lecture) -> tuple:
    """Appendix A: the brute-force derivative of one weight, w_11, in full (shortened at large sizes)."""
    full = lec.full
    w11 = str(np.asarray(full.params["W1"], dtype=object).ravel()[0])
    terms = list(expansion(full, w11).terms)
    total = len(terms)
    shown, cut = long_sum(
        Partial(L, S(w11)), terms, 2 if lec.sizes.n < 10 else 1, show=lambda t: to_display(t.expr, full.atoms, factor=True)
    )
    names = [str(w) for w in np.asarray(full.params["W1"], dtype=object).ravel()]
    return (
        Heading("Appendix A. The derivative of one weight in full", anchor="appendix-a"),
        Para(
            words(
                "The derivative of the loss with respect to ",
                S(w11),
                ", as the engine obtains it by differentiating the complete expression of ",
                L,
                f" and expanding every sum: {count(total, 'term')}, pooling window by pooling window"
                + (" (the first and last few shown here)." if cut else ".")
                + f" The other {len(names) - 1} weights of ",
                W1,
                " follow the same pattern, shifted. The command “cnn-derive expand " + names[1] + "” prints the one of ",
                S(names[1]),
                " in full (and so on up to ",
                S(names[-1]),
                "); with the option “--latex” it prints LaTeX.",
            )
        ),
        Display(shown),
    )


def appendix_b(lec: Lecture) -> tuple:
    """Appendix B: every rule of the lecture with its proof status, the method explained once, other sizes."""
    said = statements(lec.sizes.conv)
    rows = tuple(
        (
            words(f"({letter})"),
            words(said[letter]),
            words(str(lec.proofs[letter].entries) if letter in lec.proofs else "—"),
            words(_status(lec.proofs.get(letter))),
        )
        for letter in said
    )
    others = []
    for n, k in OTHER_SIZES:
        rs = lecture_proofs(seed_spec(n, k))
        others.append((words(eq(S("n"), n), ", ", eq(S("k"), k)), words(f"{sum(r.proven for r in rs.values())} of {len(rs)} proven")))
    return (
        # Every proof mark links here: the heading starts a page so that the table is under it, not a page later.
        PageBreak(),
        Heading("Appendix B. The rules and their proofs", anchor=PROOFS),
        Para(words("Every rule of the lecture, the number of entries compared, and its status; the method follows the table.")),
        Table((words("rule"), words("statement"), words("entries"), words("status")), rows, "llrl"),
        Para(
            words(
                "How a rule is proven, once for all of them: the engine builds the complete expression of the loss ",
                L,
                " from the network’s layers and differentiates it by brute force. It then subtracts the rule’s expression, "
                "entry by entry, and expands the difference. A rule is proven when every entry expands to exactly 0. The "
                "kinks (the ReLU mask and the max-pool winners) enter as symbols that stay free in the proof, so the "
                "identity holds for every value they take, at ties and at ",
                eq(S("z"), 0),
                " included. This is an exact symbolic zero, not a numeric spot check. Rule (j), the chain of section 5, is "
                "proven by multiplying the seven local Jacobians out. “Entries” counts the entries compared.",
            )
        ),
        Para(words("The same rules at other sizes of the lecture’s network:")),
        Table((words("sizes"), words("result")), tuple(others)),
    )


def _status(result) -> str:
    if result is None:
        return "not run: too large at this size"
    return "✓ proven" if result.proven else "✗ NOT proven"


def appendix_c(lec: Lecture, torch_check, slopes: list) -> tuple:
    """Appendix C: the checks of the worked example as they ran (PyTorch, and mpmath with the kinks named)."""
    ex = lec.example
    smooth = [sl for sl in slopes if sl.central is not None]
    kinks = [sl for sl in slopes if sl.central is None]
    if torch_check.status == "ran":
        torch_words = words(
            "PyTorch: the worked example in PyTorch float64 autograd (its own conv2d, ReLU, max_pool2d and "
            "binary cross-entropy with logits), every gradient entry compared with the engine’s: the largest difference, "
            "relative to the largest gradient, is below ",
            bound(torch_check.relative),
            ".",
        )
    else:
        torch_words = words(f"PyTorch: not compared, because {torch_check.detail}. The mpmath check below is the independent check.")
    subset = (
        ""
        if len(slopes) == len(ex.names)
        else f" (a representative subset: the first and the last entry of each parameter, {len(slopes)} of {len(ex.names)})"
    )
    method = words(
        "mpmath: differences of the loss alone, computed with 40 significant digits and ",
        eq(S("h"), S(f"10^{{{H[2:]}}}")),
        ", on both sides of each parameter",
        subset,
        ": the right slope ",
        sp.Mul(sp.Add(S(r"L(\theta + h)"), -S(r"L(\theta)"), evaluate=False), sp.Pow(S("h"), -1, evaluate=False), evaluate=False),
        " and the left slope ",
        sp.Mul(sp.Add(S(r"L(\theta)"), -S(r"L(\theta - h)"), evaluate=False), sp.Pow(S("h"), -1, evaluate=False), evaluate=False),
        ". Where they agree the loss is smooth along that parameter, and their mean (the central difference) is compared "
        "with the engine’s derivative.",
    )
    out = [Heading("Appendix C. Numeric checks", anchor=CROSSCHECK), Para(torch_words), Para(method)]
    if smooth:
        worst = max(sl.relative for sl in smooth)
        out.append(
            Para(
                words(
                    f"At the {count(len(smooth), 'smooth parameter')} the largest difference, relative to the largest gradient, is below ",
                    bound(worst),
                    ".",
                )
            )
        )
    if kinks:
        out.append(
            Para(
                words(
                    f"At {count(len(kinks), 'parameter')} the two slopes differ: the point sits on a kink. ",
                    _kink_causes(lec),
                    " A central difference would print "
                    "the average of the two slopes, which is neither, so none is printed. The engine, like PyTorch, takes the "
                    "slope its conventions give (the first maximum of a tied window, ReLU’s slope 0 at 0): the table says which. "
                    "Where several kinks meet along one parameter, that value can be neither one-sided slope; PyTorch’s "
                    "conventions give the same value (the comparison above).",
                )
            )
        )
    rows = []
    for sl in slopes:
        if sl.central is not None:
            rows.append((words(S(sl.name)), words(number(sl.engine, 12)), words(number(sl.central, 12)), words("smooth")))
        else:
            side = {"left": "kink: equals the left slope", "right": "kink: equals the right slope"}.get(
                sl.side, "kink: equals neither slope"
            )
            rows.append(
                (
                    words(S(sl.name)),
                    words(number(sl.engine, 12)),
                    words("left ", number(sl.left, 6), ", right ", number(sl.right, 6)),
                    words(side),
                )
            )
    out.append(Table((words("parameter"), words("engine"), words("mpmath"), words("note")), tuple(rows), "lrrl"))
    return tuple(out)


def _kink_causes(lec: Lecture) -> Words:
    """Which kinks the worked example sits on, from its numbers: the tied windows and the ReLU inputs at exactly 0."""
    win, z = Windows(lec), lec.example.out["Z1"]
    at_zero = [win.z(tuple(int(v) for v in at)) for at in np.argwhere(z == 0)]
    says = []
    for name, first, others in win.tied:
        says.append(
            words(
                "the tie of window ",
                S(name),
                " (",
                tie_equation(win, lec.example.out["A1"], first, others),
                "): a parameter that moves the tied entries apart changes the winner, one way on one side and the other way on the other",
            )
        )
    if at_zero:
        says.append(words("the ReLU input", "s " if len(at_zero) > 1 else " ", *listing(at_zero), " at exactly 0"))
    if not says:
        return words("(neither a tie nor a ReLU input at 0 is visible in the example; several kinks may meet there)")
    out = words("Here it is ", *listing(says), ".")
    if win.tied and not at_zero:
        out = words(out, " No entry of ", Z1, " is exactly 0, so no ReLU kink is involved.")
    if at_zero and not win.tied:
        out = words(out, " No window ties, so no max-pool kink is involved.")
    return out


def training_section(result) -> tuple:
    """Section 8, "The gradients at work": the deterministic facts of one ``symbolic.train.train`` run
    of a seed network (never its seconds), and its loss/accuracy plot."""
    sizes = require_seed(result.spec)
    cfg, last = result.config, result.history[-1]
    heldout = len(result.heldout_idx)
    d0, d1 = tuple(result.classes)
    inp, ker = shape(sizes.n, sizes.n), shape(sizes.k, sizes.k)
    return (
        Heading("8. The gradients at work", anchor="training"),
        Para(
            words(
                "The gradients derived above do more than pass their proofs: they train the network. The same compiled "
                "symbolic expressions, the backward chain whose rules were proven exactly, with nothing written by hand, "
                f"trained the lecture’s architecture at {inp} (a {ker} filter, {sizes.n_params} trainable parameters) on real "
                f"handwritten digits, scikit-learn’s {inp} digits, to tell the digit {d0} (label 0) from the digit {d1} "
                f"(label 1). Plain gradient descent on mini-batches: {cfg['steps']} steps of {cfg['batch_size']} images each "
                "with learning rate ",
                eq(S("eta"), number(float(cfg["lr"]))),
                f", on {len(result.train_idx)} training images, with {heldout} more held out (random seed {cfg['seed']}, so "
                "the run repeats exactly). At the end the mean loss is ",
                number(float(last["train_loss"])),
                " on the training images and ",
                number(float(last["heldout_loss"])),
                f" on the held-out ones, and the network labels {round(result.accuracy * heldout)} of the {heldout} held-out "
                "images correctly: a held-out accuracy of ",
                number(float(result.accuracy)),
                ".",
            )
        ),
        Figure(
            "training.png",
            words(
                f"Training the lecture’s network at {inp} on the digits {d0} and {d1} with the derived gradients: the mean loss "
                f"and the accuracy on the training and the held-out images, every {cfg['log_every']} steps."
            ),
            drawings.training,
            {"history": tuple(result.history), "title": f"{inp} input, {ker} filter, digits {d0} and {d1}"},
        ),
    )
