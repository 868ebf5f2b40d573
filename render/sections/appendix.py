"""Appendix: every rule with its proof, grouped by layer (each group the target of its proof marks), the method said once."""

from __future__ import annotations

import sympy as sp

from render.blocks import Display, Heading, Items, Para, Strong, Table, words
from render.notation import Partial, Sigma, Softplus, chain, eq
from render.sections.common import Model, anchor_of, grad, op, sym
from render.sections.overview import loss_name
from symbolic.layers import LeakyReLU, ReLU

z, y, k = sp.Symbol("z"), sp.Symbol("y"), sp.Symbol("k")


def status(model: Model, rule) -> object:
    """The status cell: "✓ proven", or the failure in bold."""
    return words("✓ proven") if model.results[rule.name].proven else words(Strong("✗ NOT proven"))


def _method(rule) -> str:
    return " + ".join(rule.methods)


def lemma_statement(model: Model, rule) -> tuple:
    """A lemma, convention or the Jacobian chain: its short name (words) and its statement (words with inline formulas)."""
    name = rule.name
    m = model.spec.units
    if rule.kind == "chain":
        return words("the chain of Jacobians"), words(grad(model.layers[0].names["W"]), " as the product of the local Jacobians above")
    if name.startswith("lemma: bce"):
        return words("the BCE loss"), words(eq(Softplus(z) - y * z, -y * sp.log(Sigma(z)) - (1 - y) * sp.log(1 - Sigma(z))))
    if name.startswith("lemma: softmax_ce"):
        yz = sp.Sum(sp.Symbol("y_k") * sp.Symbol("z_k"), (k, 1, m))
        ce = -sp.Sum(sp.Symbol("y_k") * sp.log(op("softmax_k", sp.Symbol("Z"))), (k, 1, m))
        return words("the cross-entropy loss"), words(
            eq(sp.Add(op("lse", sp.Symbol("Z")), -yz, evaluate=False), ce),
            " when the label sums to 1; the max-shifted form the numbers use equals it",
        )
    if name.startswith("lemma: mse"):
        return words("the MSE loss"), words(
            "the loss built is ",
            eq(sp.Symbol("L"), sp.Sum((sp.Symbol("z_k") - sp.Symbol("y_k")) ** 2, (k, 1, m)) / m),
            ", the form the numbers use",
        )
    if name.startswith("lemma: softplus"):
        return words("softplus derivative"), words(eq(sp.Derivative(Softplus(z), z), Sigma(z)))
    if name.startswith("lemma: σ"):
        return words("sigmoid derivative"), words(eq(sp.Derivative(Sigma(z), z), Sigma(z) * (1 - Sigma(z))))
    if name.startswith("lemma: ∂lse"):
        return words("log-sum-exp derivative"), words(
            eq(Partial(op("lse", sp.Symbol("Z")), sp.Symbol("z_k")), op("softmax_k", sp.Symbol("Z")))
        )
    if name.startswith("lemma: tanh"):
        return words("tanh derivative"), words(eq(sp.Derivative(sp.tanh(z), z), 1 - sp.tanh(z) ** 2))
    if name.startswith("convention: max-pool"):
        return words(f"max-pool ties ({model.spec.ties})"), words(
            "at exactly tied windows the selectors route the gradient as the rule says"
        )
    if name.startswith("convention:"):
        act = next(la for la in model.layers if isinstance(la, (ReLU, LeakyReLU)))
        slope = 0 if isinstance(act, ReLU) else sp.nsimplify(act.spec.slope)
        return words(f"{act.kind} at 0"), words("the slope at exactly ", 0, " is ", slope, ", as PyTorch takes it, and ", 1, " above ", 0)
    plain = rule.name.encode("ascii", "replace").decode()
    return words(plain), words(plain)


