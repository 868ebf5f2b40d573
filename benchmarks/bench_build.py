#!/usr/bin/env python
"""How long ``cnn-derive build`` takes in a fresh process, for the targets of issue 7.

    python benchmarks/bench_build.py [--repeat 3] [--only seed,part3,html,n28]

Targets (wall seconds of a fresh process, imports included, judged on the median):

  seed   build --format md,tex                  <= 3 s
  part3  build --spec part3 --format md,tex     <= 10 s
  html   build --format html                    <= 5 s   (skipped, with a note, if the build refuses html)
  n28    build --n 28 --k 3 --format md,tex,pdf <= 60 s  (one timed run unless --repeat-slow)

Before the timed runs of a target, one run warms the disk caches a user's second build finds
(the compiled programs and the general proofs, in ``$CNN_DERIVE_CACHE`` or ~/.cache/cnn-derive);
its time is printed too, as "first run". Each run writes to a new temporary folder, so nothing
else is reused and nothing is written inside the repository. Baseline, interleaved with the
runs: ``python -c "import sympy, symengine, numpy, matplotlib, jinja2"``.

Exits 0 whatever the verdict (this is a report, not a test); a crash still exits non-zero.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cli_command, fresh_process_times, machine_header, run_timed, summarize_target  # noqa: E402

IMPORT_BASELINE = [sys.executable, "-c", "import sympy, symengine, numpy, matplotlib, jinja2"]

# name: (build arguments, formats, limit in seconds, files the build must write, slow)
TARGETS = {
    "seed": ([], "md,tex", 3.0, ("handout.md", "handout.tex"), False),
    "part3": (["--spec", "part3"], "md,tex", 10.0, ("handout.md", "handout.tex"), False),
    "html": ([], "html", 5.0, ("handout.html",), False),
    "n28": (["--n", "28", "--k", "3"], "md,tex,pdf", 60.0, ("handout.md", "handout.tex", "handout.pdf"), True),
}


def bench(name: str, tmp: Path, repeat: int) -> None:
    args, formats, limit, needs, _ = TARGETS[name]
    runs = itertools.count()

    def command() -> tuple:
        out = tmp / f"{name}-{next(runs)}"
        return cli_command() + ["build", *args, "--format", formats, "--quiet", "--out", str(out)], out

    shown = " ".join(["cnn-derive build", *args, "--format", formats, "--quiet --out <tmp>"])
    cmd, out = command()
    first, rc, text = run_timed(cmd, cwd=str(tmp))
    if rc != 0:
        reason = text.strip().splitlines()[-1:] or ["(no output)"]
        if name == "html":
            print(f"  {shown}\n    SKIPPED: the build does not write html yet (exit {rc}: {reason[0][:200]})\n")
            return
        print(f"  {shown}\n    FAIL: the first run exited {rc}: {text.strip()[-600:]}\n")
        return
    outs = []

    def prepare(i: int) -> list:
        cmd, out = command()
        outs.append(out)
        return cmd

    times = fresh_process_times(None, IMPORT_BASELINE, repeat=repeat, cwd=str(tmp), prepare=prepare)
    wrote = [sorted(p.name for p in o.iterdir()) if o.exists() else [] for o in outs]
    complete = all(set(needs) <= set(w) for w in wrote)
    ok = all(rc == 0 for rc in times["rc"]) and complete
    note = f"first run (warming the caches) {first:.2f} s; each run wrote: {', '.join(wrote[-1]) or 'nothing'}"
    if not ok:
        note += f"; last output: {times['output'].strip()[-400:] or '(none)'}"
    summarize_target(shown, times, limit, extra_ok=ok, note=note)
    print()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed fresh processes per target (default 3)")
    ap.add_argument("--repeat-slow", type=int, default=1, help="timed fresh processes for the n = 28 target (default 1)")
    ap.add_argument("--only", default=",".join(TARGETS), help=f"comma-separated subset of {','.join(TARGETS)}")
    args = ap.parse_args(argv)
    chosen = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in TARGETS]
    if unknown:
        ap.error(f"--only: unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    t_start = time.perf_counter()
    machine_header("bench_build: cnn-derive build in a fresh process")
    print('Targets (fresh process, imports included; baseline: python -c "import sympy, symengine, numpy, matplotlib, jinja2")\n')
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            bench(name, Path(tmp), args.repeat_slow if TARGETS[name][4] else args.repeat)
    print(f"total benchmark time: {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
