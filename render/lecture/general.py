"""Section 7 and Appendix D of the lecture's handout: the conv rules for every size, as SymPy proved
them in index notation (``symbolic.general``), step by step with a sentence each, and the table of
every general rule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from render.blocks import Display, Heading, Para, Strong, Table, Words, words
from render.lecture.common import count
from render.notation import Between, Broken, Ind, IndexSum, Lines, Partial, Row, S, Spaced, chain, eq
from render.printer import tidy_add
from symbolic import general
from symbolic.errors import RenderError
from symbolic.network import make_layers
from symbolic.spec import NetworkSpec

# The general derivations the handout prints step by step; every general rule is in the table.
GENERAL_SHOWN = ("conv2d.weight", "conv2d.input")
_GENERAL_TITLES = {"conv2d.weight": "The filter gradient", "conv2d.input": "The input gradient"}
# What each shown rule says, in words (text and inline formulas), next to its statement.
_GENERAL_RULE_WORDS = {
    "conv2d.weight": ("the padded input, correlated with the upstream gradient at stride ", general.s),
    "conv2d.input": (
        "the upstream gradient dilated by the stride and zero-padded by ",
        tidy_add(general.K_h - 1),
        " rows and ",
        tidy_add(general.K_w - 1),
        " columns (",
        general.Gpad,
        "), convolved in full with the filter turned by 180 degrees, then cropped by the padding ",
        general.p,
    ),
}


# Section 7 and Appendix D go beyond the lecture: said at their top.
OPTIONAL = words(
    Strong("Optional, beyond the lecture."),
    " For readers who want the rule for every size (channels, stride, padding); nothing later depends on it.",
)
# Why the input gradient turns the filter while the filter gradient does not (after all the “no flip” of sections 2 and 5).
_WHY_FLIP = (
    " Why a turned filter here, when the filter gradient needed no flip? The forward pass correlates: the output at ",
    sp.Tuple(sp.Symbol("i"), sp.Symbol("j")),
    " reads the input at the offset ",
    sp.Tuple(sp.Symbol("a"), sp.Symbol("b")),
    " with the weight at the same offset. Seen from one input entry, the outputs it feeds lie at the reversed offsets, so "
    "written as a correlation over the output gradient the weights appear in reverse order: the filter turned by 180 degrees. "
    "The filter gradient sums over the same outputs but keeps the weight fixed, so the input and the gradient keep their "
    "order and no turn appears.",
)


@dataclass(frozen=True)
class GeneralStep:
    """One step of a general derivation: what happened, in words, and the formula SymPy produced."""

    says: Words
    expr: object


@dataclass(frozen=True)
class GeneralDerivation:
    """A general rule's proof as SymPy ran it (``GeneralResult.steps``), ready to print.

    ``definitions`` are the forward rule and the auxiliary objects; ``steps`` one entry per
    ``GeneralResult.steps``; ``borders`` the range conditions that stay in the reduced rule.
    """

    name: str
    title: str
    status: str
    definitions: tuple
    steps: tuple
    borders: tuple
    lemmas: tuple
    verdict: Words
    border_intro: Words | None = None
    border_display: object = None
    border_note: Words | None = None


@dataclass(frozen=True)
class GeneralModel:
    """The general rules as the handout shows them: the derivations of ``GENERAL_SHOWN``, the table
    of every rule (its status and number of steps, never its seconds) and the section's introduction."""

    derivations: tuple
    header: tuple
    rows: tuple
    intro: Words


