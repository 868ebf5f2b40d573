"""Independent checks of the worked example's gradients, reported only as they ran.

* PyTorch float64 autograd, where torch is installed: run in a child process started before the
  proofs (importing torch takes seconds, the proofs take as long, so the two overlap), compared
  by the largest difference relative to the largest gradient. Where torch is absent, or the child
  fails, the handout says so and claims nothing.
* mpmath at 40 digits, from the forward loss alone (``symbolic.check.evaluate_mp``): one-sided
  differences on both sides of each parameter. Where they agree the loss is smooth along that
  parameter and the central difference is compared; where they differ the point sits on a kink
  (a ReLU input at 0 or a max-pool tie moved apart by that parameter), no central difference is
  printed (it would average the two slopes), and the handout says which one-sided slope the
  engine's convention gives.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symbolic.files import write_atomic

# Step and precision of the mpmath differences: with 40 digits and h = 1e-15, rounding (~1e-25)
# and the one-sided truncation error (~h |L''|) are far below the 4 digits the handout prints.
DPS = 40
H = "1e-15"
# Past this many parameters only a representative subset is checked (each check evaluates L twice).
ALL_UP_TO = 40


@dataclass(frozen=True)
class TorchCheck:
    """The PyTorch comparison: ``status`` "ran", "absent" or "failed"; ``relative`` the largest gap / largest gradient."""

    status: str
    relative: float = math.nan
    detail: str = ""


@dataclass(frozen=True)
class Slope:
    """One parameter checked with mpmath: the engine's derivative and the one-sided slopes either side.

    ``central`` is None at a kink; ``side`` then says which slope the engine gives ("left", "right"
    or "neither").
    """

    name: str
    engine: float
    left: float
    right: float
    central: float | None
    relative: float | None
    side: str = ""


@dataclass(frozen=True)
class TorchRun:
    """A PyTorch comparison under way (``child``) or already known (``grads``, from an earlier run on
    the same inputs with the same torch), and where its result is kept (``key``)."""

    child: subprocess.Popen | None = None
    grads: tuple | None = None
    key: Path | None = None


def _key(payload: dict) -> Path | None:
    """The file an earlier comparison of these inputs with this torch was kept in (None: torch absent)."""
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None
    from symbolic.numeric.cache import folder

    digest = hashlib.sha256()
    for part in (json.dumps(payload, sort_keys=True), version, sys.version, Path(__file__).with_name("torch_check.py").read_text()):
        digest.update(part.encode())
    return folder() / f"torch-check-{digest.hexdigest()[:32]}.json"


def start_torch(example, pool: int) -> TorchRun | None:
    """Start the PyTorch comparison in a child process (None where torch is not installed).

    Importing torch takes seconds, so the gradients of an earlier run on the very same inputs with
    the same torch are read back instead of recomputed; a file that cannot be read is recomputed.
    """
    if importlib.util.find_spec("torch") is None:
        return None
    payload = {k: np.asarray(v, dtype=float).tolist() for k, v in example.inputs.items()}
    payload["pool"] = pool
    key = _key(payload)
    if key is not None:
        try:
            return TorchRun(grads=tuple(json.loads(key.read_text())["grads"]), key=key)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    child = subprocess.Popen(
        [sys.executable, "-m", "render.lecture.torch_check"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child.stdin.write(json.dumps(payload))
    child.stdin.close()
    return TorchRun(child=child, key=key)


def finish_torch(run: TorchRun | None, example) -> TorchCheck:
    """Wait for the comparison and read it: how far the engine's gradients are from PyTorch's."""
    if run is None:
        return TorchCheck("absent", detail="PyTorch is not installed here")
    grads = run.grads
    if grads is None:
        child = run.child
        try:
            out, err = child.stdout.read(), child.stderr.read()
            code = child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            return TorchCheck("failed", detail="PyTorch did not answer within 120 s")
        if code != 0:
            last = (err.strip().splitlines() or ["no message"])[-1]
            return TorchCheck("failed", detail=f"PyTorch failed: {last}")
        grads = tuple(json.loads(out)["grads"])
        _keep(run.key, grads)
    theirs = np.asarray(grads, dtype=float)
    ours = np.asarray(example.grads, dtype=float)
    scale = max(float(np.max(np.abs(theirs))), 1e-300)
    return TorchCheck("ran", float(np.max(np.abs(ours - theirs)) / scale))


def stop_torch(run: TorchRun | None) -> None:
    """End a comparison that is no longer wanted (the build failed)."""
    if run is not None and run.child is not None and run.child.poll() is None:
        run.child.kill()
        run.child.wait()


def _keep(key: Path | None, grads: tuple) -> None:
    """Store a comparison's gradients for the next build (atomically; a failure to write only costs time)."""
    if key is None:
        return
    write_atomic(key, json.dumps({"grads": list(grads)}).encode())


