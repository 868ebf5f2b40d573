"""conv2d: the forward sum, and the three backward rules with the one derivative each rests on."""

from __future__ import annotations

import numpy as np
import sympy as sp

from render.blocks import Box, Display, Figure, Items, Para, words
from render.drawings import panels
from render.notation import Bar, IndexSum, Partial, eq
from render.sections.common import (
    Model,
    engine_entry,
    entry_base,
    grad,
    grad_label,
    mark,
    op,
    piece_name,
    shape_text,
    sym,
    window_index,
)
from symbolic.layers import Conv2D
from symbolic.rules import labels_for

# r, s are a filter tap (row, column); never a, which is an activation.
i, j, o, c, r, s, u, v = sp.symbols("i j o c r s u v")


def tap(u: sp.Symbol, i: sp.Symbol, stride: int) -> sp.Expr:
    """The filter tap that lands on input row ``u`` from output row ``i``: u − s (i − 1), written tidily."""
    from render.printer import tidy_add

    return tidy_add(u - stride * (i - 1))


def _geometry(layer: Conv2D) -> tuple[int, int, int, int, int, int]:
    (kh, kw), (sh, sw), (ph, pw) = layer.spec.kernel, layer.spec.stride, layer.spec.padding
    return kh, kw, sh, sw, ph, pw


def _padded(layer: Conv2D) -> sp.IndexedBase:
    base = entry_base(layer.names["in"])
    _, _, _, _, ph, pw = _geometry(layer)
    return sp.IndexedBase(f"{base.label}pad") if (ph, pw) != (0, 0) else base


def _minus(index: sp.Symbol, k: int) -> sp.Expr:
    """``index − k`` written in that order (SymPy would print −k + index), or the index when k is 0."""
    return sp.Add(index, -k, evaluate=False) if k else index


def operators(model: Model) -> list:
    """A box defining every array operation the conv rules of this network use, or nothing without conv layers."""
    convs = [la for la in model.layers if isinstance(la, Conv2D)]
    if not convs:
        return []
    strided = any(la.spec.stride != (1, 1) for la in convs)
    padded = any(la.spec.padding != (0, 0) for la in convs)
    X, K, G = sym("X"), sym("K"), sym("G")
    n, k = sp.Symbol("s"), sp.Symbol("p")
    lines = [
        words(
            op("conv", X, K),
            ": cross-correlation, as in PyTorch. The filter ",
            K,
            " slides over ",
            X,
            "; each output entry is the sum of the window's entries times the filter's, with no flip.",
        )
    ]
    if strided:
        lines.append(words(op("conv_s", X, K), ": the same, with the window moving ", n, " entries at a time (stride ", n, ")."))
    if padded:
        lines.append(words(op("pad_p", X), ": ", X, " with ", k, " rings of zeros around it; ", op("crop_p", G), " removes them again."))
    if strided:
        lines.append(
            words(
                op("dilate_s", G),
                ": ",
                G,
                " with ",
                sp.Add(n, -1, evaluate=False),
                " zeros between neighbouring entries, in rows and columns.",
            )
        )
    lines += [
        words(op("rot180", K), ": ", K, " turned half a turn, its rows and its columns in reverse order."),
        words(
            op("fullconv", G, K),
            ": conv of ",
            G,
            " with ",
            sp.Add(sp.Symbol("k"), -1, evaluate=False),
            " rings of zeros around it, for a ",
            sp.Symbol("k"),
            "×",
            sp.Symbol("k"),
            " filter ",
            K,
            ": every position where ",
            G,
            " and ",
            K,
            " overlap at all counts. It is a cross-correlation too; the only flip in the rules is the one rot180 writes.",
        ),
    ]
    return [Box("Array operations in the conv rules", (Items(tuple(lines)),))]


def _input(layer: Conv2D) -> sp.Expr:
    _, _, _, _, ph, _ = _geometry(layer)
    x = sym(layer.names["in"])
    return op(f"pad_{ph}", x) if ph else x


