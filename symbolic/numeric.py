"""Numbers from the symbols: the canonical expressions lambdified into batched numpy functions.

The atoms are evaluated level by level with their numpy forms (``functions``): first the
ReLU steps from Z1, then the max-pool selectors from A1, then the sigmoid and softplus of Z2.
Each level, and the final outputs, is one ``lambdify`` with common-subexpression
elimination over all named entries and the atoms below it. Nothing here is a hand-written
backprop: the gradients are the brute-force derivatives, the intermediate gradients are the
(proven) backward chain.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from symbolic.derive import gradient
from symbolic.errors import CaseError
from symbolic.functions import first_argmax_onehot_np, sigmoid_np, softplus_np, step_np
from symbolic.lambdify import lambdify
from symbolic.layers import MaxPool, ReLU, obj
from symbolic.network import Network, backward, build
from symbolic.spec import NetworkSpec

_UNARY = {"step": step_np, "sigmoid": sigmoid_np, "softplus": softplus_np}


def symbolic_outputs(net: Network) -> dict:
    """Every quantity the tool prints, as canonical expressions of the full network (object arrays).

    >>> out = symbolic_outputs(build(NetworkSpec())); out["dL/dW1"].shape, out["P1"].shape
    ((3, 3), (2, 2))
    """
    a = net.atoms
    canon = lambda arr: obj(np.shape(arr), lambda *i: a.canon(np.asarray(arr, dtype=object)[i]))  # noqa: E731
    z2 = a.canon(net.Z2)
    out = {
        "Z1": canon(net.Z1),
        "A1": canon(net.A1),
        "relu_mask": ReLU.mask(net.Z1, a, net.label["Z1"]),
        "pool_mask": MaxPool.mask(net.A1, net.spec.pool, a, net.label["A1"], net.label["P1"]),
        "P1": canon(net.P1),
        "F": canon(net.F),
        "Z2": z2,
        "A2": a.sigmoid(net.Z2),
        "L": a.canon(net.L),
    }
    chain = backward(net)
    for key in ("dL/dZ2", "dL/dF", "dL/dP1", "dL/dA1", "dL/dZ1"):
        out[key] = chain[key]
    out["dL/dW1"] = gradient(net, net.W1)
    out["dL/dB1"] = gradient(net, net.B1)[()]
    out["dL/dW2"] = gradient(net, net.W2)
    out["dL/dB2"] = gradient(net, net.B2)[()]
    return out


class NumericNetwork:
    """The lambdified network for one spec. Call it with arrays; leading batch axes broadcast.

    >>> net = compile_network(NetworkSpec(n=5, k=2))
    >>> out = net(np.ones((5, 5)), np.ones((2, 2)), -3.0, np.ones(4), 0.0, 1.0)
    >>> float(out["Z2"]), out["dL/dW1"].shape
    (4.0, (2, 2))
    """

    def __init__(self, net: Network, outputs: dict) -> None:
        self.spec = net.spec
        self.inputs = list(net.X.ravel()) + list(net.W1.ravel()) + [net.B1] + list(net.W2) + [net.B2, net.Y]
        atoms = net.atoms
        canon_args = {s: [atoms.canon(x) for x in at.args] for s, at in atoms.by_symbol.items()}
        level: dict = {}
        for s in atoms.by_symbol:  # creation order is forward order, so dependencies come first
            deps = [level[d] for e in canon_args[s] for d in e.free_symbols if d in atoms.by_symbol]
            level[s] = 1 + max(deps, default=-1)
        self._levels = []
        known = list(self.inputs)
        for lv in range(max(level.values(), default=-1) + 1):
            syms = [s for s in atoms.by_symbol if level[s] == lv]
            windows: dict = {}
            for s in syms:
                if atoms.by_symbol[s].kind == "select":
                    windows.setdefault(atoms.by_symbol[s].args, []).append(s)
            plan, exprs = [], []
            for s in syms:
                at = atoms.by_symbol[s]
                if at.kind == "select" and at.position:
                    continue  # the window's first selector evaluates the whole window
                first = len(exprs)
                exprs.extend(canon_args[s])
                group = windows[at.args] if at.kind == "select" else [s]
                plan.append((at.kind, first, len(at.args), group))
            self._levels.append((lambdify(known, exprs), plan, syms))
            known = known + syms
        self._known = known
        self.keys = list(outputs)
        self._shapes = {k: np.shape(v) for k, v in outputs.items()}
        flat = [e for k in self.keys for e in np.asarray(outputs[k], dtype=object).ravel()]
        self._final = lambdify(known, flat)

    def __call__(self, X, W1, B1, W2, B2, Y) -> dict:
        s = self.spec
        names = ("X", "W1", "B1", "W2", "B2", "Y")
        parts = [(X, (s.n, s.n)), (W1, (s.k, s.k)), (B1, ()), (W2, (s.flat,)), (B2, ()), (Y, ())]
        arrs = [np.asarray(v, dtype=np.float64) for v, _ in parts]
        for name, a, (_, shp) in zip(names, arrs, parts):
            if a.ndim < len(shp) or a.shape[a.ndim - len(shp):] != shp:
                raise CaseError(f"{name}: expected shape (..., {', '.join(map(str, shp))}) for n={s.n}, k={s.k}; got {a.shape}")
        try:
            batch = np.broadcast_shapes(*[a.shape[: a.ndim - len(shp)] for a, (_, shp) in zip(arrs, parts)])
        except ValueError:
            shapes = ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrs))
            raise CaseError(f"batch: the leading (batch) axes do not broadcast together: {shapes}") from None
        cols = [np.broadcast_to(a, batch + shp).reshape(-1, int(np.prod(shp, dtype=int))) for a, (_, shp) in zip(arrs, parts)]
        values = np.concatenate(cols, axis=1)
        if values.shape[0] == 0:
            return {key: np.zeros(batch + self._shapes[key]) for key in self.keys}
        for fn, plan, syms in self._levels:
            got = np.asarray(fn(values)).reshape(values.shape[0], -1)
            new = {}
            for kind, first, nargs, group in plan:
                if kind == "select":
                    onehot = first_argmax_onehot_np(got[:, first:first + nargs])
                    for pos, sym in enumerate(group):
                        new[sym] = onehot[:, pos]
                else:
                    new[group[0]] = _UNARY[kind](got[:, first])
            values = np.concatenate([values, np.stack([new[sym] for sym in syms], axis=1)], axis=1)
        flat = np.asarray(self._final(values)).reshape(values.shape[0], -1)
        out, at = {}, 0
        for key in self.keys:
            shp = self._shapes[key]
            size = int(np.prod(shp, dtype=int))
            out[key] = flat[:, at:at + size].reshape(batch + shp)
            at += size
        return out


@lru_cache(maxsize=8)
def compile_network(spec: NetworkSpec) -> NumericNetwork:
    """Build, differentiate and lambdify the network for ``spec`` (cached per spec).

    >>> compile_network(NetworkSpec()).keys[:3]
    ['Z1', 'A1', 'relu_mask']
    """
    net = build(spec)
    return NumericNetwork(net, symbolic_outputs(net))
