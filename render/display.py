"""How the objects of the Python API show themselves in Jupyter (``_repr_latex_``) and at a prompt.

A rule, a proof's result, a derivative's expansion and a network each have a ``_repr_latex_``
(math, ``$$…$$``) and a ``_repr_pretty_`` (IPython's plain text) that call the functions here.
The symbolic objects import this module only inside those methods: data flows from ``symbolic``
to ``render``, and math becomes text only through ``printer``'s SymPy printers.

Nothing shown here carries a timing or a memory address, so an executed notebook is the same
text on every run (``examples/seed.ipynb`` is committed with its outputs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import sympy as sp

from render.notation import Flow, Partial, Row, S, Stack, SumLines, eq
from render.printer import latex, number, numbers, text, to_display
from symbolic.names import tex_name

# A derivative of more terms than this shows its first terms and says how many are left: the
# seed's 16 fit, the 676 of n = 28 would fill pages of a notebook (they stay in ``terms``).
MAX_TERMS = 32
OPS = {
    "conv2d": "conv",
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU",
    "maxpool": "max-pool",
    "avgpool": "avg-pool",
}
# Each loss: the link that makes the prediction, then the loss itself.
LOSS_OPS = {"bce": ("sigmoid", "BCE"), "softmax_ce": ("softmax", "cross-entropy"), "mse": ("identity", "MSE")}


class Shown:
    """Math ready to show: LaTeX for Jupyter, plain text for a terminal (and ``repr``).

    >>> s = Shown("x^{2}", "x**2"); s._repr_latex_(), s
    ('$$x^{2}$$', x**2)
    """

    def __init__(self, latex_: str, text_: str) -> None:
        self.latex, self.text = latex_, text_

    def _repr_latex_(self) -> str:
        return f"$${self.latex}$$"

    def _repr_pretty_(self, p, cycle: bool) -> None:
        p.text(self.text)

    def __repr__(self) -> str:
        return self.text


def _mathtext(words: str) -> str:
    # Words inside math: MathJax and LaTeX both take \text{...}; braces would group, not print.
    return r"\text{" + words.replace("{", "(").replace("}", ")") + "}"


def _shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) if shape else "1"


# -- rules --------------------------------------------------------------------------------------


def _status(rule, result) -> tuple[str, str]:
    """(LaTeX, text) of a rule's proof status: how it is proven, and whether it was."""
    methods = " + ".join(rule.methods)
    if result is None:
        return _mathtext(f"proof: {methods}, not run yet"), f"[{methods}; not run yet: prove(rule)]"
    if result.proven:
        return r"\checkmark\ " + _mathtext(f"proven ({methods})"), f"proven [{methods}]"
    n = len(result.failures)
    why = f"NOT proven ({methods}): {n} entr{'y' if n == 1 else 'ies'} where brute force minus rule is not 0"
    return r"\times\ " + _mathtext(why), why


def rule_latex(rule, result=None) -> str:
    r"""A rule as one displayed line: its label, its statement, its proof status (``result`` if proven).

    >>> from symbolic.rules import rules_for; from symbolic.spec import load_spec
    >>> rule_latex(rules_for(load_spec())[0])
    '$$\\text{(a)}\\quad \\frac{\\partial L}{\\partial Z_{2}} = A_{2} - Y \\qquad \\text{proof: local + end-to-end, not run yet}$$'
    """
    # Lemmas and conventions are stated in words; layer rules in LaTeX.
    statement = _mathtext(rule.text) if rule.kind == "lemma" else rule.latex
    status, _ = _status(rule, result)
    return rf"$${_mathtext(rule.label)}\quad {statement} \qquad {status}$$"


def rule_text(rule, result=None) -> str:
    """The plain-text line of a rule: label, status, statement (``verify``'s line without the time).

    >>> from symbolic.rules import prove, rules_for; from symbolic.spec import load_spec
    >>> rule_text(rules_for(load_spec())[0], prove(rules_for(load_spec())[0]))
    '(a)  proven [local + end-to-end]  bce loss gradient: dL/dZ2 = A2 - Y'
    """
    _, status = _status(rule, result)
    return f"{rule.label}  {status}  {rule.text}"


# -- expansions ---------------------------------------------------------------------------------


def _parts(exp, limit: int | None) -> list:
    if exp.atoms is None:
        raise ValueError("this Expansion has no atoms to show its selectors with: make it with symbolic.derive.expansion")
    return [to_display(t.expr, exp.atoms, factor=True) for t in exp.terms[:limit]]


