"""Writing a folder of output all at once: built beside its destination, then swapped in."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path

from symbolic.errors import CnnDeriveError


def prepare_output(out: Path, own: Collection[str], error: type[CnnDeriveError], earlier: str) -> Path:
    """A temporary folder beside ``out`` to write into, after refusing a destination that is not ours.

    ``own`` names the files an earlier output holds (anything else there is the user's, and the
    swap would remove it); ``earlier`` says what may be replaced. Every refusal is ``error``,
    one line about ``--out``.

    >>> import tempfile; root = Path(tempfile.mkdtemp()); (root / "f").write_text("x") and None
    >>> prepare_output(root / "f" / "out", {"a"}, CnnDeriveError, "an earlier output")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symbolic.errors.CnnDeriveError: --out: cannot create .../f/out: .../f is a file
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
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:  # e.g. a parent folder that may not be searched
        raise error(f"--out: cannot create {out}: {err.strerror or err}") from None


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
        dest.rename(old)
    try:
        new.rename(dest)
    except OSError:
        if old is not None:
            old.rename(dest)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["prepare_output", "replace_folder"]