def representative(names: list, shapes: dict) -> list:
    """The parameter entries checked: all of them for small networks, else the first and the last
    entry of each parameter (every scalar parameter whole).

    >>> representative([f"p{i}" for i in range(50)], {"W": (1, 49), "B": (1,)})
    ['p0', 'p48', 'p49']
    """
    if len(names) <= ALL_UP_TO:
        return list(names)
    out, at = [], 0
    for shape in shapes.values():
        size = math.prod(shape)
        picks = sorted({0, size - 1})
        out += [names[at + i] for i in picks]
        at += size
    return out


def _exact(x) -> list:  # noqa: ANN001 - an mpmath.mpf
    """An mpf as [mantissa, exponent]: JSON that gives back the very same number."""
    sign, man, exp, _ = x._mpf_
    return [-man if sign else man, exp]


def one_sided(spec, net, example, names: list) -> list:  # noqa: ANN001 - a NetworkSpec and a built network
    """mpmath's right and left difference quotients of ``net.L`` at the example's point, per name, exactly.

    They depend only on the network (the engine's source and ``spec``), the point and the check's own
    settings, never on the engine's gradients they are compared with; so an earlier build's quotients
    for the same key are read back (``symbolic.numeric.cache.remembered``), as the PyTorch gradients
    are, and mpmath's 0.4 s are paid once.
    """
    from symbolic.numeric.cache import remembered, source_digest

    def compute() -> list:
        import mpmath

        from symbolic.check import evaluate_mp

        entries = net.entries()
        xs = list(np.asarray(net.stages["X"], dtype=object).ravel())
        with mpmath.workdps(DPS):
            h = mpmath.mpf(H)
            point = {s: mpmath.mpf(float(v)) for s, v in zip(xs, np.ravel(example.inputs["X"]))}
            point.update({entries[p]: mpmath.mpf(v) for p, v in zip(example.names, example.values)})
            point.update({s: mpmath.mpf(example.inputs["Y"]) for s in np.ravel(net.Y)})
            base = evaluate_mp(net.L, point)
            out = []
            for name in names:
                up, down = dict(point), dict(point)
                up[entries[name]] += h
                down[entries[name]] -= h
                out.append([name, _exact((evaluate_mp(net.L, up) - base) / h), _exact((base - evaluate_mp(net.L, down)) / h)])
            return out

    what = {
        "engine": source_digest(),
        "check": Path(__file__).read_text(),
        "spec": repr(spec),
        "point": {k: np.asarray(v, dtype=float).tolist() for k, v in example.inputs.items()},
        "values": [float(v) for v in example.values],
        "names": list(names),
        "dps": DPS,
        "h": H,
        "mpmath": importlib.metadata.version("mpmath"),
    }
    return remembered("mpmath-slopes", what, compute)


def slopes(spec, net, example, names: list) -> list:  # noqa: ANN001 - a NetworkSpec and a built network
    """The mpmath check of ``names`` (parameter entries) at the example's point, from ``net.L`` alone."""
    import mpmath

    engine = dict(zip(example.names, example.grads))
    with mpmath.workdps(DPS):
        raw = [(name, mpmath.mpf(tuple(right)), mpmath.mpf(tuple(left))) for name, right, left in one_sided(spec, net, example, names)]
        scale = max([abs(r) for _, r, _ in raw] + [abs(left) for _, _, left in raw] + [mpmath.mpf("1e-300")])
        out = []
        for name, right, left in raw:
            d = engine[name]
            if abs(right - left) <= mpmath.mpf("1e-9") * max(scale, 1):
                c = (right + left) / 2
                out.append(Slope(name, d, float(left), float(right), float(c), float(abs(mpmath.mpf(d) - c) / scale)))
            else:
                tol = mpmath.mpf("1e-9") * max(scale, 1)
                side = "left" if abs(d - left) <= tol else ("right" if abs(d - right) <= tol else "neither")
                out.append(Slope(name, d, float(left), float(right), None, None, side))
        return out
