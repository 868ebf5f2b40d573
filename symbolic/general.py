"""Every layer's backprop rule, proven once for every size, in index notation (SymPy).

The rest of the project proves each rule at concrete sizes. Here the sizes (channels C, filters
O, kernel K_h x K_w, stride s, padding p, input H x W, pool window k_h x k_w, dense units, ...)
are positive-integer SymPy symbols, tensors are ``IndexedBase`` objects, and each rule is proven
the way it is taught: write S = sum(gbar * forward) with gbar the upstream gradient, let SymPy
differentiate S with respect to one entry at a symbolic index (a sum of Kronecker deltas), collapse
the deltas, and compare with the rule's index form.

Conventions (the engine's and PyTorch's):

- indices are 0-based everywhere (``Sum(..., (i, 0, H_o - 1))``);
- conv2d is cross-correlation, ``Z[o,i,j] = b[o] + sum_{c,a,b} W[o,c,a,b] Xpad[c, s i + a, s j + b]``
  with ``Xpad`` the input zero-padded by p; the output size ``H_o`` is kept as its own symbol, so
  every conv and pool proof holds for any ``H_o`` (in particular for ``floor((H + 2p - K_h)/s) + 1``);
- ReLU's derivative is ``Heaviside(z, 0)`` (0 at the kink, as PyTorch);
- max-pool's tie convention is part of its definition: "first" (first maximum in row-major order
  gets the whole gradient), "split" (equal shares), "all" (every maximum gets all of it).

Soundness. Every reduction is one of these exact steps, so a rule whose difference reduces to 0 is
*proven* for all sizes:

- SymPy's own ``diff`` of a ``Sum`` of ``Indexed`` (it writes the Kronecker deltas);
- lemma ``delta_sum`` (a sum over a Kronecker delta substitutes the index, under the range
  condition, which is kept as an indicator; only deltas with a unit coefficient and an integer
  solution are collapsed): proven by induction on the number of terms;
- lemma ``finite_sums`` (finite sums over a box are linear and commute): proven by induction;
- range conditions decided by SymPy's assumptions, the index ranges of the free indices being
  encoded by slack symbols (``C = c + 1 + r_C`` with ``r_C >= 0`` says exactly ``0 <= c <= C-1``);
- the layer's own lemmas: ``pad_delta`` (the zero padding written as a delta sum, used inside the
  input-gradient proof because SymPy's ``Sum`` folds a ``Piecewise`` summand out of the scope of
  inner sums), ``x_dirac``, ``bce_softplus``, ``softmax_ce``, ``split_forward``,
  ``flatten_bijection``;
- exact zero tests: ``expand``; for the losses, ``exp(z) -> t`` and ``cancel`` (rational identities).

Kinks and ties follow the engine's standard: max-pool's selectors (first-argmax index function,
"is a maximum" indicators) are atoms held fixed when differentiating, exactly as the engine's
Piecewise selectors, so each routing identity holds for every selector value; the explicit
formulas for the selectors are checked (lemma ``selector_definitions``, status "checked").
ReLU's ``z DiracDelta(z)`` term is dropped by lemma ``x_dirac``.

A step that can only be checked at concrete sizes gets status "checked" (never "proven"), and the
sizes are listed in the result. ``instantiate`` evaluates a rule's own SymPy statement at concrete
sizes, next to the brute-force derivative of its own forward, so the general statement is tied to
instances.

API: ``GENERAL_RULES`` (``GeneralRule``: ``name``, ``layer``, ``statement``, ``text``,
``forward``, ``definitions``, ``prove() -> GeneralResult``, ``instantiate(sizes) -> Instance``),
``prove_general()``, ``LEMMAS`` / ``prove_lemmas()``, ``MUTANTS`` (wrong conv input gradients
that must fail), ``rule_by_name``.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import symengine as se
import sympy as sp
from sympy import (
    Derivative,
    DiracDelta,
    Eq,
    Heaviside,
    IndexedBase,
    KroneckerDelta,
    Lambda,
    Piecewise,
    Sum,
    exp,
    log,
)
from sympy.tensor.indexed import Indexed

__all__ = [
    "FIRST_ARGMAX_DEFINITIONS",
    "GENERAL_RULES",  # noqa: F822 - made on first access, by the module __getattr__
    "IS_MAX_DEFINITION",
    "LEMMAS",
    "LEMMA_BY_NAME",
    "MUTANTS",  # noqa: F822 - likewise
    "PRESET_CONV",
    "RECT_CONV",
    "SEED_CONV",
    "SIZES",
    "GeneralResult",
    "GeneralRule",
    "Instance",
    "Lemma",
    "LemmaResult",
    "evaluate_selector_definition",
    "first_argmax",
    "prove_general",
    "prove_lemmas",
    "rule_by_name",
    "selector_values",
]

Expr = sp.Expr
Status = str  # "proven" | "checked" | "failed"


# --- symbols ---------------------------------------------------------------------------------


def _size(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True, positive=True)


def _index(name: str) -> sp.Symbol:
    # Free indices carry their lower bound (0) as an assumption; the upper bound is a slack symbol.
    return sp.Symbol(name, integer=True, nonnegative=True)


def _bound(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True)


C, O, H, W = _size("C"), _size("O"), _size("H"), _size("W")  # noqa: E741 - O filters, as in the spec
K_h, K_w, s, H_o, W_o = _size("K_h"), _size("K_w"), _size("s"), _size("H_o"), _size("W_o")
k_h, k_w = _size("k_h"), _size("k_w")
N, U, n, m = _size("N"), _size("U"), _size("n"), _size("m")
p = sp.Symbol("p", integer=True, nonnegative=True)  # padding 0 is the seed, so p >= 0, not > 0
# Every size symbol of the layers (what a range condition's bound is made of).
SIZES: frozenset[sp.Symbol] = frozenset({C, O, H, W, K_h, K_w, s, H_o, W_o, k_h, k_w, N, U, n, m, p})
alpha_slope = sp.Symbol("alpha", real=True)
z_s, y_s = sp.Symbol("z", real=True), sp.Symbol("y", real=True)
L_sym, S_sym = sp.Symbol("L"), sp.Symbol("S")

# Free indices (the entry a gradient is taken at) and bound indices (summation variables).
fo, fc, fa, fb, fh, fw = (_index(x) for x in "ocabhw")
fi, fj, fu, fv, fk = (_index(x) for x in "ijuvk")
bo, bc, ba, bb, bi, bj, bu, bk = (_bound(x) for x in "ocabijuk")

X, Wt, bias, gbar = IndexedBase("X"), IndexedBase("W"), IndexedBase("b"), IndexedBase("gbar")
Xpad, Gpad, Z = IndexedBase("Xpad"), IndexedBase("Gpad"), IndexedBase("Z")
fvec, zvec, P, A = IndexedBase("f"), IndexedBase("z"), IndexedBase("P"), IndexedBase("A")
yvec, yhat = IndexedBase("y"), IndexedBase("yhat")
amax_row, amax_col = IndexedBase("alpha"), IndexedBase("beta")  # first-argmax index function
first_sel, is_max, n_max = IndexedBase("F"), IndexedBase("E"), IndexedBase("M")

_uu, _vv, _cc, _mm, _nn = _bound("u_"), _bound("v_"), _bound("c_"), _bound("m_"), _bound("n_")
_XPAD_DEF = Lambda(
    (_cc, _uu, _vv),
    Piecewise(
        (X[_cc, _uu - p, _vv - p], (_uu - p >= 0) & (_uu - p <= H - 1) & (_vv - p >= 0) & (_vv - p <= W - 1)),
        (0, True),
    ),
)


_hp, _wp = _bound("h'"), _bound("w'")
_XPAD_DELTA = Lambda(
    (_cc, _uu, _vv),
    Sum(KroneckerDelta(_uu, _hp + p) * KroneckerDelta(_vv, _wp + p) * X[_cc, _hp, _wp], (_hp, 0, H - 1), (_wp, 0, W - 1)),
)


# --- lemmas ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LemmaResult:
    """How one lemma was established: ``status`` is "proven", "checked" or "failed"."""

    lemma: Lemma
    status: Status
    seconds: float
    checked_at: tuple[dict[str, int], ...] = ()
    steps: tuple[sp.Basic, ...] = ()


@dataclass(frozen=True)
class Lemma:
    """A step SymPy's simplifier does not close by itself, stated and established separately."""

    name: str
    text: str
    statement: sp.Basic
    prover: Callable[[], tuple[Status, tuple[sp.Basic, ...], tuple[dict[str, int], ...]]] = field(repr=False, compare=False)

    def prove(self) -> LemmaResult:
        """Establish the lemma.

        >>> LEMMA_BY_NAME["x_dirac"].prove().status
        'proven'
        """
        t0 = time.perf_counter()
        status, steps, checked_at = self.prover()
        return LemmaResult(self, status, time.perf_counter() - t0, checked_at, steps)


def _peel(expr: sp.Basic, top: sp.Symbol) -> sp.Basic:
    """Split the last term off every sum whose upper limit is ``top`` (any nesting level).

    This is the definition of a finite sum, not a lemma: sum_{x=0}^{t} F = sum_{x=0}^{t-1} F + F(t).
    """

    def split(e: Sum) -> sp.Basic:
        limits = list(e.limits)
        for k, (var, lo, hi) in enumerate(limits):
            if hi == top:
                inner, outer = limits[:k], limits[k + 1 :]
                body = Sum(e.function, *inner) if inner else e.function
                piece = Sum(body, (var, lo, top - 1)) + body.subs(var, top)
                return Sum(piece, *outer) if outer else piece
        return e

    return expr.replace(lambda e: isinstance(e, Sum), split)


def _empty_sums(expr: sp.Basic) -> sp.Basic:
    """A sum with an empty range (upper = lower - 1) is 0: the definition of the empty sum."""
    return expr.replace(lambda e: isinstance(e, Sum) and any((hi - lo + 1) == 0 for _, lo, hi in e.limits), lambda e: sp.Integer(0))


def _split_sum_of_add(expr: sp.Basic) -> sp.Basic:
    """sum (F + G) -> sum F + sum G: one use of linearity (the first part of lemma finite_sums)."""

    def split(e: Sum) -> sp.Basic:
        if not e.function.is_Add:
            return e
        return sp.Add(*(Sum(arg, *e.limits) for arg in e.function.args))

    return expr.replace(lambda e: isinstance(e, Sum), split)


def _pull_constants(expr: sp.Basic) -> sp.Basic:
    """sum (k F) -> k sum F for factors k free of the summation variables (lemma finite_sums)."""

    def pull(e: Sum) -> sp.Basic:
        bound = set(e.variables)
        const = [f for f in sp.Mul.make_args(e.function) if not f.free_symbols & bound]
        if not const:
            return e
        rest = [f for f in sp.Mul.make_args(e.function) if f.free_symbols & bound]
        return sp.Mul(*const) * Sum(sp.Mul(*rest), *e.limits)

    return expr.replace(lambda e: isinstance(e, Sum), pull)


def _by_induction(d: Callable[[Expr], Expr], rewrite: Callable[[sp.Basic], sp.Basic] = lambda e: e) -> bool:
    """D(0) = 0 and D(t+1) - D(t) = 0 for every t >= 0, both closed by SymPy; so D(t) = 0 for all t.

    The step peels the last term off the sums (their definition), applies ``rewrite`` (an already
    proven identity, or nothing), and must then cancel structurally: no ``expand`` that could use
    the very identity being proven.
    """
    t = sp.Symbol("n_ind", integer=True, nonnegative=True)
    base = _empty_sums(d(sp.Integer(0)))
    # expand_mul only distributes products over sums of terms (ring axioms); it never splits a Sum.
    step = sp.expand_mul(rewrite(_peel(d(t + 1), t)) - d(t))
    return base == 0 and step == 0