def general_model(spec: NetworkSpec) -> GeneralModel:
    """The general section and the appendix table, from one ``prove_general()`` run (deterministic:
    the proofs' seconds are not kept).

    >>> from symbolic.spec import load_spec
    >>> m = general_model(load_spec()); [d.name for d in m.derivations], m.header[2]
    (['conv2d.weight', 'conv2d.input'], 'status')
    """
    results = general.prove_general(cache=True)  # an earlier run's results, same source and libraries
    by_name = {r.rule.name: r for r in results}
    layer = make_layers(spec)[0][0]  # the seed's conv layer: what the border conditions mean here
    (kh, kw), (_, h, w), (_, ho, wo) = layer.spec.kernel, layer.in_shape, layer.out_shape
    conv = {"s": layer.spec.stride[0], "p": layer.spec.padding[0], "Kh": kh, "Kw": kw, "H": h, "W": w, "H_o": ho, "W_o": wo}
    shown = tuple(_general_derivation(by_name[name], conv) for name in GENERAL_SHOWN)
    rows = []
    for r in results:
        status = {"proven": "proven", "checked": "checked"}.get(r.status, "NOT proven")
        rows.append(
            (words(r.rule.name), words(r.rule.layer), words(status), words(str(len(r.steps))), words(", ".join(map(lemma_name, r.lemmas))))
        )
    intro = words(
        "Sections 4 and 5 proved each rule at this network’s sizes, entry by entry. The same rules hold for every size, and "
        "cnn-derive proves them that way too, in index notation: the sizes are symbols (",
        general.C,
        " input channels, ",
        general.O,
        " filters, a filter of ",
        general.K_h,
        " rows and ",
        general.K_w,
        " columns, stride ",
        general.s,
        ", zero padding ",
        general.p,
        ", an input of ",
        general.H,
        " rows and ",
        general.W,
        " columns, an output of ",
        general.H_o,
        " rows and ",
        general.W_o,
        " columns), every index starts at 0, and SymPy does each step below. ",
        general.gbar[general.fo, general.fi, general.fj],
        " is the upstream gradient, the derivative of ",
        S("L"),
        " with respect to ",
        general.Z[general.fo, general.fi, general.fj],
        ", held fixed; ",
        Ind(sp.Symbol("q")),
        " is 1 when the condition ",
        sp.Symbol("q"),
        " holds and 0 otherwise; ",
        general.Wt[general.fo, general.fc, general.fa, general.fb],
        " is the filter, while a plain ",
        general.W,
        " is the width of the input.",
    )
    return GeneralModel(shown, ("rule", "layer", "status", "steps", "lemmas used"), tuple(rows), intro)


def general_section(model: GeneralModel) -> tuple:
    """Section 7: the two conv rules derived for every size, one sentence per SymPy step."""
    out: list = [Heading("7. The same rule for every size", anchor="general"), Para(OPTIONAL), Para(model.intro)]
    for d in model.derivations:
        out.append(Heading(d.title, level=2))
        for st in d.definitions:
            out += [Para(st.says), Display(st.expr)]
        for number, st in enumerate(d.steps, 1):
            out += [Para(words(Strong(f"Step {number}."), " ", st.says)), Display(st.expr)]
        if d.border_display is not None:
            out += [Para(d.border_intro), Display(d.border_display), Para(d.border_note)]
        out.append(Para(d.verdict))
    return tuple(out)


def appendix_d(model: GeneralModel) -> tuple:
    """Appendix D: every general rule, its status, its number of steps and the lemmas it uses."""
    return (
        Heading("Appendix D. The general rules of every layer", anchor="appendix-d"),
        Para(OPTIONAL),
        Para(
            words(
                "Each layer type’s backprop rule, proven as in section 7 with every size a symbol (the command line’s "
                "general verification runs the same proofs). A rule is proven when the difference between the brute-force "
                "derivative and the rule reduces to exactly 0; it would be checked only if a lemma it uses were checked at "
                "concrete sizes rather than proven. “Steps” counts the lines of the derivation SymPy produced; the time "
                "each proof takes is not shown, as it varies from run to run."
            )
        ),
        Table(tuple(words(h) for h in model.header), model.rows, "lllrl"),
    )


def _index_display(expr):
    """A general step as the handout prints it: the same SymPy expression in the lecture's notation.

    Display only: sums as one sigma over stacked index ranges, Piecewise indicators as 1[range],
    derivatives as fractions of partials, terms in a lecture's order (h + p - s i).
    """
    if isinstance(expr, sp.Eq):
        return eq(_index_display(expr.lhs), _index_display(expr.rhs))
    if isinstance(expr, sp.Derivative):
        return Partial(_index_display(expr.expr), _index_display(expr.variables[0]))
    if isinstance(expr, sp.Sum):
        # The ranges in SymPy's order of its limits (finite sums commute, so any order is the same sum).
        limits = [(v, lo, tidy_add(hi)) for v, lo, hi in expr.limits]
        return IndexSum(_index_display(expr.function), *limits)
    if isinstance(expr, sp.Piecewise) and len(expr.args) == 2 and expr.args[1] == (0, True):
        value, cond = expr.args[0]
        return _product([Ind(r) for r in _ranges(cond)] + [_index_display(value)])
    if isinstance(expr, sp.Indexed):
        return expr.base[tuple(tidy_add(_index_display(i)) for i in expr.indices)]
    if isinstance(expr, sp.KroneckerDelta):
        return sp.KroneckerDelta(*(tidy_add(_index_display(a)) for a in expr.args), evaluate=False)
    if isinstance(expr, sp.Mul):
        if all(a.is_Number or (isinstance(a, sp.Symbol) and a.is_integer) for a in expr.args):
            # index arithmetic: the stride (a size) first, thin spaces between the letters
            coeff = sp.Mul(*(a for a in expr.args if a.is_Number))
            letters = sorted((_undummy(a) for a in expr.args if not a.is_Number), key=lambda a: (a not in general.SIZES, a.name))
            return coeff * Spaced(*letters) if len(letters) > 1 else coeff * letters[0]
        return _product([_index_display(a) for a in expr.args])
    if isinstance(expr, sp.Add):
        return tidy_add(sp.Add(*(_index_display(a) for a in expr.args)))
    if isinstance(expr, sp.Symbol):
        return _undummy(expr)
    return expr


