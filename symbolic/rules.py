"""Every backprop rule of a network as data: its statement and its proofs.

Each layer states one rule per gradient it passes on (its input, then each parameter). A rule
is proven when, for every entry, brute force minus the rule expands to the number 0 with the
kinks as free atoms. Two kinds of brute force:

* **local** (always): the layer alone, on fresh symbols for its input and for the upstream
  gradient ḡ (``zbar_ij`` stands for dL/dz_ij). By the chain rule dL/du_i = Σ_j ḡ_j ∂y_j/∂u_i,
  and ∂y_j/∂u_i is what SymEngine differentiates from the layer's forward. The rule is the
  layer's ``backward`` applied to ḡ. This proof is small, so it scales to 64×64 inputs.
* **end-to-end** (where small enough, or asked for): L rebuilt from the layer's input stage,
  differentiated by brute force as a student expanding every sum would, against the backward
  chain from L down to that stage; it covers every rule above it too.

Besides the layer rules there are lemmas (the derivative table and the loss the network
builds, proven in SymPy), conventions (each selector's definition at exact tie and zero
points), and, where small enough, the chain of local Jacobians: dL/dW1 as the product of
every layer's Jacobian, each taken by SymEngine from that layer's forward.

The seed keeps the lecture's names: rules (a)–(j) are the layer rules of its network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import symengine as se

from symbolic.atoms import Atoms, is_zero
from symbolic.cost import terms
from symbolic.layers import Context, Layer, Loss, MaxPool, obj
from symbolic.lemmas import (
    activation_convention,
    loss_lemma,
    lse_derivative,
    pool_convention,
    sigmoid_derivative,
    softplus_derivative,
    tanh_derivative,
)
from symbolic.names import grad_key, tex_name
from symbolic.network import Network, backward, build, labels, make_layers, param_symbols, stage_symbols
from symbolic.spec import NetworkSpec

Failures = tuple
END_TO_END = ("auto", "all", "none")
# entries × tree size of L up to which "auto" runs an end-to-end proof: about half a second
AUTO_BUDGET = 2_000_000
AUTO_TERMS = 3_000  # networks up to this many symbolic terms (cost.terms) are considered at all
# The lecture's letters for the seed's rules, by (layer kind, rule key).
SEED_LETTERS = {
    ("bce", "input"): "a",
    ("dense", "W"): "b",
    ("dense", "B"): "c",
    ("dense", "input"): "d",
    ("flatten", "input"): "e",
    ("maxpool", "input"): "f",
    ("relu", "input"): "g",
    ("conv2d", "B"): "h",
    ("conv2d", "W"): "i",
}
SEED_KINDS = ("conv2d", "relu", "maxpool", "flatten", "dense")


@dataclass(frozen=True)
class Rule:
    """One rule: an id, the lecture's letter if any, where it lives, what it states, how it is proven."""

    name: str
    letter: str
    layer: int
    kind: str
    quantity: str
    text: str
    latex: str
    methods: tuple[str, ...]
    proofs: tuple[Callable[[], tuple[Failures, int]], ...] = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        """``(a)`` for a lecture rule, else the rule's name."""
        return f"({self.letter})" if self.letter else self.name

    # Jupyter's display hooks. Math becomes text only through render's printers, and symbolic
    # never imports render at module level (data flows one way), so each hook imports it when called.
    def _repr_latex_(self) -> str:
        r"""The statement as math, and how it will be proven (``prove`` gives the result).

        >>> from symbolic.spec import load_spec
        >>> rules_for(load_spec())[6]._repr_latex_()
        '$$\\text{(g)}\\quad \\frac{\\partial L}{\\partial Z_{1}} = \\frac{\\partial L}{\\partial A_{1}} \\odot \\mathbb{1}[Z_{1} > 0] \\qquad \\text{proof: local + end-to-end, not run yet}$$'
        """
        from render.display import rule_latex

        return rule_latex(self)

    def _repr_pretty_(self, p, cycle: bool) -> None:
        from render.display import rule_text

        p.text(rule_text(self))


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule's proofs: ``proven`` only for an exact 0 in every entry of every method."""

    rule: Rule
    proven: bool
    seconds: float
    entries: int
    failures: tuple = ()

    # Jupyter's display hooks; render is imported when called (see Rule). No timing is shown, so
    # an executed notebook reads the same on every run.
    def _repr_latex_(self) -> str:
        r"""The rule's statement as math, with ✓ proven or what failed.

        >>> from symbolic.spec import load_spec
        >>> prove(rules_for(load_spec())[0])._repr_latex_()
        '$$\\text{(a)}\\quad \\frac{\\partial L}{\\partial Z_{2}} = A_{2} - Y \\qquad \\checkmark\\ \\text{proven (local + end-to-end)}$$'
        """
        from render.display import rule_latex

        return rule_latex(self.rule, self)

    def _repr_pretty_(self, p, cycle: bool) -> None:
        from render.display import rule_text

        p.text(rule_text(self.rule, self))

    def as_json(self) -> dict:
        """The JSON shape ``verify --json`` prints."""
        return {
            "name": self.rule.letter or self.rule.name,
            "statement": self.rule.text,
            "proven": self.proven,
            "seconds": self.seconds,
            "method": " + ".join(self.rule.methods),
            "layer": self.rule.layer,
        }