def _lemma_finite_sums() -> tuple[Status, tuple[sp.Basic, ...], tuple]:
    i, j = _bound("i"), _bound("j")
    mm = _size("m_s")
    f, g = sp.Function("f"), sp.Function("g")
    cst = sp.Symbol("kappa")
    linear = lambda t: Sum(f(i) + g(i), (i, 0, t - 1)) - Sum(f(i), (i, 0, t - 1)) - Sum(g(i), (i, 0, t - 1))  # noqa: E731
    factor = lambda t: Sum(cst * f(i), (i, 0, t - 1)) - cst * Sum(f(i), (i, 0, t - 1))  # noqa: E731

    def swap(t: Expr) -> Expr:
        # Linearity of the j-sum (proven just above) is what lets the inner peel come out.
        return Sum(Sum(f(i, j), (j, 0, mm - 1)), (i, 0, t - 1)) - Sum(Sum(f(i, j), (i, 0, t - 1)), (j, 0, mm - 1))

    # Interchange: after peeling, the j-sum of (inner + last) is split by linearity, proven first.
    ok = _by_induction(linear) and _by_induction(factor) and _by_induction(swap, _split_sum_of_add)
    t = _size("n_s")
    steps = (
        Eq(Sum(f(i) + g(i), (i, 0, t - 1)), Sum(f(i), (i, 0, t - 1)) + Sum(g(i), (i, 0, t - 1))),
        Eq(Sum(cst * f(i), (i, 0, t - 1)), cst * Sum(f(i), (i, 0, t - 1))),
        Eq(Sum(f(i, j), (j, 0, mm - 1), (i, 0, t - 1)), Sum(f(i, j), (i, 0, t - 1), (j, 0, mm - 1))),
    )
    return ("proven" if ok else "failed"), steps, ()


def _lemma_delta_sum() -> tuple[Status, tuple[sp.Basic, ...], tuple]:
    x, t = _bound("x"), _bound("t")
    f = sp.Function("f")
    kk, rr = sp.Symbol("k_c", integer=True, nonnegative=True), sp.Symbol("r_c", integer=True, nonnegative=True)

    def lhs(nn: Expr) -> Expr:
        return Sum(KroneckerDelta(x, t) * f(x), (x, 0, nn - 1))

    def rhs(nn: Expr) -> Expr:
        return Piecewise((f(t), (t >= 0) & (t <= nn - 1)), (0, True))

    nn = sp.Symbol("n_ind", integer=True, nonnegative=True)
    base = [sp.expand(lhs(sp.Integer(0)).doit() - rhs(sp.Integer(0)).subs(t, v)) for v in (kk, -1 - kk)]
    # The step peels the last term off the sum (its definition), then splits t against n into four
    # cases that cover every integer: t < 0, 0 <= t <= n-1, t = n, t > n.
    step = (_peel(lhs(nn + 1), nn) - lhs(nn)) - (rhs(nn + 1) - rhs(nn))
    cases = (
        {t: -1 - kk},
        {t: kk, nn: kk + 1 + rr},
        {t: nn},
        {t: nn + 1 + kk},
    )
    step_ok = all(sp.expand(step.subs(case, simultaneous=True)) == 0 for case in cases)
    ok = all(b == 0 for b in base) and step_ok
    steps = (
        Eq(lhs(n), rhs(n)),
        Eq(lhs(nn + 1) - lhs(nn), _peel(lhs(nn + 1), nn) - lhs(nn)),
    )
    return ("proven" if ok else "failed"), steps, ()


def _lemma_x_dirac() -> tuple[Status, tuple[sp.Basic, ...], tuple]:
    x = sp.Symbol("x", real=True)
    phi = sp.Function("phi")
    pos = sp.Symbol("q", positive=True)
    pointwise = sp.expand(pos * DiracDelta(pos)) == 0 and sp.expand(-pos * DiracDelta(-pos)) == 0
    # At x = 0 the product is a distribution; paired with any test function it integrates to 0.
    weak = sp.integrate(x * DiracDelta(x) * phi(x), (x, -sp.oo, sp.oo)) == 0
    relu_forward = all(sp.simplify(v * Heaviside(v, 0) - sp.Max(v, 0)) == 0 for v in (pos, -pos, sp.Integer(0)))
    steps = (
        Eq(sp.Integral(x * DiracDelta(x) * phi(x), (x, -sp.oo, sp.oo)), 0),
        Eq(x * Heaviside(x, 0), sp.Max(x, 0)),
    )
    return ("proven" if pointwise and weak and relu_forward else "failed"), steps, ()


def _lemma_bce() -> tuple[Status, tuple[sp.Basic, ...], tuple]:
    z, y = z_s, y_s
    t = sp.Symbol("t", positive=True)  # t = exp(z): every claim becomes a rational identity in t
    sig = 1 / (1 + exp(-z))
    bce = -(y * log(sig) + (1 - y) * log(1 - sig))
    soft = log(1 + exp(z)) - y * z
    # Equal derivatives everywhere plus equal values at z = 0 give equal functions.
    d_ok = sp.cancel(sp.expand((sp.diff(bce, z) - sp.diff(soft, z)).subs(exp(z), t))) == 0
    v_ok = sp.simplify((bce - soft).subs(z, 0)) == 0
    return ("proven" if d_ok and v_ok else "failed"), (Eq(bce, soft),), ()


def _lemma_softmax_ce() -> tuple[Status, tuple[sp.Basic, ...], tuple]:
    i, c = _bound("i"), _bound("c")
    zz = IndexedBase("z", real=True)
    lse = log(Sum(exp(zz[c]), (c, 0, n - 1)))
    ce = -Sum(yvec[i] * log(exp(zz[i]) / Sum(exp(zz[c]), (c, 0, n - 1))), (i, 0, n - 1))
    goal = lse - Sum(yvec[i] * zz[i], (i, 0, n - 1))
    e = sp.expand_log(ce, force=True).expand()
    # Pull the i-independent log-sum-exp out of the i-sum (lemma finite_sums), then use sum(y) = 1.
    e = _pull_constants(e)
    e = e.subs(Sum(yvec[i], (i, 0, n - 1)), 1)
    ok = sp.expand(e - goal) == 0
    return ("proven" if ok else "failed"), (Eq(ce, goal),), ()


def _lemma_split_forward() -> tuple[Status, tuple[sp.Basic, ...], tuple]:
    """Split routing reproduces max: sum_k (E_k / M) A_k = P with E_k = [A_k = P], M = sum_k E_k."""
    kk = _bound("kappa")
    a_k, pmax = sp.Symbol("a", real=True), sp.Symbol("P", real=True)
    e_def = Piecewise((1, Eq(a_k, pmax)), (0, True))
    # E_k A_k = E_k P: on E_k's support A_k = P (SymPy substitutes an Eq condition into its branch).
    pointwise = sp.simplify(sp.piecewise_fold(e_def * a_k - e_def * pmax)) == 0
    e_, a_ = IndexedBase("E"), IndexedBase("A")
    mm = sp.Symbol("M", positive=True)
    total = Sum(e_[kk] * a_[kk], (kk, 0, n - 1)) / mm
    replaced = total.replace(lambda q: q == e_[kk] * a_[kk], lambda q: e_[kk] * pmax)
    collected = _pull_constants(replaced).subs(Sum(e_[kk], (kk, 0, n - 1)), mm)
    ok = pointwise and sp.simplify(collected - pmax) == 0
    return ("proven" if ok else "failed"), (Eq(total, pmax),), ()


def _lemma_flatten_bijection() -> tuple[Status, tuple[sp.Basic, ...], tuple]:
    nonneg = lambda name: sp.Symbol(name, integer=True, nonnegative=True)  # noqa: E731
    c1, i1, j1, c2, i2, j2, d, e, g, rc, ri, rj = (nonneg(x) for x in "c1 i1 j1 c2 i2 j2 d e g rc ri rj".split())
    hh, ww = _size("H"), _size("W")

    def phi(c: Expr, i: Expr, j: Expr, hh: Expr = hh, ww: Expr = ww) -> Expr:
        return c * hh * ww + i * ww + j

    # Range: with C = c+1+r_c, H = i+1+r_i, W = j+1+r_j the gap C H W - 1 - phi is a polynomial
    # with nonnegative coefficients in nonnegative symbols.
    sub = {hh: i1 + 1 + ri, ww: j1 + 1 + rj}
    gap = sp.expand(((c1 + 1 + rc) * hh * ww - 1 - phi(c1, i1, j1)).subs(sub, simultaneous=True))
    in_range = gap.is_nonnegative is True
    # Injective, by the first coordinate where two triples differ (lexicographic order).
    lex = (
        phi(c2 + 1 + d, i1, j1, hh, ww).subs({hh: i2 + 1 + e, ww: j2 + 1 + g}) - phi(c2, i2, j2, i2 + 1 + e, j2 + 1 + g),
        phi(c1, i2 + 1 + d, j1, hh, j2 + 1 + g) - phi(c1, i2, j2, hh, j2 + 1 + g),
        phi(c1, i1, j2 + 1 + d) - phi(c1, i1, j2),
    )
    injective = all(sp.expand(q).is_positive is True for q in lex)
    ok = in_range and injective
    # An injective map between two finite sets of C H W elements is a bijection (pigeonhole).
    steps = (Eq(sp.Symbol("CHW-1-phi"), gap), *(sp.Gt(sp.expand(q), 0) for q in lex))
    return ("proven" if ok else "failed"), steps, ()


def _lemma_pad_delta() -> tuple[Status, tuple[sp.Basic, ...], tuple]:
    """The zero padding as a delta sum equals the spec's Piecewise padding, for all integers u, v."""
    delta_form = _XPAD_DELTA(_cc, _uu, _vv)
    trail: list[Expr] = []
    reduced = _reduce(delta_form, {}, trail)  # two uses of lemma delta_sum; u, v are unrestricted
    ok = _same(reduced, _terms(_XPAD_DEF(_cc, _uu, _vv)))
    steps = (Eq(Xpad[_cc, _uu, _vv], delta_form), *(Eq(Xpad[_cc, _uu, _vv], t) for t in trail), Eq(Xpad[_cc, _uu, _vv], _XPAD_DEF.expr))
    return ("proven" if ok else "failed"), steps, ()