def formula(layer: Conv2D, key: str) -> sp.Expr:
    """The rule for one gradient (``input``, ``W`` or ``B``) in matrix form, channel by channel.

    >>> from render.printer import latex; from symbolic.network import make_layers; from symbolic.spec import load_spec
    >>> latex(formula(make_layers(load_spec())[0][0], "W"))
    '\\\\frac{\\\\partial L}{\\\\partial W_{1}} = \\\\operatorname{conv}{\\\\left(X,\\\\frac{\\\\partial L}{\\\\partial Z_{1}} \\\\right)}'
    """
    kh, kw, sh, sw, ph, pw = _geometry(layer)
    n_in, n_out, w, b = (layer.names[k] for k in ("in", "out", "W", "B"))
    many = layer.spec.filters > 1 or layer.in_shape[0] > 1
    dz = grad(n_out)
    dz_o = Partial(sp.Symbol("L"), piece_name(n_out, (o,))) if many else dz
    spread = op(f"dilate_{sh}", dz_o) if (sh, sw) != (1, 1) else dz_o
    if key == "W":
        lhs = Partial(sp.Symbol("L"), piece_name(w, (o, c))) if many else grad(w)
        x = _input(layer)
        x_c = piece_name(n_in, (c,)) if isinstance(x, sp.Symbol) and many else x
        if not isinstance(x, sp.Symbol) and many:
            x_c = op(f"pad_{ph}", piece_name(n_in, (c,)))
        return eq(lhs, op("conv", x_c, spread))
    if key == "B":
        lhs = Partial(sp.Symbol("L"), entry_base(b)[o]) if many else grad(b)
        return eq(
            lhs,
            IndexSum(
                Partial(sp.Symbol("L"), entry_base(n_out)[o, i, j]) if many else Partial(sp.Symbol("L"), entry_base(n_out)[i, j]),
                (i, 1, layer.out_shape[1]),
                (j, 1, layer.out_shape[2]),
            ),
        )
    w_oc = piece_name(w, (o, c)) if many else sym(w)
    lhs = Partial(sp.Symbol("L"), piece_name(n_in, (c,))) if many else grad(n_in)
    body = op("fullconv", spread, op("rot180", w_oc))
    if many:
        body = IndexSum(body, (o, 1, layer.spec.filters))
    return eq(lhs, op(f"crop_{ph}", body) if ph else body)


def forward(model: Model, layer: Conv2D) -> list:
    """The forward pass of a conv2d layer: matrix form, index form, one entry as the engine builds it."""
    kh, kw, sh, sw, ph, pw = _geometry(layer)
    n_in, n_out, w, b = (layer.names[k] for k in ("in", "out", "W", "B"))
    channels, filters = layer.in_shape[0], layer.spec.filters
    conv = op("conv" if (sh, sw) == (1, 1) else f"conv_{sh}", _input(layer), sym(w))
    x, z, ww, bb = _padded(layer), entry_base(n_out), entry_base(w), entry_base(b)
    index = IndexSum(
        sp.Mul(ww[o, c, r, s], x[c, window_index(i, r, sh), window_index(j, s, sw)], evaluate=False),
        (c, 1, channels),
        (r, 1, kh),
        (s, 1, kw),
    )
    blocks: list = [
        Para(
            words(
                f"A convolution with {filters} filter{'s' if filters > 1 else ''} of {channels}×{kh}×{kw} (",
                sym(w),
                f" is {shape_text(model.spec.param_shapes[w])}, one bias each in ",
                sym(b),
                f"), stride {sh if sh == sw else (sh, sw)}"
                + (f", zero padding {ph if ph == pw else (ph, pw)}" if (ph, pw) != (0, 0) else ", no padding")
                + ": each entry of ",
                sym(n_out),
                f" ({shape_text(layer.out_shape)}) is a weighted sum over a {kh}×{kw} window of every input channel, plus its filter's bias. "
                "As in PyTorch, “conv” is cross-correlation: the filter is not flipped.",
            )
        ),
        Display(eq(sym(n_out), sp.Add(conv, sym(b), evaluate=False))),
        Para(words("Entry by entry (indices from 1; ", o, " is the filter, ", c, " the input channel, ", r, ", ", s, " the tap):")),
        Display(eq(z[o, i, j], sp.Add(index, bb[o], evaluate=False))),
    ]
    if (ph, pw) != (0, 0):
        blocks.append(
            Para(
                words(
                    x[c, u, v],
                    f" is the input with {ph if ph == pw else (ph, pw)} ring{'s' if max(ph, pw) > 1 else ''} of zeros around it: ",
                    eq(x[c, u, v], entry_base(n_in)[c, _minus(u, ph), _minus(v, pw)]),
                    " for ",
                    u,
                    f" from {ph + 1} to {layer.in_shape[1] + ph} and ",
                    v,
                    f" from {pw + 1} to {layer.in_shape[2] + pw}, and 0 on the ring. "
                    "Where a window hangs over the border, those zeros drop out of the sum.",
                )
            )
        )
    rule = model.local[layer.index]
    first = (0,) * rule.output.ndim
    label = labels_for(model.spec, n_out, rule.output.shape)[first]
    blocks.append(Para(words("The first entry, as the engine builds it:")))
    blocks.append(Display(engine_entry(sp.Symbol(label), rule.output[first], rule.atoms)))
    return blocks