def _more(exp, limit: int | None) -> int:
    return 0 if limit is None else max(0, len(exp.terms) - limit)


def expansion_latex(exp, limit: int | None = MAX_TERMS) -> str:
    r"""dL/d(entry) written out term by term, two terms a line (what ``expand --latex`` prints).

    Past ``limit`` terms (None: no limit) it says how many more there are.

    >>> from symbolic.derive import expansion; from symbolic.network import build; from symbolic.spec import load_spec
    >>> shown = expansion_latex(expansion(build(load_spec()), "w_11"))
    >>> shown[:55], shown.count(r"\mathbb{1}[z_{")
    ('$$\\begin{aligned} \\frac{\\partial L}{\\partial w_{11}} &=', 16)
    """
    body = latex(SumLines(Partial(S("L"), S(exp.param)), 2, *_parts(exp, limit)))
    more = _more(exp, limit)
    if more:
        body += rf" \\ {_mathtext(f'… and {more} more terms (all {len(exp.terms)} are in .terms)')}"
    return f"$${body}$$"


def expansion_lines(exp, limit: int | None = MAX_TERMS) -> list[str]:
    """The lines ``cnn-derive expand`` prints: a header, a legend, then the terms window by window.

    Past ``limit`` terms (None: no limit) a last line says how many more there are.

    >>> from symbolic.derive import expansion; from symbolic.network import build; from symbolic.spec import load_spec
    >>> lines = expansion_lines(expansion(build(load_spec()), "w_11"))
    >>> lines[0], lines[2], lines[3]
    ('dL/dw_11 = sum of 16 terms over 4 pooling windows', 'window p_11:', '  + (A_2 - Y)*W2_1*[a_11 -> p_11]*[z_11 > 0]*x_11')
    """
    windows = exp.windows()
    n = len(exp.terms)
    where = f" over {len(windows)} pooling window{'s' if len(windows) != 1 else ''}" if windows and windows[0][0] else ""
    lines = [
        f"dL/d{text(S(exp.param))} = sum of {n} term{'s' if n != 1 else ''}{where}",
        "  ([z > 0] is the ReLU mask; [a -> p] is 1 when a is the maximum of the window that gives p)",
    ]
    shown = dict(zip(exp.terms[:limit], _parts(exp, limit)))
    for window, ts in windows:
        ts = [t for t in ts if t in shown]
        if window and ts:
            lines.append(f"window {window}:")
        lines.extend(f"  + {text(shown[t])}" for t in ts)
    if _more(exp, limit):
        lines.append(f"  ... and {_more(exp, limit)} more terms (all {n} are in .terms)")
    return lines


# -- networks -----------------------------------------------------------------------------------


def _chain(net) -> list[tuple[str, tuple[int, ...], str]]:
    """(stage, per-sample shape, the operation that made it) from the start stage to L."""
    stages = [(net.start, net.inputs.shape[1:], "")]
    for layer in net.layers:
        out = layer.names["out"]
        stages.append((out, net.stages[out].shape[1:], OPS.get(layer.kind, layer.kind)))
    link, loss = LOSS_OPS.get(net.loss.kind, ("link", net.loss.kind))
    stages.append((net.loss.names["out"], np.shape(net.prediction)[1:], link))
    stages.append(("L", (), loss))
    return stages


def network_latex(net) -> str:
    r"""The forward chain, every stage with its shape under it, then the parameters and their shapes.

    >>> from symbolic.network import build; from symbolic.spec import load_spec
    >>> shown = network_latex(build(load_spec()))
    >>> shown[:78]
    '$$\\begin{gathered} \\underset{1 \\times 6 \\times 6}{X} \\xrightarrow{\\text{conv}}'
    """
    chain = _chain(net)
    params = net.params
    shapes = {name: shape for name, shape, _ in chain} | {p: v.shape for p, v in params.items()}

    def name_map(name: str) -> str:
        size = r" \times ".join(map(str, shapes[name]))
        if name in params:
            return rf"{tex_name(name)} \in \mathbb{{R}}^{{{size}}}"
        return rf"\underset{{{size}}}{{{tex_name(name)}}}" if size else tex_name(name)

    flow = Flow(*[x for k, (name, _, op) in enumerate(chain) for x in ((S(op), S(name)) if k else (S(name),))])
    return f"$${latex(Stack(flow, Row(*map(S, params))), name_map=name_map)}$$"