LEMMAS: tuple[Lemma, ...] = (
    Lemma(
        "finite_sums",
        "Finite sums with constant limits are linear (sum of f+g, constant factors) and commute "
        "(sum_i sum_j = sum_j sum_i); proven by induction on the number of terms.",
        Eq(Sum(sp.Function("f")(bi, bj), (bj, 0, m - 1), (bi, 0, n - 1)), Sum(sp.Function("f")(bi, bj), (bi, 0, n - 1), (bj, 0, m - 1))),
        _lemma_finite_sums,
    ),
    Lemma(
        "delta_sum",
        "A sum over a Kronecker delta substitutes the index under the range condition: "
        "sum_{x=0}^{n-1} delta(x, t) f(x) = f(t) if 0 <= t <= n-1, else 0 (t an integer not "
        "containing x); proven by induction on n with a four-way case split of t.",
        Eq(
            Sum(KroneckerDelta(_bound("x"), _bound("t")) * sp.Function("f")(_bound("x")), (_bound("x"), 0, n - 1)),
            Piecewise((sp.Function("f")(_bound("t")), (_bound("t") >= 0) & (_bound("t") <= n - 1)), (0, True)),
        ),
        _lemma_delta_sum,
    ),
    Lemma(
        "pad_delta",
        "Zero padding as a delta sum: sum_{h<H} sum_{w<W} delta(u, h+p) delta(v, w+p) X[c,h,w] = X[c,u-p,v-p] "
        "if 0 <= u-p <= H-1 and 0 <= v-p <= W-1, else 0 (the spec's Xpad); by lemma delta_sum twice.",
        Eq(_XPAD_DELTA.expr, _XPAD_DEF.expr),
        _lemma_pad_delta,
    ),
    Lemma(
        "x_dirac",
        "x DiracDelta(x) = 0: pointwise for x != 0, and as a distribution at 0; so the derivative "
        "of ReLU(z) = z Heaviside(z, 0) is Heaviside(z, 0), 0 at the kink (PyTorch's convention).",
        Eq(sp.Symbol("x", real=True) * DiracDelta(sp.Symbol("x", real=True)), 0),
        _lemma_x_dirac,
    ),
    Lemma(
        "bce_softplus",
        "Binary cross-entropy of sigmoid(z) equals softplus(z) - y z (equal derivatives, equal at z = 0).",
        Eq(-(y_s * log(1 / (1 + exp(-z_s))) + (1 - y_s) * log(1 - 1 / (1 + exp(-z_s)))), log(1 + exp(z_s)) - y_s * z_s),
        _lemma_bce,
    ),
    Lemma(
        "softmax_ce",
        "-sum_i y_i log softmax(z)_i = logsumexp(z) - sum_i y_i z_i when sum_i y_i = 1.",
        Eq(sp.Symbol("CE"), log(Sum(exp(zvec[bi]), (bi, 0, n - 1))) - Sum(yvec[bi] * zvec[bi], (bi, 0, n - 1))),
        _lemma_softmax_ce,
    ),
    Lemma(
        "split_forward",
        "Split routing reproduces the max: sum_k (E_k / M) A_k = P where E_k = [A_k = P] and M = sum_k E_k.",
        Eq(Sum(is_max[bk] * A[bk], (bk, 0, n - 1)) / sp.Symbol("M"), sp.Symbol("P")),
        _lemma_split_forward,
    ),
    Lemma(
        "flatten_bijection",
        "phi(c, i, j) = c H W + i W + j maps [0,C) x [0,H) x [0,W) one-to-one onto [0, C H W): "
        "range and injectivity by SymPy with slack symbols, onto by counting.",
        Eq(sp.Symbol("phi"), sp.Symbol("c") * H * W + sp.Symbol("i") * W + sp.Symbol("j")),
        _lemma_flatten_bijection,
    ),
)
LEMMA_BY_NAME: dict[str, Lemma] = {lem.name: lem for lem in LEMMAS}


def prove_lemmas() -> list[LemmaResult]:
    """Establish every lemma the general proofs rely on.

    >>> {r.lemma.name: r.status for r in prove_lemmas()}["delta_sum"]
    'proven'
    """
    return [lem.prove() for lem in LEMMAS]


# --- the reducer: delta collapse with range conditions ----------------------------------------


@dataclass(frozen=True)
class _Term:
    """sum over ``limits`` (innermost first) of [all ``conds``] * ``factor``; conds are ``d >= 0``."""

    limits: tuple[tuple[sp.Symbol, Expr, Expr], ...]
    conds: frozenset[sp.Basic]
    factor: Expr


def _is_index_cond(cond: sp.Basic) -> bool:
    return not cond.atoms(Indexed) and all(q.is_integer for q in cond.free_symbols)


def _canon_rel(rel: sp.Basic) -> sp.Basic:
    """``a <= b`` becomes ``b - a >= 0`` (``a < b`` becomes ``b - a - 1 >= 0``: integers only)."""
    if rel in (sp.true, sp.false):
        return rel
    if isinstance(rel, (sp.GreaterThan, sp.StrictGreaterThan)):
        big, small = rel.lhs, rel.rhs
    elif isinstance(rel, (sp.LessThan, sp.StrictLessThan)):
        big, small = rel.rhs, rel.lhs
    else:
        raise NotImplementedError(f"index condition {rel} is not an inequality")
    strict = isinstance(rel, (sp.StrictGreaterThan, sp.StrictLessThan))
    # Unevaluated, so the form is exactly "d >= 0" (SymPy would move constants to the right).
    return sp.Ge(sp.expand(big - small - (1 if strict else 0)), 0, evaluate=False)


def _canon_conds(cond: sp.Basic) -> frozenset[sp.Basic] | None:
    """The conjuncts of an index condition in canonical form; None when it is false."""
    parts = cond.args if isinstance(cond, sp.And) else (cond,)
    out = set()
    for part in parts:
        c = _canon_rel(part)
        if c is sp.false:
            return None
        if c is not sp.true:
            out.add(c)
    return frozenset(out)


def _terms(expr: Expr) -> list[_Term]:
    """Expand into a list of terms (lemma finite_sums: linearity, constant factors, flattening)."""
    if expr == 0:
        return []
    if expr.is_Add:
        return [t for arg in expr.args for t in _terms(arg)]
    if expr.is_Mul:
        out = [_Term((), frozenset(), sp.Integer(1))]
        for arg in expr.args:
            out = [_merge(x, y) for x in out for y in _terms(arg)]
        return out
    if isinstance(expr, Sum):
        for _, lo, _hi in expr.limits:
            if lo != 0:
                raise NotImplementedError("sums start at 0 in this module")
        out = [_Term(t.limits + tuple(expr.limits), t.conds, t.factor) for t in _terms(expr.function)]
        for t in out:
            _check_rectangular(t)
        return out
    if isinstance(expr, Piecewise) and len(expr.args) == 2 and expr.args[1] == (0, True):
        val, cond = expr.args[0]
        if _is_index_cond(cond):
            conds = _canon_conds(cond)
            if conds is None:
                return []
            inner = _terms(val)
            # Moving the condition inside val's sums must not capture one of its symbols (SymPy's
            # piecewise_fold can leave a condition outside the sum that binds its variables).
            if any({v for v, _, _ in t.limits} & cond.free_symbols for t in inner):
                raise ValueError(f"condition {cond} would capture a summation variable")
            return [_Term(t.limits, t.conds | conds, t.factor) for t in inner]
    return [_Term((), frozenset(), expr)]


def _check_rectangular(t: _Term) -> None:
    """Lemma finite_sums only lets sums commute over a box: no limit may use a summation variable."""
    bound = {v for v, _, _ in t.limits}
    if any((sp.sympify(lo).free_symbols | sp.sympify(hi).free_symbols) & bound for _, lo, hi in t.limits):
        raise NotImplementedError(f"limits {t.limits} depend on summation variables")


def _merge(x: _Term, y: _Term) -> _Term:
    xv, yv = {v for v, _, _ in x.limits}, {v for v, _, _ in y.limits}
    # Distinct names are guaranteed by construction (bound names are primed away from free ones);
    # a clash would mean a variable capture, so refuse rather than reduce wrongly.
    if xv & yv or (yv & x.factor.free_symbols) or (xv & y.factor.free_symbols):
        raise ValueError(f"summation variable clash between {x} and {y}")
    merged = _Term(x.limits + y.limits, x.conds | y.conds, x.factor * y.factor)
    _check_rectangular(merged)
    return merged


def _decide(cond: sp.Basic, slack: Mapping[sp.Symbol, Expr]) -> bool | None:
    """True/False when SymPy's assumptions decide ``cond`` (free-index ranges as slack), else None."""
    v = sp.Ge(sp.expand((cond.lhs - cond.rhs).subs(slack, simultaneous=True)), 0)
    if v is sp.true:
        return True
    if v is sp.false:
        return False
    return None


def _simplify_conds(conds: frozenset[sp.Basic], slack: Mapping[sp.Symbol, Expr]) -> frozenset[sp.Basic] | None:
    out = set()
    for c in conds:
        c = _canon_rel(c)
        if c is sp.true:
            continue
        if c is sp.false:
            return None
        verdict = _decide(c, slack)
        if verdict is False:
            return None
        if verdict is None:
            out.add(c)
    return frozenset(out)


def _delta_candidates(t: _Term) -> list[tuple[int, int, sp.Symbol, sp.Basic, Expr]]:
    bound = [v for v, _, _ in t.limits]
    out = []
    for kd in sp.Mul.make_args(t.factor):
        if not isinstance(kd, KroneckerDelta):
            continue
        d = sp.expand(kd.args[0] - kd.args[1])
        for pos, x in enumerate(bound):
            if x not in d.free_symbols:
                continue
            coeff = d.coeff(x)
            rest = sp.expand(d - coeff * x)
            # Only unit coefficients: delta(s i, u) does not fix i to an integer, so it stays a delta.
            if coeff not in (1, -1) or x in rest.free_symbols:
                continue
            sol = sp.expand(-rest / coeff)
            if sol.is_integer is not True:  # lemma delta_sum is about an integer t
                continue
            out.append((len(sol.free_symbols & set(bound)), pos, x, kd, sol))
    return sorted(out, key=lambda q: (q[0], q[1]))


def _collapse(t: _Term, slack: Mapping[sp.Symbol, Expr]) -> tuple[_Term | None, sp.Symbol | None]:
    """Apply lemma delta_sum once; (term or None when it vanished, the variable collapsed)."""
    cands = _delta_candidates(t)
    if not cands:
        return t, None
    _, _, x, kd, sol = cands[0]
    lo, hi = next((lo, hi) for v, lo, hi in t.limits if v == x)
    factor = sp.Mul(*(f.subs(x, sol) for f in sp.Mul.make_args(t.factor) if f is not kd))
    conds = {c.subs(x, sol) for c in t.conds} | {sp.Ge(sol - lo, 0), sp.Ge(hi - sol, 0)}
    kept = _simplify_conds(frozenset(conds), slack)
    limits = tuple(lim for lim in t.limits if lim[0] != x)
    if kept is None or factor == 0:
        return None, x
    return _Term(limits, kept, factor), x


def _indicator(conds: frozenset[sp.Basic], val: Expr) -> Expr:
    if not conds:
        return val
    return Piecewise((val, sp.And(*sorted(conds, key=sp.default_sort_key))), (0, True))


def _to_expr(terms: Sequence[_Term]) -> Expr:
    total = sp.Integer(0)
    for t in terms:
        body = _indicator(t.conds, t.factor)
        total += Sum(body, *t.limits) if t.limits else body
    return total


def _reduce(expr: Expr, slack: Mapping[sp.Symbol, Expr], trail: list[Expr]) -> list[_Term]:
    """Collapse every delta that can be collapsed; ``trail`` gets the expression after each round."""
    terms = []
    for t in _terms(expr):
        conds = _simplify_conds(t.conds, slack)
        if conds is not None and t.factor != 0:
            terms.append(_Term(t.limits, conds, t.factor))
    while True:
        changed, nxt = False, []
        for t in terms:
            new, var = _collapse(t, slack)
            changed |= var is not None
            if new is not None:
                nxt.append(new)
        terms = nxt
        if not changed:
            return terms
        trail.append(_to_expr(terms))


