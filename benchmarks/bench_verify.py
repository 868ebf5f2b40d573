"""Wall time and peak memory of `cnn-derive verify` in fresh processes, against last release's figures.

Prints one row per size (the seed network at n×n with k = 3), then the presets, each with the
figures measured before the layer-stack engine (issue "Any CNN from a spec", same machine
kind), the growth exponent from 28 to 64, and PASS/FAIL against the targets. Run from the
repository's top folder::

    .venv/bin/python benchmarks/bench_verify.py            # about 1 min
    .venv/bin/python benchmarks/bench_verify.py --sizes 6,28
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import time

from _common import cli_command, machine_header, user_env, verdict  # noqa: I001


def judge(name: str, ok: bool, figure: str) -> None:
    print(f"    {verdict(ok)}  {name}: {figure}")


BEFORE = {6: (0.5, None), 28: (5.3, None), 40: (21.5, None), 56: (96.0, None), 64: (188.0, 4.5 * 1024)}
TARGETS = {6: 2.0, 28: 5.0, 64: 30.0}
PRESET_TARGETS = {"part3": 15.0}
MEMORY_TARGET_MB = 1024


def run(args: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak resident MiB, exit code and output of one fresh `cnn-derive` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cli_command() + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=user_env())
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="6,28,40,56,64")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size up to n = 28 (median)")
    opts = parser.parse_args()
    machine_header("cnn-derive verify: fresh processes, imports included")
    base = [run(["--version"])[0] for _ in range(3)]
    print(f"baseline `cnn-derive --version` (imports only): median {sorted(base)[1]:.2f} s\n")
    print(f"{'network':>16} {'wall s':>8} {'peak MiB':>9} {'before s':>9} {'before MiB':>11} {'speed-up':>9}  result")
    walls: dict[int, float] = {}
    for n in (int(s) for s in opts.sizes.split(",")):
        repeat = opts.repeat if n <= 28 else 1
        runs = [run(["verify", "--n", str(n), "--k", "3", "--force"]) for _ in range(repeat)]
        runs.sort(key=lambda r: r[0])
        wall, mem, code, out = runs[len(runs) // 2]
        ok = code == 0 and "rules proven" in out and "NOT" not in out
        walls[n] = wall
        before, before_mem = BEFORE.get(n, (None, None))
        print(
            f"{'seed n=' + str(n):>16} {wall:8.2f} {mem:9.0f} {before if before else '':>9} "
            f"{before_mem if before_mem else '':>11} {f'{before / wall:.1f}x' if before else '':>9}  "
            f"{'all proven' if ok else 'FAILED: ' + out[-200:]}"
        )
        if n in TARGETS:
            judge(f"verify --n {n}: wall <= {TARGETS[n]:.0f} s", ok and wall <= TARGETS[n], f"{wall:.2f} s")
        if n == 64:
            judge(f"verify --n 64: peak memory <= {MEMORY_TARGET_MB} MiB", mem <= MEMORY_TARGET_MB, f"{mem:.0f} MiB")
    if 28 in walls and 64 in walls:
        exponent = math.log(walls[64] / walls[28]) / math.log(64 / 28)
        judge("growth from n = 28 to 64 no steeper than N^2.5", exponent <= 2.5, f"N^{exponent:.2f} (before: N^4.2)")
    for name in ("seed", "part3", "lenet-tiny"):
        runs = sorted((run(["verify", "--spec", name]) for _ in range(opts.repeat)), key=lambda r: r[0])
        wall, mem, code, out = runs[len(runs) // 2]
        ok = code == 0 and "NOT" not in out
        print(f"{name:>16} {wall:8.2f} {mem:9.0f} {'':>9} {'':>11} {'':>9}  {'all proven' if ok else 'FAILED'}")
        if name in PRESET_TARGETS:
            judge(f"verify --spec {name}: wall <= {PRESET_TARGETS[name]:.0f} s", ok and wall <= PRESET_TARGETS[name], f"{wall:.2f} s")


if __name__ == "__main__":
    main()
