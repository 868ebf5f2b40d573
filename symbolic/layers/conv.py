"""conv2d: a cross-correlation (as in PyTorch) with stride, zero padding and one bias per filter.

Forward: Z[o, i, j] = B[o] + sum over c, a, e of W[o, c, a, e] · Xpad[c, s·i + a, s·j + e].

Backward, in the vocabulary of the lecture's part 3 (each helper below is one word of it):

* dL/dW[o, c] = conv(Xpad[c], dilate_s(dL/dZ[o])), summed over the samples;
* dL/dB[o] = the sum of dL/dZ[o];
* dL/dX[c] = crop_p( sum over o of full_conv(dilate_s(dL/dZ[o]), rot180(W[o, c])) ).
"""

from __future__ import annotations

import numpy as np
import symengine as se

from symbolic.layers.base import Array, Context, Grads, Layer, Statement, obj, zeros
from symbolic.names import tex_name


def _tex(name: str) -> str:
    """A stage name braced, so that an index can follow it: ``{Z_{1}}_o``, never the invalid ``Z_{1}_o``."""
    return "{" + tex_name(name) + "}"


def pad(a: Array, ph: int, pw: int) -> Array:
    """A 2-D array with ``ph`` rows and ``pw`` columns of zeros added on each side.

    >>> pad(np.array([[1]], dtype=object), 1, 0).tolist()
    [[0], [1], [0]]
    """
    out = zeros((a.shape[0] + 2 * ph, a.shape[1] + 2 * pw))
    out[ph : ph + a.shape[0], pw : pw + a.shape[1]] = a
    return out


def dilate(a: Array, s: tuple[int, int]) -> Array:
    """``s - 1`` zeros inserted between neighbouring entries (the stride, undone).

    >>> dilate(np.array([[1, 2]], dtype=object), (1, 2)).tolist()
    [[1, 0, 2]]
    """
    sh, sw = s
    out = zeros(((a.shape[0] - 1) * sh + 1, (a.shape[1] - 1) * sw + 1))
    out[::sh, ::sw] = a
    return out


def rot180(a: Array) -> Array:
    """The kernel turned by 180°: flipped up-down and left-right.

    >>> rot180(np.array([[1, 2], [3, 4]], dtype=object)).tolist()
    [[4, 3], [2, 1]]
    """
    return a[::-1, ::-1].copy()


def crop(a: Array, ph: int, pw: int) -> Array:
    """``ph`` rows and ``pw`` columns removed from each side (the padding, undone).

    >>> crop(np.arange(9, dtype=object).reshape(3, 3), 1, 1).tolist()
    [[4]]
    """
    return a[ph : a.shape[0] - ph, pw : a.shape[1] - pw].copy()


def correlate(a: Array, k: Array, stride: tuple[int, int] = (1, 1)) -> Array:
    """Valid cross-correlation of 2-D ``a`` with 2-D ``k``: what the lecture calls conv. Zeros are skipped.

    >>> correlate(np.array([[1, 2, 3]], dtype=object), np.array([[1, -1]], dtype=object)).tolist()
    [[-1, -1]]
    """
    kh, kw = k.shape
    sh, sw = stride
    ho, wo = (a.shape[0] - kh) // sh + 1, (a.shape[1] - kw) // sw + 1
    taps = [(u, v, k[u, v]) for u in range(kh) for v in range(kw) if k[u, v] != 0]
    return obj(
        (ho, wo),
        lambda i, j: se.Add(*[a[sh * i + u, sw * j + v] * w for u, v, w in taps if a[sh * i + u, sw * j + v] != 0]),
    )


def full_conv(a: Array, k: Array) -> Array:
    """The full convolution: ``a`` padded by the kernel size minus 1, then correlated with ``k``.

    >>> full_conv(np.array([[1]], dtype=object), np.array([[1, 2]], dtype=object)).tolist()
    [[2, 1]]
    """
    kh, kw = k.shape
    return correlate(pad(a, kh - 1, kw - 1), k)


