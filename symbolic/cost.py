"""How much symbolic work a network asks for, estimated before any is done.

The work of every command grows with the number of *terms* the layers build: a conv output
entry is a sum of channels × kernel products, a dense unit a sum over its inputs, a pool
window a choice among its cells. Seconds per term were measured on a 2-core machine
(``benchmarks/bench_verify.py`` prints them); the estimate is there to refuse, up front, work
that would take minutes, not to predict to the second.
"""

from __future__ import annotations

import math

from symbolic.errors import SizeError
from symbolic.spec import NetworkSpec, load_spec  # noqa: F401 - load_spec: for the doctests

# Seconds per term, measured: verify at n = 64 (43 k terms) takes about 16 s.
SECONDS_PER_TERM = {"verify": 4e-4, "expand": 4e-4}
LIMIT_SECONDS = 120.0


def terms(spec: NetworkSpec) -> int:
    """The number of symbolic terms the forward pass builds (per sample, times the batch).

    >>> terms(load_spec())
    184
    """
    total = 0
    for layer, out in zip(spec.layers, spec.shapes[1:]):
        size = math.prod(out)
        if layer.type == "conv2d":
            total += size * spec.shapes[spec.layers.index(layer)][0] * math.prod(layer.kernel)
        elif layer.type == "dense":
            total += size * spec.shapes[spec.layers.index(layer)][0]
        elif layer.type in ("maxpool", "avgpool"):
            total += size * math.prod(layer.window)
        else:
            total += size
    return total * spec.batch


def estimate_seconds(spec: NetworkSpec, command: str) -> float:
    """The rough wall time of ``command`` for ``spec``.

    >>> estimate_seconds(load_spec(), "verify") < 2
    True
    """
    return 1.0 + terms(spec) * SECONDS_PER_TERM[command]


def check_size(spec: NetworkSpec, command: str, force: bool = False, where: str = "--spec") -> None:
    """Refuse work estimated at more than two minutes unless ``force``.

    >>> from symbolic.spec import seed_spec
    >>> check_size(seed_spec(500, 3), "verify", where="--n")
    Traceback (most recent call last):
    ...
    symbolic.errors.SizeError: --n: verify would take about 19 min here (2.9 M symbolic terms); expected work under 2 min, or add --force to go on anyway
    """
    seconds = estimate_seconds(spec, command)
    if seconds > LIMIT_SECONDS and not force:
        shown = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
        raise SizeError(
            f"{where}: {command} would take about {shown} here ({terms(spec) / 1e6:.1f} M symbolic terms); "
            "expected work under 2 min, or add --force to go on anyway"
        )


__all__ = ["check_size", "estimate_seconds", "terms"]
