"""Math to text, only through SymPy's printers, in the lecture's notation.

Canonical expressions (SymEngine, with atoms) are turned into SymPy expressions in which each
atom is a display object from ``notation`` (``Relu1``: 1[z > 0]; ``Wins``: a is the first max
of the window that makes p; ``A_2`` for the sigmoid). ``CnnLatexPrinter`` and ``CnnTextPrinter`` then print
names like ``w2_3`` as W2's third weight and ``x_1,12`` with a comma.

Any size fits the page: a matrix with more than ``MAX_COLS`` columns or ``MAX_ROWS`` rows is
printed elided (``elided``, ``elided_shape``): its first ``ELIDED_HEAD`` and last ``ELIDED_TAIL``
rows and columns around ⋯, ⋮ and ⋱, never clipped. A long sum can be shown the same way with
``elide_sum(terms)``. The documents give the full matrix or sum elsewhere (a figure, an appendix).
"""

from __future__ import annotations

import re
import weakref

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from render.notation import Relu1, Sigma, Softplus, Wins  # noqa: F401 (display objects printed here)
from symbolic.names import latex_entry, split_entry, text_entry

_RELATIONS = {sp.LessThan: r"\le", sp.StrictLessThan: "<", sp.GreaterThan: r"\ge", sp.StrictGreaterThan: ">", sp.Equality: "="}


def _split(name: str):
    base, _, sub = name.partition("_")
    return base, sub


