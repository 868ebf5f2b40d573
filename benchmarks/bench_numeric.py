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
from _common import ROOT, cli_command, machine_header, torch_model, user_env, verdict  # noqa: I001

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


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _jax_conv(h, w, stride: tuple[int, int], padding: tuple[int, int]):
    """Cross-correlation as a sum over the kernel's offsets of strided slices.

    ``lax.conv_general_dilated`` under ``vmap(grad)`` takes memory quadratic in the batch
    (128 n² bytes measured: 1.3 TB at n = 100 000); this form is what XLA fuses well.
    """
    import jax.numpy as jnp

    (sh, sw), (ph, pw) = stride, padding
    h = jnp.pad(h, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = w.shape[2:]
    oh, ow = (h.shape[2] - kh) // sh + 1, (h.shape[3] - kw) // sw + 1
    out = 0.0
    for a in range(kh):
        for b in range(kw):
            piece = h[:, :, a : a + sh * (oh - 1) + 1 : sh, b : b + sw * (ow - 1) + 1 : sw]
            out = out + jnp.einsum("nchw,oc->nohw", piece, w[:, :, a, b])
    return out


def jax_model(spec):
    """The spec as a JAX function of (params, X, Y) -> loss per sample (float64), like ``torch_model``."""
    import jax.numpy as jnp
    from jax import lax, nn

    def forward(params: dict, X, Y):
        h, t = X, 0
        for layer in spec.layers:
            if layer.type == "conv2d":
                t += 1
                h = _jax_conv(h, params[f"W{t}"], _pair(layer.stride), _pair(layer.padding)) + params[f"B{t}"][None, :, None, None]
            elif layer.type == "dense":
                t += 1
                h = h @ params[f"W{t}"].T + params[f"B{t}"]
            elif layer.type == "relu":
                h = jnp.maximum(h, 0.0)
            elif layer.type == "leaky_relu":
                h = jnp.where(h > 0, h, layer.slope * h)
            elif layer.type == "tanh":
                h = jnp.tanh(h)
            elif layer.type == "sigmoid":
                h = nn.sigmoid(h)
            elif layer.type in ("maxpool", "avgpool"):
                window, stride = (1, 1, *_pair(layer.window)), (1, 1, *_pair(layer.stride))
                if layer.type == "maxpool":
                    h = lax.reduce_window(h, -jnp.inf, lax.max, window, stride, "VALID")
                else:
                    h = lax.reduce_window(h, 0.0, lax.add, window, stride, "VALID") / math.prod(window)
            elif layer.type == "flatten":
                h = h.reshape(h.shape[0], -1)
        if spec.loss == "bce":
            z = h[:, 0]
            return jnp.logaddexp(0.0, z) - Y * z
        if spec.loss == "softmax_ce":
            return -(Y * nn.log_softmax(h, axis=1)).sum(axis=1)
        return ((h - Y) ** 2).mean(axis=1)

    return forward


def jax_rows(spec, X, Y, params, losses: np.ndarray) -> dict:
    """JAX jit(vmap(grad)) and the jitted summed-loss gradient, float64, where JAX is installed.

    JAX is not a dependency: where it is missing the report says so instead of skipping silently.
    """
    try:
        import jax
    except ImportError:
        print("  (JAX is not installed here: `pip install jax jaxlib` adds its jit(vmap(grad)) row)")
        return {}
    jax.config.update("jax_enable_x64", True)
    forward = jax_model(spec)
    jp = {k: jax.numpy.asarray(v) for k, v in params.items()}
    jX, jY = jax.numpy.asarray(X), jax.numpy.asarray(Y)

    def one(p, x, y):
        return forward(p, x[None], y[None])[0]

    per_sample = jax.jit(jax.vmap(jax.value_and_grad(one), in_axes=(None, 0, 0)))
    summed = jax.jit(jax.value_and_grad(lambda p, x, y: forward(p, x, y).mean()))

    def run(fn):
        return lambda: jax.block_until_ready(fn(jp, jX, jY))

    # The JAX model must be the same network: its per-sample losses against ours (``losses``).
    theirs = np.asarray(per_sample(jp, jX, jY)[0])
    worst = float(np.max(np.abs(theirs - losses) / np.abs(losses)))
    print(f"  (JAX {jax.__version__}: its per-sample losses match ours to {worst:.1e} relative)")
    if worst > 1e-9:
        raise SystemExit(f"the JAX model is not the same network as {spec.label}: losses differ by {worst:.1e} relative")
    return {"jax jit(vmap(grad)) per sample": median_time(run(per_sample)), "jax jit(grad) summed loss": median_time(run(summed))}


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
    rows.update(jax_rows(spec, X, Y, params, net(X, Y, **params)["L"]))
    ours = rows["cnn-derive per sample"]
    for label, secs in rows.items():
        print(f"  {label:30} {secs * 1e3:9.2f} ms  {secs / batch * 1e6:8.3f} µs/sample  ours/this {ours / secs:6.2f}")
    gflops = 3 * flops(spec) * batch / ours / 1e9
    print(f"  achieved: {gflops:.2f} GFLOP/s (forward + backward ≈ 3 × {flops(spec):.0f} FLOP a sample)")
    if target_ratio is not None:
        best_torch = min(v for k, v in rows.items() if k.startswith("torch"))
        judge(f"{name}: at least {target_ratio:g}× faster than PyTorch", best_torch / ours >= target_ratio, f"{best_torch / ours:.2f}×")
        if "jax jit(vmap(grad)) per sample" in rows:
            best_jax = min(v for k, v in rows.items() if k.startswith("jax"))
            judge(f"{name}: faster than JAX", best_jax > ours, f"{best_jax / ours:.2f}×")
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
        env = user_env()
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