def prove(rule: Rule) -> RuleResult:
    """Run every proof of a rule.

    >>> from symbolic.spec import load_spec
    >>> prove(rules_for(load_spec())[2]).proven
    True
    """
    t0 = time.perf_counter()
    failures: list = []
    entries = 0
    for proof in rule.proofs:
        try:
            bad, n = proof()
        except KeyError as err:  # a Piecewise or function no layer registered: the rule does not match the forward
            bad, n = (("unregistered", str(err)[:200]),), 0
        except (ValueError, IndexError, TypeError) as err:  # a rule whose arrays do not even fit is not proven
            bad, n = ((type(err).__name__, str(err)[:200]),), 0
        failures.extend(bad)
        entries = max(entries, n)
    return RuleResult(rule, not failures, time.perf_counter() - t0, entries, tuple(failures))


def compare(brute: np.ndarray, rule: np.ndarray) -> Failures:
    """Indices where brute - rule does not expand to 0 (or a shape mismatch).

    >>> x = se.Symbol("x"); compare(np.array([x, 2 * x], dtype=object), np.array([x, x + x], dtype=object))
    ()
    """
    brute, rule = np.asarray(brute, dtype=object), np.asarray(rule, dtype=object)
    if brute.shape != rule.shape:
        return (("shape", brute.shape, rule.shape),)
    return tuple(idx for idx in np.ndindex(*brute.shape) if not is_zero(brute[idx] - rule[idx]))


# -- local proofs ---------------------------------------------------------------------------------


@dataclass
class LocalBuild:
    """One layer built alone on fresh symbols, its brute-force VJPs and its rule."""

    layer: Layer
    ctx: Context
    inputs: np.ndarray
    params: dict[str, np.ndarray]
    output: np.ndarray
    gbar: np.ndarray


@lru_cache(maxsize=64)
def _local(spec: NetworkSpec, index: int) -> LocalBuild:
    layers, loss = make_layers(spec)
    layer: Layer = loss if index == len(layers) + 1 else layers[index - 1]
    stage_in, stage_out = layer.names["in"], layer.names["out"]
    shape_out = () if isinstance(layer, Loss) else (spec.batch, *layer.out_shape)
    x = stage_symbols(spec, stage_in, layer.in_shape)
    all_params = param_symbols(spec)
    params = {p: all_params[p] for p in layer.params}
    in_labels = labels_for(spec, stage_in, x.shape)
    out_labels = labels_for(spec, stage_out, shape_out if shape_out else x.shape)
    ctx = Context(Atoms(), in_labels, out_labels, stage_out)
    if isinstance(layer, Loss):
        from symbolic.network import label_symbols

        out = layer.forward(ctx, x, {"Y": label_symbols(spec)})
        gbar = np.array(se.Integer(1), dtype=object)
    else:
        out = layer.forward(ctx, x, params)
        gbar = stage_symbols(spec, stage_out, layer.out_shape, bar=True)
    return LocalBuild(layer, ctx, x, params, out, gbar)