class CnnLatexPrinter(LatexPrinter):
    """LaTeX in the lecture's notation.

    >>> x = sp.Symbol("x_11"); CnnLatexPrinter().doprint(Relu1(sp.Symbol("z_12")) * x)
    'x_{11} \\\\mathbb{1}[z_{12} > 0]'
    >>> CnnLatexPrinter().doprint(sp.Symbol("w2_3"))
    'w^{(2)}_{3}'
    """

    _default_settings = {**LatexPrinter._default_settings, "one": r"\mathbb{1}", "name_map": None}

    def __init__(self, settings=None):
        settings = dict(settings or {})
        settings.setdefault("order", "none")
        super().__init__(settings)

    def _print_Symbol(self, expr, style="plain"):
        # The name map (``symbolic.names.latex_entry`` unless the caller gives one) decides first.
        name_map = self._settings["name_map"] or latex_entry
        shown = name_map(expr.name)
        if shown is not None:
            return shown
        base, sub = _split(expr.name)
        if base.endswith("bar") and len(base) > 3:
            # fbar_1 is dL/df_1, the gradient arriving at f_1 from above; the bar goes over the
            # letter only, so that z2bar_11 reads \bar{z}^{(2)}_{11} like z2_11 does
            inner = self._print_Symbol(sp.Symbol(base[:-3] + (f"_{sub}" if sub else "")))
            letter = re.match(r"\\?[A-Za-z]+", inner)
            return rf"\bar{{{letter.group(0)}}}{inner[letter.end() :]}" if letter else rf"\bar{{{inner}}}"
        if sub and base in {"x", "w", "z", "a", "p", "f"}:
            return f"{base}_{{{sub}}}"
        if not sub and base.endswith("pad") and len(base) > 3:
            # Xpad, Gpad: the zero-padded input and upstream gradient of the general rules
            return rf"{base[:-3]}^{{\mathrm{{pad}}}}"
        return super()._print_Symbol(expr, style=style)

    def _print_Relu1(self, expr, exp=None):
        out = rf"{self._settings['one']}[{self._print(expr.args[0])} > 0]"
        return out if exp is None else f"{out}^{{{exp}}}"

    def _print_Wins(self, expr, exp=None):
        a, p = (self._print(x) for x in expr.args)
        out = rf"{self._settings['one']}[{a} \to {p}]"
        return out if exp is None else f"{out}^{{{exp}}}"

    def _print_Softplus(self, expr, exp=None):
        return rf"\operatorname{{softplus}}\left({self._print(expr.args[0])}\right)"

    def _print_Partial(self, expr, exp=None):
        num, den = (self._print(a) for a in expr.args)
        return rf"\frac{{\partial {num}}}{{\partial {den}}}"

    def _print_Bar(self, expr, exp=None):
        inner = self._print(expr.args[0])
        # The bar goes over the letter, as \bar{z}^{(3)}_{k}: over a whole z^{(3)}_{k} it floats beside the index.
        letter = re.match(r"([A-Za-z])(?=[\^_]|$)", inner)
        return rf"\bar{{{letter.group(1)}}}{inner[1:]}" if letter else rf"\bar{{{inner}}}"

    def _print_Hadamard(self, expr, exp=None):
        # ⊙ binds tighter than + and −: a sum as a factor is parenthesized.
        a, b = (rf"\left({self._print(x)}\right)" if isinstance(x, sp.Add) else self._print(x) for x in expr.args)
        return rf"{a} \odot {b}"

    def _print_Conv(self, expr, exp=None):
        a, b = (self._print(x) for x in expr.args)
        return rf"\operatorname{{conv}}\left({a}, {b}\right)"

    def _print_Reshape(self, expr, exp=None):
        a, b = (self._print(x) for x in expr.args)
        return rf"\operatorname{{reshape}}\left({a}, \text{{shape of }} {b}\right)"

    def _print_Unpool(self, expr, exp=None):
        return rf"\operatorname{{unpool}}\left({self._print(expr.args[0])}\right)"

    def _print_Ind(self, expr, exp=None):
        return rf"{self._settings['one']}[{self._print(expr.args[0])}]"

    def _print_SumLines(self, expr, exp=None):
        lhs, per_line, *terms = expr.args
        per_line = int(per_line)
        lines = []
        for start in range(0, len(terms), per_line):
            parts = []
            for i, t in enumerate(terms[start : start + per_line]):
                code = self._print(t)
                if start + i == 0:
                    parts.append(code)
                elif code.startswith("-"):
                    parts.append("- " + code[1:].lstrip())
                else:
                    parts.append("+ " + code)
            lines.append(" ".join(parts))
        body = r" \\ &\quad ".join(lines)
        return rf"\begin{{aligned}} {self._print(lhs)} &= {body} \end{{aligned}}"

    def _print_Flow(self, expr, exp=None):
        items = expr.args
        out = [self._print(items[0])]
        for op, q in zip(items[1::2], items[2::2]):
            out.append(rf"\xrightarrow{{\text{{{op.name}}}}} {self._print(q)}")
        return " ".join(out)

    def _print_Row(self, expr, exp=None):
        return r" \qquad ".join(self._print(a) for a in expr.args)

    def _print_Stack(self, expr, exp=None):
        rows = r" \\[6pt] ".join(self._print(a) for a in expr.args)
        return rf"\begin{{gathered}} {rows} \end{{gathered}}"

    def _print_Boxed(self, expr, exp=None):
        return rf"\boxed{{{self._print(expr.args[0])}}}"

    def _print_Sigma(self, expr, exp=None):
        return rf"\sigma\left({self._print(expr.args[0])}\right)"

    def _print_Between(self, expr, exp=None):
        lo, x, hi = (self._print(a) for a in expr.args)
        return rf"{lo} \le {x} \le {hi}"

    def _print_IndexSum(self, expr, exp=None):
        body, *limits = expr.args
        ranges = []
        for var, lo, hi in limits:
            if lo == 0:
                ranges.append(rf"{self._print(var)} < {self._print(tidy_add(hi + 1))}")
            else:
                ranges.append(rf"{self._print(lo)} \le {self._print(var)} \le {self._print(hi)}")
        under = ranges[0] if len(ranges) == 1 else r"\substack{" + r" \\ ".join(ranges) + "}"
        inner = self._print(body)
        if isinstance(body, sp.Add):
            inner = rf"\left({inner}\right)"
        return rf"\sum_{{{under}}} {inner}"

    def _print_Indexed(self, expr):
        name = str(expr.base.label)
        if name.endswith("pad") and len(name) > 3:
            # X^pad_{c,u,v}: the superscript and the indices stacked, not one after the other
            indices = ",".join(self._print(i) for i in expr.indices)
            return rf"{name[:-3]}^{{\mathrm{{pad}}}}_{{{indices}}}"
        base = self._print(expr.base.label)
        if "_" not in base:
            # z^{(2)}_{o,i,j}: a base without a subscript takes the indices directly, never {z^{(2)}}_{o,i,j}
            return f"{base}_{{{','.join(self._print(i) for i in expr.indices)}}}"
        return super()._print_Indexed(expr)

    def _print_Spaced(self, expr, exp=None):
        out = r"\,".join(self._print(a) for a in expr.args)
        return out if exp is None else rf"\left({out}\right)^{{{exp}}}"

    def _print_Broken(self, expr, exp=None):
        lhs, rhs = (self._print(a) for a in expr.args)
        return rf"\begin{{aligned}} & {lhs} \\ & = {rhs} \end{{aligned}}"

    def _print_matrix_contents(self, expr):
        # Every matrix goes through here (the delimiters are added around it by the caller).
        cell = None
        if MAX_COLS < expr.cols <= NARROW_ROW and expr.rows <= MAX_ROWS:  # might be narrow enough to print whole
            cell = max(len(self._print(e)) for e in expr)
        if not elided(expr.rows, expr.cols, cell):
            return super()._print_matrix_contents(expr)
        rows = _kept(expr.rows, MAX_ROWS)
        cols = _kept(expr.cols, MAX_COLS if _cols_elided(expr.cols, cell) else expr.cols)
        marks = {(True, True): r"\ddots", (True, False): r"\vdots", (False, True): r"\cdots"}
        lines = [" & ".join(marks[i is None, j is None] if i is None or j is None else self._print(expr[i, j]) for j in cols) for i in rows]
        mat_str = self._settings["mat_str"] or ("smallmatrix" if self._settings["mode"] == "inline" else "matrix")
        head = "{" + "c" * len(cols) + "}" if mat_str == "array" else ""
        return rf"\begin{{{mat_str}}}{head}" + r"\\".join(lines) + rf"\end{{{mat_str}}}"

    def _print_ElidedSum(self, expr, exp=None):
        hidden, tail, *terms = expr.args
        head = len(terms) - int(tail) if hidden else len(terms)
        parts = []
        for k, t in enumerate(terms):
            if k == head:
                parts.append(r"+ \cdots")
            code = self._print(t)
            if k == 0:
                parts.append(code)
            elif code.startswith("-"):
                parts.append("- " + code[1:].lstrip())
            else:
                parts.append("+ " + code)
        out = " ".join(parts)
        return out if exp is None else rf"\left({out}\right)^{{{exp}}}"

    def _print_Lines(self, expr, exp=None):
        rhs, *terms = expr.args
        lines = []
        for k, t in enumerate(terms):
            code = self._print(t)
            if k == 0:
                lines.append(f"& {code}")
            elif code.startswith("-"):
                lines.append(f"& - {code[1:].lstrip()}")
            else:
                lines.append(f"& + {code}")
        lines[-1] += rf" = {self._print(rhs)}"
        return r"\begin{aligned} " + r" \\ ".join(lines) + r" \end{aligned}"


