"""Writing a folder of output all at once: built beside its destination, then swapped in."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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


__all__ = ["replace_folder"]
