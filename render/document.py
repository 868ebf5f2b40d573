"""Which networks get the lecture's handout: the seed network (conv, ReLU, max-pool, flatten, dense,
BCE) at any sizes, whatever its name. The handout itself is built by ``render.lecture``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from symbolic.errors import RenderError, SpecError
from symbolic.spec import NetworkSpec, load_spec, seed_spec  # noqa: F401 - load_spec: for the doctests

# The seed's layers, in order: what the lecture's handout explains.
SEED_LAYERS = ("conv2d", "relu", "maxpool", "flatten", "dense")
NOT_SEED = "build: handouts for specs other than the seed are not supported yet"


@dataclass(frozen=True)
class SeedSizes:
    """The lecture's sizes of a seed network: input n×n, filter k×k, pool window and stride, and what follows.

    >>> seed_sizes(load_spec())
    SeedSizes(n=6, k=3, pool=2, conv=4, pooled=2, flat=4, n_params=15)
    """

    n: int
    k: int
    pool: int
    conv: int
    pooled: int
    flat: int
    n_params: int


def seed_sizes(spec: NetworkSpec) -> SeedSizes | None:
    """The sizes if ``spec`` is the lecture's network (``seed_spec(n, k, pool)``, whatever its name), else None.

    >>> seed_sizes(seed_spec(5, 2)).conv, seed_sizes(load_spec("part3"))
    (4, None)
    """
    if tuple(la.type for la in spec.layers) != SEED_LAYERS:
        return None
    n, k, pool = spec.input[-1], spec.layers[0].kernel[0], spec.layers[2].window[0]
    try:
        reference = seed_spec(n, k, pool)
    except SpecError:
        return None
    # The name is only a label, and [6, 6] or [1, 6, 6] describe the same input.
    if dataclasses.replace(spec, name="", input_rank=reference.input_rank) != dataclasses.replace(reference, name=""):
        return None
    return SeedSizes(n=n, k=k, pool=pool, conv=spec.shapes[1][1], pooled=spec.shapes[3][1], flat=spec.shapes[4][0], n_params=spec.n_params)


def require_seed(spec: NetworkSpec) -> SeedSizes:
    """The seed's sizes, or RenderError for a network this handout does not explain.

    >>> require_seed(load_spec("part3"))
    Traceback (most recent call last):
    ...
    symbolic.errors.RenderError: build: handouts for specs other than the seed are not supported yet
    """
    sizes = seed_sizes(spec)
    if sizes is None:
        raise RenderError(NOT_SEED)
    return sizes