def _expand_indices(e: Expr) -> Expr:
    return e.replace(lambda q: isinstance(q, Indexed), lambda q: q.base[tuple(sp.expand(i) for i in q.indices)])


def _canonical(terms: Sequence[_Term]) -> dict[tuple, Expr]:
    """Group terms by (limits, conditions) after renaming bound variables canonically."""
    groups: dict[tuple, Expr] = {}
    for t in terms:
        order = sorted(t.limits, key=lambda lim: (sp.srepr(lim[1]), sp.srepr(lim[2]), lim[0].name))
        ren = {v: sp.Symbol(f"_k{q}", integer=True) for q, (v, _, _) in enumerate(order)}
        key_limits = tuple((ren[v], lo, hi) for v, lo, hi in order)
        conds = frozenset(_canon_rel(c.xreplace(ren)) for c in t.conds)
        factor = _expand_indices(t.factor.xreplace(ren))
        key = (key_limits, conds)
        groups[key] = groups.get(key, sp.Integer(0)) + factor
    return groups


def _is_zero(e: Expr) -> bool:
    """Exact zero test: expand; failing that, exp(x) -> t_x and cancel (rational identities in t)."""
    e = sp.expand(e)
    if e == 0:
        return True
    exps = sorted({q for q in e.atoms(exp)}, key=sp.default_sort_key)
    if not exps:
        return False
    ts = {q: sp.Symbol(f"_t{k}", positive=True) for k, q in enumerate(exps) if not q.args[0].could_extract_minus_sign()}
    return sp.cancel(sp.together(e.subs(ts))) == 0


def _same(a: Sequence[_Term], b: Sequence[_Term]) -> bool:
    ga, gb = _canonical(a), _canonical(b)
    return all(_is_zero(ga.get(key, 0) - gb.get(key, 0)) for key in set(ga) | set(gb))


def _drop_x_dirac(e: Expr) -> Expr:
    """Lemma x_dirac: every product containing both x and DiracDelta(x) is 0."""
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(e)):
        fs = sp.Mul.make_args(term)
        if any(isinstance(f, DiracDelta) and f.args[0] in fs for f in fs):
            continue
        out += term
    return out


def _rename_bound(expr: Expr, avoid: set[sp.Symbol]) -> Expr:
    """Prime every summation variable whose name a free index uses, so diff cannot capture it."""
    names = {v.name for v in avoid}

    def fix(e: Sum) -> Sum:
        ren = {v: _bound(v.name + "'") for v, _, _ in e.limits if v.name in names}
        if not ren:
            return e
        return Sum(e.function.xreplace(ren), *[(ren.get(v, v), lo, hi) for v, lo, hi in e.limits])

    return expr.replace(lambda q: isinstance(q, Sum), fix)


def _expand_defs(expr: Expr, defs: Mapping[IndexedBase, Lambda]) -> Expr:
    for base, lam in defs.items():
        expr = expr.replace(lambda q, b=base: isinstance(q, Indexed) and q.base == b, lambda q, lam=lam: lam(*q.indices))
    return expr


# --- instantiation: evaluate a SymPy index expression at concrete sizes ----------------------


class _Backend:
    """The few constructors the evaluator needs, for SymEngine (fast) or SymPy (Heaviside, Dirac)."""

    def __init__(self, mod: Any) -> None:
        self.mod = mod
        self.is_sympy = mod is sp

    def symbol(self, name: str) -> Any:
        return self.mod.Symbol(name, real=True) if self.is_sympy else self.mod.Symbol(name)

    def integer(self, v: int) -> Any:
        return self.mod.Integer(v)

    def func(self, f: sp.Basic) -> Callable[..., Any]:
        if isinstance(f, Heaviside):
            if not self.is_sympy:
                raise NotImplementedError("Heaviside needs the SymPy backend")
            return lambda x, h0=None: sp.Heaviside(x, 0)
        table = {sp.exp: self.mod.exp, sp.log: self.mod.log}
        return table[type(f)]

    def expand(self, e: Any) -> Any:
        return sp.expand(e) if self.is_sympy else se.expand(e)

    def diff(self, e: Any, x: Any) -> Any:
        return sp.diff(e, x) if self.is_sympy else se.diff(e, x)


_Env = dict
_Fn = Callable[[_Env], Any]


class _Compiler:
    """SymPy expression -> closure over an environment (ints for sizes and indices, arrays)."""

    def __init__(
        self,
        backend: _Backend,
        arrays: Mapping[str, np.ndarray],
        scalars: Mapping[sp.Symbol, Any],
        defs: Mapping[IndexedBase, Lambda],
        index_fns: Mapping[IndexedBase, tuple[str, int]],
    ) -> None:
        self.be, self.arrays, self.scalars, self.index_fns = backend, arrays, scalars, index_fns
        self.defs = {b: (lam.variables, lam.expr) for b, lam in defs.items()}
        self._def_cache: dict[IndexedBase, _Fn] = {}

    def compile(self, e: sp.Basic) -> _Fn:
        if self.index_fns and not isinstance(e, (Sum, sp.Add)) and self._has_index_fn(e):
            return self._enumerate_index_fn(e)
        if e.is_Integer:
            v = int(e)
            return lambda env: v
        if e.is_Rational:
            num, den = int(e.p), int(e.q)
            return lambda env: self.be.integer(num) / self.be.integer(den)
        if isinstance(e, sp.Symbol):
            if e in self.scalars:
                val = self.scalars[e]
                return lambda env: val
            return lambda env: env[e]
        if e.is_Add:
            parts = [self.compile(a) for a in e.args]
            return lambda env: sum((f(env) for f in parts), 0)
        if e.is_Mul:
            # Deltas and indicators first, so a zero skips evaluating the rest (most of the work).
            args = sorted(e.args, key=lambda a: not isinstance(a, (KroneckerDelta, Piecewise)))
            parts = [self.compile(a) for a in args]

            def mul(env: _Env) -> Any:
                acc: Any = 1
                for f in parts:
                    v = f(env)
                    if isinstance(v, int) and v == 0:
                        return 0
                    acc = acc * v
                return acc

            return mul
        if e.is_Pow:
            base, ex = self.compile(e.base), self.compile(e.exp)

            def power(env: _Env) -> Any:
                b = base(env)
                return (self.be.integer(b) if isinstance(b, int) else b) ** ex(env)

            return power
        if isinstance(e, Sum):
            return self._sum(e)
        if isinstance(e, sp.Product):
            return self._product(e)
        if isinstance(e, Indexed):
            return self._indexed(e)
        if isinstance(e, KroneckerDelta):
            x, y = self.compile(e.args[0]), self.compile(e.args[1])
            return lambda env: 1 if x(env) == y(env) else 0
        if isinstance(e, Piecewise):
            branches = [(self.compile(v), self._cond(c)) for v, c in e.args]

            def piecewise(env: _Env) -> Any:
                for val, cond in branches:
                    if cond(env):
                        return val(env)
                raise ValueError("no Piecewise branch applies")

            return piecewise
        if isinstance(e, (sp.exp, sp.log, Heaviside)):
            f, arg = self.be.func(e), self.compile(e.args[0])
            return lambda env: f(arg(env))
        raise NotImplementedError(f"cannot instantiate {type(e).__name__}: {e}")

    def _cond(self, c: sp.Basic) -> Callable[[_Env], bool]:
        if c is sp.true:
            return lambda env: True
        if c is sp.false:
            return lambda env: False
        if isinstance(c, sp.And):
            parts = [self._cond(a) for a in c.args]
            return lambda env: all(q(env) for q in parts)
        if isinstance(c, sp.Or):
            parts = [self._cond(a) for a in c.args]
            return lambda env: any(q(env) for q in parts)
        if isinstance(c, sp.Not):
            inner = self._cond(c.args[0])
            return lambda env: not inner(env)
        if not _is_index_cond(c):
            raise NotImplementedError(f"value condition {c} is not instantiable (write it with Heaviside)")
        lhs, rhs = self.compile(c.lhs), self.compile(c.rhs)
        op = {
            sp.GreaterThan: int.__ge__,
            sp.StrictGreaterThan: int.__gt__,
            sp.LessThan: int.__le__,
            sp.StrictLessThan: int.__lt__,
            sp.Equality: int.__eq__,
            sp.Unequality: int.__ne__,
        }[type(c)]
        return lambda env: op(int(lhs(env)), int(rhs(env)))

    def _sum(self, e: Sum) -> _Fn:
        body = self.compile(e.function)
        for var, lo, hi in e.limits:  # innermost first
            body = self._loop(body, var, self.compile(lo), self.compile(hi))
        return body

    def _product(self, e: sp.Product) -> _Fn:
        body = self.compile(e.function)
        for var, lo, hi in e.limits:
            body = self._loop(body, var, self.compile(lo), self.compile(hi), product=True)
        return body

    @staticmethod
    def _loop(body: _Fn, var: sp.Symbol, lo: _Fn, hi: _Fn, product: bool = False) -> _Fn:
        def run(env: _Env) -> Any:
            acc: Any = 1 if product else 0
            saved = env.get(var, _MISSING)
            for v in range(lo(env), hi(env) + 1):
                env[var] = v
                acc = acc * body(env) if product else acc + body(env)
            if saved is _MISSING:
                env.pop(var, None)
            else:
                env[var] = saved
            return acc

        return run

    def _indexed(self, e: Indexed) -> _Fn:
        idx = [self.compile(i) for i in e.indices]
        if e.base in self.defs:
            params, body_expr = self.defs[e.base]
            if e.base not in self._def_cache:
                self._def_cache[e.base] = self.compile(body_expr)
            body = self._def_cache[e.base]

            def defined(env: _Env) -> Any:
                vals = [f(env) for f in idx]
                inner = dict(env)
                inner.update(zip(params, vals))
                return body(inner)

            return defined
        name = str(e.base.label)
        arr = self.arrays[name]

        def lookup(env: _Env) -> Any:
            key = tuple(int(f(env)) for f in idx)
            if any(k < 0 or k >= dim for k, dim in zip(key, arr.shape)):
                raise IndexError(f"{name}{list(key)} is outside {arr.shape}")
            return arr[key]

        return lookup

    def _has_index_fn(self, e: sp.Basic) -> bool:
        return any(q.base in self.index_fns for q in e.atoms(Indexed))

    def _enumerate_index_fn(self, e: sp.Basic) -> _Fn:
        """f(alpha[w], beta[w]) = sum_{a,b} F[w, a, b] f(a, b): the index function as its one-hot selector."""
        uses = [q for q in e.atoms(Indexed) if q.base in self.index_fns]
        windows = {q.indices for q in uses}
        sel_names = {self.index_fns[q.base][0] for q in uses}
        if len(windows) != 1 or len(sel_names) != 1:
            raise NotImplementedError("one window's index function per product")
        (window,), (sel_name,) = windows, sel_names
        slots = {q: sp.Symbol(f"_slot{self.index_fns[q.base][1]}", integer=True) for q in uses}
        body = self.compile(e.xreplace(slots))
        win = [self.compile(i) for i in window]
        sel = self.arrays[sel_name]
        slot_syms = [sp.Symbol(f"_slot{k}", integer=True) for k in range(sel.ndim - len(window))]

        def enumerate_(env: _Env) -> Any:
            w = tuple(int(f(env)) for f in win)
            acc: Any = 0
            for pos in itertools.product(*(range(d) for d in sel.shape[len(window) :])):
                weight = sel[w + pos]
                env.update(zip(slot_syms, pos))
                acc = acc + weight * body(env)
            return acc

        return enumerate_