def backward(model: Model, layer: Conv2D) -> list:
    """The three conv2d rules, each from the one derivative it rests on, with the engine's first entry of each."""
    kh, kw, sh, sw, ph, pw = _geometry(layer)
    n_in, n_out, w, b = (layer.names[k] for k in ("in", "out", "W", "B"))
    x, z, ww = _padded(layer), entry_base(n_out), entry_base(w)
    rows, cols = window_index(i, r, sh), window_index(j, s, sw)
    local = model.local[layer.index]
    rules = {rule.quantity.split("/d")[1]: rule for rule in model.rules_of(layer)}
    ho, wo = layer.out_shape[1:]
    zbar = Bar(z[o, i, j])
    blocks: list = [
        Para(
            words(
                "Write ",
                zbar,
                " for ",
                Partial(sp.Symbol("L"), z[o, i, j]),
                ", the gradient arriving from above. Each entry of ",
                sym(n_out),
                " is linear in every weight, and the coefficient of a weight is the input entry under that tap:",
            )
        ),
        Display(eq(Partial(z[o, i, j], ww[o, c, r, s]), x[c, rows, cols])),
        Para(words("The chain rule adds this over every output entry the weight touches, which is all of them:")),
        Display(eq(Partial(sp.Symbol("L"), ww[o, c, r, s]), IndexSum(zbar * x[c, rows, cols], (i, 1, ho), (j, 1, wo)))),
        Para(
            words(
                "That is ",
                grad(n_out),
                " slid over the input, the same sliding sum as the forward pass: a convolution of the input with the upstream gradient"
                + (
                    f". With stride {sh}, neighbouring output entries read inputs {sh} apart, so the gradient is first spread out "
                    f"with {sh - 1} zero{'s' if sh > 2 else ''} between its entries (dilate)"
                    if (sh, sw) != (1, 1)
                    else ""
                )
                + ":",
            )
        ),
        Display(formula(layer, "W")),
        Para(words("Filter gradient: ", mark(model, rules[w]))),
        Para(words("Every output entry holds its filter's bias once (", eq(Partial(z[o, i, j], entry_base(b)[o]), 1), "), so:")),
        Display(formula(layer, "B")),
        Para(words("Bias gradient: ", mark(model, rules[b]))),
        Para(
            words(
                "For the input, the coefficient of ",
                x[c, u, v],
                " in ",
                z[o, i, j],
                " is the weight whose tap lands on it (0 where no tap of window ",
                sp.Tuple(i, j),
                " lands there):",
            )
        ),
        Display(eq(Partial(z[o, i, j], x[c, u, v]), ww[o, c, tap(u, i, sh), tap(v, j, sw)])),
        Para(words("Summed over every window that covers the entry:")),
        Display(
            eq(
                Partial(sp.Symbol("L"), x[c, u, v]),
                IndexSum(zbar * ww[o, c, tap(u, i, sh), tap(v, j, sw)], (o, 1, layer.spec.filters), (i, 1, ho), (j, 1, wo)),
            )
        ),
        Para(
            words(
                "Read from the input's side, each entry collects the upstream gradient through the filter turned by 180 degrees: "
                "a full convolution (the gradient padded by the kernel size minus 1)"
                + (f", of the gradient dilated by the stride {sh}" if (sh, sw) != (1, 1) else "")
                + (f", then cropped by the padding {ph} to the input's size" if (ph, pw) != (0, 0) else "")
                + ":"
            )
        ),
        Display(formula(layer, "input")),
        Para(words("Input gradient: ", mark(model, rules[n_in]))),
        *shape_chain(layer),
    ]
    first_w = (0,) * local.params[w].ndim
    first_x = (0,) * local.inputs.ndim
    blocks += [
        Para(words("The engine's rules for the first weight and the first input entry, in the upstream gradients ", zbar, ":")),
        Display(
            engine_entry(Partial(sp.Symbol("L"), sp.Symbol(str(local.params[w][first_w]))), local.grad_params[w][first_w], local.atoms)
        ),
        Display(engine_entry(Partial(sp.Symbol("L"), sp.Symbol(str(local.inputs[first_x]))), local.grad_input[first_x], local.atoms)),
        *term_notes(model, layer),
        *worked_entry(model, layer),
    ]
    return blocks


