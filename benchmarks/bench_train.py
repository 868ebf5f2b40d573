"""Training speed: `symbolic.train.train` (the compiled symbolic gradients) against the same SGD loop in PyTorch.

Both sides run the same steps on the same mini-batches (``TrainResult.batches``, same sample
order) from the same initial parameters with the same learning rate, in float64:

* ``train()``: our whole training loop as `cnn-derive train` runs it (the logged evaluations
  on the full training and held-out splits included; compiling excluded, reported apart);
* ``ours, bare loop``: only the steps (one call of the compiled network with ``mean=True`` and
  the update per step), as the PyTorch loop does;
* ``torch, 1 thread`` and ``torch, N threads``: autograd on the same steps (tiny networks are
  usually fastest on one thread).

The time is the best of ``--repeat`` runs. The last line checks that the final parameters of
the two loops agree (max relative difference). Usage::

    .venv/bin/python benchmarks/bench_train.py                  # the default task (seed n=8 k=3, digits 3 and 8)
    .venv/bin/python benchmarks/bench_train.py --with-softmax   # also the 10-digit example of `train --help`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine_header, print_table, torch_model  # noqa: E402

from symbolic.numeric import compile_network  # noqa: E402
from symbolic.spec import NetworkSpec, parse_spec  # noqa: E402
from symbolic.train import DEFAULT_BATCH_SIZE, DEFAULT_LR, DEFAULT_STEPS, EXAMPLE_SPEC, load_digits, targets, train  # noqa: E402


def best(fn, repeat: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def ours_bare(net, result, X, Y, lr: float) -> dict:
    params = {k: v.copy() for k, v in result.init_params.items()}
    for rows in result.batches:
        o = net(X[rows], Y[rows], mean=True, **params)
        for k in params:
            params[k] = params[k] - lr * o[f"dL/d{k}"].reshape(params[k].shape)
    return params


def torch_loop(spec: NetworkSpec, result, X, Y, lr: float, threads: int) -> dict:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        p = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in result.init_params.items()}
        x_all = torch.tensor(X, dtype=torch.float64)
        y_all = torch.tensor(Y, dtype=torch.float64)
        forward = torch_model(spec)
        for rows in result.batches:
            idx = torch.as_tensor(rows)
            L = forward(p, x_all[idx], y_all[idx]).mean()
            grads = torch.autograd.grad(L, list(p.values()))
            with torch.no_grad():
                for tensor, g in zip(p.values(), grads):
                    tensor -= lr * g
        return {k: v.detach().numpy() for k, v in p.items()}
    finally:
        torch.set_num_threads(before)


def bench(title: str, spec: NetworkSpec | None, steps: int, lr: float, batch_size: int, repeat: int) -> None:
    import torch

    images, labels = load_digits()
    result = train(spec, steps=steps, lr=lr, batch_size=batch_size, quiet=True)  # warm: compiles (or loads the cache)
    spec = result.spec
    X = images.reshape(-1, 1, 8, 8)
    Y = np.zeros((len(labels), *spec.y_shape))
    rows = np.flatnonzero(np.isin(labels, result.classes))
    Y[rows] = targets(spec, labels[rows], result.classes)

    runs = [result]
    for _ in range(repeat - 1):
        runs.append(train(spec, steps=steps, lr=lr, batch_size=batch_size, quiet=True))
    t_train = min(r.seconds for r in runs)
    net = compile_network(spec, outputs="gradients", quiet=True)  # compiled above: not timed
    t_ours, ours = best(lambda: ours_bare(net, result, X, Y, lr), repeat)
    t_torch1, theirs = best(lambda: torch_loop(spec, result, X, Y, lr, 1), repeat)
    n_threads = torch.get_num_threads()
    t_torchn, _ = best(lambda: torch_loop(spec, result, X, Y, lr, n_threads), repeat)
    diff = max(float(np.abs(ours[k].reshape(theirs[k].shape) - theirs[k]).max() / np.abs(theirs[k]).max()) for k in theirs)

    print(f"-- {title}: {spec.label}, digits {' '.join(map(str, result.classes))}, {spec.n_params} parameters --")
    print(f"steps {steps}, batch {batch_size}, lr {lr}; {len(result.train_idx)} training and {len(result.heldout_idx)} held-out images")
    print(f"compile (or cache load) in the first run: {result.compile_seconds:.2f} s; backend: {result.config['backend']}")
    print(f"held-out accuracy: {result.accuracy:.4f}")
    print()
    base = t_torch1
    table = [
        ["train() (with the logged evaluations)", f"{t_train:.3f}", f"{1e3 * t_train / steps:.3f}", f"{t_train / base:.2f}x"],
        ["ours, bare loop", f"{t_ours:.3f}", f"{1e3 * t_ours / steps:.3f}", f"{t_ours / base:.2f}x"],
        ["torch float64, 1 thread", f"{t_torch1:.3f}", f"{1e3 * t_torch1 / steps:.3f}", "1.00x"],
        [f"torch float64, {n_threads} threads", f"{t_torchn:.3f}", f"{1e3 * t_torchn / steps:.3f}", f"{t_torchn / base:.2f}x"],
    ]
    print_table(["loop", "seconds", "ms/step", "vs torch 1 thread"], table)
    print()
    print(f"final parameters, ours vs torch: max relative difference {diff:.2e} ({'agree' if diff < 1e-9 else 'DISAGREE'})")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--lr", type=float, default=DEFAULT_LR)
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--with-softmax", action="store_true", help="also the 10-digit example spec of `cnn-derive train --help`")
    args = ap.parse_args()
    machine_header("bench_train: SGD on the 8×8 digits, symbolic gradients vs PyTorch autograd")
    bench("default task", None, args.steps, args.lr, args.batch_size, args.repeat)
    if args.with_softmax:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib

        bench("ten digits", parse_spec(tomllib.loads(EXAMPLE_SPEC), "digits10"), args.steps, args.lr, args.batch_size, args.repeat)


if __name__ == "__main__":
    main()
