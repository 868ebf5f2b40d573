"""Printers against golden strings: the lecture's notation, exactly; and matrices of any size elided to fit."""

from __future__ import annotations

import jinja2
import numpy as np
import pytest
import symengine as se
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sympy.printing.latex import LatexPrinter

from render.notation import (
    Bar,
    Between,
    Boxed,
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
from render.printer import (
    ELIDED_HEAD,
    ELIDED_TAIL,
    MAX_COLS,
    MAX_ROWS,
    Relu1,
    Sigma,
    Softplus,
    Wins,
    display_map,
    elide_sum,
    elided,
    latex,
    number,
    numbers,
    text,
    tidy_add,
    to_display,
)
from render.templates import environment
from symbolic.atoms import Atoms
from symbolic.derive import expansion
from symbolic.network import build
from symbolic.rules import layer_rule
from symbolic.spec import load_spec

GOLDEN_LATEX = [
    (S("x_11"), "x_{11}"),
    (S("x_1,12"), "x_{1,12}"),
    (S("w2_3"), "w^{(2)}_{3}"),
    (S("zbar_12"), r"\bar{z}_{12}"),
    (S("B_1"), "B_{1}"),
    (Relu1(S("z_12")), r"\mathbb{1}[z_{12} > 0]"),
    (Wins(S("a_12"), S("p_11")), r"\mathbb{1}[a_{12} \to p_{11}]"),
    (Softplus(S("Z_2")), r"\operatorname{softplus}\left(Z_{2}\right)"),
    (Sigma(S("Z_2")), r"\sigma\left(Z_{2}\right)"),
    (Partial(S("L"), S("W_1")), r"\frac{\partial L}{\partial W_{1}}"),
    (
        eq(Partial(S("L"), S("W_1")), Conv(S("X"), Partial(S("L"), S("Z_1")))),
        r"\frac{\partial L}{\partial W_{1}} = \operatorname{conv}\left(X, \frac{\partial L}{\partial Z_{1}}\right)",
    ),
    (Hadamard(S("G"), Ind(sp.StrictGreaterThan(S("Z_1"), 0))), r"G \odot \mathbb{1}[Z_{1} > 0]"),
    (Reshape(S("G"), S("P_1")), r"\operatorname{reshape}\left(G, \text{shape of } P_{1}\right)"),
    (Unpool(S("G")), r"\operatorname{unpool}\left(G\right)"),
    (chain(S("A_2") - S("Y"), T("F")), r"\left(A_{2} - Y\right) F^{T}"),
    (Flow(S("X"), S("conv"), S("Z_1")), r"X \xrightarrow{\text{conv}} Z_{1}"),
    (SumLines(S("L"), 2, S("a"), -S("b"), S("c")), r"\begin{aligned} L &= a - b \\ &\quad + c \end{aligned}"),
    (Row(S("a"), S("b")), r"a \qquad b"),
    (Stack(S("a"), S("b")), r"\begin{gathered} a \\[6pt] b \end{gathered}"),
    (Boxed(sp.Integer(3)), r"\boxed{3}"),
    (Bar(S("f_1")), r"\bar{f}_{1}"),
    # the index notation of the general rules (section 7)
    (Between(0, S("u") - S("p"), tidy_add(S("H") - 1)), r"0 \le u - p \le H - 1"),
    (IndexSum(S("x"), (S("i"), 0, S("n") - 1)), r"\sum_{i < n} x"),
    (
        IndexSum(tidy_add(S("x") + 1), (S("i"), 0, S("n") - 1), (S("j"), 1, S("m"))),
        r"\sum_{\substack{i < n \\ 1 \le j \le m}} \left(x + 1\right)",
    ),
    (Spaced(S("s"), S("i")), r"s\,i"),
    (sp.IndexedBase("Xpad")[S("c"), S("u"), S("v")], r"X^{\mathrm{pad}}_{c,u,v}"),
    (sp.IndexedBase("gbar")[S("o"), S("i"), S("j")], r"\bar{g}_{o,i,j}"),
    (Lines(sp.Integer(0), -S("a"), S("b")), r"\begin{aligned} & - a \\ & + b = 0 \end{aligned}"),
    (Broken(S("a"), S("b")), r"\begin{aligned} & a \\ & = b \end{aligned}"),
]


@pytest.mark.parametrize("expr,golden", GOLDEN_LATEX)
def test_latex_golden(expr, golden):
    assert latex(expr) == golden


def test_indicator_symbol_is_a_setting():
    assert latex(Relu1(S("z_11")), one=r"\mathbf{1}") == r"\mathbf{1}[z_{11} > 0]"


def test_text_golden():
    assert text(Wins(S("a_12"), S("p_11"))) == "[a_12 -> p_11]"
    assert text(Relu1(S("z_11"))) == "[z_11 > 0]"
    assert text(S("w2_1")) == "W2_1"


def test_numbers_golden():
    assert latex(number(3.0)) == "3"
    assert latex(number(-0.8807970779778824)) == "-0.8808"
    assert latex(number(3.5231883119115297)) == "3.523"
    assert (
        latex(numbers(np.array([[1.0, 0.5], [-2.0, 0.125]]), boxed=[[True, False], [False, False]]))
        == r"\left[\begin{matrix}\boxed{1} & 0.5\\-2 & 0.125\end{matrix}\right]"
    )


def test_an_expanded_term_prints_in_chain_rule_order():
    net = build(load_spec())
    term = expansion(net, "w_11").terms[0]
    shown = to_display(term.expr, net.atoms, factor=True)
    assert latex(shown) == r"\left(A_{2} - Y\right) w^{(2)}_{1} \mathbb{1}[a_{11} \to p_{11}] \mathbb{1}[z_{11} > 0] x_{11}"
    assert text(shown) == "(A_2 - Y)*W2_1*[a_11 -> p_11]*[z_11 > 0]*x_11"


def test_every_atom_of_the_seed_has_a_display():
    net = build(load_spec())
    shown = display_map(net.atoms)
    assert set(shown) == {str(s) for s in net.atoms.by_symbol}
    kinds = {atom.kind: shown[str(sym)] for sym, atom in net.atoms.by_symbol.items()}
    assert kinds["step"] == Relu1(S("z_44")) and kinds["first"] == Wins(S("a_44"), S("p_22"))
    assert kinds["sigmoid"] == S("A_2") and kinds["softplus"] == Softplus(S("Z_2"))
    assert text(to_display(net.prediction[0, 0] - net.Y[0, 0], net.atoms)) == "A_2 - Y"


def test_layer_rules_print_in_the_lecture_notation():
    spec = load_spec()
    pool = layer_rule(spec, 3)
    assert latex(to_display(pool.grad_input[0, 0, 0, 1], pool.atoms)) == r"\bar{p}_{11} \mathbb{1}[a_{12} \to p_{11}]"
    relu = layer_rule(spec, 2)
    assert latex(to_display(relu.grad_input[0, 0, 3, 3], relu.atoms)) == r"\bar{a}_{44} \mathbb{1}[z_{44} > 0]"
    flat = layer_rule(spec, 4)
    assert [latex(to_display(g, flat.atoms)) for g in flat.grad_input.ravel()] == [rf"\bar{{f}}_{{{j}}}" for j in range(1, 5)]


def test_environment_is_strict_and_latex_safe():
    env = environment("tex")
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("<< missing >>").render()
    assert env.from_string(r"\frac{a}{b} {% raw %} << x | tex >>").render(x=S("x_11")) == r"\frac{a}{b} {% raw %} x_{11}"
    assert env.from_string("<< t | esc >>").render(t="50% & a_b") == r"50\% \& a\_b"
    assert environment("md").from_string("<< t | esc >>").render(t="a_b") == "a_b"


def test_index_sums_read_in_the_lecture_order():
    h, p, i, s, k = sp.symbols("h p i s K_h", integer=True)
    # positive terms first, products after single letters, numbers last; unevaluated, so they stay put
    assert latex(tidy_add(-i * s + p + h)) == "h + p - i s"
    assert latex(tidy_add(k - 1 + i * s)) == "K_{h} + i s - 1"
    assert latex(Between(0, tidy_add(h + p - Spaced(s, i)), tidy_add(k - 1))) == r"0 \le h + p - s\,i \le K_{h} - 1"


# -- any size fits the page: elided matrices and sums ------------------------------------------------------


def _cells(code: str) -> list:
    """The rows of a printed matrix, each a list of its cells."""
    body = code.split(r"\begin{matrix}", 1)[1].rsplit(r"\end{matrix}", 1)[0]
    return [row.split(" & ") for row in body.split(r"\\")]


def test_an_elided_matrix_prints_its_corners_and_dots():
    m = numbers(np.arange(26 * 26.0).reshape(26, 26))
    assert latex(m) == (
        r"\left[\begin{matrix}0 & 1 & 2 & \cdots & 25\\26 & 27 & 28 & \cdots & 51\\52 & 53 & 54 & \cdots & 77"
        r"\\\vdots & \vdots & \vdots & \ddots & \vdots\\650 & 651 & 652 & \cdots & 675\end{matrix}\right]"
    )


def test_only_the_long_axis_is_elided():
    wide = latex(numbers(np.arange(9.0) + 0.1234))
    assert wide == r"\left[\begin{matrix}0.1234 & 1.123 & 2.123 & \cdots & 8.123\end{matrix}\right]"
    assert latex(numbers(np.arange(16.0)).T) == r"\left[\begin{matrix}0\\1\\2\\\vdots\\15\end{matrix}\right]"
    tall = _cells(latex(numbers(np.arange(13 * 3.0).reshape(13, 3))))
    assert tall[3] == [r"\vdots"] * 3 and len(tall) == ELIDED_HEAD + 1 + ELIDED_TAIL


def test_a_wide_matrix_of_short_entries_prints_whole():
    # Nine columns of one-digit numbers fit the text: no dots (part3's 9×9 input); nine of 4-digit ones do not.
    assert r"\cdots" not in latex(numbers(np.arange(9.0)))
    assert latex(numbers(np.arange(9.0))).count("&") == 8
    assert r"\cdots" in latex(numbers(np.arange(9.0 * 9).reshape(9, 9) / 7))


def test_a_matrix_that_fits_prints_as_sympy_prints_it():
    m = sp.Matrix(MAX_ROWS, MAX_COLS, lambda i, j: S(f"x_{i + 1},{j + 1}"))
    assert not elided(MAX_ROWS, MAX_COLS)
    assert latex(m) == LatexPrinter({"order": "none"}).doprint(m.applyfunc(lambda s: S(s.name.replace("_", "_{", 1) + "}")))


@settings(max_examples=40)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_an_elided_matrix_has_bounded_width_and_keeps_its_corners(rows, cols, seed):
    values = np.random.default_rng(seed).normal(size=(rows, cols)) * 10.0 ** np.random.default_rng(seed).integers(-8, 8)
    code = latex(numbers(values))
    cells = _cells(code)
    shown_rows = min(rows, ELIDED_HEAD + 1 + ELIDED_TAIL) if rows > MAX_ROWS else rows
    shown_cols = min(cols, ELIDED_HEAD + 1 + ELIDED_TAIL) if cols > MAX_COLS else cols
    assert len(cells) == shown_rows and all(len(r) == shown_cols for r in cells)
    # Never clipped: the four corners are the matrix's own.
    for i, j in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert cells[i][j] == latex(number(values[i, j])), (i, j)
    # Bounded width: no wider than MAX_COLS entries of the widest number whatever the size.
    widest = max(len(latex(number(v))) for v in values.ravel())
    assert max(len(" & ".join(r)) for r in cells) <= MAX_COLS * (widest + 3)


def test_elided_sums_keep_their_first_and_last_terms():
    terms = [S(f"t_{i}") * (-1) ** i for i in range(1, 17)]
    assert latex(elide_sum(terms)) == r"- t_{1} + t_{2} - t_{3} + \cdots + t_{16}"
    assert text(elide_sum(terms, head=2, tail=2)) == "-t_1 + t_2 + ... - t_15 + t_16"
    assert latex(elide_sum(terms[:5])) == latex(sp.Add(*terms[:5], evaluate=False))
    with pytest.raises(ValueError):
        elide_sum(terms, head=0)


def test_display_map_is_cached_per_atoms_and_follows_new_atoms():
    atoms = Atoms()
    atoms.step(se.Symbol("z_11"), label="z_11")
    first = display_map(atoms)
    first["_atom0"] = "changed by the caller"
    assert display_map(atoms) == {"_atom0": Relu1(S("z_11"))}  # a copy: the cache is not the caller's
    atoms.step(se.Symbol("z_12"), label="z_12")
    assert display_map(atoms) == {"_atom0": Relu1(S("z_11")), "_atom1": Relu1(S("z_12"))}
    assert latex(to_display(se.Symbol("_atom1") * se.Symbol("x_11"), atoms)) == r"x_{11} \mathbb{1}[z_{12} > 0]"
