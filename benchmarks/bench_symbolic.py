#!/usr/bin/env python
"""How long each symbolic stage takes, per network size, against plain SymPy and plain numpy.

    python benchmarks/bench_symbolic.py [--sizes 6,8,12,16,28] [--skip-sympy] [--profile]

For each n (k = 3) it times, in this process:

1. build      ``symbolic.network.build``
2. diff       ``symbolic.derive.gradient`` of L over W1, B1, W2, B2 (canonical form included),
              on a fresh build (build not counted)
3. prove      ``symbolic.rules.prove_all`` (all ten rules, its own builds included)
4. lambdify   ``symbolic.numeric.compile_network.__wrapped__`` (the uncached function: build,
              symbolic outputs and lambdify)
5. eval       the compiled function on a batch of 1000 random inputs (per-sample X and
              parameters), against a hand-written vectorised numpy forward+backward of the same
              network; the two must agree to 1e-9 (relative).

Baselines, run in the same process: SymPy differentiating the seed's full loss built with
``sympy.Max`` (max-pool) and ``sympy.Max(z, 0)`` (ReLU), w.r.t. each of the 15 parameters, no
expand (seed only: it already takes ~10 s); numpy for the evaluation.

Then the targets, in fresh processes: ``cnn-derive verify`` for the seed <= 2 s (best of 3 and
median, judged on the median) and ``cnn-derive verify --n 28`` <= 60 s, each against the import
cost ``python -c "import sympy, symengine, numpy"`` as baseline.

Exits 0 whatever the verdicts (this is a report, not a test); a crash still exits non-zero.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cli_command, fresh_process_times, machine_header, print_table, run_timed, summarize_target, verdict  # noqa: E402

if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402  (imported up front so no stage is charged for it)

from symbolic.derive import gradient  # noqa: E402
from symbolic.network import build  # noqa: E402
from symbolic.numeric import compile_network  # noqa: E402
from symbolic.rules import prove_all  # noqa: E402
from symbolic.spec import NetworkSpec  # noqa: E402

K = 3
BATCH = 1000
SEED_VERIFY_LIMIT = 2.0
BIG_VERIFY_LIMIT = 60.0
BIG_N = 28
IMPORT_BASELINE = [sys.executable, "-c", "import sympy, symengine, numpy"]


# --- timing helpers ------------------------------------------------------------------------

def timed(fn, setup=None, repeat=1):
    """(first seconds, best seconds, last result) of ``fn(setup())`` over ``repeat`` runs; setup not timed."""
    times, result = [], None
    for _ in range(repeat):
        arg = setup() if setup else None
        t0 = time.perf_counter()
        result = fn(arg) if setup else fn()
        times.append(time.perf_counter() - t0)
    return times[0], min(times), result


def repeats_for(n: int) -> int:
    return 3 if n <= 16 else 1


# --- the stages ----------------------------------------------------------------------------

def diff_all(net):
    return [gradient(net, w) for w in (net.W1, net.B1, net.W2, net.B2)]


def compile_uncached(spec):
    compile_network.cache_clear()
    return compile_network.__wrapped__(spec)


# --- baseline 1: plain SymPy, Max for pooling and ReLU -------------------------------------

def sympy_loss(n: int, k: int, pool: int = 2):
    """The full loss in plain SymPy: Max(z, 0) for ReLU, Max(window) for the pool, the same
    softplus(Z2) - Y Z2 loss as cnn-derive. Returns (L, parameters in the lecture's order, inputs)."""
    X = [[sp.Symbol(f"x_{i}_{j}") for j in range(n)] for i in range(n)]
    W1 = [[sp.Symbol(f"w_{i}_{j}") for j in range(k)] for i in range(k)]
    B1 = sp.Symbol("B_1")
    c = n - k + 1
    p = c // pool
    Z1 = [[sp.Add(*[W1[a][e] * X[i + a][j + e] for a in range(k) for e in range(k)]) + B1 for j in range(c)] for i in range(c)]
    A1 = [[sp.Max(z, 0) for z in row] for row in Z1]
    F = [sp.Max(*[A1[r * pool + a][s * pool + e] for a in range(pool) for e in range(pool)]) for r in range(p) for s in range(p)]
    W2 = [sp.Symbol(f"w2_{j}") for j in range(p * p)]
    B2, Y = sp.Symbol("B_2"), sp.Symbol("Y")
    Z2 = sp.Add(*[w * f for w, f in zip(W2, F)]) + B2
    L = sp.log(1 + sp.exp(Z2)) - Y * Z2
    params = [w for row in W1 for w in row] + [B1] + W2 + [B2]
    inputs = [x for row in X for x in row]
    return L, params, inputs, Y


def sympy_baseline(n: int, k: int, compiled) -> dict:
    """Time SymPy's build and its 15 derivatives; check them against our compiled gradients at a random point."""
    t0 = time.perf_counter()
    L, params, inputs, Y = sympy_loss(n, k)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    derivs = [sp.diff(L, q) for q in params]
    t_diff = time.perf_counter() - t0
    ops = sum(sp.count_ops(d) for d in derivs)
    # The same point through both: a random, tie-free case (SymPy's Heaviside(0) = 1/2 only bites at ties).
    rng = np.random.default_rng(1)
    spec = NetworkSpec(n=n, k=k)
    X = rng.normal(size=(n, n))
    W1 = rng.normal(size=(k, k)) * 0.5
    B1, B2, y = 0.1, -0.2, 1.0
    W2 = rng.normal(size=spec.flat)
    values = list(W1.ravel()) + [B1] + list(W2) + [B2]
    point = {s: sp.Float(v) for s, v in zip(params + inputs + [Y], values + list(X.ravel()) + [y])}
    # xreplace, not subs: subs + evalf on these Max/Heaviside trees takes minutes (and so does lambdify).
    theirs = np.array([float(d.xreplace(point)) for d in derivs])
    out = compiled(X, W1, B1, W2, B2, y)
    ours = np.concatenate([out["dL/dW1"].ravel(), [out["dL/dB1"]], out["dL/dW2"].ravel(), [out["dL/dB2"]]]).astype(float)
    err = float(np.max(np.abs(theirs - ours) / np.maximum(1.0, np.abs(ours))))
    return {"build": t_build, "diff": t_diff, "ops": ops, "err": err}


# --- baseline 2: plain numpy forward + backward, vectorised over the batch -------------------

def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def numpy_forward_backward(X, W1, B1, W2, B2, Y, pool: int = 2) -> dict:
    """The lecture's network by hand, batch first: X (B, n, n), W1 (B, k, k), B1 (B,), W2 (B, m), B2 (B,), Y (B,)."""
    bsz, n, _ = X.shape
    k = W1.shape[-1]
    c = n - k + 1
    p = c // pool
    win = np.lib.stride_tricks.sliding_window_view(X, (k, k), axis=(1, 2))           # (B, c, c, k, k)
    Z1 = np.einsum("bijkl,bkl->bij", win, W1) + B1[:, None, None]
    relu_mask = (Z1 > 0).astype(np.float64)
    A1 = Z1 * relu_mask
    blocks = A1.reshape(bsz, p, pool, p, pool).transpose(0, 1, 3, 2, 4).reshape(bsz, p, p, pool * pool)
    arg = np.argmax(blocks, axis=-1)                                                    # first max, row-major
    onehot = (np.arange(pool * pool) == arg[..., None]).astype(np.float64)
    P1 = np.take_along_axis(blocks, arg[..., None], axis=-1)[..., 0]
    F = P1.reshape(bsz, p * p)
    Z2 = np.einsum("bj,bj->b", F, W2) + B2
    A2 = _sigmoid(Z2)
    L = np.logaddexp(0.0, Z2) - Y * Z2
    dZ2 = A2 - Y
    dW2 = dZ2[:, None] * F
    dF = dZ2[:, None] * W2
    dP1 = dF.reshape(bsz, p, p)
    dA1 = (onehot * dP1[..., None]).reshape(bsz, p, p, pool, pool).transpose(0, 1, 3, 2, 4).reshape(bsz, c, c)
    pool_mask = onehot.reshape(bsz, p, p, pool, pool).transpose(0, 1, 3, 2, 4).reshape(bsz, c, c)
    dZ1 = dA1 * relu_mask
    dW1 = np.einsum("bijkl,bij->bkl", win, dZ1)
    dB1 = dZ1.sum(axis=(1, 2))
    return {
        "Z1": Z1, "A1": A1, "relu_mask": relu_mask, "pool_mask": pool_mask, "P1": P1, "F": F, "Z2": Z2, "A2": A2,
        "L": L, "dL/dZ2": dZ2, "dL/dF": dF, "dL/dP1": dP1, "dL/dA1": dA1, "dL/dZ1": dZ1,
        "dL/dW1": dW1, "dL/dB1": dB1, "dL/dW2": dW2, "dL/dB2": dZ2,
    }


def random_batch(spec: NetworkSpec, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(batch, spec.n, spec.n)),
        rng.normal(size=(batch, spec.k, spec.k)) * 0.5,
        rng.normal(size=batch) * 0.1,
        rng.normal(size=(batch, spec.flat)) * 0.5,
        rng.normal(size=batch) * 0.1,
        rng.integers(0, 2, size=batch).astype(np.float64),
    )


