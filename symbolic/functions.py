"""The network's non-smooth functions and the loss, symbolically (SymEngine) and numerically (numpy).

The kink conventions are those of PyTorch on the CPU, and they live in how each function is
*written*, so that SymEngine's ordinary differentiation produces them:

* ``relu(z) = Piecewise((z, z > 0), (0, True))``: the strict ``>`` makes ReLU'(0) = 0.
* ``first_max(v)``: a Piecewise whose first true branch is the first maximum in row-major
  order, so at a tie the whole derivative goes to the first maximum.
* ``softplus`` is a named smooth function; its derivative is the sigmoid (``SOFTPLUS_PRIME``).
  The loss is written ``softplus(z) - y z``, which equals binary cross-entropy of sigmoid(z)
  and stays finite where the sigmoid saturates.

SymPy's ``Max`` would give ``Heaviside(0) = 1/2`` at a tie and sorts its arguments: it matches
neither convention, so it is not used.
"""
from __future__ import annotations

import numpy as np
import symengine as se

softplus = se.Function("softplus")


def relu_condition(z):
    """The condition under which ReLU passes z through; strict, so ReLU'(0) = 0.

    >>> relu_condition(se.Symbol("z"))
    0 < z
    """
    return se.Gt(z, 0)


def relu(z):
    """ReLU as a Piecewise whose derivative SymEngine gets right at 0.

    >>> z = se.Symbol("z"); relu(z).diff(z)
    Piecewise((1, 0 < z), (0, True))
    """
    return se.Piecewise((z, relu_condition(z)), (0, True))


def first_max_conditions(values):
    """The conditions of the first-wins maximum, one per value but the last.

    Read in order: value i wins when no earlier value won and it is >= every later value. Given
    that the earlier ones lost, some later value is larger than each of them, so value i is then
    also strictly larger than every earlier one: it is the first maximum.

    >>> a, b = se.symbols("a b"); first_max_conditions([a, b])
    (b <= a,)
    """
    values = list(values)
    return tuple(
        se.And(*[se.Ge(values[i], values[j]) for j in range(i + 1, len(values))])
        for i in range(len(values) - 1)
    )


def first_max(values):
    """The maximum of ``values`` as a Piecewise that picks the first maximum at a tie.

    >>> a, b = se.symbols("a b"); first_max([a, b]).diff(a)
    Piecewise((1, b <= a), (0, True))
    """
    values = list(values)
    if len(values) == 1:
        return values[0]
    conds = first_max_conditions(values)
    return se.Piecewise(*zip(values[:-1], conds), (values[-1], True))


# --- numpy forms: what each symbolic function or atom evaluates to -------------------------

def relu_np(z):
    """ReLU on arrays. >>> relu_np(np.array([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 2.0]
    """
    return np.where(z > 0, z, 0.0)


def step_np(z):
    """1[z > 0] on arrays, the ReLU derivative. >>> step_np(np.array([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.0, 1.0]
    """
    return (np.asarray(z) > 0).astype(np.float64)


def first_argmax_onehot_np(values):
    """One-hot of the first maximum along the last axis (numpy's argmax already picks the first).

    >>> first_argmax_onehot_np(np.array([1.0, 3.0, 3.0, 0.0])).tolist()
    [0.0, 1.0, 0.0, 0.0]
    """
    values = np.asarray(values, dtype=np.float64)
    idx = np.argmax(values, axis=-1)
    return (np.arange(values.shape[-1]) == idx[..., None]).astype(np.float64)


def sigmoid_np(z):
    """The logistic sigmoid without overflow: exp is only ever taken of -|z|.

    >>> sigmoid_np(np.array([-1800.0, 0.0, 1800.0])).tolist()
    [0.0, 0.5, 1.0]
    """
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus_np(z):
    """log(1 + exp(z)) without overflow. >>> float(softplus_np(np.array(1800.0)))
    1800.0
    """
    return np.logaddexp(0.0, np.asarray(z, dtype=np.float64))
