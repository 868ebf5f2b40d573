"""Writing all at once: a folder of output built beside its destination, then swapped in, and
a cache file written beside its name, then renamed (``write_atomic``).

The folder being built is hidden (its name starts with a dot) and carries the id of the process
that builds it: ``.<out>.build-<pid>-<random>``, and the old folder being swapped out is
``.<out>.old.<pid>``. A process killed mid-build cannot remove its own folder, so the next one
that writes beside it removes every such folder whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path

from symbolic.errors import CnnDeriveError


def prepare_output(out: Path, own: Collection[str], error: type[CnnDeriveError], earlier: str) -> Path:
    """A temporary folder beside ``out`` to write into, after refusing a destination that is not ours.

    ``own`` names the files an earlier output holds (anything else there is the user's, and the
    swap would remove it); ``earlier`` says what may be replaced. Every refusal is ``error``,
    one line about ``--out``. Folders left beside ``out`` by killed builds are removed first.

    >>> import tempfile; root = Path(tempfile.mkdtemp()); (root / "f").write_text("x") and None
    >>> prepare_output(root / "f" / "out", {"a"}, CnnDeriveError, "an earlier output")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symbolic.errors.CnnDeriveError: --out: cannot create .../f/out: .../f is a file
    >>> tmp = prepare_output(root / "out", {"a"}, CnnDeriveError, "an earlier output")
    >>> tmp.name.startswith(f".out.build-{os.getpid()}-"), tmp.parent == root
    (True, True)
    """
    try:
        blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise error(f"--out: cannot create {out}: {blocking} is a file")
        if out.exists() and not out.is_dir():
            raise error(f"--out: expected a folder, but {out} is a file")
        if out.is_dir():
            foreign = sorted(p.name for p in out.iterdir() if p.name not in own)
            if foreign or out.resolve() == Path.cwd().resolve():
                raise error(
                    f"--out: {out} holds other files ({', '.join(foreign[:3]) or 'the current folder'}); expected a new folder or {earlier}"
                )
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(out)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.build-{os.getpid()}-", dir=out.parent))
    except OSError as err:  # e.g. a parent folder that may not be searched
        raise error(f"--out: cannot create {out}: {err.strerror or err}") from None


def _owner(name: str, out: str) -> int | None:
    """The process id in the name of a build or swap folder of ``out``, or None for any other name."""
    m = re.fullmatch(rf"\.{re.escape(out)}\.(?:build-(\d+)-[^/]+|old\.(\d+))", name)
    return int(m.group(1) or m.group(2)) if m else None


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts: it may not be ours to judge).

    >>> process_alive(os.getpid())
    True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # e.g. a system without signals: keep the folder rather than guess
        return True
    return True


def remove_abandoned(out: Path) -> list[Path]:
    """Remove the build and swap folders beside ``out`` whose process is gone; return what was removed.

    A folder of a running build (this process or another) is left alone. A swapped-out old output
    whose process died before the new one took its place is renamed back to ``out``.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> (root / ".seed.build-999999999-abc").mkdir(); (root / f".seed.build-{os.getpid()}-x").mkdir()
    >>> [p.name for p in remove_abandoned(root / "seed")], sorted(p.name for p in root.iterdir())  # doctest: +ELLIPSIS
    (['.seed.build-999999999-abc'], ['.seed.build-...-x'])
    """
    removed = []
    if not out.parent.is_dir():
        return removed
    for path in sorted(out.parent.iterdir()):
        pid = _owner(path.name, out.name)
        if pid is None or not path.is_dir() or path.is_symlink() or process_alive(pid):
            continue
        if ".old." in path.name and not out.exists():
            # Killed between the two renames of the swap: this is the last complete output; put it back.
            path.rename(out)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def replace_folder(new: Path, dest: Path) -> None:
    """Put folder ``new`` where ``dest`` is, swapping the old one out only at the last moment.

    A reader sees the old folder or the new one, never half of either; if the final rename fails
    the previous output is put back.

    >>> import tempfile; root = Path(tempfile.mkdtemp()); (root / "new").mkdir(); _ = (root / "new" / "a").write_text("1")
    >>> replace_folder(root / "new", root / "out"); (root / "out" / "a").read_text()
    '1'
    """
    os.chmod(new, 0o755)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
        if old.exists():  # left by a killed process that had this id before us
            shutil.rmtree(old, ignore_errors=True)
        dest.rename(old)
    try:
        new.rename(dest)
    except OSError:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` so that a concurrent reader sees the old file or the new one.

    For caches: a failure to write (a read-only or full disk) costs the next run time, not this
    one its answer, so it is not raised; the answer is whether the file was written, and a
    partial file never stays behind.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> write_atomic(root / "sub" / "a.json", b"{}"), (root / "sub" / "a.json").read_bytes(), len(list((root / "sub").iterdir()))
    (True, b'{}', 1)
    >>> (root / "f").write_text("x") and write_atomic(root / "f" / "b.json", b"{}")
    False
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return False
    return True


__all__ = ["prepare_output", "process_alive", "remove_abandoned", "replace_folder", "write_atomic"]