def network_text(net) -> str:
    """The forward chain as a table: each stage, its per-sample shape, the operation that made it.

    >>> from symbolic.network import build; from symbolic.spec import load_spec
    >>> print(network_text(build(load_spec())))
    network seed: 15 trainable parameters (W1 1×1×3×3, B1 1, W2 1×4, B2 1)
      X   1×6×6
      Z1  1×4×4  conv
      A1  1×4×4  ReLU
      P1  1×2×2  max-pool
      F   4      flatten
      Z2  1      dense
      A2  1      sigmoid
      L   1      BCE
    """
    chain = _chain(net)
    params = ", ".join(f"{p} {_shape(v.shape)}" for p, v in net.params.items())
    count = sum(v.size for v in net.params.values())
    width = max(len(name) for name, _, _ in chain)
    shape_width = max(len(_shape(s)) for _, s, _ in chain)
    rows = [f"  {name:{width}}  {_shape(shape):{shape_width}}  {op}".rstrip() for name, shape, op in chain]
    return "\n".join([f"network {net.spec.label}: {count} trainable parameters ({params})", *rows])


# -- numbers ------------------------------------------------------------------------------------


def _name(key: str, idx: tuple[int, ...] = ()) -> sp.Expr:
    """An output's key as what it stands for: ``L``, ``A2``, ``dL/dW1`` as ∂L/∂W1; ``idx`` picks a slice."""
    grad = key.startswith("dL/d")
    base = S(key[4:] if grad else key)
    # Entries are numbered from 1, as every name of the lecture is.
    q = sp.Indexed(sp.IndexedBase(base), *(i + 1 for i in idx)) if idx else base
    return Partial(S("L"), q) if grad else q


def show_values(out: Mapping[str, np.ndarray], *keys: str, digits: int = 4, per_row: int = 2) -> Shown:
    r"""Outputs of ``compile_network`` shown as equations with ``digits`` significant digits, ``per_row`` a row.

    Arrays lose their axes of length 1 (dL/dW1 of the seed is its 3×3 filter); an array that
    keeps more than two axes is shown one 2-D slice at a time.

    >>> shown = show_values({"L": np.array(0.25), "dL/dW2": np.array([[0.5, -1.0]])}, "L", "dL/dW2")
    >>> shown.latex
    'L = 0.25 \\qquad \\frac{\\partial L}{\\partial W_{2}} = \\left[\\begin{matrix}0.5 & -1\\end{matrix}\\right]'
    >>> shown
    L = 0.25
    dL/dW2 = [0.5, -1]
    """
    equations, lines = [], []
    for key in keys:
        value = np.squeeze(np.asarray(out[key], dtype=float))
        if value.ndim <= 2:
            parts = [(key, (), value)]
        else:
            parts = [(key, idx, value[idx]) for idx in np.ndindex(*value.shape[:-2])]
        for name, idx, v in parts:
            where = f"[{', '.join(str(i + 1) for i in idx)}]" if idx else ""
            lhs = _name(name, idx)
            rhs = number(v, digits) if v.ndim == 0 else numbers(v, digits)
            equations.append(eq(lhs, rhs))
            lines.append(f"{name}{where} = {_text_value(v, digits)}")
    rows = [Row(*equations[i : i + per_row]) for i in range(0, len(equations), per_row)]
    shown = rows[0] if len(rows) == 1 else Stack(*rows)
    return Shown(latex(shown, name_map=_tex_or_none), "\n".join(lines))


def _tex_or_none(name: str) -> str | None:
    # Stage and parameter names (A2, W1) read as the lecture writes them; L stays L.
    return tex_name(name) if name[:1].isupper() else None


def _text_value(v: np.ndarray, digits: int) -> str:
    fmt: Callable = lambda x: text(number(x, digits), full_prec=False)
    if v.ndim == 0:
        return fmt(v)
    if v.ndim == 1:
        return "[" + ", ".join(map(fmt, v)) + "]"
    return "[" + ", ".join("[" + ", ".join(map(fmt, row)) + "]" for row in v) + "]"


__all__ = [
    "MAX_TERMS",
    "Shown",
    "expansion_latex",
    "expansion_lines",
    "network_latex",
    "network_text",
    "rule_latex",
    "rule_text",
    "show_values",
]