def _undummy(sym: sp.Symbol) -> sp.Symbol:
    """The general module's dummy variables (c_, u_, v_: a trailing underscore keeps them apart) as plain letters."""
    return S(sym.name[:-1]) if sym.name.endswith("_") and len(sym.name) > 1 else sym


def _product(factors: list):
    """An unevaluated product: a sign first, then plain factors, sums in parentheses, and sums over indices last."""
    coeff = sp.Mul(*(f for f in factors if f.is_Number))
    rest = [f for f in factors if not f.is_Number]
    rest.sort(key=lambda f: (isinstance(f, IndexSum), isinstance(f, sp.Add)))
    body = chain(*rest) if len(rest) > 1 else rest[0]
    return body if coeff == 1 else (-body if coeff == -1 else chain(coeff, body))


def _as_nonneg(rel) -> sp.Expr:
    """An integer condition as d with d >= 0 (a < b is b - a - 1 >= 0)."""
    if isinstance(rel, (sp.GreaterThan, sp.StrictGreaterThan)):
        d = rel.lhs - rel.rhs
    elif isinstance(rel, (sp.LessThan, sp.StrictLessThan)):
        d = rel.rhs - rel.lhs
    else:
        raise RenderError(f"build: cannot show the condition {rel}")
    return sp.expand(d - (1 if isinstance(rel, (sp.StrictGreaterThan, sp.StrictLessThan)) else 0))


def _raw_ranges(cond) -> list:
    """The conjuncts of an index condition as (d, top) for 0 <= d <= top, paired where they can be
    (d >= 0 and top - d >= 0 with top a size expression); an unpaired d >= 0 has top None."""
    parts = [_as_nonneg(r) for r in (cond.args if isinstance(cond, sp.And) else (cond,))]
    out, used = [], set()
    for a, d in enumerate(parts):
        for b in range(a + 1, len(parts)):
            total = sp.expand(d + parts[b])
            if a in used or b in used or not total.free_symbols <= general.SIZES:
                continue
            # The middle of the range is the side that does not mention the bound's sizes.
            out.append((d if not d.free_symbols & total.free_symbols else parts[b], total))
            used |= {a, b}
    return out + [(d, None) for k, d in enumerate(parts) if k not in used]


def _show_range(middle, top):
    shown = tidy_add(_index_display(middle))
    return sp.GreaterThan(shown, 0) if top is None else Between(0, shown, tidy_add(top))


def _ranges(cond) -> list:
    """An index condition as the lecture writes it: ranges 0 <= d <= size where the conjuncts pair up."""
    return sorted((_show_range(*r) for r in _raw_ranges(cond)), key=sp.default_sort_key)


def _has_base(expr, base) -> bool:
    return any(q.base == base for q in expr.atoms(sp.Indexed))


def _bound_vars(expr) -> set:
    return {v for q in expr.atoms(sp.Sum) for v in q.variables}


def _conditions(expr) -> set:
    out = set()
    for pw in expr.atoms(sp.Piecewise):
        for _, cond in pw.args:
            if cond is not sp.true:
                out |= set(cond.args if isinstance(cond, sp.And) else (cond,))
    return out


def _solve_linear(expr: sp.Expr, x: sp.Symbol) -> list:
    """The solutions of ``expr = 0`` for ``x``: directly when ``expr`` is linear in ``x`` (an index
    equation always is), as ``sp.solve`` would give them but without its simplification passes.

    >>> i, k, s = sp.symbols("i k s"); _solve_linear(i + k - 1 - s, k), _solve_linear(i * s - k, i)
    ([-i + s + 1], [k/s])
    """
    a = sp.expand(expr).coeff(x, 1)
    if a == 0 or a.has(x) or sp.expand(expr - a * x).has(x):
        return sp.solve(expr, x)
    return [sp.expand(-(expr - a * x) / a) if a.is_number else sp.factor_terms(sp.expand(-(expr - a * x)) / a)]


