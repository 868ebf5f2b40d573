"""The check of the worked example: PyTorch float64 autograd where torch is installed, else mpmath central differences.

The report says which check ran and what it found; a check that did not run is never claimed.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import sympy as sp

from render.blocks import Heading, Para, Table, words
from render.sections.common import Model, grad, sym
from render.sections.overview import loss_name
from symbolic.layers import AvgPool, Conv2D, Dense, Flatten, LeakyReLU, MaxPool, ReLU, Sigmoid, Tanh
from symbolic.layers.loss import BCE, SoftmaxCE

# Two float64 computations of the same numbers agree to about this much, relative to the largest entry.
AGREE = 1e-9


def torch_available() -> bool:
    """Whether PyTorch can be imported here (without importing it).

    >>> isinstance(torch_available(), bool)
    True
    """
    return importlib.util.find_spec("torch") is not None


def _cache_file(model: Model):
    """Where PyTorch's numbers for this network, case and torch version are kept (``symbolic.numeric.cache.folder``)."""
    import dataclasses
    import hashlib
    from importlib.metadata import version

    from symbolic.numeric import cache

    h = hashlib.sha256(repr(dataclasses.replace(model.spec, name="")).encode())
    for key in sorted(model.case):
        h.update(key.encode() + np.ascontiguousarray(model.case[key], dtype=float).tobytes())
    h.update(version("torch").encode())
    return cache.folder() / f"torch-{h.hexdigest()[:32]}.npz"


def torch_values(model: Model) -> dict:
    """PyTorch's numbers for the worked example, from the cache when this very computation ran before (importing torch takes seconds)."""
    path = _cache_file(model)
    try:
        with np.load(path) as stored:
            return {k: stored[k] for k in stored.files}
    except (OSError, ValueError):
        pass
    out = run_torch(model)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **out)
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written is skipped
    return out


def run_torch(model: Model) -> dict:
    """Loss, every stage, and every gradient of the worked example by PyTorch float64 autograd (an independent forward)."""
    import torch
    import torch.nn.functional as F

    f64 = torch.float64
    case = model.case
    x = torch.tensor(np.asarray(case["X"])[None], dtype=f64, requires_grad=True)
    p = {k: torch.tensor(np.asarray(case[k]), dtype=f64, requires_grad=True) for k in model.spec.param_shapes}
    h, stages = x, {"X": x}
    for la in model.layers:
        s = la.spec
        if isinstance(la, Conv2D):
            h = F.conv2d(h, p[la.names["W"]], p[la.names["B"]], stride=s.stride, padding=s.padding)
        elif isinstance(la, Dense):
            h = F.linear(h, p[la.names["W"]], p[la.names["B"]])
        elif isinstance(la, LeakyReLU):
            h = F.leaky_relu(h, s.slope)
        elif isinstance(la, ReLU):
            h = F.relu(h)
        elif isinstance(la, Tanh):
            h = torch.tanh(h)
        elif isinstance(la, Sigmoid):
            h = torch.sigmoid(h)
        elif isinstance(la, MaxPool):
            h = F.max_pool2d(h, s.window, s.stride)
        elif isinstance(la, AvgPool):
            h = F.avg_pool2d(h, s.window, s.stride)
        elif isinstance(la, Flatten):
            h = h.reshape(1, -1)
        h.retain_grad()
        stages[la.names["out"]] = h
    y = torch.tensor(np.asarray(case["Y"], dtype=float).reshape(1, -1), dtype=f64)
    if isinstance(model.loss, BCE):
        loss = F.binary_cross_entropy_with_logits(h, y)
    elif isinstance(model.loss, SoftmaxCE):
        loss = F.cross_entropy(h, y)
    else:
        loss = F.mse_loss(h, y)
    loss.backward()
    out = {"L": loss.detach().numpy()}
    for name, t in stages.items():
        out[name] = t.detach().numpy()[0]
        out[f"dL/d{name}"] = t.grad.detach().numpy()[0]
    for name, t in p.items():
        out[f"dL/d{name}"] = t.grad.detach().numpy()
    return out


