"""Math to text, only through SymPy's printers, in the lecture's notation.

Canonical expressions (SymEngine, with atoms) are turned into SymPy expressions in which each
atom is a display function (``Relu1``: 1[z > 0]; ``Wins``: a is the first max of the window
that makes p; ``A_2`` for the sigmoid). ``CnnLatexPrinter`` and ``CnnTextPrinter`` then print
names like ``w2_3`` as W2's third weight and ``x_1,12`` with a comma.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter


class Relu1(sp.Function):
    """Display of the ReLU step 1[z > 0]; never evaluated."""

    nargs = 1


class Wins(sp.Function):
    """Display of 1[a is the first maximum of the window that makes p]; never evaluated."""

    nargs = 2


class Softplus(sp.Function):
    """Display of softplus(z) = log(1 + e^z)."""

    nargs = 1


class Sigma(sp.Function):
    """Display of the sigmoid as a function (A2 is printed as a symbol instead)."""

    nargs = 1


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

    def __init__(self, settings=None):
        settings = dict(settings or {})
        settings.setdefault("order", "none")
        super().__init__(settings)

    def _print_Symbol(self, expr, style="plain"):
        base, sub = _split(expr.name)
        if base == "w2" and sub:
            return f"w^{{(2)}}_{{{sub}}}"
        if sub and base in {"x", "w", "z", "a", "p", "f", "b"}:
            return f"{base}_{{{sub}}}"
        return super()._print_Symbol(expr, style=style)

    def _print_Relu1(self, expr, exp=None):
        out = rf"\mathbb{{1}}[{self._print(expr.args[0])} > 0]"
        return out if exp is None else f"{out}^{{{exp}}}"

    def _print_Wins(self, expr, exp=None):
        a, p = (self._print(x) for x in expr.args)
        out = rf"\mathbb{{1}}[{a} \to {p}]"
        return out if exp is None else f"{out}^{{{exp}}}"

    def _print_Softplus(self, expr, exp=None):
        return rf"\operatorname{{softplus}}\left({self._print(expr.args[0])}\right)"

    def _print_Sigma(self, expr, exp=None):
        return rf"\sigma\left({self._print(expr.args[0])}\right)"


class CnnTextPrinter(StrPrinter):
    """Plain text for a terminal.

    >>> CnnTextPrinter().doprint(Wins(sp.Symbol("a_12"), sp.Symbol("p_11")) * sp.Symbol("w2_1"))
    'W2_1*[a_12 -> p_11]'
    """

    def __init__(self, settings=None):
        settings = dict(settings or {})
        settings.setdefault("order", "none")
        super().__init__(settings)

    def _print_Symbol(self, expr):
        base, sub = _split(expr.name)
        if base == "w2" and sub:
            return f"W2_{sub}"
        return expr.name

    def _print_Relu1(self, expr):
        return f"[{self._print(expr.args[0])} > 0]"

    def _print_Wins(self, expr):
        a, p = (self._print(x) for x in expr.args)
        return f"[{a} -> {p}]"

    def _print_Softplus(self, expr):
        return f"softplus({self._print(expr.args[0])})"

    def _print_Sigma(self, expr):
        return f"sigmoid({self._print(expr.args[0])})"


def display_map(atoms) -> dict:
    """For each atom symbol name, the SymPy display expression that stands for it."""
    out = {}
    for sym, atom in atoms.by_symbol.items():
        if atom.kind == "step":
            out[str(sym)] = Relu1(sp.Symbol(atom.label[0]))
        elif atom.kind == "select":
            out[str(sym)] = Wins(sp.Symbol(atom.label[0]), sp.Symbol(atom.label[1]))
        elif atom.kind == "sigmoid":
            out[str(sym)] = sp.Symbol("A_2")
        elif atom.kind == "softplus":
            out[str(sym)] = Softplus(sp.Symbol("Z_2"))
    return out


_RANK = {"A_2": 0, "y": 0}


def _factor_rank(f) -> tuple:
    """Chain-rule order for the factors of one term: loss, dense, pool, ReLU, then inputs."""
    if f.has(sp.Symbol("A_2")):
        return (0, "")
    if isinstance(f, sp.Symbol) and f.name.startswith("w2_"):
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
    dmap = display_map(atoms)
    e = e.xreplace({s: dmap[s.name] for s in e.free_symbols if s.name in dmap})
    if factor:
        e = sp.factor(e)
        if isinstance(e, sp.Mul):
            coeff, factors = e.as_coeff_mul()
            a2 = sp.Symbol("A_2")
            # factor() writes A2 - y as -(y - A2); the lecture's (A2 - y) reads better.
            flipped = []
            for f in factors:
                if isinstance(f, sp.Add) and f.coeff(a2).is_negative:
                    f, coeff = -f, -coeff
                flipped.append(f)
            factors = flipped
            ordered = sorted(factors, key=_factor_rank)
            if coeff != 1:
                ordered.insert(0, coeff)
            e = sp.Mul(*ordered, evaluate=False)
    return e


def latex(expr, **settings) -> str:
    """LaTeX through ``CnnLatexPrinter``. >>> latex(sp.Symbol('x_11'))
    'x_{11}'
    """
    return CnnLatexPrinter(settings).doprint(expr)


def text(expr, **settings) -> str:
    """Plain text through ``CnnTextPrinter``."""
    return CnnTextPrinter(settings).doprint(expr)