class Conv2D(Layer):
    """conv2d with any number of channels and filters, rectangular kernels, stride and padding."""

    kind = "conv2d"
    roles = ("W", "B")

    def forward(self, ctx: Context, x: Array, params: dict[str, Array]) -> Array:
        W, b = params[self.names["W"]], params[self.names["B"]]
        (ph, pw), stride = self.spec.padding, self.spec.stride
        ctx.saved["x"], ctx.saved["W"] = x, W
        out = np.empty((x.shape[0], *self.out_shape), dtype=object)
        for n in range(x.shape[0]):
            padded = [pad(x[n, c], ph, pw) for c in range(x.shape[1])]
            for o in range(W.shape[0]):
                maps = [correlate(padded[c], W[o, c], stride) for c in range(x.shape[1])]
                out[n, o] = obj(maps[0].shape, lambda i, j, maps=maps, bias=b[o]: se.Add(*[m[i, j] for m in maps], bias))
        return out

    def backward(self, ctx: Context, g: Array) -> Grads:
        x, W = ctx.canon(ctx.saved["x"]), ctx.saved["W"]
        (ph, pw), stride = self.spec.padding, self.spec.stride
        batch, channels = x.shape[0], x.shape[1]
        gW = zeros(W.shape)
        gx = zeros(x.shape)
        for n in range(batch):
            for o in range(W.shape[0]):
                gd = dilate(g[n, o], stride)
                for c in range(channels):
                    gW[o, c] = gW[o, c] + correlate(pad(x[n, c], ph, pw), gd)
                    gx[n, c] = gx[n, c] + crop(full_conv(gd, rot180(W[o, c])), ph, pw)
        gb = obj((W.shape[0],), lambda o: se.Add(*g[:, o].ravel()))
        return gx, {self.names["W"]: gW, self.names["B"]: gb}

    def statements(self) -> tuple[Statement, ...]:
        i, o, w, b = self.names["in"], self.names["out"], self.names["W"], self.names["B"]
        s, p = self.spec.stride, self.spec.padding
        dil = f"dilate_{s[0]}" if s == (s[0], s[0]) else f"dilate_{s}"
        dz = f"dL/d{o}" if s == (1, 1) else f"{dil}(dL/d{o})"
        ldz = rf"\partial L/\partial {_tex(o)}"
        ldz = ldz if s == (1, 1) else rf"\operatorname{{dilate}}_{{{s[0]}}}({ldz})"
        pad_txt = "" if p == (0, 0) else f", cropped by {p[0]}" if p[0] == p[1] else f", cropped by {p}"
        xin = _tex(i) if p == (0, 0) else rf"\operatorname{{pad}}_{{{p[0]}}}({_tex(i)})"
        return (
            Statement(
                "input",
                f"conv input gradient: dL/d{i}[c] = sum over o of full_conv({dz}[o], rot180({w}[o, c])){pad_txt}",
                rf"\frac{{\partial L}}{{\partial {_tex(i)}_c}} = "
                + (r"\operatorname{crop}_{" + str(p[0]) + "}" if p != (0, 0) else "")
                + rf"\Big(\sum_o \operatorname{{full\,conv}}\big({ldz}_o,\ \operatorname{{rot180}}({_tex(w)}_{{o,c}})\big)\Big)",
            ),
            Statement(
                "W",
                f"filter gradient: dL/d{w}[o, c] = conv({i if p == (0, 0) else f'pad({i})'}[c], {dz}[o])",
                rf"\frac{{\partial L}}{{\partial {_tex(w)}_{{o,c}}}} = \operatorname{{conv}}\big({xin}_c,\ {ldz}_o\big)",
            ),
            Statement(
                "B",
                f"bias gradient: dL/d{b}[o] = sum over i, j of dL/d{o}[o, i, j]",
                rf"\frac{{\partial L}}{{\partial {_tex(b)}_o}} = \sum_{{i,j}} \frac{{\partial L}}{{\partial {_tex(o)}_{{o,i,j}}}}",
            ),
        )
