"""The worked example: one case (the spec's example file, the user's case, or a seeded one) and every number of it.

The numbers come from ``symbolic.numeric.compile_network``: code generated from the derived
expressions, never a hand-written backprop.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import sympy as sp

from render.blocks import Heading, Para, words
from render.printer import number
from render.sections import conv, pool
from render.sections.common import Model, entry_base, grad, piece_name, sym, value_blocks
from symbolic.case import make_case
from symbolic.errors import CaseError
from symbolic.layers import Conv2D, MaxPool, SoftmaxCE
from symbolic.spec import NetworkSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED = 7  # the seeded case's random generator


def seeded_case(spec: NetworkSpec, seed: int = SEED) -> dict:
    """Small numbers anyone can check by hand: integers in [−2, 2] for X, tenths in [−0.3, 0.3] for the parameters.

    >>> from symbolic.spec import load_spec
    >>> c = seeded_case(load_spec("lenet-tiny")); sorted(c)[:3], c["X"].shape, c["Y"].tolist()
    (['B1', 'B2', 'B3'], (1, 8, 8), [1.0, 0.0])
    """
    rng = np.random.default_rng(seed)
    case: dict = {"X": rng.integers(-2, 3, size=spec.input).astype(float)}
    for name, shape in spec.param_shapes.items():
        case[name] = rng.integers(-3, 4, size=shape) / 10
    if spec.loss == "bce":
        case["Y"] = np.array(1.0)
    elif spec.loss == "softmax_ce":
        case["Y"] = np.eye(spec.units)[0]
    else:
        case["Y"] = rng.integers(-1, 2, size=spec.units).astype(float)
    return case


def choose_case(spec: NetworkSpec, case: dict | None) -> tuple[dict, str]:
    """The worked example's case (full layouts) and where it comes from, in words.

    The user's ``case`` wins; then ``examples/<spec name>.json`` where it fits the spec; then a seeded case.
    """
    if case is not None:
        return dict(make_case(case, spec).arrays), "the case given to the build"
    path = EXAMPLES / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', spec.name)}.json"
    if spec.name and path.is_file():
        try:
            return dict(
                make_case(json.loads(path.read_text(encoding="utf-8")), spec).arrays
            ), f"the example case shipped with cnn-derive (examples/{path.name})"
        except (CaseError, ValueError):
            pass  # an example written for another network of the same name: fall back to the seeded case
    return seeded_case(spec), f"a seeded case (small integers for the input, tenths for the parameters; generator seed {SEED})"


def _file(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", key).strip("-") + ".png"


def _label_note(model: Model) -> list:
    """For softmax cross-entropy: the label is a probability vector, and here a soft one when it is not one-hot."""
    if not isinstance(model.loss, SoftmaxCE):
        return []
    y = np.atleast_1d(np.asarray(model.case["Y"], dtype=float))
    one_hot = bool(np.all((y == 0) | (y == 1)) and y.sum() == 1)
    what = (
        "a one-hot probability vector: all the probability on one class"
        if one_hot
        else "a probability vector that spreads its probability over several classes (a soft label)"
    )
    return [Para(words("The label ", sym("Y"), f" is {what}; its entries sum to {number(float(y.sum()))}."))]


def _notation(model: Model) -> list:
    """How the example names a channel or a filter's slice: square brackets, since a superscript (2) means Z₂, W₂, …"""
    spec = model.spec
    stage = next((la.names["out"] for la in model.layers if len(la.out_shape) == 3 and la.out_shape[0] > 1), None)
    weight = next((name for name, shape in spec.param_shapes.items() if len(shape) == 4 and shape[0] * shape[1] > 1), None)
    if stage is None and weight is None:
        return []
    parts: list = ["Images and filters are shown one 2-D piece at a time, named with square brackets: "]
    if stage is not None:
        parts += [piece_name(stage, (1,)), " is channel 1 of ", sym(stage)]
    if weight is not None:
        parts += [
            "; " if stage is not None else "",
            piece_name(weight, (1, 1)),
            " is filter 1's weights on input channel 1 of ",
            sym(weight),
        ]
    parts += [
        ". (A superscript such as the (2) of ",
        entry_base("Z2")[sp.Symbol("k")],
        " says which stage or parameter an entry belongs to: ",
        sym("Z2"),
        ", the number under the capital letter. It is never a channel, and not the layer's position in the table; "
        "an entry without one belongs to the first (",
        entry_base("Z1")[sp.Symbol("k")],
        " is an entry of ",
        sym("Z1"),
        ").)",
    ]
    return [Para(words(*parts))]


def blocks(model: Model) -> list:
    """Inputs, forward values and every gradient of the worked example, with the per-layer pictures."""
    spec, v, case = model.spec, model.values, model.case
    out: list = [
        Heading("4. A worked example", 1, "example"),
        Para(
            words(
                f"The numbers of {model.case_source}"
                + (" (one sample of the batch)" if spec.batch > 1 else "")
                + ", pushed through the network. Every value below is computed by code generated from the derived expressions "
                "(the forward stages and the backward chain), not by a separate implementation; a matrix too wide for the page "
                "is shown by its corners, with every value in a figure."
            )
        ),
    ]
    out += _notation(model)
    out.append(Heading("Input, label and parameters", 2))
    out += value_blocks("X", case["X"], file="X.png")
    out += value_blocks("Y", np.atleast_1d(case["Y"]), file="Y.png")
    out += _label_note(model)
    for name in spec.param_shapes:
        out += value_blocks(name, case[name], file=_file(name))
    out.append(Heading("Forward values", 2))
    for la in model.layers:
        out += value_blocks(la.names["out"], v[la.names["out"]], file=_file(la.names["out"]))
    pred = model.loss.names["out"]
    if pred != model.loss.names["in"]:
        out.append(Para(words("The prediction:")))
        out += value_blocks(pred, v[pred], file=_file(pred))
    out += value_blocks("L", v["L"])
    out.append(Heading("Gradients", 2))
    out.append(Para(words("From the loss back to the input, each layer's rule applied to these numbers:")))
    for la in [model.loss, *reversed(model.layers)]:
        n_in = la.names["in"]
        for role in la.roles:
            name = la.names[role]
            out += value_blocks(name, v[f"dL/d{name}"], gradient=True, file=_file(f"dL/d{name}"))
        if n_in == "X":
            out.append(
                Para(
                    words(
                        "The input is not trained, so ",
                        grad("X"),
                        " is shown for completeness: it is what a layer below this network would receive.",
                    )
                )
            )
        out += value_blocks(n_in, v[f"dL/d{n_in}"], gradient=True, file=_file(f"dL/d{n_in}"))
        if isinstance(la, MaxPool):
            out.append(pool.example_figure(model, la, f"routing-{la.index}.png"))
            out += pool.example_notes(model, la)
        if isinstance(la, Conv2D) and la is model.layers[0]:
            out.append(conv.example_figure(model, la, f"conv-{la.index}.png"))
    return out
