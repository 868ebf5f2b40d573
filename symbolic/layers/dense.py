"""dense: Z = W F + B, for any number of units (weights [units, inputs], as in PyTorch)."""

from __future__ import annotations

import symengine as se

from symbolic.layers.base import Array, Context, Grads, Layer, Statement, obj
from symbolic.names import tex_name


class Dense(Layer):
    """A fully connected layer."""

    kind = "dense"
    roles = ("W", "B")

    def forward(self, ctx: Context, x: Array, params: dict[str, Array]) -> Array:
        W, b = params[self.names["W"]], params[self.names["B"]]
        ctx.saved["x"], ctx.saved["W"] = x, W
        return obj((x.shape[0], W.shape[0]), lambda n, u: se.Add(*[W[u, j] * x[n, j] for j in range(W.shape[1])], b[u]))

    def backward(self, ctx: Context, g: Array) -> Grads:
        x, W = ctx.canon(ctx.saved["x"]), ctx.saved["W"]
        units, inputs = W.shape
        gx = obj(x.shape, lambda n, j: se.Add(*[g[n, u] * W[u, j] for u in range(units)]))
        gW = obj(W.shape, lambda u, j: se.Add(*[g[n, u] * x[n, j] for n in range(x.shape[0])]))
        gb = obj((units,), lambda u: se.Add(*g[:, u]))
        return gx, {self.names["W"]: gW, self.names["B"]: gb}

    def statements(self) -> tuple[Statement, ...]:
        i, o, w, b = self.names["in"], self.names["out"], self.names["W"], self.names["B"]
        ti, to, tw, tb = (tex_name(n) for n in (i, o, w, b))
        d = rf"\frac{{\partial L}}{{\partial {to}}}"
        return (
            Statement("input", f"dense input gradient: dL/d{i} = {w}^T dL/d{o}", rf"\frac{{\partial L}}{{\partial {ti}}} = {tw}^{{T}} {d}"),
            Statement("W", f"dense weight gradient: dL/d{w} = dL/d{o} {i}^T", rf"\frac{{\partial L}}{{\partial {tw}}} = {d}\, {ti}^{{T}}"),
            Statement("B", f"dense bias gradient: dL/d{b} = dL/d{o}", rf"\frac{{\partial L}}{{\partial {tb}}} = {d}"),
        )