class CnnTextPrinter(StrPrinter):
    """Plain text for a terminal.

    >>> CnnTextPrinter().doprint(Wins(sp.Symbol("a_12"), sp.Symbol("p_11")) * sp.Symbol("w2_1"))
    'W2_1*[a_12 -> p_11]'
    """

    _default_settings = {**StrPrinter._default_settings, "name_map": None}

    def __init__(self, settings=None):
        settings = dict(settings or {})
        settings.setdefault("order", "none")
        super().__init__(settings)

    def _print_Symbol(self, expr):
        name_map = self._settings["name_map"] or text_entry
        shown = name_map(expr.name)
        return shown if shown is not None else expr.name

    def _print_Relu1(self, expr):
        return f"[{self._print(expr.args[0])} > 0]"

    def _print_Wins(self, expr):
        a, p = (self._print(x) for x in expr.args)
        return f"[{a} -> {p}]"

    def _print_Softplus(self, expr):
        return f"softplus({self._print(expr.args[0])})"

    def _print_Sigma(self, expr):
        return f"sigmoid({self._print(expr.args[0])})"

    # The display objects of ``notation`` in words a screen reader or an alt text can carry.
    def _print_Partial(self, expr):
        num, den = (self._print(a) for a in expr.args)
        return f"∂{num}/∂{den}"

    def _print_Bar(self, expr):
        return f"∂L/∂{self._print(expr.args[0])}"

    def _print_Hadamard(self, expr):
        a, b = (f"({self._print(x)})" if isinstance(x, sp.Add) else self._print(x) for x in expr.args)
        return f"{a} ⊙ {b}"

    def _print_Conv(self, expr):
        a, b = (self._print(x) for x in expr.args)
        return f"conv({a}, {b})"

    def _print_Ind(self, expr):
        return f"1[{self._print(expr.args[0])}]"

    def _print_Equality(self, expr):
        return f"{self._print(expr.lhs)} = {self._print(expr.rhs)}"

    def _print_ElidedSum(self, expr):
        hidden, tail, *terms = expr.args
        head = len(terms) - int(tail) if hidden else len(terms)
        parts = [self._print(t) for t in terms]
        parts = parts[:head] + (["..."] if hidden else []) + parts[head:]
        return parts[0] + "".join(f" - {p[1:].lstrip()}" if p.startswith("-") else f" + {p}" for p in parts[1:])


