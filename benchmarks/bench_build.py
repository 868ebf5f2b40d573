#!/usr/bin/env python
"""How long ``cnn-derive build --format md,tex --quiet`` takes in a fresh process.

    python benchmarks/bench_build.py [--repeat 3] [--n 6 --k 3]

Target: <= 5 s wall for the seed (n = 6, k = 3), imports included, judged on the median of 3
fresh processes (best of 3 printed too). Each run writes to a new temporary folder, so nothing
is reused between runs and nothing is written inside the repository. Baseline, interleaved with
the runs in the same command: ``python -c "import sympy, symengine, numpy, matplotlib, jinja2"``,
the cost of importing what the build needs before it does any work.

Exits 0 whatever the verdict (this is a report, not a test); a crash still exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli_command, fresh_process_times, machine_header, summarize_target  # noqa: E402

LIMIT = 5.0
IMPORT_BASELINE = [sys.executable, "-c", "import sympy, symengine, numpy, matplotlib, jinja2"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per command (default 3)")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--k", type=int, default=3)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    machine_header("bench_build: cnn-derive build in a fresh process")

    with tempfile.TemporaryDirectory() as tmp:
        outs = []

        def fresh_out(i):
            out = Path(tmp) / f"run{i}"
            outs.append(out)
            return cli_command() + ["build", "--n", str(args.n), "--k", str(args.k), "--format", "md,tex", "--quiet", "--out", str(out)]

        times = fresh_process_times(None, IMPORT_BASELINE, repeat=args.repeat, cwd=tmp, prepare=fresh_out)
        wrote = [sorted(p.name for p in o.iterdir()) if o.exists() else [] for o in outs]
        complete = all({"handout.md", "handout.tex"} <= set(w) for w in wrote)
        ok = all(rc == 0 for rc in times["rc"]) and complete
        note = f"each run wrote: {', '.join(wrote[-1]) or 'nothing'}"
        if not ok:
            note += f"; last output: {times['output'].strip()[-400:] or '(none)'}"
        shown = " ".join(["cnn-derive", "build"] + ([] if (args.n, args.k) == (6, 3) else [f"--n {args.n} --k {args.k}"]))
        print('Target (fresh process, imports included; baseline: python -c "import sympy, symengine, numpy, matplotlib, jinja2")')
        summarize_target(f"{shown} --format md,tex --quiet --out <tmp>", times, LIMIT, extra_ok=ok, note=note)

    print(f"\ntotal benchmark time: {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
