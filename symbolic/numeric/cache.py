"""Compiled programs kept on disk, by spec and backend, so that a second process loads them.

The key covers everything the program depends on: the spec (its layers, sizes, loss and tie
convention, not its name), the backend and the outputs, the versions of Python and SymEngine,
and the source of the ``symbolic`` package itself, so a change to any rule recompiles. The
folder is ``$CNN_DERIVE_CACHE``, else ``$XDG_CACHE_HOME/cnn-derive``, else
``~/.cache/cnn-derive``. A file that cannot be read is ignored (and recompiled), never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import platform
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import symengine as se

from symbolic.files import write_atomic
from symbolic.spec import NetworkSpec


def folder() -> Path:
    """Where compiled programs are kept.

    >>> folder().name in ("cnn-derive",) or "CNN_DERIVE_CACHE" in os.environ
    True
    """
    if os.environ.get("CNN_DERIVE_CACHE"):
        return Path(os.environ["CNN_DERIVE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnn-derive"


# Modules a compiled program does not depend on: editing them must not recompile every network.
_NOT_COMPILED = {
    "train.py",
    "batch.py",
    "files.py",
    "case.py",
    "general.py",
    "general_cache.py",
    "check.py",
    "derive.py",
    "cost.py",
    "lemmas.py",
    "rules.py",
}


@lru_cache(maxsize=1)
def source_digest() -> str:
    """A digest of the engine's source (every module a compiled program depends on).

    >>> len(source_digest())
    64
    """
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for path in sorted(root.rglob("*.py")):
        if path.name in _NOT_COMPILED:
            continue
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def key(spec: NetworkSpec, backend: str, outputs: str) -> str:
    """A file name for one compiled program.

    >>> from symbolic.spec import load_spec
    >>> key(load_spec(), "llvm", "all") == key(dataclasses.replace(load_spec(), name="other"), "llvm", "all")
    True
    """
    what = dataclasses.replace(spec, name="", batch=1)
    parts = [repr(what), repr(what.shapes), backend, outputs, platform.python_version(), se.__version__, source_digest()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32] + ".pickle"


def load(name: str):  # noqa: ANN201 - returns symbolic.numeric.Compiled or None
    """The compiled program stored under ``name``, or None."""
    path = folder() / name
    try:
        with path.open("rb") as handle:
            return pickle.load(handle)  # noqa: S301 - our own files in the user's own cache folder
    except Exception:  # noqa: BLE001 - a missing, partial or stale file just means compiling again
        return None


def store(name: str, compiled: object) -> bool:
    """Keep a compiled program, and say whether it was kept (a cache that cannot be written is skipped)."""
    try:
        data = pickle.dumps(compiled, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, RecursionError):
        return False
    return write_atomic(folder() / name, data)


def remembered(kind: str, what: object, compute: Callable[[], object]) -> object:
    """``compute()``'s JSON result, kept in the cache folder under ``kind`` and a digest of ``what``.

    For a slow check whose answer depends only on ``what`` (which must say everything it depends
    on, e.g. the inputs and the library's version), such as PyTorch's gradients of a worked
    example: a later build reads the answer the check gave for the same inputs instead of paying
    for its imports again. ``what`` is digested as canonical JSON. A file that cannot be read or
    parsed is ignored and ``compute()`` runs; an answer that cannot be written is still returned.

    >>> import tempfile; calls = []; saved = os.environ.get("CNN_DERIVE_CACHE")
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     os.environ["CNN_DERIVE_CACHE"] = tmp
    ...     first = remembered("demo", {"x": [1, 2]}, lambda: calls.append(1) or {"sum": 3})
    ...     again = remembered("demo", {"x": [1, 2]}, lambda: calls.append(1) or {"sum": 3})
    >>> _ = os.environ.pop("CNN_DERIVE_CACHE") if saved is None else os.environ.update(CNN_DERIVE_CACHE=saved)
    >>> first == again == {"sum": 3}, len(calls)
    (True, 1)
    """
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
    path = folder() / f"{kind}-{digest}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    answer = compute()
    try:
        write_atomic(path, json.dumps(answer).encode())
    except (TypeError, ValueError):  # an answer JSON cannot hold is returned, not kept
        pass
    return answer


__all__ = ["folder", "key", "load", "remembered", "store"]