def display_map(atoms) -> dict:
    """For each atom symbol name, the SymPy display expression that stands for it.

    A ReLU step is 1[z > 0]; a first-max selector is "a routes to p"; the sigmoid is the
    prediction it makes (``A_2`` for the seed); softplus is shown applied to its argument.

    >>> from symbolic.network import build; from symbolic.spec import load_spec
    >>> shown = display_map(build(load_spec(), start="Z1").atoms)
    >>> shown["_atom0"], shown["_atom16"], shown["_atom32"]
    (Relu1(z_11), Wins(a_11, p_11), A_2)
    """
    return dict(_displays(atoms)[0])


# Per Atoms object: (number of atoms when made, display map, predictions). A build prints
# thousands of expressions of one network; rebuilding ~1 000 display objects for each was most
# of the time of a large build. Atoms only ever grow (an atom and its labels never change), so
# the count tells whether an entry is still whole.
_DISPLAYS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _displays(atoms) -> tuple:
    hit = _DISPLAYS.get(atoms)
    if hit is not None and hit[0] == len(atoms.by_symbol):
        return hit[1], hit[2]
    out = {}
    for sym, atom in atoms.by_symbol.items():
        if atom.kind == "step":
            out[str(sym)] = Relu1(sp.Symbol(atom.label[0]))
        elif atom.is_selector:
            out[str(sym)] = Wins(sp.Symbol(atom.label[0]), sp.Symbol(atom.label[1]))
        elif atom.kind == "softplus":
            out[str(sym)] = Softplus(sp.Symbol(atom.label[0]))  # labelled with its argument, Z_2 for the seed
        elif atom.kind == "lse":
            out[str(sym)] = sp.Function("lse")(sp.Symbol(atom.label[0]))
        else:
            # sigmoid, tanh, softmax and a window's maximum are shown as the entry they make: A_2, a2_11, p_11
            out[str(sym)] = sp.Symbol(atom.label[0])
    predictions = frozenset(sp.Symbol(a.label[0]) for a in atoms.by_symbol.values() if a.kind in ("sigmoid", "softmax"))
    _DISPLAYS[atoms] = (len(atoms.by_symbol), out, predictions)
    return out, predictions


def _factor_rank(f, predictions: set = frozenset()) -> tuple:
    """Chain-rule order for the factors of one term: loss, dense, pool, ReLU, then inputs."""
    if any(f.has(p) for p in predictions):
        return (0, "")
    if isinstance(f, sp.Symbol) and split_entry(f.name)[0] == "w" and split_entry(f.name)[1] >= 2:
        return (1, f.name)
    if isinstance(f, Wins):
        return (2, "")
    if isinstance(f, Relu1):
        return (3, "")
    return (4, sp.srepr(f))