def labels_for(spec: NetworkSpec, stage: str, shape: tuple[int, ...]) -> np.ndarray:
    """Entry labels of a stage (see ``network.labels``)."""
    from symbolic.names import scalar_name, stage_base

    return labels(stage_base(stage), shape, scalar_name(stage))


def local_vjp(build_: LocalBuild, wrt: np.ndarray) -> np.ndarray:
    """Σ_j ḡ_j ∂y_j/∂u for each entry u of ``wrt``: brute force on the layer's own forward."""
    atoms = build_.ctx.atoms
    out = np.asarray(build_.output, dtype=object)
    gbar = np.broadcast_to(np.asarray(build_.gbar, dtype=object), out.shape)
    where: dict = {}
    for j in np.ndindex(*out.shape):
        for s in out[j].free_symbols:
            where.setdefault(s, []).append(j)
    return obj(wrt.shape, lambda *i: se.Add(*[gbar[j] * atoms.canon(out[j].diff(wrt[i])) for j in where.get(wrt[i], [])]))


@dataclass(frozen=True)
class LayerRule:
    """A layer's rule applied to a generic upstream gradient: what the handout shows.

    ``gbar`` are the upstream-gradient symbols (``pbar_ij`` stands for dL/dp_ij); ``grad_input``
    and ``grad_params`` are the layer's backward applied to them, in canonical form (atoms of
    ``atoms``); ``inputs`` and ``params`` are the fresh symbols the layer was built on.
    """

    layer: Layer
    atoms: Atoms
    inputs: np.ndarray
    params: dict
    output: np.ndarray
    gbar: np.ndarray
    grad_input: np.ndarray
    grad_params: dict


def layer_rule(spec: NetworkSpec, index: int) -> LayerRule:
    """The rule of layer ``index`` (1-based; the loss is the last) on fresh symbols.

    >>> from symbolic.spec import load_spec
    >>> r = layer_rule(load_spec(), 4); r.layer.kind, r.grad_input.shape
    ('flatten', (1, 1, 2, 2))
    """
    b = _local(spec, index)
    g_in, g_params = b.layer.backward(b.ctx, b.gbar)
    return LayerRule(b.layer, b.ctx.atoms, b.inputs, b.params, b.output, b.gbar, g_in, g_params)


def local_proof(spec: NetworkSpec, index: int, key: str) -> tuple[Failures, int]:
    """Prove one layer rule locally: brute-force VJP of the layer's forward minus its backward."""
    b = _local(spec, index)
    g_in, g_params = b.layer.backward(b.ctx, b.gbar)
    if key == "input":
        return compare(local_vjp(b, b.inputs), g_in), b.inputs.size
    name = b.layer.names[key]
    return compare(local_vjp(b, b.params[name]), g_params[name]), b.params[name].size


# -- end-to-end proofs ----------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _from_stage(spec: NetworkSpec, stage: str) -> tuple[Network, dict]:
    net = build(spec, start=stage)
    return net, backward(net)


def end_to_end_proof(spec: NetworkSpec, stage: str, target: str) -> tuple[Failures, int]:
    """L rebuilt from ``stage``'s own symbols, differentiated by brute force, minus the backward chain."""
    net, chain = _from_stage(spec, stage)
    wrt = net.inputs if target == stage else net.params[target]
    brute = obj(wrt.shape, lambda *i: net.atoms.canon(net.L.diff(wrt[i])))
    return compare(brute, chain[grad_key(target)]), wrt.size