def eval_bench(compiled, spec: NetworkSpec, repeat: int) -> dict:
    args = random_batch(spec, BATCH)
    compiled(*args)  # warm-up
    numpy_forward_backward(*args)
    _, ours, out = timed(lambda: compiled(*args), repeat=repeat)
    _, base, ref = timed(lambda: numpy_forward_backward(*args), repeat=max(repeat, 5))
    err = 0.0
    for key, want in ref.items():
        got = np.asarray(out[key], dtype=np.float64).reshape(want.shape)
        err = max(err, float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want)))))
    return {"ours": ours, "numpy": base, "err": err}


# --- profiling -----------------------------------------------------------------------------

def profile_stage(stage: str, spec: NetworkSpec, top: int = 18) -> None:
    fns = {
        "build": lambda: build(spec),
        "diff": (lambda net: (lambda: diff_all(net)))(build(spec)),
        "prove": lambda: prove_all(spec),
        "lambdify": lambda: compile_uncached(spec),
    }
    prof = cProfile.Profile()
    prof.enable()
    fns[stage]()
    prof.disable()
    for order in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(order).print_stats(top)
        text = buf.getvalue()
        start = text.find("   ncalls")
        print(f"-- cProfile of {stage} at n={spec.n}, k={spec.k}, top {top} by {order} --")
        print(text[start:].rstrip())
        print()