def to_display(expr, atoms, factor: bool = False):
    """A SymPy expression ready for our printers: atoms replaced by their display functions.

    With ``factor``, the expression is factored and its factors put in chain-rule order.
    """
    e = sp.sympify(expr)
    dmap, predictions = _displays(atoms)
    e = e.xreplace({s: dmap[s.name] for s in e.free_symbols if s.name in dmap})
    if factor:
        # factor_terms pulls out what the monomials share, e.g. (A2 - Y); full factor() is slow.
        e = sp.factor_terms(e)
        if isinstance(e, sp.Mul):
            coeff, factors = e.as_coeff_mul()
            # factor() writes A2 - y as -(y - A2); the lecture's (A2 - y) reads better.
            flipped = []
            for f in factors:
                if isinstance(f, sp.Add) and any(f.coeff(p).is_negative for p in predictions):
                    f, coeff = -f, -coeff
                flipped.append(f)
            factors = flipped
            ordered = sorted(factors, key=lambda f: _factor_rank(f, predictions))
            if coeff != 1:
                ordered.insert(0, coeff)
            e = sp.Mul(*ordered, evaluate=False)
    return e


def _term_rank(term) -> tuple:
    """Where a term goes in a tidy sum: positive before negative, symbols before products, sums after
    the rest, numbers last."""
    from render.notation import IndexSum

    coeff, rest = term.as_coeff_Mul()
    if rest == 1:
        return (2, 0, 0, "")
    return (int(bool(coeff.is_negative)), int(rest.has(sp.Sum, IndexSum)), len(sp.Mul.make_args(rest)), sp.default_sort_key(rest))


def tidy_add(expr):
    """An Add with its terms in the order a lecture writes them (h + p - s i, K - 1), unevaluated.

    >>> h, p, i, s = sp.symbols("h p i s"); latex(tidy_add(-i * s + p + h - 1))
    'h + p - i s - 1'
    """
    expr = sp.expand(expr)
    if not isinstance(expr, sp.Add):
        return expr
    return sp.Add(*sorted(expr.args, key=_term_rank), evaluate=False)


def number(value, digits: int = 4) -> sp.Expr:
    r"""A float as a SymPy number for printing: integers stay integers, others keep ``digits`` significant digits.

    >>> latex(number(3.0)), latex(number(0.8807970779778824)), latex(number(-2.5e-07)), latex(number(-0.99996))
    ('3', '0.8808', '-2.5 \\cdot 10^{-7}', '-1')
    """
    v = float(value)
    if v == int(v) and abs(v) < 1e15:
        return sp.Integer(int(v))
    rounded = float(f"{v:.{digits}g}")
    if rounded == int(rounded) and abs(rounded) < 10**digits:
        # -0.99996 rounds to -1: printed as -1 beside -1.1, the way trailing zeros always go, never as -1.0
        return sp.Integer(int(rounded))
    return sp.Float(rounded, digits)


def numbers(arr, digits: int = 4, boxed=None) -> sp.Matrix:
    """A numeric array as a SymPy Matrix of ``number``s; entries where ``boxed`` is true are boxed."""
    import numpy as np

    from render.notation import Boxed

    a = np.asarray(arr, dtype=float)
    if a.ndim == 1:
        a = a.reshape(1, -1)
    box = np.zeros(a.shape, bool) if boxed is None else np.asarray(boxed, bool).reshape(a.shape)
    return sp.Matrix(a.shape[0], a.shape[1], [Boxed(number(v, digits)) if b else number(v, digits) for v, b in zip(a.ravel(), box.ravel())])


def latex(expr, **settings) -> str:
    """LaTeX through ``CnnLatexPrinter``. >>> latex(sp.Symbol('x_11'))
    'x_{11}'
    """
    return CnnLatexPrinter(settings).doprint(expr)


def text(expr, **settings) -> str:
    """Plain text through ``CnnTextPrinter``."""
    return CnnTextPrinter(settings).doprint(expr)


# A displayed matrix larger than this is printed elided (its corners and ⋯): wider would run off
# the page. The documents show such a matrix in full elsewhere (a figure or an appendix table).
MAX_COLS = 8
MAX_ROWS = 12


# A matrix with more than MAX_COLS columns is still printed whole when its widest entry is short
# enough for the whole row to take at most this many characters of LaTeX (part3's 9×9 input of
# small integers; never a matrix of 4-digit numbers, which would not fit the text width).
NARROW_ROW = 40


def cell_width(values: object) -> int:
    """The widest entry of a numeric array as the printer writes it, in LaTeX characters (``elided``'s ``cell``).

    ``0.5`` is the widest here: three characters against the two of ``-2``.

    >>> cell_width([[0.0, -2.0], [1.0, 0.5]])
    3
    """
    import numpy as np  # only numeric callers need it; the printer itself prints SymPy objects

    return max(len(latex(number(v))) for v in np.unique(np.asarray(values, dtype=float)))


