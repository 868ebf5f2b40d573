"""What every section of the lecture's handout shares: the derived network, the proofs, the worked
example, and the small helpers that turn them into blocks (shapes, proof marks, shortened sums).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from render.blocks import Link, Strong, Words, words
from render.document import SeedSizes
from render.notation import S, SumLines
from render.printer import display_map
from symbolic.spec import NetworkSpec

# Sums with more terms than this are shown shortened (first terms, ⋯, last terms, with the count).
LONG_SUM = 24
HEAD, TAIL = 6, 2
DOTS = sp.Symbol(r"\cdots")
# The anchor of the appendix table every proof mark links to.
PROOFS = "proofs"
CROSSCHECK = "crosscheck"


@dataclass(frozen=True)
class Lecture:
    """The seed network derived once: what the section builders read.

    ``full`` is ``symbolic.network.build(spec)``; ``proofs`` maps the lecture's letters (a)-(j)
    to their ``RuleResult``; ``example`` is the worked example (``render.lecture.example``);
    ``progress`` is called with a short description before each long step.
    """

    spec: NetworkSpec
    sizes: SeedSizes
    full: object
    proofs: dict
    example: object
    progress: Callable[[str], None]


def shape(*dims: int) -> str:
    """A shape as the lecture writes it.

    >>> shape(4, 4), shape(1)
    ('4×4', '1')
    """
    return "×".join(str(d) for d in dims)


def count(n: int, noun: str) -> str:
    """A count with its noun, singular or plural.

    >>> count(1, "term"), count(676, "term")
    ('1 term', '676 terms')
    """
    return f"{n} {noun}" + ("" if n == 1 else "s")


def mark(lec: Lecture, letter: str) -> Words:
    """The compact proof mark of rule (``letter``): a link to the appendix table, or a loud failure.

    >>> from types import SimpleNamespace as NS
    >>> [type(p).__name__ for p in mark(NS(proofs={"a": NS(proven=True)}), "a").parts]
    ['str', 'Link']
    """
    if letter not in lec.proofs:
        # The engine skips a proof whose cost is past its budget (rule (j) at large sizes): say so, claim nothing.
        return words(" (", Link(f"({letter}) not proven at this size", PROOFS), ")")
    if lec.proofs[letter].proven:
        return words(" ", Link(f"✓ proven ({letter})", PROOFS))
    return words(" ", Strong(f"✗ NOT proven ({letter})"), " ", Link("see the table", PROOFS))


def shown(arr, atoms=None) -> sp.Matrix:
    """An array of engine expressions as a SymPy Matrix ready to print (atoms as the lecture's notation).

    One display map for the whole array: rebuilding it per entry is what made large builds slow.

    >>> shown(np.array([1, 2])).shape
    (1, 2)
    """
    arr = np.asarray(arr, dtype=object)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    arr = arr.reshape(-1, arr.shape[-1]) if arr.ndim > 2 else arr
    dmap = display_map(atoms) if atoms is not None else {}
    out = []
    for v in arr.ravel():
        e = sp.sympify(v)
        if dmap:
            e = e.xreplace({s: dmap[s.name] for s in e.free_symbols if s.name in dmap})
        out.append(e)
    return sp.Matrix(arr.shape[0], arr.shape[1], out)


def long_sum(lhs, terms: list, per_line: int, limit: int = LONG_SUM, show: Callable | None = None) -> tuple[SumLines, bool]:
    """``lhs = t1 + t2 + …`` as a SumLines; past ``limit`` terms only the first and last few, around ⋯.

    ``show`` turns a kept term into its display (only the kept ones: building the display of every
    term of a long sum is what made large builds slow). Returns the display and whether it was
    shortened (then the text says how many terms there are).

    >>> x = sp.symbols("x0:30"); d, cut = long_sum(S("s"), list(x), 4); cut, len(d.args) - 2
    (True, 9)
    """
    show = show or (lambda t: t)
    if len(terms) <= limit:
        return SumLines(lhs, per_line, *map(show, terms)), False
    return SumLines(lhs, per_line, *map(show, terms[:HEAD]), DOTS, *map(show, terms[-TAIL:])), True


def terms(expr) -> list:
    """The terms of a sum in the engine's entry order (x_1,2 before x_1,10), the bias first.

    SymPy keeps its terms sorted as text, which puts z_1,10 before z_1,2.

    >>> terms(sp.Symbol("z_1,10") + sp.Symbol("z_1,2") + sp.Symbol("B_1"))
    [B_1, z_1,2, z_1,10]
    """
    return sorted(sp.Add.make_args(sp.sympify(expr)), key=_natural)


def _natural(term) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(term))]


def first(arr):
    """The first entry of an engine array (stages carry a batch axis, and a channel axis for images)."""
    return np.asarray(arr, dtype=object).ravel()[0]


def label(net, stage: str, index: int = 0) -> sp.Symbol:
    """The name of one entry of a stage as the engine gives it: z_11, a_11, p_11."""
    return S(str(np.asarray(net.stage_labels[stage], dtype=object).ravel()[index]))


# Displayed rows of formulas side by side stay within this many characters (about 0.8 of the text
# width at 11 pt): wider rows are split.
ROW_BUDGET = 72


def width(value) -> int:
    """About how many characters a number or a numeric matrix takes when printed (elided as the printer does).

    >>> width(0.5), width(np.zeros((3, 3))), width(np.ones((26, 26)) / 3)
    (3, 9, 40)
    """
    from render.printer import cell_width, elided

    a = np.atleast_2d(np.asarray(value, dtype=float))
    rows, cols = a.shape
    cell = cell_width(a)
    if a.size == 1:
        return cell
    return (min(cols, 5) if elided(rows, cols, cell) else cols) * (cell + 2)  # with the brackets


def pack(items: list, budget: int = ROW_BUDGET):
    """Formulas side by side in rows no wider than ``budget`` characters: ``items`` are (formula, width).

    >>> x = sp.Symbol("x"); pack([(x, 25), (x, 25), (x, 25)])
    Stack(Row(x, x), x)
    """
    from render.notation import Row, Stack

    rows, current, used = [], [], 0
    for formula, w in items:
        if current and used + w + 4 > budget:
            rows.append(current)
            current, used = [], 0
        current.append(formula)
        used += w + 4
    rows.append(current)
    shaped = [Row(*r) if len(r) > 1 else r[0] for r in rows]
    return Stack(*shaped) if len(shaped) > 1 else shaped[0]