def _others_title(others: list) -> str:
    """The heading of the group of rules that belong to no layer, naming only what the group holds.

    >>> from types import SimpleNamespace as NS
    >>> _others_title([NS(kind="lemma", name="lemma: tanh"), NS(kind="chain", name="chain")])
    'Lemmas and the chain of Jacobians'
    >>> _others_title([NS(kind="lemma", name="lemma: tanh"), NS(kind="lemma", name="convention: relu at 0")])
    'Lemmas and conventions'
    """
    kinds = []
    if any(r.kind == "lemma" and not r.name.startswith("convention:") for r in others):
        kinds.append("lemmas")
    if any(r.name.startswith("convention:") for r in others):
        kinds.append("conventions")
    if any(r.kind == "chain" for r in others):
        kinds.append("the chain of Jacobians")
    text = ", ".join(kinds[:-1]) + (" and " if len(kinds) > 1 else "") + kinds[-1]
    return text[0].upper() + text[1:]


def blocks(model: Model, formulas: dict) -> list:
    """The appendix: the method once, then one group per layer (loss first) and one for lemmas and conventions.

    ``formulas`` maps a rule's name to its statement in matrix form (from the layer's section builder).
    """
    out: list = [
        Heading("Appendix: the rules and their proofs", 1, "proofs"),
        Para(
            words(
                "How a rule is proven (",
                Strong("local"),
                "): the layer is built alone on fresh symbols for its input and its parameters, and fresh symbols ",
                sp.Symbol("zbar"),
                " stand for the gradient arriving from above. The brute-force gradient, the chain rule applied to what SymEngine "
                "differentiates from the layer's own forward expression, minus the rule's expression, is expanded for every entry; "
                "the rule is proven when every difference is exactly 0. Kinks (the ReLU step, which entry wins a window) enter as "
                "free symbols, so the identity holds whatever they are. ",
                Strong("end-to-end"),
                " (where small enough): L rebuilt from the layer's input, differentiated entry by entry, against the whole backward "
                "chain from L down to there. ",
                Strong("SymPy"),
                " lemmas are identities simplified to 0 in SymPy; ",
                Strong("exact points"),
                " check a convention at its tie and zero points.",
            )
        ),
    ]
    for la in [model.loss, *reversed(model.layers)]:
        rules = model.rules_of(la)
        what = f"loss ({loss_name(la)})" if la is model.loss else la.kind
        out.append(
            Heading(
                words(f"Layer {la.index}: {what}, ", sym(la.names["in"]), " → ", sym(la.names["out"] if la is not model.loss else "L")),
                2,
                anchor_of(la.index),
            )
        )
        out += [Display(formulas[r.name]) for r in rules]
        rows = tuple(
            (words(grad(r.quantity.split("/d", 1)[1])), words(_method(r)), words(str(model.results[r.name].entries)), status(model, r))
            for r in rules
        )
        out.append(Table((words("gradient"), words("method"), words("entries"), words("status")), rows, "llrl"))
    others = [r for r in model.rules if r.kind in ("lemma", "chain")]
    if others:
        out.append(Heading(_others_title(others), 2, anchor_of(0)))
        for r in others:
            if r.kind == "chain":
                first = model.layers[0]
                factors = [grad(model.loss.names["in"])]
                factors += [Partial(sym(la.names["out"]), sym(la.names["in"])) for la in reversed(model.layers[1:])]
                factors.append(Partial(sym(first.names["out"]), sym(first.names["W"])))
                out.append(
                    Para(
                        words(
                            f"The chain of local Jacobians: the {len(factors)} factors below, each taken by SymEngine from its own "
                            "layer's forward and multiplied as tensors (each factor's output axes summed against the next one's input "
                            "axes), give the same ",
                            grad(first.names["W"]),
                            " as the backward rules, entry for entry:",
                        )
                    )
                )
                out.append(Display(eq(grad(first.names["W"]), chain(*factors))))
        stated = [lemma_statement(model, r) for r in others]
        out.append(
            Items(
                tuple(
                    words(Strong(name.parts[0]) if len(name.parts) == 1 and isinstance(name.parts[0], str) else name, ": ", text)
                    for name, text in stated
                )
            )
        )
        rows = tuple((name, words(_method(r)), status(model, r)) for (name, _), r in zip(stated, others))
        out.append(Table((words("rule"), words("method"), words("status")), rows, "lll"))
    return out