def _tree_size(expr: se.Expr, memo: dict) -> int:
    # Differentiation walks the expression as a tree, shared subexpressions once per use.
    size = memo.get(expr)
    if size is None:
        size = 1 + sum(_tree_size(a, memo) for a in expr.args)
        memo[expr] = size
    return size


def end_to_end_cost(spec: NetworkSpec, stage: str, entries: int) -> int:
    """entries × the tree size of L from ``stage``: what "auto" weighs against its budget.

    >>> from symbolic.spec import load_spec
    >>> end_to_end_cost(load_spec(), "Z2", 1)
    7
    """
    net, _ = _from_stage(spec, stage)
    return entries * _tree_size(net.L, {})


# -- the chain of local Jacobians -------------------------------------------------------------------


def jacobian_chain(net: Network) -> np.ndarray:
    """dL/dW1 as the product of every layer's Jacobian, each taken by SymEngine from that layer's forward.

    The first factor is ∂L/∂(last stage) from the loss's forward (for bce the lecture's two
    factors (dL/dA2)(dA2/dZ2), whose product the loss lemma proves); then, layer by layer from
    the top, ∂(output)/∂(input) on fresh symbols, evaluated at this network's stages. Nothing of
    the structured backward rules is used.
    """
    atoms, spec = net.atoms, net.spec
    first = net.layers[0]
    stages = [net.stages[la.names["in"]] for la in net.layers] + [net.stages[net.loss.names["in"]]]

    def jacobian(layer: Layer, values: np.ndarray) -> dict:
        fresh = obj(values.shape, lambda *i: se.Symbol(f"_u{'_'.join(map(str, i))}"))
        at = {fresh[i]: values[i] for i in np.ndindex(*values.shape)}
        ctx = Context(
            Atoms(),
            np.asarray(labels_for(spec, layer.names["in"], values.shape)),
            labels_for(spec, layer.names["out"], (spec.batch, *layer.out_shape)),
        )
        out = layer.forward(ctx, fresh, {p: net.params[p] for p in layer.params})
        jac = {}
        for j in np.ndindex(*out.shape):
            for i in np.ndindex(*values.shape):
                if fresh[i] in out[j].free_symbols:
                    jac[j, i] = atoms.canon(out[j].diff(fresh[i]).subs(at))
        return jac

    z_last = stages[-1]
    fresh_z = obj(z_last.shape, lambda *i: se.Symbol(f"_z{'_'.join(map(str, i))}"))
    ctx = Context(Atoms(), labels_for(spec, net.loss.names["in"], z_last.shape), labels_for(spec, net.loss.names["out"], z_last.shape))
    loss_value = net.loss.forward(ctx, fresh_z, {"Y": net.Y})[()]
    at_z = {fresh_z[i]: z_last[i] for i in np.ndindex(*z_last.shape)}
    v = obj(z_last.shape, lambda *i: atoms.canon(loss_value.diff(fresh_z[i]).subs(at_z)))
    for layer, values in zip(reversed(net.layers[1:]), reversed(stages[1:-1])):
        jac = jacobian(layer, values)
        nxt = obj(values.shape, lambda *i: se.Integer(0))
        for (j, i), d in jac.items():
            nxt[i] = nxt[i] + v[j] * d
        v = nxt
    W = net.params[first.names["W"]]
    z1 = net.stages[first.names["out"]]
    return obj(W.shape, lambda *k: se.Add(*[v[j] * z1[j].diff(W[k]) for j in np.ndindex(*z1.shape)]))


def chain_proof(spec: NetworkSpec) -> tuple[Failures, int]:
    """Rule (j): brute-force dL/dW1 minus the chain of local Jacobians."""
    net, _ = _from_stage(spec, "X")
    W = net.params[net.layers[0].names["W"]]
    brute = obj(W.shape, lambda *i: net.atoms.canon(net.L.diff(W[i])))
    return compare(brute, jacobian_chain(net)), W.size


