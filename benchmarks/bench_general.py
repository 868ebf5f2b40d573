#!/usr/bin/env python
"""How long each general (all-sizes) proof of ``symbolic.general`` takes, and the total.

    python benchmarks/bench_general.py [--repeat 3] [--skip-fresh]

Prints, in this process: the seconds of each lemma and of each rule's proof, cold (SymPy's cache
cleared first: what a fresh ``prove_general()`` pays) and warm (best of ``--repeat`` further runs:
SymPy's cache makes repeats several times faster, so warm figures flatter), and the wall time of
``prove_general()`` with a cleared cache (lemmas included). Then, unless ``--skip-fresh``, the target in a fresh process with imports included:
``prove_general()`` <= 30 s, against ``python -c "import sympy, symengine, numpy"`` as baseline.

A report, not a test: exits 0 whatever the verdict (a crash still exits non-zero).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sympy  # noqa: E402  (imported up front so no proof is charged for it)
from sympy.core.cache import clear_cache  # noqa: E402

from symbolic import general  # noqa: E402

LIMIT = 30.0
FRESH = "import time; t=time.perf_counter(); from symbolic.general import prove_general; r=prove_general(); print(time.perf_counter()-t, all(x.status != 'failed' for x in r))"


def header() -> None:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    import numpy
    import symengine

    print("== symbolic.general: general proofs ==")
    print(
        f"machine: nproc={usable}  python {platform.python_version()}  sympy {sympy.__version__}  symengine {symengine.__version__}  numpy {numpy.__version__}"
    )


def timed(fn, repeat: int):  # noqa: ANN001, ANN201 - a thin timing helper
    """(cold seconds, best warm seconds, last result): cold after clearing SymPy's cache."""
    clear_cache()
    t0 = time.perf_counter()
    out = fn()
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        warm.append(time.perf_counter() - t0)
    return cold, min(warm) if warm else float("nan"), out


def fresh_seconds() -> tuple[float, float, bool]:
    """(wall seconds of the fresh prove_general process, of the import baseline, all not failed)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sympy, symengine, numpy"], check=True, cwd=ROOT)
    base = time.perf_counter() - t0
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", FRESH], check=True, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, base, done.stdout.split()[-1] == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-fresh", action="store_true")
    args = parser.parse_args()
    header()

    print(f"\n{'lemma':40s} {'status':8s} {'cold s':>8s} {'warm s':>8s}")
    lemma_total = 0.0
    for lem in general.LEMMAS:
        cold, warm, res = timed(lem.prove, args.repeat)
        lemma_total += cold
        print(f"{lem.name:40s} {res.status:8s} {cold:8.3f} {warm:8.3f}")

    lemma_results = {r.lemma.name: r for r in general.prove_lemmas()}
    print(f"\n{'rule':40s} {'status':8s} {'cold s':>8s} {'warm s':>8s}")
    rule_total = 0.0
    for rule in general.GENERAL_RULES:
        cold, warm, res = timed(lambda rule=rule: rule.prove(lemma_results), args.repeat)
        rule_total += cold
        print(f"{rule.name:40s} {res.status:8s} {cold:8.3f} {warm:8.3f}")
    print(f"{'sum of cold: lemmas':40s} {'':8s} {lemma_total:8.3f}")
    print(f"{'sum of cold: rules':40s} {'':8s} {rule_total:8.3f}")
    print(f"{'sum of cold: total':40s} {'':8s} {lemma_total + rule_total:8.3f}")

    wall, _, results = timed(general.prove_general, 0)
    statuses = sorted({r.status for r in results})
    print(f"\nprove_general() in this process, SymPy cache cleared: {wall:.2f} s, statuses {statuses}")

    if not args.skip_fresh:
        fresh, base, ok = fresh_seconds()
        verdict = "PASS" if fresh <= LIMIT and ok else "FAIL"
        print(
            f"fresh process (imports included): {fresh:.2f} s wall  (import baseline {base:.2f} s, ratio {fresh / base:.1f}x)"
            f"  target <= {LIMIT:.0f} s: {verdict}"
        )


if __name__ == "__main__":
    main()
