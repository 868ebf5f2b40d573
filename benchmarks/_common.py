"""Shared helpers for the benchmark scripts: machine header, fresh-process timing, table printing.

Not a test module and not part of the package; imported by ``bench_*.py`` from this folder.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine_header(title: str) -> None:
    """Print what the numbers were measured on: CPUs, Python, library versions."""
    cpus = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = cpus
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for mod in ("symengine", "sympy", "numpy", "matplotlib", "jinja2"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:  # noqa: BLE001 - a header must not crash the report
            versions.append(f"{mod} (not importable)")
    print(f"== {title} ==")
    print(f"machine: nproc={usable} (os.cpu_count={cpus}){'  ' + model if model else ''}")
    print(f"python:  {platform.python_version()} ({sys.executable}) on {platform.platform()}")
    print(f"libs:    {', '.join(versions)}")
    if "PYTHONDONTWRITEBYTECODE" in os.environ:
        print("note:    fresh processes run with the bytecode cache on, as a user's install has it (this shell turns it off)")
    print()


def user_env() -> dict:
    """The environment for fresh processes: this one, with Python's bytecode cache on.

    Some sandboxes set PYTHONDONTWRITEBYTECODE, which makes every fresh process compile our
    modules from source again (~0.08 s); a user's install keeps its bytecode, so the timed
    processes (targets and baselines alike) do too.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cli_command() -> list:
    """How to start ``cnn-derive`` in a fresh process: the console script next to this Python if there is one."""
    script = Path(sys.executable).parent / "cnn-derive"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from render.cli import main; sys.exit(main())"]


def run_timed(cmd: list, cwd: str | None = None, timeout: float = 600) -> tuple:
    """Wall seconds of one fresh process, its exit code and its combined output."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=user_env())
    return time.perf_counter() - t0, proc.returncode, proc.stdout + proc.stderr


def fresh_process_times(target: list, baseline: list, repeat: int = 3, cwd: str | None = None, prepare=None) -> dict:
    """Time ``target`` and ``baseline`` ``repeat`` times each, interleaved, in fresh processes.

    ``prepare(i)`` (optional) runs before each target run and may return a replacement command,
    e.g. with a fresh output folder. Returns the lists of seconds, the target's exit codes and
    its last output.
    """
    out = {"target": [], "baseline": [], "rc": [], "output": "", "baseline_rc": []}
    for i in range(repeat):
        secs, rc, _ = run_timed(baseline, cwd=cwd)
        out["baseline"].append(secs)
        out["baseline_rc"].append(rc)
        cmd = prepare(i) if prepare else None
        secs, rc, text = run_timed(cmd or target, cwd=cwd)
        out["target"].append(secs)
        out["rc"].append(rc)
        out["output"] = text
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summarize_target(name: str, times: dict, limit: float, extra_ok: bool = True, note: str = "") -> None:
    """One target line: best and median of the target, the baseline's, their ratio, PASS/FAIL on the median."""
    best, med = min(times["target"]), statistics.median(times["target"])
    bbest, bmed = min(times["baseline"]), statistics.median(times["baseline"])
    ok = med <= limit and extra_ok
    runs = ", ".join(f"{t:.2f}" for t in times["target"])
    print(f"  {name}")
    print(f"    target:   <= {limit:g} s wall, fresh process (judged on the median)")
    print(f"    measured: best {best:.2f} s, median {med:.2f} s   (runs: {runs}; exit codes {times['rc']})")
    print(
        f"    baseline: best {bbest:.2f} s, median {bmed:.2f} s   -> ratio target/baseline: best {best / bbest:.2f}x, median {med / bmed:.2f}x"
    )
    if note:
        print(f"    note:     {note}")
    borderline = " (best-of-3 is within the target, the median is not)" if not ok and best <= limit and extra_ok else ""
    print(f"    {verdict(ok)}{borderline}")


def print_table(headers: list, rows: list) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))


def torch_model(spec):
    """A PyTorch function of (params, X, Y) -> loss per sample, built from the spec."""
    import torch
    import torch.nn.functional as F

    def forward(params: dict, X, Y):
        h = X
        t = 0
        for layer in spec.layers:
            if layer.type == "conv2d":
                t += 1
                h = F.conv2d(h, params[f"W{t}"], params[f"B{t}"], stride=layer.stride, padding=layer.padding)
            elif layer.type == "dense":
                t += 1
                h = F.linear(h, params[f"W{t}"], params[f"B{t}"])
            elif layer.type == "relu":
                h = F.relu(h)
            elif layer.type == "leaky_relu":
                h = F.leaky_relu(h, layer.slope)
            elif layer.type == "tanh":
                h = torch.tanh(h)
            elif layer.type == "sigmoid":
                h = torch.sigmoid(h)
            elif layer.type == "maxpool":
                h = F.max_pool2d(h, layer.window, layer.stride)
            elif layer.type == "avgpool":
                h = F.avg_pool2d(h, layer.window, layer.stride)
            elif layer.type == "flatten":
                h = h.reshape(h.shape[0], -1)
        if spec.loss == "bce":
            return F.binary_cross_entropy_with_logits(h[:, 0], Y, reduction="none")
        if spec.loss == "softmax_ce":
            return F.cross_entropy(h, Y, reduction="none")
        return ((h - Y) ** 2).mean(dim=1)

    return forward
