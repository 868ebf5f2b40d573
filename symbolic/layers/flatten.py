"""flatten: row-major over channels, then rows, then columns; its backward is the reverse reshape."""

from __future__ import annotations

from symbolic.layers.base import Array, Context, Grads, Layer, Statement
from symbolic.names import tex_name


class Flatten(Layer):
    """Row-major flatten: F = (p_111, p_112, ..., p_121, ...)."""

    kind = "flatten"

    def forward(self, ctx: Context, x: Array, params: dict[str, Array]) -> Array:
        ctx.saved["shape"] = x.shape
        return x.reshape(x.shape[0], -1).copy()

    def backward(self, ctx: Context, g: Array) -> Grads:
        return g.reshape(ctx.saved["shape"]).copy(), {}

    def statements(self) -> tuple[Statement, ...]:
        i, o = self.names["in"], self.names["out"]
        return (
            Statement(
                "input",
                f"flatten backward: dL/d{i} = dL/d{o} reshaped to the shape of {i} (row-major)",
                rf"\frac{{\partial L}}{{\partial {tex_name(i)}}} = \operatorname{{reshape}}\Big(\frac{{\partial L}}{{\partial {tex_name(o)}}}\Big)",
            ),
        )