def relative_gap(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest difference, relative to the largest entry of the reference (0 for two zero arrays).

    >>> round(relative_gap(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 2e-12])), 15)
    1e-12
    """
    a, b = np.asarray(ours, dtype=float).ravel(), np.asarray(theirs, dtype=float).ravel()
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    gap = float(np.max(np.abs(a - b))) if a.size else 0.0
    return gap / scale if scale else gap


def _gap(gap: float) -> str:
    return f"{gap:.1e}" if gap else "0"


def _order(model: Model) -> list[str]:
    keys = [la.names["out"] for la in model.layers] + ["L"]
    for la in [model.loss, *reversed(model.layers)]:
        keys += [f"dL/d{la.names[r]}" for r in la.roles] + [f"dL/d{la.names['in']}"]
    return keys


def _kinks(model: Model) -> list[str]:
    """Where the worked example sits on a kink: a ReLU input exactly 0, or a max-pool window with tied maxima."""
    found = []
    for la in model.layers:
        if isinstance(la, (ReLU, LeakyReLU)) and np.any(np.asarray(model.values[la.names["in"]]) == 0):
            found.append(f"an input of {la.title} is exactly 0")
        if isinstance(la, MaxPool):
            a = np.asarray(model.values[la.names["in"]])
            windows = [[a[(ch, *rc)] for rc in cells] for ch in range(a.shape[0]) for cells in la.windows().values()]
            if any(w.count(max(w)) > 1 for w in windows):
                found.append(f"a window of {la.title} has tied maxima")
    return found


def blocks(model: Model) -> list:
    """The check section: which check ran, on what, and the largest relative gap per quantity."""
    out: list = [Heading("5. Checking the worked example", 1, "check")]
    if torch_available():
        ref = torch_values(model)
        gaps = {key: relative_gap(model.values[key], ref[key]) for key in _order(model) if key in ref and key in model.values}
        worst = max(gaps.values())
        rows = []
        for la in [*model.layers, model.loss]:
            out_key = "L" if la is model.loss else la.names["out"]
            grad_keys = [f"dL/d{la.names['in']}"] + [f"dL/d{la.names[r]}" for r in la.roles]
            rows.append(
                (
                    words(f"{la.index}: {loss_name(la) if la is model.loss else la.kind}"),
                    words(sym(out_key), f": {_gap(gaps[out_key])}"),
                    words(
                        *[part for k, key in enumerate(grad_keys) for part in ((", " if k else ""), grad(key[4:]), f": {_gap(gaps[key])}")]
                    ),
                )
            )
        verdict = (
            f"They agree: the largest gap is {worst:.1e}, at the level of float64 rounding."
            if worst <= AGREE
            else f"They DISAGREE: the largest gap is {worst:.1e}, more than float64 rounding ({AGREE:.0e}) explains."
        )
        if model.spec.ties != "first" and any("tied" in k for k in _kinks(model)):
            verdict += (
                f" This case has a tied max-pool window, and this network uses the “{model.spec.ties}” tie convention where "
                "PyTorch sends the gradient to the first maximum: the two differ there by design."
            )
        out += [
            Para(
                words(
                    "The same case through PyTorch in float64 (autograd on torch.nn.functional layers, an implementation that shares "
                    "nothing with the engine). Each entry is the largest difference between the two, relative to the largest entry "
                    "of PyTorch's value, for each layer's output and for the gradients the layer's rules give. " + verdict
                )
            ),
            Table((words("layer"), words("its output"), words("the gradients it passes on")), tuple(rows), "lll"),
        ]
        return out
    from symbolic.check import central_differences

    kinks = _kinks(model)
    entries = _entries(model)
    cd = central_differences(model.spec, model.case["X"], entries["values"], model.case["Y"], entries["grads"])
    worst = max(d.relative for d in cd)
    note = (
        " Careful: here " + "; ".join(kinks) + ". At a kink a central difference averages the two one-sided slopes, which is not the "
        "convention the rules (and PyTorch) use, so a gap there is expected and says nothing against the rules."
        if kinks
        else " The case sits on no kink (no ReLU input is 0, no window ties), so the difference quotients are a fair check."
    )
    out += [
        Para(
            words(
                "PyTorch is not installed here, so the comparison with PyTorch did not run. Instead every parameter's gradient is "
                "compared with a central difference of the loss, evaluated with mpmath at 40 digits from the forward expressions "
                f"alone (no derivative of ours): the largest gap, relative to the largest gradient, is {worst:.1e}." + note
            )
        ),
        Table(
            (words("parameter entry"), words("derivative"), words("central difference"), words("relative gap")),
            tuple(
                (words(sp.Symbol(d.name)), words(f"{d.derivative:.6g}"), words(f"{d.central:.6g}"), words(f"{d.relative:.1e}")) for d in cd
            ),
            "lrrr",
        ),
    ]
    return out


def _entries(model: Model) -> dict:
    """Parameter values and gradients keyed by entry name (w_11, ...), in the engine's order."""
    from symbolic.network import build

    names = list(build(model.spec).entries())
    values = np.concatenate([np.asarray(model.case[p], dtype=float).ravel() for p in model.spec.param_shapes])
    grads = np.concatenate([np.asarray(model.values[f"dL/d{p}"], dtype=float).ravel() for p in model.spec.param_shapes])
    return {"values": dict(zip(names, values)), "grads": dict(zip(names, grads))}
