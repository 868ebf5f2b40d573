"""Pools with a window and a stride (stride < window: overlapping windows).

* maxpool: each window's value is its maximum; its gradient goes to the window's maximum under
  the tie convention (first, split or all). A cell in several windows receives the sum of
  what each window sends it.
* avgpool: each window's value is its mean; each cell receives dL/dP / (window area), summed
  over its windows.
"""

from __future__ import annotations

import numpy as np
import symengine as se

from symbolic.functions import window_max
from symbolic.layers.base import Array, Context, Grads, Layer, Statement, obj, zeros
from symbolic.names import tex_name


class Pool(Layer):
    """Shared window geometry."""

    def windows(self) -> dict[tuple[int, int], list[tuple[int, int]]]:
        """For each output cell (r, s), the input cells of its window in row-major order."""
        (kh, kw), (sh, sw) = self.spec.window, self.spec.stride
        _, ho, wo = self.out_shape
        return {(r, s): [(r * sh + a, s * sw + e) for a in range(kh) for e in range(kw)] for r in range(ho) for s in range(wo)}

    def _geometry(self) -> str:
        (kh, kw), (sh, sw) = self.spec.window, self.spec.stride
        overlap = ", overlapping" if sh < kh or sw < kw else ""
        return f"window {kh}×{kw}, stride {sh if sh == sw else (sh, sw)}{overlap}"


class MaxPool(Pool):
    """Max-pool under the network's tie convention."""

    kind = "maxpool"

    def __init__(self, *args: object, ties: str = "first", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.ties = ties

    def forward(self, ctx: Context, x: Array, params: dict[str, Array]) -> Array:
        ctx.saved["x"] = x
        win = self.windows()
        out = np.empty((x.shape[0], *self.out_shape), dtype=object)
        for idx in np.ndindex(*out.shape):
            n, c, r, s = idx
            cells = [(n, c, *ab) for ab in win[r, s]]
            values = [x[cell] for cell in cells]
            ctx.atoms.window(values, self.ties, [ctx.in_labels[cell] for cell in cells], ctx.out_labels[idx])
            out[idx] = window_max(values, self.ties)
        return out

    def backward(self, ctx: Context, g: Array) -> Grads:
        x = ctx.saved["x"]
        win = self.windows()
        gx = zeros(x.shape)
        for idx in np.ndindex(*g.shape):
            n, c, r, s = idx
            cells = [(n, c, *ab) for ab in win[r, s]]
            sel = ctx.atoms.window([x[cell] for cell in cells], self.ties, [ctx.in_labels[cell] for cell in cells], ctx.out_labels[idx])
            for cell, routed in zip(cells, sel):
                gx[cell] = gx[cell] + g[idx] * routed
        return gx, {}

    def statements(self) -> tuple[Statement, ...]:
        i, o = self.names["in"], self.names["out"]
        who = {
            "first": "its window's first maximum (row-major)",
            "split": "each maximum of its window in equal shares",
            "all": "every maximum of its window in full",
        }[self.ties]
        return (
            Statement(
                "input",
                f"max-pool backward ({self._geometry()}, ties: {self.ties}): each entry of dL/d{o} goes to {who}; "
                f"dL/d{i} sums what its windows send, 0 elsewhere",
                rf"\frac{{\partial L}}{{\partial {tex_name(i)}}} = \operatorname{{unpool}}_{{\max}}\Big(\frac{{\partial L}}{{\partial {tex_name(o)}}}\Big)",
            ),
        )


class AvgPool(Pool):
    """Average pool: the mean of each window."""

    kind = "avgpool"

    def forward(self, ctx: Context, x: Array, params: dict[str, Array]) -> Array:
        ctx.saved["x"] = x
        win = self.windows()
        area = se.Integer(len(next(iter(win.values()))))
        return obj((x.shape[0], *self.out_shape), lambda n, c, r, s: se.Add(*[x[n, c, a, e] for a, e in win[r, s]]) / area)

    def backward(self, ctx: Context, g: Array) -> Grads:
        x = ctx.saved["x"]
        win = self.windows()
        area = se.Integer(len(next(iter(win.values()))))
        gx = zeros(x.shape)
        for idx in np.ndindex(*g.shape):
            n, c, r, s = idx
            for a, e in win[r, s]:
                gx[n, c, a, e] = gx[n, c, a, e] + g[idx] / area
        return gx, {}

    def statements(self) -> tuple[Statement, ...]:
        i, o = self.names["in"], self.names["out"]
        (kh, kw) = self.spec.window
        return (
            Statement(
                "input",
                f"avg-pool backward ({self._geometry()}): each cell of dL/d{i} receives dL/d{o} / {kh * kw} from every window it is in",
                rf"\frac{{\partial L}}{{\partial {tex_name(i)}}} = \operatorname{{unpool}}_{{\mathrm{{avg}}}}\Big(\frac{{\partial L}}{{\partial {tex_name(o)}}}\Big) / {kh * kw}",
            ),
        )
