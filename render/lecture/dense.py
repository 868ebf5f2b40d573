"""Section 4 of the lecture's handout: the fully connected part, rules (a), (b) and (c)."""

from __future__ import annotations

import sympy as sp

from render.blocks import Display, Heading, Para, words
from render.lecture.common import Lecture, first, mark, shown
from render.lecture.network import A2, B2, W2, Z2, F, L, bce
from render.notation import Partial, T, chain, eq
from symbolic.network import build


def error_term() -> tuple:
    """dL/dA2, dA2/dZ2 and their product A2 − Y, computed by SymPy from the loss and the sigmoid.

    >>> error_term()[2]
    A_2 - Y
    """
    a = A2
    dl_da = sp.diff(bce(), a)
    da_dz = a * (1 - a)
    return dl_da, da_dz, sp.cancel(dl_da * da_dz)


def dense_part(lec: Lecture) -> tuple:
    """Section 4: from the loss to W2 and B2, with the proof mark of each rule."""
    dl_da, da_dz, product = error_term()
    from_f = build(lec.spec, start="F")
    z2 = first(from_f.stages["Z2"])
    dz2_dw2 = shown([z2.diff(w) for w in from_f.params["W2"].ravel()])
    return (
        Heading("4. The fully connected part", anchor="dense"),
        Para(words("Start at the loss. Its derivative with respect to the prediction:")),
        Display(eq(Partial(L, A2), dl_da)),
        Para(words("The sigmoid’s derivative is the sigmoid times one minus itself:")),
        Display(eq(Partial(A2, Z2), da_dz)),
        Para(words("Their product simplifies; the awkward fractions cancel.", mark(lec, "a"))),
        Display(eq(chain(Partial(L, A2), Partial(A2, Z2)), eq(chain(dl_da, da_dz), product))),
        Para(words(Z2, " depends on each weight of ", W2, " through one entry of ", F, ":")),
        Display(eq(Partial(Z2, W2), eq(dz2_dw2, T("F")))),
        Para(words("So, by the chain rule,", mark(lec, "b"))),
        Display(eq(Partial(L, W2), eq(chain(Partial(L, A2), Partial(A2, Z2), Partial(Z2, W2)), chain(product, T("F"))))),
        Para(
            words(
                "Its shape is that of ",
                W2,
                ": the number ",
                product,
                " times the row ",
                T("F"),
                ". And ",
                Z2,
                " depends on ",
                B2,
                " with slope 1, so",
                mark(lec, "c"),
            )
        ),
        Display(eq(Partial(L, B2), product)),
    )


__all__ = ["dense_part", "error_term"]