def _collapse(prev, cur, lead: str = "The delta ") -> Words:
    """What one use of lemma delta_sum did between two steps: which delta, which sum, which condition."""
    gone = sorted(_bound_vars(prev) - _bound_vars(cur), key=sp.default_sort_key)
    if len(gone) != 1:
        raise RenderError(f"build: a general step collapses {len(gone)} sums, expected one")
    x = gone[0]
    hi = next(h for q in prev.atoms(sp.Sum) for v, _, h in q.limits if v == x)
    deltas, after = prev.atoms(sp.KroneckerDelta), cur.atoms(sp.KroneckerDelta)
    for d in sorted((d for d in deltas if x in d.free_symbols), key=sp.default_sort_key):
        sol = _solve_linear(d.args[0] - d.args[1], x)
        if len(sol) != 1:
            continue
        rest = {e.subs(x, sol[0]) for e in deltas - {d}} - {sp.Integer(1)}
        if rest == after:
            break
    else:
        raise RenderError(f"build: no Kronecker delta explains the collapse of the sum over {x}")
    sol = sol[0]
    cond = _show_range(sol, hi)
    new = _conditions(cur) - {c.subs(x, sol) for c in _conditions(prev)}
    says = [
        lead,
        _index_display(d),
        " collapses the sum over ",
        x,
        " (the delta-sum lemma): ",
        eq(x, tidy_add(_index_display(sol))),
        ", under the range condition ",
        cond,
        ". ",
    ]
    if new:
        says.append("That condition does not always hold, so it stays, as an indicator.")
    else:
        says.append("That holds for every entry in range, so nothing is left of it.")
    return Words(tuple(says))


def _general_derivation(result, conv: dict | None = None) -> GeneralDerivation:
    """Each of ``result.steps`` with a sentence saying what happened (the steps' structure decides)."""
    rule = result.rule
    steps = list(result.steps)
    stmt = steps.index(rule.statement)
    entry = rule.statement.lhs.variables[0]
    out = []
    for k, st in enumerate(steps):
        shown = _index_display(st)
        if k == 0:
            primed = sorted((v for v in _bound_vars(st.rhs) if v.name.endswith("'")), key=sp.default_sort_key)
            says = [
                "Hold the upstream gradient fixed and write ",
                S("S"),
                ", the sum of it times the forward rule over every output entry. By the chain rule, the gradient of ",
                S("L"),
                " with respect to ",
                entry,
                " is the derivative of ",
                S("S"),
                ".",
            ]
            if primed:
                says += [" The summation indices ", *_listing(primed), " are primed, so that none is captured by the entry’s own indices."]
            if "pad_delta" in rule.lemmas:
                says.append(
                    " The zero padding is written as a sum of Kronecker deltas (the pad-delta lemma), so that SymPy can differentiate through it."
                )
        elif k == 1:
            new = sorted(st.rhs.atoms(sp.KroneckerDelta) - steps[0].rhs.atoms(sp.KroneckerDelta), key=sp.default_sort_key)
            says = [
                "SymPy differentiates term by term: the derivative of the sum is a sum of Kronecker deltas, ",
                _product([_index_display(d) for d in new]),
                ", which is 1 where the summed entry is ",
                entry,
                " and 0 elsewhere.",
            ]
            if _has_base(steps[0].rhs, general.bias) and not _has_base(st.rhs, general.bias):
                says += [" The bias does not depend on ", entry, ", so it drops out."]
        elif k < stmt:
            says = list(_collapse(steps[k - 1].rhs, st.rhs).parts)
            if not st.rhs.atoms(sp.KroneckerDelta):
                says.append(" No delta is left: this is the gradient, reduced.")
        elif k == stmt:
            says = ["The rule to prove: ", *_GENERAL_RULE_WORDS.get(rule.name, ("the rule as stated",)), "."]
            if rule.name == "conv2d.input":
                says += list(_WHY_FLIP)
        elif k == len(steps) - 1:
            says = [
                "Both sides are reduced. They are the same sum in another order of summation (finite sums commute: "
                "the finite-sums lemma), so the difference is exactly 0, for every size:"
            ]
            shown = Lines(sp.Integer(0), *(_index_display(t) for t in sp.Add.make_args(st.lhs)))
        elif k == stmt + 1 and _has_base(st.lhs, general.Gpad) and not _has_base(st.rhs, general.Gpad):
            says = ["The rule’s right-hand side with ", general.Gpad, " written out by its definition, a sum of deltas:"]
            shown = Broken(_index_display(st.lhs), _index_display(st.rhs))
        else:
            says = list(_collapse(steps[k - 1].rhs, st.rhs, "In the rule, the delta ").parts)
            shown = Broken(_index_display(st.lhs), _index_display(st.rhs))
        out.append(GeneralStep(Words(tuple(says)), shown))
    defs = [GeneralStep(words("The forward rule, 0-based:"), _index_display(rule.forward))]
    for d in rule.definitions:
        if isinstance(d.lhs, sp.Indexed) and d.lhs.base == general.Gpad:
            # Gpad's first index is an output channel: the letter o, as where the rule uses it.
            d = d.xreplace({d.lhs.indices[0]: general.bo})
        defs.append(GeneralStep(words("where"), _index_display(d)))
    final = steps[stmt - 1].rhs
    raw = sorted({r for pw in final.atoms(sp.Piecewise) for r in _raw_ranges(pw.args[0][1])}, key=sp.default_sort_key)
    borders = tuple(_show_range(*r) for r in raw)
    lemmas = ", ".join(lemma_name(name) for name in result.lemmas)
    verdict = {
        "proven": words(
            f"Proven for every size: the difference reduced to exactly 0 with every size a symbol (using the lemmas {lemmas})."
        ),
        "checked": words(f"Checked only: a lemma it uses (among the lemmas {lemmas}) was checked at concrete sizes, not proven."),
    }.get(result.status, words(f"NOT proven: {result.detail}"))
    return GeneralDerivation(
        rule.name,
        _GENERAL_TITLES.get(rule.name, rule.name),
        result.status,
        tuple(defs),
        tuple(out),
        borders,
        result.lemmas,
        verdict,
        words(
            "The border conditions: the entry ",
            entry,
            " receives from the output position ",
            sp.Tuple(sp.Symbol("i"), sp.Symbol("j")),
            " only when",
        )
        if borders
        else None,
        Row(*borders) if borders else None,
        _border_note(raw, conv) if raw and conv is not None else None,
    )


