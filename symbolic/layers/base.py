"""The one interface every layer has, and the context a layer keeps between its two passes.

As in tinygrad's ``Function``: ``forward(ctx, x, params)`` builds the layer's output from its
input and parameters, saving what the backward pass needs on ``ctx``;
``backward(ctx, g) -> (g_in, g_params)`` states the layer's rule for the gradient of its input
and of each parameter, given the gradient of its output. Forward expressions are raw
(Piecewise at kinks, named functions); backward expressions are in canonical form (atoms).

Arrays are numpy object arrays of SymEngine expressions with the batch axis first:
``(B, C, H, W)`` for images, ``(B, m)`` for vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import symengine as se

from symbolic.atoms import Atoms
from symbolic.spec import LayerSpec

Array = np.ndarray
Grads = tuple[Array, dict[str, Array]]


def obj(shape: tuple[int, ...], fill: Callable[..., Any]) -> Array:
    """An object array of ``shape`` filled by ``fill(*index)``.

    >>> obj((2, 2), lambda i, j: i + j).tolist()
    [[0, 1], [1, 2]]
    """
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = fill(*idx)
    return out


def zeros(shape: tuple[int, ...]) -> Array:
    """An object array of exact zeros.

    >>> zeros((2,)).tolist()
    [0, 0]
    """
    return obj(shape, lambda *_: se.Integer(0))


@dataclass
class Context:
    """What one application of a layer keeps: the atom registry, entry labels, saved inputs.

    ``in_labels`` and ``out_labels`` are object arrays of entry names (``"z_11"``), shaped like
    the layer's input and output; atoms are labelled with them.
    """

    atoms: Atoms
    in_labels: Array
    out_labels: Array
    out_name: str = ""
    saved: dict[str, Any] = field(default_factory=dict)

    def canon(self, arr: Array) -> Array:
        """An array in canonical form (atoms for kinks and named functions)."""
        arr = np.asarray(arr, dtype=object)
        return obj(arr.shape, lambda *i: self.atoms.canon(arr[i]))


@dataclass(frozen=True)
class Statement:
    """A rule's statement: which gradient it gives (``key``: "input" or a parameter role), in words and LaTeX."""

    key: str
    text: str
    latex: str


class Layer:
    """Base of every layer: its spec entry, where it sits, and its parameter names.

    ``names`` maps the layer's roles to the network's names: ``in``, ``out`` (stage names such
    as ``A1``, ``P1``) and, for trainable layers, ``W`` and ``B`` (``W2``, ``B2``).
    """

    kind: ClassVar[str] = ""
    roles: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: LayerSpec, index: int, in_shape: tuple[int, ...], out_shape: tuple[int, ...], names: dict[str, str]) -> None:
        self.spec = spec
        self.index = index
        self.in_shape = in_shape
        self.out_shape = out_shape
        self.names = names

    @property
    def params(self) -> tuple[str, ...]:
        """The network names of this layer's parameters, e.g. ``("W1", "B1")``."""
        return tuple(self.names[r] for r in self.roles)

    @property
    def title(self) -> str:
        """How messages and listings name the layer: ``layer 3 (maxpool)``."""
        return f"layer {self.index} ({self.kind})"

    def forward(self, ctx: Context, x: Array, params: dict[str, Array]) -> Array:
        raise NotImplementedError

    def backward(self, ctx: Context, g: Array) -> Grads:
        raise NotImplementedError

    def statements(self) -> tuple[Statement, ...]:
        """The layer's rules, one per gradient it passes on (input first, then parameters)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.title}: {self.names['in']} -> {self.names['out']})"
