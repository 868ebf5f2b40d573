"""The losses, each with its link (the prediction) and a numerically stable form.

* bce: one unit through the sigmoid. L = softplus(z) − y·z, which equals binary cross-entropy
  of σ(z) (``lemmas`` proves it of the expression built here). Numbers use PyTorch's form
  max(z, 0) − z·y + log1p(exp(−|z|)), also proven equal.
* softmax_ce: L = lse(z) − Σ y_k z_k, cross-entropy of softmax(z) for a probability vector y.
  Numbers: −Σ y_k (z_k − M − log Σ exp(z_j − M)) with M the maximum, as PyTorch computes it.
* mse: L = (1/m) Σ (z_k − y_k)², no link.

With a batch, L is the mean over the samples.
"""

from __future__ import annotations

import numpy as np
import symengine as se

from symbolic.functions import first_max, log1p, lse, softplus
from symbolic.layers.base import Array, Context, Grads, Layer, Statement, obj
from symbolic.names import tex_name


class Loss(Layer):
    """A loss: ``forward(ctx, z, {"Y": y})`` gives L as a 0-d array; ``backward(ctx, 1)`` gives dL/dz."""

    def forward(self, ctx: Context, x: Array, params: dict[str, Array]) -> Array:
        y = params["Y"]
        ctx.saved["x"], ctx.saved["Y"] = x, y
        batch = x.shape[0]
        per_sample = [self.sample_loss(ctx, x[n], y[n], ctx.in_labels[n], ctx.out_labels[n]) for n in range(batch)]
        out = np.empty((), dtype=object)
        out[()] = se.Add(*per_sample) / batch
        return out

    def sample_loss(self, ctx: Context, z: Array, y: Array, labels: Array, out_labels: Array) -> se.Expr:
        """One sample's loss; ``labels`` name z's entries, ``out_labels`` the prediction's."""
        raise NotImplementedError

    def prediction(self, ctx: Context) -> Array:
        """The network's output (canonical), shaped like z."""
        raise NotImplementedError

    def numeric_loss(self, ctx: Context) -> se.Expr:
        """L in the form numbers are computed from (canonical arguments)."""
        x = ctx.canon(ctx.saved["x"])
        y = ctx.saved["Y"]
        return se.Add(*[self.stable(x[n], y[n]) for n in range(x.shape[0])]) / x.shape[0]

    def stable(self, z: Array, y: Array) -> se.Expr:
        raise NotImplementedError

    def statements(self) -> tuple[Statement, ...]:
        i, o = self.names["in"], self.names["out"]
        text, tex = self.rule.format(i=i, o=o), self.rule_tex.format(i=tex_name(i), o=tex_name(o))
        return (
            Statement("input", f"{self.kind} loss gradient: dL/d{i} = {text}", rf"\frac{{\partial L}}{{\partial {tex_name(i)}}} = {tex}"),
        )

    rule = ""
    rule_tex = ""


class BCE(Loss):
    """Binary cross-entropy on one unit through the sigmoid."""

    kind = "bce"
    rule = "{o} - Y"
    rule_tex = "{o} - Y"

    def sample_loss(self, ctx: Context, z: Array, y: Array, labels: Array, out_labels: Array) -> se.Expr:
        u, yy = z[0], y[0]
        ctx.atoms.unary("sigmoid", u, out_labels[0])
        ctx.atoms.unary("softplus", u, labels[0])
        return softplus(u) - yy * u

    def prediction(self, ctx: Context) -> Array:
        x = ctx.saved["x"]
        return obj(x.shape, lambda n, k: ctx.atoms.lookup("sigmoid", (x[n, k],)))

    def backward(self, ctx: Context, g: Array) -> Grads:
        x, y = ctx.saved["x"], ctx.saved["Y"]
        p = self.prediction(ctx)
        return obj(x.shape, lambda n, k: g * (p[n, k] - y[n, k]) / x.shape[0]), {}

    def stable(self, z: Array, y: Array) -> se.Expr:
        u, yy = z[0], y[0]
        # PyTorch's max(u, 0) - u y + log1p(exp(-|u|)), one branch per sign of u. Above 0 it is
        # written u (1 - y) so that u - u y is formed before the tiny log1p term is added: a sum
        # of three terms is evaluated in SymEngine's term order, which could add it to u first.
        return se.Piecewise((u * (1 - yy) + log1p(se.exp(-u)), se.Gt(u, 0)), (-u * yy + log1p(se.exp(u)), True))


class SoftmaxCE(Loss):
    """Softmax cross-entropy over the units, Y a probability vector."""

    kind = "softmax_ce"
    rule = "{o} - Y  (with {o} = softmax({i}))"
    rule_tex = r"{o} - Y"

    def sample_loss(self, ctx: Context, z: Array, y: Array, labels: Array, out_labels: Array) -> se.Expr:
        ctx.atoms.softmax(list(z), list(out_labels), "L")
        return lse(*z) - se.Add(*[yk * zk for yk, zk in zip(y, z)])

    def prediction(self, ctx: Context) -> Array:
        x = ctx.saved["x"]
        return obj(x.shape, lambda n, k: ctx.atoms.lookup("softmax", tuple(x[n]), k))

    def backward(self, ctx: Context, g: Array) -> Grads:
        x, y = ctx.saved["x"], ctx.saved["Y"]
        p = self.prediction(ctx)
        return obj(x.shape, lambda n, k: g * (p[n, k] - y[n, k]) / x.shape[0]), {}

    def stable(self, z: Array, y: Array) -> se.Expr:
        m = first_max(list(z))
        log_sum = se.log(se.Add(*[se.exp(zk - m) for zk in z]))
        return -se.Add(*[yk * (zk - m - log_sum) for yk, zk in zip(y, z)])


class MSE(Loss):
    """Mean squared error over the units; the prediction is z itself."""

    kind = "mse"
    rule = "2 ({i} - Y) / m"
    rule_tex = r"\tfrac{{2}}{{m}}\,({i} - Y)"

    def sample_loss(self, ctx: Context, z: Array, y: Array, labels: Array, out_labels: Array) -> se.Expr:
        return se.Add(*[(zk - yk) ** 2 for zk, yk in zip(z, y)]) / len(z)

    def prediction(self, ctx: Context) -> Array:
        return ctx.canon(ctx.saved["x"])

    def backward(self, ctx: Context, g: Array) -> Grads:
        x, y = ctx.canon(ctx.saved["x"]), ctx.saved["Y"]
        batch, m = x.shape
        return obj(x.shape, lambda n, k: g * 2 * (x[n, k] - y[n, k]) / (m * batch)), {}

    def stable(self, z: Array, y: Array) -> se.Expr:
        return se.Add(*[(zk - yk) ** 2 for zk, yk in zip(z, y)]) / len(z)


LOSS_LAYERS = {cls.kind: cls for cls in (BCE, SoftmaxCE, MSE)}
