"""Entrywise activations: relu, leaky_relu, tanh, sigmoid. Each backward is the upstream
gradient times the activation's derivative, written with the atoms the forward registered."""

from __future__ import annotations

import symengine as se

from symbolic.functions import exact, leaky_relu, relu, sigmoid
from symbolic.layers.base import Array, Context, Grads, Layer, Statement, obj
from symbolic.names import tex_name


class Activation(Layer):
    """An entrywise function; subclasses give ``value`` (raw), ``slope`` (canonical) and the rule's words."""

    rule_text: str = ""
    rule_tex: str = ""

    def atom_label(self, ctx: Context, i: tuple) -> str:
        """What the layer's atom is called where it is shown: the input entry (for 1[z > 0])."""
        return ctx.in_labels[i]

    def value(self, ctx: Context, z: se.Expr, label: str) -> se.Expr:
        raise NotImplementedError

    def slope(self, ctx: Context, z: se.Expr) -> se.Expr:
        """The derivative at z, in atoms."""
        raise NotImplementedError

    def forward(self, ctx: Context, x: Array, params: dict[str, Array]) -> Array:
        ctx.saved["x"] = x
        return obj(x.shape, lambda *i: self.value(ctx, x[i], self.atom_label(ctx, i)))

    def backward(self, ctx: Context, g: Array) -> Grads:
        x = ctx.saved["x"]
        return obj(x.shape, lambda *i: g[i] * self.slope(ctx, x[i])), {}

    def statements(self) -> tuple[Statement, ...]:
        i, o = self.names["in"], self.names["out"]
        ti, to = tex_name(i), tex_name(o)
        return (
            Statement(
                "input",
                f"{self.kind} backward: dL/d{i} = dL/d{o} * " + self.rule_text.format(i=i, o=o) + " (entrywise)",
                rf"\frac{{\partial L}}{{\partial {ti}}} = \frac{{\partial L}}{{\partial {to}}} \odot " + self.rule_tex.format(i=ti, o=to),
            ),
        )


class ReLU(Activation):
    """ReLU; its derivative at 0 is 0 (the strict ``z > 0``)."""

    kind = "relu"
    rule_text = "1[{i} > 0]"
    rule_tex = r"\mathbb{{1}}[{i} > 0]"

    def value(self, ctx: Context, z: se.Expr, label: str) -> se.Expr:
        ctx.atoms.step(z, label)
        return relu(z)

    def slope(self, ctx: Context, z: se.Expr) -> se.Expr:
        return ctx.atoms.lookup("step", (z,))


class LeakyReLU(Activation):
    """Leaky ReLU with a slope; its derivative at 0 is the slope, as in PyTorch."""

    kind = "leaky_relu"
    rule_tex = r"\big(\mathbb{{1}}[{i} > 0] + \alpha\,\mathbb{{1}}[{i} \le 0]\big)"

    @property
    def rule_text(self) -> str:  # type: ignore[override]
        return f"(1[{{i}} > 0] + {self.spec.slope:g}·1[{{i}} <= 0])"

    def value(self, ctx: Context, z: se.Expr, label: str) -> se.Expr:
        ctx.atoms.step(z, label)
        return leaky_relu(z, exact(self.spec.slope))

    def slope(self, ctx: Context, z: se.Expr) -> se.Expr:
        s = ctx.atoms.lookup("step", (z,))
        return s + exact(self.spec.slope) * (1 - s)


class Smooth(Activation):
    """An activation with a named smooth function whose atom is shown as the entry it makes."""

    @staticmethod
    def apply(z: se.Expr) -> se.Expr:
        raise NotImplementedError

    @staticmethod
    def derivative(a: se.Expr) -> se.Expr:
        """The derivative in terms of the function's own value (its atom)."""
        raise NotImplementedError

    def atom_label(self, ctx: Context, i: tuple) -> str:
        # tanh(z_11) is shown as the entry it becomes, a_11, as the lecture writes A2 for sigmoid(Z2).
        return ctx.out_labels[i]

    def value(self, ctx: Context, z: se.Expr, label: str) -> se.Expr:
        ctx.atoms.unary(self.kind, z, label)
        return self.apply(z)

    def slope(self, ctx: Context, z: se.Expr) -> se.Expr:
        return self.derivative(ctx.atoms.lookup(self.kind, (z,)))


class Tanh(Smooth):
    """tanh; SymEngine knows its derivative, 1 − tanh²."""

    kind = "tanh"
    rule_text = "(1 - {o}^2)"
    rule_tex = r"\big(1 - {o}^{{2}}\big)"
    apply = staticmethod(se.tanh)
    derivative = staticmethod(lambda t: 1 - t**2)


class Sigmoid(Smooth):
    """The logistic sigmoid; its derivative σ(1 − σ) is a lemma (``lemmas``)."""

    kind = "sigmoid"
    rule_text = "{o} (1 - {o})"
    rule_tex = r"{o} \odot (1 - {o})"
    apply = staticmethod(sigmoid)
    derivative = staticmethod(lambda s: s * (1 - s))


ACTIVATION_LAYERS = {cls.kind: cls for cls in (ReLU, LeakyReLU, Tanh, Sigmoid)}
