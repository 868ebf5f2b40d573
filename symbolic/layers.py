"""Each layer's forward rule and backward rule, side by side.

Arrays are numpy object arrays of SymEngine expressions. ``forward`` builds raw expressions
(Piecewise where the layer has a kink); ``backward`` states the lecture's rule for the gradient
in canonical form (atoms for the kinks), given the gradient of the layer above. ``rules.py``
proves each backward rule against brute-force differentiation of the forward.
"""
from __future__ import annotations

import numpy as np
import symengine as se

from symbolic.atoms import Atoms
from symbolic.functions import first_max, relu, softplus


def obj(shape, fill):
    """An object array of ``shape`` filled by ``fill(*index)``."""
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = fill(*idx)
    return out


class Conv2D:
    """Valid cross-correlation with stride 1, plus one bias: what the lecture and PyTorch call convolution."""

    @staticmethod
    def forward(X, W, b):
        """Z[i, j] = sum_kl W[k, l] X[i + k, j + l] + b."""
        k = W.shape[0]
        c = X.shape[0] - k + 1
        return obj((c, c), lambda i, j: se.Add(*[W[a, e] * X[i + a, j + e] for a in range(k) for e in range(k)], b))

    @staticmethod
    def backward(X, W, gZ):
        """dL/dW = conv(X, dL/dZ) (the same cross-correlation, with dL/dZ as the filter); dL/db = sum dL/dZ."""
        c = gZ.shape[0]
        k = W.shape[0]
        gW = obj((k, k), lambda a, e: se.Add(*[X[i + a, j + e] * gZ[i, j] for i in range(c) for j in range(c)]))
        gb = se.Add(*gZ.ravel())
        return gW, gb


class ReLU:
    """A = ReLU(Z) entrywise."""

    @staticmethod
    def forward(Z, atoms: Atoms, labels):
        for idx in np.ndindex(*Z.shape):
            atoms.step(Z[idx], labels[idx])
        return obj(Z.shape, lambda *i: relu(Z[i]))

    @staticmethod
    def mask(Z, atoms: Atoms, labels):
        """1[Z > 0] as atoms."""
        return obj(Z.shape, lambda *i: atoms.step(Z[i], labels[i]))

    @staticmethod
    def backward(Z, gA, atoms: Atoms, labels):
        """dL/dZ = dL/dA * 1[Z > 0]."""
        mask = ReLU.mask(Z, atoms, labels)
        return obj(Z.shape, lambda *i: gA[i] * mask[i])


class MaxPool:
    """Max over non-overlapping size x size windows (stride = size), first maximum wins ties."""

    @staticmethod
    def windows(side, size):
        """For each output cell (r, s), the input cells of its window in row-major order."""
        out = side // size
        return {
            (r, s): [(r * size + a, s * size + e) for a in range(size) for e in range(size)]
            for r in range(out) for s in range(out)
        }

    @staticmethod
    def forward(A, size, atoms: Atoms, labels, out_labels):
        win = MaxPool.windows(A.shape[0], size)
        for rs, cells in win.items():
            atoms.selectors([A[c] for c in cells], [labels[c] for c in cells], out_labels[rs])
        side = A.shape[0] // size
        return obj((side, side), lambda r, s: first_max([A[c] for c in win[r, s]]))

    @staticmethod
    def mask(A, size, atoms: Atoms, labels, out_labels):
        """1[A[i, j] is the first maximum of its window] as atoms."""
        out = obj(A.shape, lambda *i: se.Integer(0))
        for rs, cells in MaxPool.windows(A.shape[0], size).items():
            sel = atoms.selectors([A[c] for c in cells], [labels[c] for c in cells], out_labels[rs])
            for c, s in zip(cells, sel):
                out[c] = s
        return out

    @staticmethod
    def backward(A, gP, size, atoms: Atoms, labels, out_labels):
        """dL/dA[i, j] = dL/dP[window of (i, j)] where (i, j) is the window's first maximum, else 0."""
        mask = MaxPool.mask(A, size, atoms, labels, out_labels)
        return obj(A.shape, lambda i, j: gP[i // size, j // size] * mask[i, j])


class Flatten:
    """Row-major: F = (p_11, p_12, ..., p_21, ...)."""

    @staticmethod
    def forward(P):
        return P.reshape(-1).copy()

    @staticmethod
    def backward(P, gF):
        """dL/dP = dL/dF reshaped to P's shape: the reverse of the forward."""
        return gF.reshape(P.shape).copy()


class Dense:
    """One output neuron: Z = W . F + b."""

    @staticmethod
    def forward(F, W, b):
        return se.Add(*[w * f for w, f in zip(W, F)], b)

    @staticmethod
    def backward(F, W, gZ):
        """dL/dF = gZ W^T, dL/dW = gZ F^T, dL/db = gZ."""
        gF = obj(F.shape, lambda j: gZ * W[j])
        gW = obj(W.shape, lambda j: gZ * F[j])
        return gF, gW, gZ


class SigmoidBCE:
    """A = sigmoid(Z) and L = BCE(Y, A), written as L = softplus(Z) - Y Z (the same function, stable)."""

    @staticmethod
    def forward(Z, Y):
        return softplus(Z) - Y * Z

    @staticmethod
    def backward(Z, Y, atoms: Atoms):
        """dL/dZ = A - Y with A = sigmoid(Z)."""
        return atoms.sigmoid(Z) - Y