def _border_note(raw: list, conv: dict) -> Words:
    """What the border conditions mean at this network's conv layer: how many output positions reach an entry."""
    ho, wo = conv["H_o"], conv["W_o"]
    sizes = {general.s: conv["s"], general.p: conv["p"], general.K_h: conv["Kh"], general.K_w: conv["Kw"]}

    def reached(h: int, w: int) -> int:
        at = {**sizes, general.fh: h, general.fw: w}
        # Each condition as a function of the output position, over the whole grid at once: substituting
        # position by position took seconds at large sizes.
        i, j = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
        ok = np.ones((ho, wo), bool)
        for d, top in raw:
            value = sp.lambdify((general.bi, general.bj), d.subs(at), "numpy")(i, j)
            ok &= (value >= 0) & (True if top is None else value <= int(top.subs(at)))
        return int(ok.sum())

    mid = (conv["H"] // 2, conv["W"] // 2)
    return words(
        "That is, the filter tap that reads the entry must lie inside the filter; near the border fewer output positions "
        "qualify. In this network (",
        eq(general.s, conv["s"]),
        ", ",
        eq(general.p, conv["p"]),
        ", ",
        eq(general.K_h, conv["Kh"]),
        ", ",
        eq(general.K_w, conv["Kw"]),
        ", ",
        eq(general.H_o, ho),
        ", ",
        eq(general.W_o, wo),
        ") the corner entry ",
        general.X[0, 0, 0],
        " is reached from ",
        count(reached(0, 0), "output position"),
        ", the inner entry ",
        general.X[0, mid[0], mid[1]],
        " from ",
        count(reached(*mid), "output position"),
        ".",
    )


def lemma_name(name: str) -> str:
    """A lemma's identifier as its name in words.

    >>> lemma_name("delta_sum")
    'delta-sum'
    """
    return name.replace("_", "-")


def _listing(items) -> list:
    """Inline formulas joined as a list in words: a, b and c."""
    out = []
    for k, item in enumerate(items):
        if k:
            out.append(" and " if k == len(items) - 1 else ", ")
        out.append(item)
    return out
