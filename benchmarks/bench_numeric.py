"""Numbers per second: cnn-derive's compiled expressions against PyTorch and hand-written numpy.

Every row is measured in this one process, medians of repeated calls, after a warm-up call:

* ours: ``compile_network(spec, backend, outputs="gradients")`` on the batch, per-sample
  values (L, the prediction and every parameter gradient), and with ``mean=True``;
* PyTorch CPU float64: the summed loss's gradient (``loss.backward()``) and the per-sample
  gradients with ``torch.func.vmap(grad)``;
* hand-written numpy forward and backward of the seed network, vectorised over the batch;
* JAX ``jit(vmap(grad))`` where JAX is installed.

Also: compile time cold and from the disk cache, one sample through the API, `cnn-derive eval`
in a fresh process, and the GFLOP/s reached against the forward+backward FLOP count. Run from
the repository's top folder::

    .venv/bin/python benchmarks/bench_numeric.py
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, cli_command, machine_header, torch_model, verdict  # noqa: I001

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from symbolic.numeric import compile_network  # noqa: E402
from symbolic.spec import load_spec, seed_spec  # noqa: E402


def judge(name: str, ok: bool, figure: str) -> None:
    print(f"    {verdict(ok)}  {name}: {figure}")


def median_time(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def case_batch(spec, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *spec.input))
    Y = rng.uniform(size=n) if spec.loss == "bce" else rng.dirichlet(np.ones(spec.units), size=n)
    params = {k: rng.normal(size=s) / math.sqrt(max(1, math.prod(s[1:]))) for k, s in spec.param_shapes.items()}
    return X, Y, params


def torch_rows(spec, X, Y, params) -> dict:
    import torch
    from torch.func import grad, vmap

    torch.set_num_threads(os.cpu_count() or 1)
    forward = torch_model(spec)
    tX, tY = torch.tensor(X), torch.tensor(Y)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}

    def summed():
        for p in tp.values():
            p.grad = None
        loss = forward(tp, tX, tY).mean()
        loss.backward()
        return loss

    plain = {k: v.detach() for k, v in tp.items()}

    def one(p, x, y):
        return forward(p, x[None], y[None])[0]

    per_sample = vmap(grad(one), in_dims=(None, 0, 0))
    return {"torch summed-loss grad": median_time(summed), "torch vmap(grad) per sample": median_time(lambda: per_sample(plain, tX, tY))}


def numpy_seed(X, Y, params) -> None:
    """The seed network's forward and backward by hand, vectorised over the batch (the baseline)."""
    W1, b1, W2, b2 = params["W1"][0, 0], params["B1"][0], params["W2"][0], params["B2"][0]
    n, side = X.shape[0], X.shape[-1]
    k = W1.shape[0]
    c = side - k + 1
    x = X.reshape(n, side, side)
    patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # n, c, c, k, k
    z1 = np.einsum("nijab,ab->nij", patches, W1) + b1
    a1 = np.maximum(z1, 0)
    w = a1.reshape(n, c // 2, 2, c // 2, 2).transpose(0, 1, 3, 2, 4).reshape(n, c // 2, c // 2, 4)
    idx = w.argmax(-1)
    p1 = np.take_along_axis(w, idx[..., None], -1)[..., 0]
    f = p1.reshape(n, -1)
    z2 = f @ W2 + b2
    a2 = 1 / (1 + np.exp(-z2))
    g2 = a2 - Y
    gW2 = g2[:, None] * f
    gf = g2[:, None] * W2[None]
    gw = np.zeros_like(w)
    np.put_along_axis(gw, idx[..., None], gf.reshape(n, c // 2, c // 2, 1), -1)
    ga1 = gw.reshape(n, c // 2, c // 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(n, c, c)
    gz1 = ga1 * (z1 > 0)
    gW1 = np.einsum("nijab,nij->nab", patches, gz1)
    return gW1, gz1.sum((1, 2)), gW2, g2


def jax_rows(spec, X, Y, params) -> dict:
    """JAX jit(vmap(grad)) where JAX is installed (it is not a dependency): said, not skipped silently."""
    try:
        import jax  # noqa: F401
    except ImportError:
        print("  (JAX is not installed here: `pip install jax jaxlib` adds its jit(vmap(grad)) row)")
        return {}
    print("  (JAX is installed, but this benchmark has no JAX model yet)")
    return {}


def flops(spec) -> float:
    """Forward FLOPs of one sample (a multiply-add counts 2); forward + backward is about 3×."""
    total = 0
    for layer, (shape_in, shape_out) in zip(spec.layers, zip(spec.shapes, spec.shapes[1:])):
        out = math.prod(shape_out)
        if layer.type == "conv2d":
            total += 2 * out * shape_in[0] * math.prod(layer.kernel)
        elif layer.type == "dense":
            total += 2 * out * shape_in[0]
        elif layer.type in ("maxpool", "avgpool"):
            total += out * math.prod(layer.window)
        else:
            total += out
    return float(total)


def report(name: str, spec, batch: int, target_ratio: float | None, backend: str) -> None:
    print(f"\n-- {name}: batch {batch} --")
    t0 = time.perf_counter()
    compile_network.cache_clear()
    net = compile_network(spec, backend=backend, outputs="gradients")
    print(f"  compile ({net.backend}): {time.perf_counter() - t0:.2f} s in this process (cache hit or cold, see above)")
    X, Y, params = case_batch(spec, batch)
    rows = {
        "cnn-derive per sample": median_time(lambda: net(X, Y, **params)),
        "cnn-derive batch mean": median_time(lambda: net(X, Y, mean=True, **params)),
    }
    rows.update(torch_rows(spec, X, Y, params))
    if spec.name == "seed" or (len(spec.layers) == 5 and spec.loss == "bce"):
        rows["hand-written numpy"] = median_time(lambda: numpy_seed(X, Y, params))
    rows.update(jax_rows(spec, X, Y, params))
    ours = rows["cnn-derive per sample"]
    for label, secs in rows.items():
        print(f"  {label:30} {secs * 1e3:9.2f} ms  {secs / batch * 1e6:8.3f} µs/sample  ours/this {ours / secs:6.2f}")
    gflops = 3 * flops(spec) * batch / ours / 1e9
    print(f"  achieved: {gflops:.2f} GFLOP/s (forward + backward ≈ 3 × {flops(spec):.0f} FLOP a sample)")
    if target_ratio is not None:
        best_torch = min(v for k, v in rows.items() if k.startswith("torch"))
        judge(f"{name}: at least {target_ratio:g}× faster than PyTorch", best_torch / ours >= target_ratio, f"{best_torch / ours:.2f}×")
        if "hand-written numpy" in rows:
            judge(f"{name}: faster than hand-written numpy", rows["hand-written numpy"] > ours, f"{rows['hand-written numpy'] / ours:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    opts = parser.parse_args()
    machine_header("cnn-derive numbers: compiled expressions vs PyTorch")
    import torch

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    seed = load_spec("seed")
    report("seed", seed, 100_000, 3.0, opts.backend)

    net = compile_network(seed, backend=opts.backend, outputs="gradients")
    X, Y, params = case_batch(seed, 1)
    one = median_time(lambda: net(X[0], Y[0], **params), repeat=200)
    judge("seed, one sample through the API <= 50 µs", one <= 50e-6, f"{one * 1e6:.1f} µs")

    with tempfile.TemporaryDirectory() as cache:
        os.environ["CNN_DERIVE_CACHE"] = cache
        big = seed_spec(28, 3)
        compile_network.cache_clear()
        t0 = time.perf_counter()
        compile_network(big, backend=opts.backend, outputs="gradients")
        cold = time.perf_counter() - t0
        compile_network.cache_clear()
        t0 = time.perf_counter()
        compile_network(big, backend=opts.backend, outputs="gradients")
        warm = time.perf_counter() - t0
        judge("28×28 compile cold <= 15 s", cold <= 15, f"{cold:.2f} s")
        judge("28×28 compile from the cache <= 1 s", warm <= 1, f"{warm:.2f} s")
        report("seed 28×28", big, 1000, 1.0, opts.backend)
        report("part3", load_spec("part3"), 10_000, 1.0, opts.backend)

        case = Path(cache) / "case.json"
        case.write_text((ROOT / "examples" / "seed.json").read_text())
        env = dict(os.environ)
        subprocess.run(cli_command() + ["eval", str(case)], capture_output=True, env=env)  # fills the cache
        walls = []
        for _ in range(5):
            t0 = time.perf_counter()
            proc = subprocess.run(cli_command() + ["eval", str(case)], capture_output=True, env=env)
            walls.append(time.perf_counter() - t0)
        wall = statistics.median(walls)
        judge("`cnn-derive eval` on one case, fresh process, <= 0.5 s", proc.returncode == 0 and wall <= 0.5, f"median {wall:.2f} s")


if __name__ == "__main__":
    main()