def _cols_elided(cols: int, cell: int | None) -> bool:
    return cols > MAX_COLS and (cell is None or cols * cell > NARROW_ROW)


def elided(rows: int, cols: int, cell: int | None = None) -> bool:
    """Whether a displayed matrix of this shape is printed elided; ``cell``: its widest entry in LaTeX characters, if known.

    >>> elided(4, 4), elided(26, 26), elided(1, 9), elided(9, 9, cell=2), elided(9, 9, cell=6)
    (False, True, True, False, True)
    """
    return _cols_elided(cols, cell) or rows > MAX_ROWS


# What an elided matrix keeps of an axis that is too long: its first ELIDED_HEAD and last
# ELIDED_TAIL entries around one row or column of dots. 3 + dots + 1 = 5 columns of at most
# ~8 characters (4 significant digits, sign, exponent) stays inside the text width even when two
# such matrices share a line.
ELIDED_HEAD = 3
ELIDED_TAIL = 1


def elided_shape(rows: int, cols: int, cell: int | None = None) -> tuple:
    """The rows and columns a matrix of this shape is printed with, dots included.

    >>> elided_shape(4, 4), elided_shape(26, 26), elided_shape(1, 9), elided_shape(16, 1), elided_shape(9, 9, cell=2)
    ((4, 4), (5, 5), (1, 5), (5, 1), (9, 9))
    """
    return len(_kept(rows, MAX_ROWS)), len(_kept(cols, MAX_COLS if _cols_elided(cols, cell) else cols))


def _kept(n: int, limit: int) -> list:
    """The indices an axis of length ``n`` shows, ``None`` where the dots go.

    >>> _kept(4, 8), _kept(26, 8)
    ([0, 1, 2, 3], [0, 1, 2, None, 25])
    """
    if n <= limit:
        return list(range(n))
    return list(range(ELIDED_HEAD)) + [None] + list(range(n - ELIDED_TAIL, n))


class ElidedSum(sp.Function):
    """Display of a long sum by its first and last terms: ``t_1 + t_2 + t_3 + ⋯ + t_n``.

    ``args``: the number of hidden terms, how many shown terms come after the dots, then the
    shown terms in order. Never evaluated; make it with ``elide_sum``.
    """

    # Binds like a sum: a product or power around it puts it in parentheses.
    precedence = PRECEDENCE["Add"]


def elide_sum(terms, head: int = 3, tail: int = 1) -> sp.Expr:
    r"""A sum of ``terms`` for display, in their order: all of them if there are at most
    ``head + tail + 1``, else the first ``head``, ⋯ and the last ``tail``.

    Signs print as in a written sum (``- b``, not ``+ -b``). The builders say elsewhere how many
    terms there are and where the full sum is (``expand`` or an appendix).

    >>> a, b, c, d, e, f = sp.symbols("a:f")
    >>> latex(elide_sum([a, -b, c, d, e, -f])), text(elide_sum([a, -b, c, d, e, -f]))
    ('a - b + c + \\cdots - f', 'a - b + c + ... - f')
    >>> latex(elide_sum([a, -b, c])), latex(elide_sum([a, b, c, d, e, -f], head=1, tail=2))
    ('a - b + c', 'a + \\cdots + e - f')
    >>> latex(sp.Mul(a, elide_sum([b, c, d, e, f, a]), evaluate=False)), text(a * elide_sum([b, c, d, e, f, a]))
    ('a \\left(b + c + d + \\cdots + a\\right)', 'a*(b + c + d + ... + a)')
    """
    terms = [sp.sympify(t) for t in terms]
    if head < 1 or tail < 1:
        raise ValueError("elide_sum: head and tail must be at least 1")
    if not terms:
        return sp.Integer(0)
    if len(terms) <= head + tail + 1:
        return ElidedSum(sp.Integer(0), sp.Integer(0), *terms)
    return ElidedSum(sp.Integer(len(terms) - head - tail), sp.Integer(tail), *terms[:head], *terms[-tail:])
