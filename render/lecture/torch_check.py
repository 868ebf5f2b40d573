"""The worked example's gradients from PyTorch float64 autograd, for ``render.lecture.checks``.

Run as ``python -m render.lecture.torch_check`` with the example's inputs as JSON on stdin (X, W1,
B1, W2, B2, Y in the lecture's shapes); prints ``{"grads": [...], "L": ...}``, the gradients in
the engine's order (W1 row by row, B1, W2, B2). Nothing here uses the symbolic engine: it is the
seed network written with torch's own layers, whose conventions (ReLU'(0) = 0, a window's gradient
to its first maximum) the project follows.
"""

from __future__ import annotations

import json
import sys


def torch_gradients(inputs: dict) -> dict:
    """The loss and its gradients in PyTorch float64 (the caller checks torch is installed).

    >>> g = torch_gradients({"X": [[1.0, 2.0], [0.0, 1.0]], "W1": [[1.0]], "B1": 0.0, "W2": [1.0], "B2": 0.0, "Y": 1.0, "pool": 2})
    >>> [round(v, 4) for v in g["grads"]]
    [-0.2384, -0.1192, -0.2384, -0.1192]
    """
    import torch
    import torch.nn.functional as F

    def leaf(value, shape):
        return torch.tensor(value, dtype=torch.float64).reshape(shape).requires_grad_(True)

    X = torch.tensor(inputs["X"], dtype=torch.float64)
    n, k = X.shape[-1], torch.tensor(inputs["W1"]).shape[-1]
    pool = int(inputs.get("pool", 2))
    W1, B1 = leaf(inputs["W1"], (1, 1, k, k)), leaf([inputs["B1"]], (1,))
    W2 = leaf(inputs["W2"], (1, -1))
    B2 = leaf([inputs["B2"]], (1,))
    z1 = F.conv2d(X.reshape(1, 1, n, n), W1, B1)
    p1 = F.max_pool2d(torch.relu(z1), pool, pool)
    z2 = p1.reshape(1, -1) @ W2.T + B2
    loss = F.binary_cross_entropy_with_logits(z2.reshape(()), torch.tensor(float(inputs["Y"]), dtype=torch.float64))
    loss.backward()
    grads = [v for p in (W1, B1, W2, B2) for v in p.grad.reshape(-1).tolist()]
    return {"grads": grads, "L": float(loss)}


if __name__ == "__main__":
    json.dump(torch_gradients(json.load(sys.stdin)), sys.stdout)