def example_figure(model: Model, layer: Conv2D, file: str) -> Figure:
    """The filter gradient at work: the input entries under the first tap, ∂L/∂Z of the first filter, ∂L/∂W.

    The marked inputs are exactly those the sum for the first weight multiplies by ∂L/∂Z.
    """
    kh, kw, sh, sw, ph, pw = _geometry(layer)
    n_in, n_out, w = layer.names["in"], layer.names["out"], layer.names["W"]
    xs = model.case["X"] if n_in == "X" else model.values[n_in]
    xin = np.pad(np.asarray(xs, dtype=float)[0], ((ph, ph), (pw, pw)))
    ho, wo = layer.out_shape[1:]
    touched = np.zeros(xin.shape, bool)
    touched[0 : sh * (ho - 1) + 1 : sh, 0 : sw * (wo - 1) + 1 : sw] = True
    dz = np.asarray(model.values[f"dL/d{n_out}"], dtype=float)[0]
    dw = np.asarray(model.values[f"dL/d{w}"], dtype=float)[0, 0]
    first = np.zeros(dw.shape, bool)
    first[0, 0] = True
    name_in = n_in + ("pad" if ph or pw else "")
    return Figure(
        file,
        words(
            "The filter gradient as a sliding sum: the first weight's gradient (outlined, right) is the sum of the outlined entries of ",
            sym(n_in),
            (f" padded by {ph}" if ph or pw else ""),
            ", channel 1 (left), times the entries of ",
            grad(n_out),
            ", filter 1 (middle), in the same order.",
        ),
        panels,
        {
            "mats": [xin, dz, dw],
            "titles": [f"{name_in} (channel 1)", f"{grad_label(n_out)} (filter 1)", f"{grad_label(w)} (filter 1, channel 1)"],
            "marks": [touched, None, first],
        },
    )


def _reach(n_in: int, n_out: int, k: int, stride: int, pad: int, pos: int) -> list[tuple[int, int]]:
    """The (output index, tap) pairs, 0-based, whose tap lands on padded position ``pos`` along one axis."""
    return [(i, pos - stride * i) for i in range(n_out) if 0 <= pos - stride * i < k]


def term_notes(model: Model, layer: Conv2D) -> list:
    """Why the engine's first weight and first input entry have the number of terms they have, counted from the geometry.

    A tap of the first weight lands on the padding zeros in some windows; the first input entry is under a tap of
    only the windows that reach it (the stride moves the others past it). Said only where the count agrees with the engine's.
    """
    from render.sections.common import count_terms

    kh, kw, sh, sw, ph, pw = _geometry(layer)
    (h, w_), (ho, wo) = layer.in_shape[1:], layer.out_shape[1:]
    local = model.local[layer.index]
    w = layer.names["W"]
    windows = ho * wo
    out: list = []
    # The first weight's tap (0, 0) reads padded position s·i along each axis; inside the input unless in the padding.
    inside = sum(1 for i in range(ho) for j in range(wo) if ph <= sh * i < ph + h and pw <= sw * j < pw + w_)
    n_w = count_terms(local.grad_params[w][(0,) * local.params[w].ndim], local.atoms)
    if inside == n_w and inside < windows:
        out.append(
            words(
                f"The first weight's gradient has {n_w} term{'s' if n_w != 1 else ''}, not one per window ({windows}): "
                f"in the other {windows - inside} window{'s' if windows - inside != 1 else ''} its tap lands on the padding zeros, "
                "and those terms vanish."
            )
        )
    rows = _reach(h, ho, kh, sh, ph, ph)
    cols = _reach(w_, wo, kw, sw, pw, pw)
    per_filter = len(rows) * len(cols)
    n_x = count_terms(local.grad_input[(0,) * local.inputs.ndim], local.atoms)
    filters = layer.spec.filters
    if per_filter * filters == n_x and per_filter < windows:
        out.append(
            words(
                f"The first input entry has {n_x} term{'s' if n_x != 1 else ''}: it lies under a tap of only {per_filter} of the "
                f"{windows} windows of each filter (the windows start {sh if sh == sw else (sh, sw)} apart"
                + (f" on an input padded by {ph if ph == pw else (ph, pw)}" if ph or pw else "")
                + ", so the others never reach it)"
                + (f", times {filters} filters." if filters > 1 else ".")
            )
        )
    return [Para(p) for p in out]