_MISSING = object()


def _symbol_array(name: str, shape: tuple[int, ...], backend: _Backend) -> np.ndarray:
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        arr[idx] = backend.symbol(f"{name}[{','.join(map(str, idx))}]" if shape else name)
    return arr


@dataclass(frozen=True)
class Instance:
    """A general rule at concrete sizes: the rule's statement evaluated, and brute force beside it.

    ``rule(arrays)`` and ``brute(arrays)`` take a mapping from tensor name to a numpy object array
    (of SymEngine or SymPy symbols; ``inputs`` holds a ready-made set) and return the gradient with
    respect to ``wrt`` as an object array of ``inputs[wrt]``'s shape.
    """

    name: str
    sizes: dict[str, int]
    inputs: dict[str, np.ndarray]
    wrt: str
    rule: Callable[[Mapping[str, np.ndarray]], np.ndarray] = field(repr=False)
    brute: Callable[[Mapping[str, np.ndarray]], np.ndarray] = field(repr=False)
    zero: Callable[[Any], bool] = field(repr=False)

    def mismatches(self, arrays: Mapping[str, np.ndarray] | None = None) -> list[tuple[tuple[int, ...], Any]]:
        """Entries where rule and brute force differ, with the difference; [] when they agree.

        >>> rule_by_name("dense.bias").instantiate({"N": 3, "U": 2}).mismatches()
        []
        """
        arrays = self.inputs if arrays is None else arrays
        r, b = self.rule(arrays), self.brute(arrays)
        if r.shape != b.shape:
            return [((), f"shape {r.shape} != {b.shape}")]
        return [(idx, b[idx] - r[idx]) for idx in np.ndindex(*r.shape) if not self.zero(b[idx] - r[idx])]