# -- all the rules of a network -----------------------------------------------------------------------


def _lemma(fn: Callable[[], bool]) -> Callable[[], tuple[Failures, int]]:
    return lambda: ((() if fn() else (("lemma",),)), 1)


def rules_for(spec: NetworkSpec, end_to_end: str = "auto") -> list[Rule]:
    """Every rule of the network: layer rules from the loss down, then lemmas and conventions.

    >>> from symbolic.spec import load_spec
    >>> [r.letter for r in rules_for(load_spec())][:10]
    ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']
    """
    if end_to_end not in END_TO_END:
        raise ValueError(end_to_end)
    layers, loss = make_layers(spec)
    # Past a few thousand terms even measuring the cost of an end-to-end proof takes seconds.
    small = terms(spec) <= AUTO_TERMS
    is_seed = tuple(la.type for la in spec.layers) == SEED_KINDS and spec.loss == "bce" and spec.batch == 1
    out: list[Rule] = []
    for layer in [loss, *reversed(layers)]:
        index = layer.index
        for st in layer.statements():
            target = layer.names["in"] if st.key == "input" else layer.names[st.key]
            quantity = grad_key(target)
            proofs: list = [lambda i=index, k=st.key: local_proof(spec, i, k)]
            methods = ["local"]
            stage = layer.names["in"]
            if end_to_end == "all" or (end_to_end == "auto" and small and not (isinstance(layer, Loss) and stage == "X")):
                entries = (spec.batch * int(np.prod(layer.in_shape))) if st.key == "input" else int(np.prod(spec.param_shapes[target]))
                if end_to_end == "all" or end_to_end_cost(spec, stage, entries) <= AUTO_BUDGET:
                    proofs.append(lambda s=stage, t=target: end_to_end_proof(spec, s, t))
                    methods.append("end-to-end")
            letter = SEED_LETTERS.get((layer.kind, st.key), "") if is_seed else ""
            name = f"{layer.title}: {'input' if st.key == 'input' else target}"
            out.append(Rule(name, letter, index, layer.kind, quantity, st.text, st.latex, tuple(methods), tuple(proofs)))
    if (
        layers
        and layers[0].kind == "conv2d"
        and (
            end_to_end == "all"
            or (end_to_end == "auto" and small and end_to_end_cost(spec, "X", int(np.prod(spec.param_shapes["W1"]))) <= AUTO_BUDGET)
        )
    ):
        w = layers[0].names["W"]
        factors = (
            [grad_key(loss.names["in"])]
            + [f"d{la.names['out']}/d{la.names['in']}" for la in reversed(layers[1:])]
            + [f"d{layers[0].names['out']}/d{w}"]
        )
        if is_seed:
            factors = ["dL/dA2", "dA2/dZ2"] + factors[1:]
        text = f"dL/d{w} = " + " * ".join(factors) + f" (the {len(factors)}-factor chain of local Jacobians)"
        latex = rf"\frac{{\partial L}}{{\partial {tex_name(w)}}} = " + r" \cdot ".join(
            rf"\frac{{\partial {_tex_of(f.split('/')[0][1:])}}}{{\partial {_tex_of(f.split('/')[1][1:])}}}" for f in factors
        )
        out.append(
            Rule(
                f"chain: {grad_key(w)}",
                "j" if is_seed else "",
                1,
                "chain",
                grad_key(w),
                text,
                latex,
                ("jacobian chain",),
                (lambda: chain_proof(spec),),
            )
        )
    out.extend(_lemmas(spec, layers, loss))
    # The lecture's order: (a), (b), ... first; the rest after, in network order.
    lettered = sorted((r for r in out if r.letter), key=lambda r: r.letter)
    return lettered + [r for r in out if not r.letter]