def _chain_sizes(layer: Conv2D) -> list[tuple[str, int, int]]:
    """The input rule's steps with the size after each: (step, rows, columns)."""
    kh, kw, sh, sw, ph, pw = _geometry(layer)
    (h, w_), (ho, wo) = layer.in_shape[1:], layer.out_shape[1:]
    steps = [("the upstream gradient", ho, wo)]
    dh, dw = (ho - 1) * sh + 1, (wo - 1) * sw + 1
    if (sh, sw) != (1, 1):
        steps.append((f"dilated by the stride {sh if sh == sw else (sh, sw)}", dh, dw))
    steps.append(
        (
            f"padded by the kernel size minus 1 ({kh - 1 if kh == kw else (kh - 1, kw - 1)}) on every side",
            dh + 2 * (kh - 1),
            dw + 2 * (kw - 1),
        )
    )
    fh, fw = dh + kh - 1, dw + kw - 1
    steps.append((f"correlated with the turned {kh}×{kw} filter", fh, fw))
    if (fh, fw) != (h + 2 * ph, w_ + 2 * pw):
        steps.append(("extended by zeros for the input rows and columns no window reaches", h + 2 * ph, w_ + 2 * pw))
    if ph or pw:
        steps.append((f"cropped by the padding {ph if ph == pw else (ph, pw)}", h, w_))
    return steps


def shape_chain(layer: Conv2D) -> list:
    """The input rule step by step with this layer's sizes, and why the filter turns."""
    steps = _chain_sizes(layer)
    text = "; ".join(f"{what}: {r}×{c}" for what, r, c in steps)
    h, w_ = layer.in_shape[1:]
    return [
        Para(
            words(
                "Step by step with this layer's sizes: " + text + f", the size of the input ({h}×{w_}). "
                "Why the filter turns: the forward pass correlates, so output entry ",
                sp.Tuple(i, j),
                " reads its window with tap ",
                sp.Tuple(1, 1),
                " on the top left. Seen from one input entry, a window that starts higher up reaches it with a tap further down the "
                "filter, and a window that starts further down with a tap higher up: the taps come in the reverse order. Written "
                "as a correlation over the upstream gradient, the filter therefore appears turned by 180 degrees.",
            )
        )
    ]


def worked_entry(model: Model, layer: Conv2D) -> list:
    """The first input entry's gradient with the worked example's numbers, term by term, checked against the computed value."""
    from render.printer import number

    kh, kw, sh, sw, ph, pw = _geometry(layer)
    (h, w_), (ho, wo) = layer.in_shape[1:], layer.out_shape[1:]
    n_in, n_out, w = layer.names["in"], layer.names["out"], layer.names["W"]
    wv = np.asarray(model.case[w], dtype=float)
    dz = np.asarray(model.values[f"dL/d{n_out}"], dtype=float)
    want = float(np.asarray(model.values[f"dL/d{n_in}"], dtype=float)[(0, 0, 0)])
    terms = [
        (o_, i_, j_, r_, s_)
        for o_ in range(layer.spec.filters)
        for i_, r_ in _reach(h, ho, kh, sh, ph, ph)
        for j_, s_ in _reach(w_, wo, kw, sw, pw, pw)
    ]
    total = sum(wv[o_, 0, r_, s_] * dz[o_, i_, j_] for o_, i_, j_, r_, s_ in terms)
    # An entry whose every term is 0 teaches nothing; one that disagrees with the computed value is never shown.
    if not terms or want == 0 or not np.isclose(total, want, rtol=1e-9, atol=1e-15):
        return []
    ww, zbar = entry_base(w), entry_base(n_out)
    symbolic_terms = [
        sp.Mul(ww[o_ + 1, 1, r_ + 1, s_ + 1], Bar(zbar[o_ + 1, i_ + 1, j_ + 1]), evaluate=False) for o_, i_, j_, r_, s_ in terms
    ]
    numeric_terms = [sp.Mul(_factor(wv[o_, 0, r_, s_]), _factor(dz[o_, i_, j_]), evaluate=False) for o_, i_, j_, r_, s_ in terms]
    first = entry_base(n_in)[1, 1, 1]
    return [
        Para(words("With the worked example's numbers (section 4), the first input entry:")),
        Display(eq(Partial(sp.Symbol("L"), first), sp.Add(*symbolic_terms, evaluate=False))),
        Display(eq(sp.Add(*numeric_terms, evaluate=False), number(want))),
    ]


def _factor(value: float) -> sp.Symbol:
    r"""A number as a factor in parentheses, so that a product of numbers reads as one: (−0.1)(0.009235).

    >>> from render.printer import latex
    >>> latex(sp.Mul(_factor(-0.1), _factor(0.5), evaluate=False))
    '\\left(-0.1\\right) \\left(0.5\\right)'
    """
    from render.printer import latex, number

    return sp.Symbol(rf"\left({latex(number(value))}\right)")