# --- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneralResult:
    """The outcome of one general proof.

    ``status``: "proven" (exact for every size), "checked" (some lemma only checked at the sizes
    in ``checked_at``), or "failed" (``detail`` then says why, with a counterexample when one is
    found). ``steps`` is the derivation as SymPy produced it: S, its derivative (Kronecker deltas),
    one expression per delta collapsed, the rule, the rule reduced, and the difference = 0.
    ``seconds`` is this rule's own proof; the lemmas it uses are in ``lemma_results``.
    """

    rule: GeneralRule
    status: Status
    seconds: float
    checked_at: tuple[dict[str, int], ...] = ()
    steps: tuple[sp.Basic, ...] = ()
    lemmas: tuple[str, ...] = ()
    detail: str = ""
    lemma_results: tuple[LemmaResult, ...] = field(default=(), repr=False)

    def as_json(self) -> dict[str, Any]:
        """A JSON-friendly summary.

        >>> rule_by_name("dense.bias").prove().as_json()["status"]
        'proven'
        """
        return {
            "name": self.rule.name,
            "layer": self.rule.layer,
            "statement": self.rule.text,
            "status": self.status,
            "seconds": self.seconds,
            "checked_at": list(self.checked_at),
            "lemmas": list(self.lemmas),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class _Spec:
    """Everything a rule needs besides its statement: forward, shapes, ranges, definitions."""

    forward: Eq
    out_ranges: tuple[Expr, ...] | None  # sizes of the forward's output indices; None: a loss
    wrt: Indexed | sp.Symbol
    wrt_ranges: tuple[Expr, ...]
    tensors: Mapping[str, tuple[Expr, ...]]
    size_keys: Mapping[str, sp.Symbol]
    derived: Callable[[dict[str, int]], dict[str, int]]
    defs: Mapping[IndexedBase, Lambda] = field(default_factory=dict)
    # Definitions substituted before differentiating (may differ from ``defs`` in form only, by a lemma).
    proof_defs: Mapping[IndexedBase, Lambda] = field(default_factory=dict)
    index_fns: Mapping[IndexedBase, tuple[str, int]] = field(default_factory=dict)
    scalars: Mapping[sp.Symbol, str] = field(default_factory=dict)
    backend: str = "symengine"
    post: Callable[[Expr], Expr] | None = None
    refute_at: tuple[dict[str, int], ...] = ()
    # Definitions shown with the rule but held as atoms in the proof (max-pool's selectors).
    display_defs: tuple[Eq, ...] = ()


@dataclass(frozen=True, eq=False)
class GeneralRule:
    """One layer's backprop rule for every size: a SymPy ``Eq`` in index notation, with a proof.

    ``statement`` is ``Eq(Derivative(L, entry), index form)``; ``text`` says the same in words;
    ``forward`` is the layer's forward rule it is derived from; ``definitions`` are auxiliary
    objects the statement uses (the padded input, the dilated-and-padded upstream gradient, the
    max-pool selectors).
    """

    name: str
    layer: str
    statement: Eq
    text: str
    lemmas: tuple[str, ...]
    spec: _Spec = field(repr=False)

    @property
    def forward(self) -> Eq:
        """The layer's forward rule in index notation, the rule is derived from.

        >>> rule_by_name("dense.input").forward
        Eq(z[u], b[u] + Sum(W[u, j]*f[j], (j, 0, N - 1)))
        """
        return self.spec.forward

    @property
    def definitions(self) -> tuple[Eq, ...]:
        """Auxiliary objects the statement and forward use (padding, dilation, selectors).

        >>> [str(d.lhs) for d in rule_by_name("conv2d.input").definitions]
        ['Xpad[c_, u_, v_]', 'Gpad[c_, m_, n_]']
        """
        own = tuple(Eq(b[lam.variables], lam.expr) for b, lam in self.spec.defs.items())
        return own + self.spec.display_defs

    def prove(self, lemma_results: Mapping[str, LemmaResult] | None = None) -> GeneralResult:
        """Prove the rule for every size (the lemmas it uses are established too unless given).

        >>> r = rule_by_name("conv2d.bias").prove()
        >>> r.status, r.steps[-1].rhs
        ('proven', 0)
        """
        given = dict(lemma_results or {})
        lemma_results = {name: given[name] if name in given else LEMMA_BY_NAME[name].prove() for name in self.lemmas}
        t0 = time.perf_counter()
        try:
            ok, steps = _prove_index(self)
            refused = ""
        except (NotImplementedError, ValueError) as exc:
            # The reducer refuses what it cannot reduce soundly; that is a failed proof, not a crash.
            ok, steps, refused = False, [], f"the reducer refused: {exc}"
        seconds = time.perf_counter() - t0
        detail, status, checked_at = "", "proven", ()
        if not ok:
            status = "failed"
            detail = "; ".join(x for x in (refused, _refute(self)) if x)
        else:
            weak = [lemma_results[name] for name in self.lemmas if lemma_results[name].status != "proven"]
            if any(r.status == "failed" for r in weak):
                status, detail = "failed", "a lemma failed: " + ", ".join(r.lemma.name for r in weak)
            elif weak:
                status = "checked"
                checked_at = tuple(size for r in weak for size in r.checked_at)
                detail = "relies on checked lemmas: " + ", ".join(r.lemma.name for r in weak)
        used = tuple(lemma_results[name] for name in self.lemmas)
        return GeneralResult(self, status, seconds, checked_at, tuple(steps), self.lemmas, detail, used)

    def instantiate(self, sizes: Mapping[str, int]) -> Instance:
        """The rule at concrete sizes, with its brute-force counterpart from the forward rule.

        ``sizes`` names every size the layer has (see ``size_keys``); derived sizes (the output
        height and width) are computed as PyTorch does.

        >>> inst = rule_by_name("conv2d.weight").instantiate(SEED_CONV)
        >>> inst.rule(inst.inputs).shape, inst.mismatches()
        ((1, 1, 3, 3), [])
        """
        return _instantiate(self, sizes)

    @property
    def size_keys(self) -> tuple[str, ...]:
        """The keys ``instantiate`` expects.

        >>> rule_by_name("maxpool.input[first]").size_keys
        ('C', 'H', 'W', 'kh', 'kw', 's')
        """
        return tuple(self.spec.size_keys)


def _prove_index(rule: GeneralRule) -> tuple[bool, list[sp.Basic]]:
    spec = rule.spec
    steps: list[sp.Basic] = []
    free = set(spec.wrt.indices) if isinstance(spec.wrt, Indexed) else set()
    slack = _slack(spec)
    proof_defs = spec.proof_defs
    fwd = _expand_defs(spec.forward.rhs, proof_defs)
    if spec.out_ranges is None:
        s_expr = fwd
    else:
        out = spec.forward.lhs
        s_expr = Sum(gbar[out.indices] * fwd, *[(i, 0, r - 1) for i, r in zip(out.indices, spec.out_ranges)][::-1])
    s_expr = _rename_bound(s_expr, free)
    # Every step is recorded unevaluated: Eq(a, b) would ask SymPy's assumptions whether two sums
    # are equal (seconds per proof) only to keep the same Eq; the proof is the reduction below.
    steps.append(Eq(S_sym, s_expr, evaluate=False))
    lhs = Derivative(S_sym, spec.wrt, evaluate=False)
    d = sp.diff(s_expr, spec.wrt)
    steps.append(Eq(lhs, d, evaluate=False))
    trail: list[Expr] = []
    brute = _reduce(d, slack, trail)
    steps.extend(Eq(lhs, t, evaluate=False) for t in trail)
    if spec.post is not None:
        posted = _to_expr(brute)
        brute = _reduce(spec.post(posted), slack, [])
        steps.append(Eq(lhs, _to_expr(brute), evaluate=False))
    steps.append(rule.statement)
    rhs = _expand_defs(rule.statement.rhs, proof_defs)
    if rhs != rule.statement.rhs:
        steps.append(Eq(rule.statement.rhs, rhs, evaluate=False))
    rtrail: list[Expr] = []
    ruled = _reduce(rhs, slack, rtrail)
    steps.extend(Eq(rule.statement.rhs, t, evaluate=False) for t in rtrail)
    ok = _same(brute, ruled)
    diff = _to_expr(brute) - _to_expr(ruled)
    # The two sides differ at most in the order of summation (lemma finite_sums), so the
    # difference is printed as SymPy leaves it, then its canonical value.
    steps.append(Eq(diff, 0, evaluate=False) if ok else sp.Ne(diff, 0, evaluate=False))
    return ok, steps


def _slack(spec: _Spec) -> dict[sp.Symbol, Expr]:
    """Size = index + 1 + r with r >= 0: exactly the range assumption 0 <= index <= size - 1."""
    if not isinstance(spec.wrt, Indexed):
        return {}
    out: dict[sp.Symbol, Expr] = {}
    for idx, size in zip(spec.wrt.indices, spec.wrt_ranges):
        if isinstance(size, sp.Symbol) and size not in out:
            out[size] = idx + 1 + sp.Symbol(f"r_{size.name}", integer=True, nonnegative=True)
    return out


def _resolve_sizes(spec: _Spec, sizes: Mapping[str, int]) -> dict[sp.Symbol, int]:
    missing = [k for k in spec.size_keys if k not in sizes]
    extra = [k for k in sizes if k not in spec.size_keys]
    if missing or extra:
        raise ValueError(f"sizes: expected keys {sorted(spec.size_keys)}, missing {missing}, unknown {extra}")
    vals = {}
    for key, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise ValueError(f"sizes[{key!r}] must be an integer, got {v!r}")
        low = 0 if key == "p" else 1
        if v < low:
            raise ValueError(f"sizes[{key!r}] must be >= {low}, got {v}")
        vals[key] = int(v)
    derived = spec.derived(vals)
    for key, v in derived.items():
        if v < 1:
            raise ValueError(f"derived size {key} = {v} < 1: the window does not fit ({vals})")
    out = {spec.size_keys[k]: v for k, v in vals.items()}
    out.update({_DERIVED_SYMBOLS[k]: v for k, v in derived.items()})
    return out


_DERIVED_SYMBOLS = {"H_o": H_o, "W_o": W_o}


def _shape(dims: tuple[Expr, ...], env: Mapping[sp.Symbol, int]) -> tuple[int, ...]:
    return tuple(int(sp.sympify(d).subs(env)) for d in dims)


def _instantiate(rule: GeneralRule, sizes: Mapping[str, int]) -> Instance:
    spec = rule.spec
    env0 = _resolve_sizes(spec, sizes)
    backend = _Backend(sp if spec.backend == "sympy" else se)
    shapes = {name: _shape(dims, env0) for name, dims in spec.tensors.items()}
    inputs = {name: _symbol_array(name, shape, backend) for name, shape in shapes.items()}
    for name in spec.scalars.values():
        inputs[name] = _symbol_array(name, (), backend)
    wrt_name = str(spec.wrt.base.label) if isinstance(spec.wrt, Indexed) else spec.scalars[spec.wrt]
    wrt_idx = tuple(spec.wrt.indices) if isinstance(spec.wrt, Indexed) else ()
    out_idx = tuple(spec.forward.lhs.indices) if spec.out_ranges is not None else ()
    out_shape = _shape(spec.out_ranges, env0) if spec.out_ranges is not None else ()

    def compiler(arrays: Mapping[str, np.ndarray]) -> _Compiler:
        scalars = {sym: arrays[name][()] for sym, name in spec.scalars.items()}
        return _Compiler(backend, arrays, scalars, spec.defs, spec.index_fns)

    def rule_fn(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        f = compiler(arrays).compile(rule.statement.rhs)
        out = np.empty(shapes.get(wrt_name, ()), dtype=object)
        for idx in np.ndindex(*out.shape):
            env = dict(env0)
            env.update(zip(wrt_idx, idx))
            out[idx] = f(env)
        return out

    def brute_fn(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
        f = compiler(arrays).compile(spec.forward.rhs)
        total: Any = 0
        for idx in np.ndindex(*out_shape):
            env = dict(env0)
            env.update(zip(out_idx, idx))
            val = f(env)
            total = total + (arrays["gbar"][idx] * val if spec.out_ranges is not None else val)
        target = arrays[wrt_name]
        out = np.empty(target.shape, dtype=object)
        for idx in np.ndindex(*target.shape):
            out[idx] = backend.diff(total, target[idx])
        return out

    def zero(e: Any) -> bool:
        if backend.is_sympy:
            e = _drop_x_dirac(e) if spec.post is not None else e
            return _is_zero(e)
        return backend.expand(e) == 0

    named = {k: v for k, v in zip(spec.size_keys, [sizes[k] for k in spec.size_keys])}
    named.update({str(k): v for k, v in env0.items() if k in (H_o, W_o)})
    return Instance(rule.name, named, inputs, wrt_name, rule_fn, brute_fn, zero)


def _refute(rule: GeneralRule) -> str:
    """For a failed proof: look for a concrete counterexample at the rule's refutation sizes."""
    for sizes in rule.spec.refute_at:
        try:
            bad = rule.instantiate(sizes).mismatches()
        except IndexError as exc:  # the statement reads outside a tensor: wrong at these sizes
            return f"refuted at {sizes}: {exc}"
        if bad:
            idx, diff = bad[0]
            return f"refuted at {sizes}: entry {idx} differs from brute force by {diff}"
    return "not reduced to 0 (no counterexample found at the refutation sizes)"


# --- the layers ------------------------------------------------------------------------------


def _conv_derived(v: dict[str, int]) -> dict[str, int]:
    return {"H_o": (v["H"] + 2 * v["p"] - v["Kh"]) // v["s"] + 1, "W_o": (v["W"] + 2 * v["p"] - v["Kw"]) // v["s"] + 1}


def _pool_derived(v: dict[str, int]) -> dict[str, int]:
    return {"H_o": (v["H"] - v["kh"]) // v["s"] + 1, "W_o": (v["W"] - v["kw"]) // v["s"] + 1}


def _no_derived(v: dict[str, int]) -> dict[str, int]:
    return {}


_CONV_KEYS = {"C": C, "O": O, "H": H, "W": W, "Kh": K_h, "Kw": K_w, "s": s, "p": p}
_POOL_KEYS = {"C": C, "H": H, "W": W, "kh": k_h, "kw": k_w, "s": s}
_CHW_KEYS = {"C": C, "H": H, "W": W}

SEED_CONV: dict[str, int] = {"C": 1, "O": 1, "H": 6, "W": 6, "Kh": 3, "Kw": 3, "s": 1, "p": 0}
PRESET_CONV: dict[str, int] = {"C": 2, "O": 2, "H": 7, "W": 7, "Kh": 3, "Kw": 3, "s": 2, "p": 1}
RECT_CONV: dict[str, int] = {"C": 2, "O": 2, "H": 5, "W": 6, "Kh": 2, "Kw": 3, "s": 1, "p": 1}


def _gpad_def(shift_h: Expr = K_h - 1) -> Lambda:
    """gbar dilated by the stride and zero-padded by K - 1: Gpad[o, s i + K_h - 1, s j + K_w - 1] = gbar[o, i, j]."""
    return Lambda(
        (_cc, _mm, _nn),
        Sum(
            gbar[_cc, bi, bj] * KroneckerDelta(_mm, s * bi + shift_h) * KroneckerDelta(_nn, s * bj + K_w - 1),
            (bi, 0, H_o - 1),
            (bj, 0, W_o - 1),
        ),
    )


_CONV_FORWARD = Eq(
    Z[bo, bi, bj],
    bias[bo] + Sum(Wt[bo, bc, ba, bb] * Xpad[bc, s * bi + ba, s * bj + bb], (bc, 0, C - 1), (ba, 0, K_h - 1), (bb, 0, K_w - 1)),
    evaluate=False,
)
_CONV_TENSORS = {"X": (C, H, W), "W": (O, C, K_h, K_w), "b": (O,), "gbar": (O, H_o, W_o)}
_CONV_REFUTE = (PRESET_CONV, RECT_CONV, {"C": 1, "O": 1, "H": 4, "W": 4, "Kh": 2, "Kw": 2, "s": 1, "p": 1})


def _conv_spec(wrt: Indexed, ranges: tuple[Expr, ...], gpad: Lambda | None = None) -> _Spec:
    defs: dict[IndexedBase, Lambda] = {Xpad: _XPAD_DEF}
    proof_defs: dict[IndexedBase, Lambda] = {}
    if gpad is not None:
        # SymPy's Sum constructor folds a Piecewise in its summand up through inner sums (out of
        # the scope of their variables), so the input-gradient proof uses the padding as a delta
        # sum: equal to the Piecewise definition by lemma pad_delta.
        defs[Gpad] = gpad
        proof_defs = {Xpad: _XPAD_DELTA, Gpad: gpad}
    return _Spec(
        forward=_CONV_FORWARD,
        out_ranges=(O, H_o, W_o),
        wrt=wrt,
        wrt_ranges=ranges,
        tensors=_CONV_TENSORS,
        size_keys=_CONV_KEYS,
        derived=_conv_derived,
        defs=defs,
        proof_defs=proof_defs,
        refute_at=_CONV_REFUTE,
    )


def _dL(entry: Indexed | sp.Symbol) -> Derivative:
    return Derivative(L_sym, entry, evaluate=False)


def _conv_input_rule(name: str, rhs: Expr, text: str, gpad: Lambda) -> GeneralRule:
    return GeneralRule(
        name,
        "conv2d",
        Eq(_dL(X[fc, fh, fw]), rhs),
        text,
        ("delta_sum", "finite_sums", "pad_delta"),
        _conv_spec(X[fc, fh, fw], (C, H, W), gpad=gpad),
    )


_CONV_INPUT_TEXT = (
    "dL/dX[c,h,w] = sum_o sum_{a<K_h} sum_{b<K_w} W[o,c,K_h-1-a,K_w-1-b] Gpad[o,h+p+a,w+p+b]: the full "
    "convolution of the stride-dilated upstream gradient with the 180-degree-rotated kernel, cropped by "
    "the padding p on every side. Gpad[o,m,n] = gbar[o,i,j] when m = s i + K_h - 1 and n = s j + K_w - 1 "
    "for some 0 <= i < H_o, 0 <= j < W_o, else 0 (dilation by s, zero-padding by K - 1). Border "
    "conditions: the sum limits 0 <= a < K_h, 0 <= i < H_o; reduced, dL/dX[c,h,w] = sum_{o,i,j} "
    "gbar[o,i,j] W[o,c,h+p-s i,w+p-s j] over the (o,i,j) with 0 <= h+p-s i <= K_h-1 and "
    "0 <= w+p-s j <= K_w-1. Indices are 0-based."
)

_ROT = Wt[bo, fc, K_h - 1 - ba, K_w - 1 - bb]
_KSUM = ((bo, 0, O - 1), (ba, 0, K_h - 1), (bb, 0, K_w - 1))


def _pool_conds(u: Expr, v: Expr, kh: Expr, kw: Expr) -> sp.Boolean:
    return (u - s * bi >= 0) & (u - s * bi <= kh - 1) & (v - s * bj >= 0) & (v - s * bj <= kw - 1)


def _pool_spec(forward: Eq, tensors: Mapping[str, tuple[Expr, ...]], **kw: Any) -> _Spec:
    return _Spec(
        forward=forward,
        out_ranges=(C, H_o, W_o),
        wrt=A[fc, fu, fv],
        wrt_ranges=(C, H, W),
        tensors=tensors,
        size_keys=_POOL_KEYS,
        derived=_pool_derived,
        **kw,
    )


_POOL_TENSORS = {"A": (C, H, W), "gbar": (C, H_o, W_o)}
_SEL_SHAPE = (C, H_o, W_o, k_h, k_w)
_M_DEF = Lambda((_cc, _mm, _nn), Sum(is_max[_cc, _mm, _nn, ba, bb], (ba, 0, k_h - 1), (bb, 0, k_w - 1)))
_ap, _bp = _bound("a'"), _bound("b'")


def _window(c: Expr, i: Expr, j: Expr, a: Expr, b: Expr) -> Indexed:
    return A[c, s * i + a, s * j + b]


# The explicit first-argmax index function, for display and numeric checks: F[c,i,j,a,b] is 1
# exactly when (a,b) beats every earlier entry strictly and every later one weakly (row-major).
_FIRST_DEF = Lambda(
    (_cc, _mm, _nn, ba, bb),
    sp.Product(
        Piecewise(
            (Heaviside(_window(_cc, _mm, _nn, ba, bb) - _window(_cc, _mm, _nn, _ap, _bp), 0), _ap * k_w + _bp < ba * k_w + bb),
            (1 - Heaviside(_window(_cc, _mm, _nn, _ap, _bp) - _window(_cc, _mm, _nn, ba, bb), 0), _ap * k_w + _bp > ba * k_w + bb),
            (1, True),
        ),
        (_ap, 0, k_h - 1),
        (_bp, 0, k_w - 1),
    ),
)
_ISMAX_DEF = Lambda(
    (_cc, _mm, _nn, ba, bb),
    sp.Product(
        1 - Heaviside(_window(_cc, _mm, _nn, _ap, _bp) - _window(_cc, _mm, _nn, ba, bb), 0),
        (_ap, 0, k_h - 1),
        (_bp, 0, k_w - 1),
    ),
)
FIRST_ARGMAX_DEFINITIONS: tuple[Eq, ...] = (
    Eq(first_sel[_cc, _mm, _nn, ba, bb], _FIRST_DEF.expr, evaluate=False),
    Eq(amax_row[_cc, _mm, _nn], Sum(ba * first_sel[_cc, _mm, _nn, ba, bb], (ba, 0, k_h - 1), (bb, 0, k_w - 1)), evaluate=False),
    Eq(amax_col[_cc, _mm, _nn], Sum(bb * first_sel[_cc, _mm, _nn, ba, bb], (ba, 0, k_h - 1), (bb, 0, k_w - 1)), evaluate=False),
)
# Definitions are recorded unevaluated: evaluating would only ask SymPy's assumptions (half a
# second at import) whether the two sides are already equal.
IS_MAX_DEFINITION: Eq = Eq(is_max[_cc, _mm, _nn, ba, bb], _ISMAX_DEF.expr, evaluate=False)


def first_argmax(window: np.ndarray) -> tuple[int, int]:
    """The first-argmax index function on numbers: first maximum in row-major order.

    >>> first_argmax(np.array([[1, 3], [3, 0]]))
    (0, 1)
    """
    flat = int(np.argmax(window))  # numpy returns the first occurrence in row-major (C) order
    return divmod(flat, window.shape[1])


def selector_values(window: np.ndarray, tie: str) -> np.ndarray:
    """The routing weights of one window under a tie convention ("first", "split", "all").

    >>> selector_values(np.array([[2, 2], [0, 1]]), "split").tolist()
    [[0.5, 0.5], [0.0, 0.0]]
    """
    w = np.asarray(window, dtype=float)
    is_top = (w == w.max()).astype(float)
    if tie == "first":
        out = np.zeros_like(w)
        out[first_argmax(w)] = 1.0
        return out
    if tie == "split":
        return is_top / is_top.sum()
    if tie == "all":
        return is_top
    raise ValueError(f"tie convention must be 'first', 'split' or 'all', got {tie!r}")


class _NumpyBackend(_Backend):
    """Numbers instead of symbols: one numpy lane per window, to check a definition on many inputs."""

    def __init__(self) -> None:
        super().__init__(np)

    def integer(self, v: int) -> Any:
        return float(v)

    def func(self, f: sp.Basic) -> Callable[..., Any]:
        if isinstance(f, Heaviside):
            return lambda x: np.heaviside(x, 0.0)  # value 0 at 0, as Heaviside(x, 0)
        return {sp.exp: np.exp, sp.log: np.log}[type(f)]


def _selector_function(tie: str, kh: int, kw: int) -> Callable[[np.ndarray], np.ndarray]:
    """The SymPy definition of F (tie="first") or E (tie="all") evaluated on a stack of windows."""
    lam = _FIRST_DEF if tie == "first" else _ISMAX_DEF
    env0 = {s: 1, k_h: kh, k_w: kw, **dict(zip(lam.variables[:3], (0, 0, 0)))}

    def run(windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=float)
        lanes = np.empty((1, kh, kw), dtype=object)
        for a in range(kh):
            for b in range(kw):
                lanes[0, a, b] = windows[:, a, b]
        body = _Compiler(_NumpyBackend(), {"A": lanes}, {}, {}, {}).compile(lam.expr)
        out = np.empty(windows.shape)
        for a in range(kh):
            for b in range(kw):
                out[:, a, b] = body({**env0, lam.variables[3]: a, lam.variables[4]: b})
        return out

    return run


def evaluate_selector_definition(window: np.ndarray, tie: str) -> np.ndarray:
    """Evaluate the SymPy definition of F (tie="first") or E (tie="all") on a numeric window.

    Ties the explicit index-notation definitions to ``selector_values``.

    >>> evaluate_selector_definition(np.array([[2, 2], [0, 1]]), "first").tolist()
    [[1, 0], [0, 0]]
    """
    w = np.asarray(window)
    return _selector_function(tie, *w.shape)(w[None])[0].astype(int)


_SELECTOR_WINDOWS = ((1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 2), (2, 3), (3, 2), (3, 3))


def _lemma_selector_definitions() -> tuple[Status, tuple[sp.Basic, ...], tuple[dict[str, int], ...]]:
    """F is one-hot at the row-major first maximum, E is 1 exactly at the maxima: every window of
    values in {0, 1, 2} of each listed shape (ties in every pattern), against numpy."""
    ok = True
    for kh, kw in _SELECTOR_WINDOWS:
        windows = np.array(list(itertools.product((0, 1, 2), repeat=kh * kw)), dtype=float).reshape(-1, kh, kw)
        flat = windows.reshape(len(windows), -1)
        wants = {
            "first": np.eye(kh * kw)[np.argmax(flat, axis=1)].reshape(windows.shape),  # first max, row-major
            "all": (flat == flat.max(axis=1, keepdims=True)).astype(float).reshape(windows.shape),
        }
        for tie, want in wants.items():
            ok &= bool(np.array_equal(_selector_function(tie, kh, kw)(windows), want))
    checked = tuple({"kh": kh, "kw": kw, "values": 3} for kh, kw in _SELECTOR_WINDOWS)
    return ("checked" if ok else "failed"), FIRST_ARGMAX_DEFINITIONS + (IS_MAX_DEFINITION,), checked


_REFUTE_POOL = ({"C": 1, "H": 5, "W": 5, "kh": 3, "kw": 2, "s": 1},)


def _make_rules() -> tuple[tuple[GeneralRule, ...], tuple[GeneralRule, ...]]:
    conv_w = GeneralRule(
        "conv2d.weight",
        "conv2d",
        Eq(_dL(Wt[fo, fc, fa, fb]), Sum(gbar[fo, bi, bj] * Xpad[fc, s * bi + fa, s * bj + fb], (bi, 0, H_o - 1), (bj, 0, W_o - 1))),
        "dL/dW[o,c,a,b] = sum_{i<H_o} sum_{j<W_o} gbar[o,i,j] Xpad[c, s i + a, s j + b] (the cross-correlation "
        "of the padded input with the upstream gradient, strided by s), 0-based; Xpad[c,u,v] = X[c,u-p,v-p] "
        "when 0 <= u-p < H and 0 <= v-p < W, else 0.",
        ("delta_sum", "finite_sums"),
        _conv_spec(Wt[fo, fc, fa, fb], (O, C, K_h, K_w)),
    )
    conv_b = GeneralRule(
        "conv2d.bias",
        "conv2d",
        Eq(_dL(bias[fo]), Sum(gbar[fo, bi, bj], (bi, 0, H_o - 1), (bj, 0, W_o - 1))),
        "dL/db[o] = sum_{i<H_o} sum_{j<W_o} gbar[o,i,j].",
        ("delta_sum", "finite_sums"),
        _conv_spec(bias[fo], (O,)),
    )
    conv_x = _conv_input_rule(
        "conv2d.input",
        Sum(_ROT * Gpad[bo, fh + p + ba, fw + p + bb], *_KSUM),
        _CONV_INPUT_TEXT,
        _gpad_def(),
    )
    mutants = (
        _conv_input_rule(
            "conv2d.input[mutant: no rot180]",
            Sum(Wt[bo, fc, ba, bb] * Gpad[bo, fh + p + ba, fw + p + bb], *_KSUM),
            "WRONG on purpose: the kernel is not rotated by 180 degrees.",
            _gpad_def(),
        ),
        _conv_input_rule(
            "conv2d.input[mutant: off by one]",
            Sum(_ROT * Gpad[bo, fh + p + ba, fw + p + bb], *_KSUM),
            "WRONG on purpose: the full-convolution shift is K_h - 2 rows instead of K_h - 1.",
            _gpad_def(K_h - 2),
        ),
        _conv_input_rule(
            "conv2d.input[mutant: one-sided crop]",
            Sum(_ROT * Gpad[bo, fh + ba, fw + bb], *_KSUM),
            "WRONG on purpose: the padding is cropped at the bottom and right only (no +p shift).",
            _gpad_def(),
        ),
    )

    dense_spec = dict(
        forward=Eq(zvec[bu], Sum(Wt[bu, bj] * fvec[bj], (bj, 0, N - 1)) + bias[bu]),
        out_ranges=(U,),
        tensors={"f": (N,), "W": (U, N), "b": (U,), "gbar": (U,)},
        size_keys={"N": N, "U": U},
        derived=_no_derived,
        refute_at=({"N": 3, "U": 2},),
    )
    dense = (
        GeneralRule(
            "dense.weight",
            "dense",
            Eq(_dL(Wt[fu, fj]), gbar[fu] * fvec[fj]),
            "dL/dW[u,j] = gbar[u] f[j] (the outer product of the upstream gradient and the input).",
            ("delta_sum", "finite_sums"),
            _Spec(wrt=Wt[fu, fj], wrt_ranges=(U, N), **dense_spec),
        ),
        GeneralRule(
            "dense.bias",
            "dense",
            Eq(_dL(bias[fu]), gbar[fu]),
            "dL/db[u] = gbar[u].",
            ("delta_sum", "finite_sums"),
            _Spec(wrt=bias[fu], wrt_ranges=(U,), **dense_spec),
        ),
        GeneralRule(
            "dense.input",
            "dense",
            Eq(_dL(fvec[fj]), Sum(gbar[bu] * Wt[bu, fj], (bu, 0, U - 1))),
            "dL/df[j] = sum_{u<U} gbar[u] W[u,j] (W transposed times the upstream gradient).",
            ("delta_sum", "finite_sums"),
            _Spec(wrt=fvec[fj], wrt_ranges=(N,), **dense_spec),
        ),
    )

    flatten = GeneralRule(
        "flatten.input",
        "flatten",
        Eq(_dL(P[fc, fi, fj]), gbar[fc * H * W + fi * W + fj]),
        "dL/dP[c,i,j] = gbar[c H W + i W + j]: the upstream gradient reshaped back (row-major, 0-based).",
        ("delta_sum", "finite_sums", "flatten_bijection"),
        _Spec(
            # f[k] = P at the (unique, lemma flatten_bijection) triple whose flat index is k.
            forward=Eq(
                fvec[bk],
                Sum(KroneckerDelta(bk, bc * H * W + bi * W + bj) * P[bc, bi, bj], (bc, 0, C - 1), (bi, 0, H - 1), (bj, 0, W - 1)),
            ),
            out_ranges=(C * H * W,),
            wrt=P[fc, fi, fj],
            wrt_ranges=(C, H, W),
            tensors={"P": (C, H, W), "gbar": (C * H * W,)},
            size_keys=_CHW_KEYS,
            derived=_no_derived,
            refute_at=({"C": 2, "H": 2, "W": 3},),
        ),
    )

    def act_spec(forward_rhs: Expr, scalars: Mapping[sp.Symbol, str] | None = None) -> _Spec:
        return _Spec(
            forward=Eq(A[bc, bi, bj], forward_rhs),
            out_ranges=(C, H, W),
            wrt=Z[fc, fi, fj],
            wrt_ranges=(C, H, W),
            tensors={"Z": (C, H, W), "gbar": (C, H, W)},
            size_keys=_CHW_KEYS,
            derived=_no_derived,
            scalars=scalars or {},
            backend="sympy",
            post=_drop_x_dirac,
            refute_at=({"C": 1, "H": 2, "W": 2},),
        )

    zb, zf = Z[bc, bi, bj], Z[fc, fi, fj]
    leak = lambda q: alpha_slope + (1 - alpha_slope) * Heaviside(q, 0)  # noqa: E731
    acts = (
        GeneralRule(
            "relu.input",
            "relu",
            Eq(_dL(zf), gbar[fc, fi, fj] * Heaviside(zf, 0)),
            "dL/dZ[c,i,j] = gbar[c,i,j] Heaviside(Z[c,i,j], 0): the mask 1[Z > 0], 0 at Z = 0 (PyTorch).",
            ("delta_sum", "finite_sums", "x_dirac"),
            act_spec(zb * Heaviside(zb, 0)),
        ),
        GeneralRule(
            "leaky_relu.input",
            "leaky_relu",
            Eq(_dL(zf), gbar[fc, fi, fj] * leak(zf)),
            "dL/dZ[c,i,j] = gbar[c,i,j] (alpha + (1 - alpha) Heaviside(Z[c,i,j], 0)): slope 1 for Z > 0, "
            "alpha for Z <= 0 (alpha at the kink, as PyTorch).",
            ("delta_sum", "finite_sums", "x_dirac"),
            act_spec(zb * leak(zb), {alpha_slope: "alpha"}),
        ),
    )

    pool_first = GeneralRule(
        "maxpool.input[first]",
        "maxpool",
        Eq(
            _dL(A[fc, fu, fv]),
            Sum(
                gbar[fc, bi, bj] * KroneckerDelta(fu, s * bi + amax_row[fc, bi, bj]) * KroneckerDelta(fv, s * bj + amax_col[fc, bi, bj]),
                (bi, 0, H_o - 1),
                (bj, 0, W_o - 1),
            ),
        ),
        "dL/dA[c,u,v] = sum over the windows (i,j) whose first (row-major) maximum is at (u,v) of gbar[c,i,j]: "
        "(alpha, beta)[c,i,j] is the window's first-argmax index function, so u = s i + alpha and "
        "v = s j + beta; overlapping windows add up; other positions get 0. The selector is held fixed "
        "(locally constant off ties; at a tie the convention defines the derivative).",
        ("delta_sum", "finite_sums"),
        _pool_spec(
            Eq(P[bc, bi, bj], A[bc, s * bi + amax_row[bc, bi, bj], s * bj + amax_col[bc, bi, bj]]),
            {**_POOL_TENSORS, "F": _SEL_SHAPE},
            index_fns={amax_row: ("F", 0), amax_col: ("F", 1)},
            refute_at=_REFUTE_POOL,
            display_defs=FIRST_ARGMAX_DEFINITIONS,
        ),
    )
    conds_uv = _pool_conds(fu, fv, k_h, k_w)
    routed = lambda weight: Sum(  # noqa: E731
        Piecewise((gbar[fc, bi, bj] * weight, conds_uv), (0, True)), (bi, 0, H_o - 1), (bj, 0, W_o - 1)
    )
    win = A[bc, s * bi + ba, s * bj + bb]
    pool_split = GeneralRule(
        "maxpool.input[split]",
        "maxpool",
        Eq(_dL(A[fc, fu, fv]), routed(is_max[fc, bi, bj, fu - s * bi, fv - s * bj] / n_max[fc, bi, bj])),
        "dL/dA[c,u,v] = sum_{i,j} gbar[c,i,j] E[c,i,j,u-s i,v-s j] / M[c,i,j] over the windows containing "
        "(u,v), i.e. 0 <= u - s i <= k_h - 1 and 0 <= v - s j <= k_w - 1: each of the M maxima of a window "
        "gets an equal share (E = 1 at a maximum); overlapping windows add up.",
        ("delta_sum", "finite_sums", "split_forward"),
        _pool_spec(
            Eq(P[bc, bi, bj], Sum(is_max[bc, bi, bj, ba, bb] / n_max[bc, bi, bj] * win, (ba, 0, k_h - 1), (bb, 0, k_w - 1))),
            {**_POOL_TENSORS, "E": _SEL_SHAPE},
            defs={n_max: _M_DEF},
            refute_at=_REFUTE_POOL,
            display_defs=(IS_MAX_DEFINITION,),
        ),
    )
    pool_all = GeneralRule(
        "maxpool.input[all]",
        "maxpool",
        Eq(_dL(A[fc, fu, fv]), routed(is_max[fc, bi, bj, fu - s * bi, fv - s * bj])),
        "dL/dA[c,u,v] = sum_{i,j} gbar[c,i,j] E[c,i,j,u-s i,v-s j] over the windows containing (u,v): every "
        "maximum gets the whole gradient. Off ties (one maximum) this is the derivative; at a tie it is the "
        "convention's definition (the surrogate forward sum E A is M times the max there).",
        ("delta_sum", "finite_sums"),
        _pool_spec(
            Eq(P[bc, bi, bj], Sum(is_max[bc, bi, bj, ba, bb] * win, (ba, 0, k_h - 1), (bb, 0, k_w - 1))),
            {**_POOL_TENSORS, "E": _SEL_SHAPE},
            refute_at=_REFUTE_POOL,
            display_defs=(IS_MAX_DEFINITION,),
        ),
    )
    pool_avg = GeneralRule(
        "avgpool.input",
        "avgpool",
        Eq(_dL(A[fc, fu, fv]), routed(1 / (k_h * k_w))),
        "dL/dA[c,u,v] = sum_{i,j} gbar[c,i,j] / (k_h k_w) over the windows containing (u,v), i.e. "
        "0 <= u - s i <= k_h - 1 and 0 <= v - s j <= k_w - 1 (overlapping windows add up).",
        ("delta_sum", "finite_sums"),
        _pool_spec(
            Eq(P[bc, bi, bj], Sum(win, (ba, 0, k_h - 1), (bb, 0, k_w - 1)) / (k_h * k_w)),
            _POOL_TENSORS,
            refute_at=_REFUTE_POOL,
        ),
    )

    sigmoid = 1 / (1 + exp(-z_s))
    bce = GeneralRule(
        "bce.logit",
        "bce",
        Eq(_dL(z_s), sigmoid - y_s),
        "L = softplus(z) - y z (binary cross-entropy of sigmoid(z)); dL/dz = sigmoid(z) - y.",
        ("bce_softplus",),
        _Spec(
            forward=Eq(L_sym, log(1 + exp(z_s)) - y_s * z_s),
            out_ranges=None,
            wrt=z_s,
            wrt_ranges=(),
            tensors={},
            size_keys={},
            derived=_no_derived,
            scalars={z_s: "z", y_s: "y"},
            backend="sympy",
            refute_at=({},),
        ),
    )
    zr = IndexedBase("z", real=True)
    softmax_ce = GeneralRule(
        "softmax_ce.logits",
        "softmax_ce",
        Eq(_dL(zr[fk]), exp(zr[fk]) / Sum(exp(zr[bi]), (bi, 0, n - 1)) - yvec[fk]),
        "L = logsumexp(z) - sum_i y_i z_i (softmax cross-entropy when sum_i y_i = 1); dL/dz[k] = softmax(z)[k] - y[k], 0-based k < n.",
        ("delta_sum", "finite_sums", "softmax_ce"),
        _Spec(
            forward=Eq(L_sym, log(Sum(exp(zr[bi]), (bi, 0, n - 1))) - Sum(yvec[bi] * zr[bi], (bi, 0, n - 1))),
            out_ranges=None,
            wrt=zr[fk],
            wrt_ranges=(n,),
            tensors={"z": (n,), "y": (n,)},
            size_keys={"n": n},
            derived=_no_derived,
            backend="sympy",
            refute_at=({"n": 3},),
        ),
    )
    mse = GeneralRule(
        "mse.prediction",
        "mse",
        Eq(_dL(yhat[fk]), 2 * (yhat[fk] - yvec[fk]) / m),
        "L = (1/m) sum_i (yhat_i - y_i)^2; dL/dyhat[k] = 2 (yhat[k] - y[k]) / m, 0-based k < m.",
        ("delta_sum", "finite_sums"),
        _Spec(
            forward=Eq(L_sym, Sum((yhat[bi] - yvec[bi]) ** 2, (bi, 0, m - 1)) / m),
            out_ranges=None,
            wrt=yhat[fk],
            wrt_ranges=(m,),
            tensors={"yhat": (m,), "y": (m,)},
            size_keys={"m": m},
            derived=_no_derived,
            refute_at=({"m": 3},),
        ),
    )
    rules = (conv_w, conv_b, conv_x, *dense, flatten, *acts, pool_first, pool_split, pool_all, pool_avg, bce, softmax_ce, mse)
    return rules, mutants


# Registered here because the selector definitions it checks are defined with the layers. The
# rules do not depend on it: their routing identities hold for any selector values; this lemma
# checks that the explicit formulas F and E compute the conventions' selectors.
LEMMAS = (
    *LEMMAS,
    Lemma(
        "selector_definitions",
        "The explicit first-argmax indicator F (strictly above every earlier entry, at least every later "
        "one, row-major) is one-hot at numpy's argmax (first maximum in row-major order), and the "
        "is-a-maximum indicator E is 1 exactly at the maxima. Checked exhaustively on every window of "
        "values in {0,1,2} of shapes 1x1 ... 3x3 (so at every tie pattern there), not proven.",
        FIRST_ARGMAX_DEFINITIONS[0],
        _lemma_selector_definitions,
    ),
)
LEMMA_BY_NAME.update({lem.name: lem for lem in LEMMAS})


@functools.cache
def _rules() -> tuple[tuple[GeneralRule, ...], tuple[GeneralRule, ...], dict[str, GeneralRule]]:
    # Made on first use, not at import: stating the rules takes SymPy about a second, and a
    # build whose proofs come from the cache (``prove_general(cache=True)``) needs none of it.
    rules, mutants = _make_rules()
    return rules, mutants, {r.name: r for r in rules + mutants}


def __getattr__(name: str) -> Any:
    # GENERAL_RULES and MUTANTS are module attributes made on first access (PEP 562).
    if name == "GENERAL_RULES":
        return _rules()[0]
    if name == "MUTANTS":
        return _rules()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def rule_by_name(name: str) -> GeneralRule:
    """Look a general rule (or a mutant) up by name.

    >>> rule_by_name("conv2d.input").layer
    'conv2d'
    """
    by_name = _rules()[2]
    try:
        return by_name[name]
    except KeyError:
        raise KeyError(f"unknown rule {name!r}; known: {', '.join(by_name)}") from None


def prove_general(cache: bool = False) -> list[GeneralResult]:
    """Prove every general rule; each lemma is established once and shared (``lemma_results``).

    With ``cache``, the results of an earlier run with the same source and library versions are
    loaded from disk when there are any (``symbolic.general_cache``), else proven and stored.
    ``verify --general`` always proves.

    >>> from symbolic.general import GENERAL_RULES
    >>> results = prove_general()
    >>> sorted({r.status for r in results}), len(results) == len(GENERAL_RULES)
    (['proven'], True)
    """
    if cache:
        from symbolic.general_cache import cached_results

        return cached_results(_prove_all)
    return _prove_all()


def _prove_all() -> list[GeneralResult]:
    lemma_results = {r.lemma.name: r for r in prove_lemmas()}
    return [rule.prove(lemma_results) for rule in _rules()[0]]