def _tex_of(name: str) -> str:
    return "L" if name == "L" else tex_name(name)


@lru_cache(maxsize=16)
def _loss_lemma(kind: str, units: int) -> bool:
    # The SymPy work takes a few tenths of a second; one loss kind and size needs it once.
    from symbolic.layers import LOSS_LAYERS

    layer = LOSS_LAYERS[kind](None, 1, (units,), (), {"in": "Z", "out": "A"})  # type: ignore[arg-type]
    return loss_lemma(layer, units)


def clear_caches() -> None:
    """Forget every cached build and proof (for code that swaps a layer's rule, as the mutant tests do)."""
    _local.cache_clear()
    _from_stage.cache_clear()
    _loss_lemma.cache_clear()


def _lemmas(spec: NetworkSpec, layers: list[Layer], loss: Loss) -> list[Rule]:
    kinds = {la.kind for la in layers}
    lemmas: list[tuple[str, str, Callable[[], bool]]] = []
    statement = {
        "bce": "the loss built, softplus(z) − y z, is BCE(y, σ(z)); its stable form max(z, 0) − z y + log1p(e^−|z|) equals it",
        "softmax_ce": "the loss built, lse(z) − Σ y z, is −Σ y log softmax(z) when Σ y = 1; its max-shifted form equals it",
        "mse": "the loss built is (1/m) Σ (z − y)², and numbers use that very form",
    }[loss.kind]
    lemmas.append((f"lemma: {loss.kind} loss", statement, lambda: _loss_lemma(loss.kind, spec.units)))
    if loss.kind == "bce":
        lemmas.append(("lemma: softplus′ = σ", "d/dz log(1 + e^z) = σ(z)", softplus_derivative))
    if loss.kind == "bce" or "sigmoid" in kinds:
        lemmas.append(("lemma: σ′ = σ(1 − σ)", "the sigmoid's derivative is σ(1 − σ)", sigmoid_derivative))
    if loss.kind == "softmax_ce":
        lemmas.append(("lemma: ∂lse/∂z = softmax", "∂/∂z_k log Σ e^z_j = softmax_k(z)", lse_derivative))
    if "tanh" in kinds:
        lemmas.append(("lemma: tanh′ = 1 − tanh²", "tanh′ = 1 − tanh², as SymEngine differentiates it", tanh_derivative))
    for la in layers:
        if la.kind in ("relu", "leaky_relu"):
            what = "ReLU′(0) = 0" if la.kind == "relu" else f"leaky ReLU′(0) = slope {la.spec.slope:g}"
            lemmas.append(
                (
                    f"convention: {la.title}",
                    f"{what}, and 1 above 0: the layer's rule at exact points",
                    lambda la=la: activation_convention(la),
                )
            )
            break
    if any(isinstance(la, MaxPool) for la in layers):
        lemmas.append(
            (
                f"convention: max-pool ties = {spec.ties}",
                f"the {spec.ties}-max selectors at exact tied windows route as stated",
                lambda: pool_convention(spec.ties),
            )
        )
    return [
        Rule(name, "", 0, "lemma", "", text, text, ("SymPy" if name.startswith("lemma") else "exact points",), (_lemma(fn),))
        for name, text, fn in lemmas
    ]


def prove_all(spec: NetworkSpec, end_to_end: str = "auto") -> list[RuleResult]:
    """Every rule of the network, proven.

    >>> from symbolic.spec import load_spec
    >>> all(r.proven for r in prove_all(load_spec()))
    True
    """
    return [prove(rule) for rule in rules_for(spec, end_to_end)]


__all__ = [
    "END_TO_END",
    "Rule",
    "RuleResult",
    "chain_proof",
    "clear_caches",
    "compare",
    "end_to_end_proof",
    "jacobian_chain",
    "layer_rule",
    "LayerRule",
    "local_proof",
    "prove",
    "prove_all",
    "rules_for",
]