# --- main ----------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="6,8,12,16,28", help="comma-separated n values (k = 3); default 6,8,12,16,28")
    ap.add_argument("--skip-sympy", action="store_true", help="skip the SymPy differentiation baseline (~10 s)")
    ap.add_argument("--skip-targets", action="store_true", help="skip the fresh-process verify targets")
    ap.add_argument("--profile", action="store_true", help="cProfile the slowest stage at the largest size")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    t_start = time.perf_counter()

    machine_header("bench_symbolic: cnn-derive symbolic stages")
    print(f"k = {K}; batch = {BATCH}; in-process times are the best of 3 runs for n <= 16, one run above;")
    print("'prove 1st' is the first (cold) run. Ratios > 1 mean cnn-derive is slower than the baseline.\n")

    rows, stage_times, sympy_row = [], {}, None
    for n in sizes:
        spec = NetworkSpec(n=n, k=K)
        r = repeats_for(n)
        _, t_build, net = timed(lambda: build(spec), repeat=r)
        params = len(net.params())
        _, t_diff, _ = timed(diff_all, setup=lambda: build(spec), repeat=r)
        t_prove1, t_prove, results = timed(lambda: prove_all(spec), repeat=r)
        proven = all(x.proven for x in results)
        _, t_lamb, compiled = timed(lambda: compile_uncached(spec), repeat=r)
        ev = eval_bench(compiled, spec, repeat=5 if n <= 16 else 3)
        stage_times[n] = {"build": t_build, "diff": t_diff, "prove": t_prove, "lambdify": t_lamb}

        sym_diff, sym_ratio = "-", "-"
        if n == 6 and K == 3 and not args.skip_sympy:
            sympy_row = sympy_baseline(n, K, compiled)
            sym_diff = f"{sympy_row['diff']:.2f}"
            sym_ratio = f"{t_diff / sympy_row['diff']:.1e}"
        rows.append([
            n, params, f"{t_build:.3f}", f"{t_diff:.3f}", sym_diff, sym_ratio,
            f"{t_prove1:.3f}", f"{t_prove:.3f}", "yes" if proven else "NO",
            f"{t_lamb:.3f}", f"{ev['ours'] * 1e3:.1f}", f"{BATCH / ev['ours']:,.0f}",
            f"{ev['numpy'] * 1e3:.2f}", f"{ev['ours'] / ev['numpy']:.1f}", f"{ev['err']:.0e}",
        ])
        print(f"  n={n}: done ({time.perf_counter() - t_start:.1f} s elapsed)", file=sys.stderr, flush=True)

    print_table(
        ["n", "params", "build s", "diff s", "SymPy diff s", "diff/SymPy", "prove 1st s", "prove s", "proven",
         "lambdify s", "eval ms/1000", "samples/s", "numpy ms", "eval/numpy", "max rel err"],
        rows,
    )
    print()
    print("  diff/SymPy: cnn-derive's brute-force gradient (canonical form included) over plain SymPy's")
    print("              diff of the same loss written with sympy.Max, all 15 parameters, no expand (seed only).")
    print("  eval/numpy: the compiled function on 1000 samples over a vectorised numpy forward+backward;")
    print("              'max rel err' is the largest |ours - numpy| / max(1, |numpy|) over every output.")
    if sympy_row:
        print(f"  SymPy baseline at n=6: building the loss took {sympy_row['build']:.2f} s, diff {sympy_row['diff']:.2f} s "
              f"({sympy_row['ops']:,} operations in the 15 derivatives); its gradient agrees with ours at a random point "
              f"to {sympy_row['err']:.0e} (relative).")
        if 6 in stage_times:
            print(f"  SymPy takes {sympy_row['diff'] / stage_times[6]['diff']:,.0f}x as long as cnn-derive to differentiate the seed.")
    print()

    if not args.skip_targets:
        print("Targets (fresh processes, imports included; baseline: python -c \"import sympy, symengine, numpy\")")
        cli = cli_command()
        with tempfile.TemporaryDirectory() as tmp:
            seed = fresh_process_times(cli + ["verify"], IMPORT_BASELINE, repeat=3, cwd=tmp)
            ok = all(rc == 0 for rc in seed["rc"]) and "all rules proven" in seed["output"]
            summarize_target("cnn-derive verify (seed, n=6, k=3)", seed, SEED_VERIFY_LIMIT, extra_ok=ok,
                             note="" if ok else "verify did not exit 0 with 'all rules proven'")
            secs, rc, text = run_timed(cli + ["verify", "--n", str(BIG_N), "--k", str(K)], cwd=tmp)
            base, _, _ = run_timed(IMPORT_BASELINE, cwd=tmp)
            ok = rc == 0 and "all rules proven" in text
            print(f"  cnn-derive verify --n {BIG_N} --k {K} (28x28 proven)")
            print(f"    target:   <= {BIG_VERIFY_LIMIT:g} s wall, fresh process, one run")
            print(f"    measured: {secs:.2f} s (exit code {rc}); baseline {base:.2f} s -> ratio {secs / base:.1f}x")
            if BIG_N in stage_times:
                print(f"    in-process prove_all at n={BIG_N}: {stage_times[BIG_N]['prove']:.2f} s (table above)")
            print(f"    {verdict(ok and secs <= BIG_VERIFY_LIMIT)}")
        print()

    if args.profile and stage_times:
        n = max(stage_times)
        stage = max(stage_times[n], key=stage_times[n].get)
        print(f"Slowest stage at n={n}: {stage} ({stage_times[n][stage]:.2f} s)\n")
        profile_stage(stage, NetworkSpec(n=n, k=K))

    print(f"total benchmark time: {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
