"""What an earlier handout folder holds, so that a build replaces only the formats it writes.

Every build leaves a small record, ``.cnn-derive.json``, beside the handout: the fingerprint of
the document (the SHA-256 of its LaTeX, which holds every word and number), the formats written
from it and the figures drawn for it. The next build into that folder uses it to

* keep the formats it does not write, when they show the same document (else it refuses: the
  figures it redraws are shared by every format, so a kept stale file would not match them);
* tell the figures it drew from files a user put into ``figures/`` (those are refused, never
  silently deleted).

A folder without the record (written before it existed, or with it removed) is judged by
content: a kept Markdown or LaTeX file is current when it is byte-for-byte what this build
writes; a kept PDF or HTML page cannot be judged so and counts as stale; every ``*.png`` in
``figures/`` counts as drawn by cnn-derive.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

MANIFEST = ".cnn-derive.json"
FILES = {"md": "handout.md", "tex": "handout.tex", "pdf": "handout.pdf", "html": "handout.html"}
_ABOUT = "written by `cnn-derive build`: the document's fingerprint, the formats written from it, the figures drawn for it"


def fingerprint(tex: str) -> str:
    """The document's fingerprint: the SHA-256 of its LaTeX source.

    >>> fingerprint("x")[:12]
    '2d711642b726'
    """
    return hashlib.sha256(tex.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Earlier:
    """An existing handout folder: the formats present, and its record (``source`` None: no record)."""

    folder: Path
    present: tuple
    source: str | None = None
    formats: tuple = ()
    figures: tuple = ()


def read_earlier(folder: Path) -> Earlier | None:
    """The earlier handout in ``folder``, or None when there is no such folder.

    An unreadable or malformed record counts as none: the folder is then judged by content.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "handout.md").write_text("x")
    >>> e = read_earlier(d); e.present, e.source
    (('md',), None)
    """
    if not folder.is_dir():
        return None
    present = tuple(fmt for fmt, name in FILES.items() if (folder / name).is_file())
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        source, formats, figures = data["source"], tuple(data["formats"]), tuple(data["figures"])
        if not (isinstance(source, str) and all(isinstance(x, str) for x in formats + figures)):
            raise TypeError(source)
    except (OSError, ValueError, KeyError, TypeError):
        return Earlier(folder, present)
    return Earlier(folder, present, source, formats, figures)


def record_text(source: str, formats: Iterable[str], figures: Iterable[str]) -> str:
    """The record a build leaves: deterministic JSON (sorted figure names, formats in canonical order).

    >>> print(record_text("ab", ["pdf", "md"], ["b.png", "a.png"]), end="")  # doctest: +ELLIPSIS
    {
      "about": "written by ...",
      "source": "ab",
      "formats": [
        "md",
        "pdf"
      ],
      "figures": [
        "a.png",
        "b.png"
      ]
    }
    """
    formats = [f for f in FILES if f in set(formats)]
    return json.dumps({"about": _ABOUT, "source": source, "formats": formats, "figures": sorted(figures)}, indent=2) + "\n"


def foreign_figures(earlier: Earlier | None) -> list[str]:
    """The entries of ``figures/`` that no build drew, as paths relative to the folder (``figures/notes.txt``).

    >>> import tempfile; d = Path(tempfile.mkdtemp()); (d / "figures").mkdir()
    >>> _ = (d / "figures" / "a.png").write_bytes(b""); _ = (d / "figures" / "mine.txt").write_text("x")
    >>> foreign_figures(read_earlier(d))
    ['figures/mine.txt']
    """
    if earlier is None or not (earlier.folder / "figures").is_dir():
        return []
    ours = set(earlier.figures) if earlier.source is not None else None
    foreign = []
    for path in sorted((earlier.folder / "figures").iterdir()):
        drawn = path.is_file() and (path.name in ours if ours is not None else path.suffix == ".png")
        if not drawn:
            foreign.append(f"figures/{path.name}{'/' if path.is_dir() else ''}")
    return foreign


def stale_formats(earlier: Earlier | None, kept: Iterable[str], source: str, current: Callable[[str], str]) -> list[str]:
    """The kept formats whose file shows another document than the one with fingerprint ``source``.

    ``current(fmt)`` is the text this build writes in format ``fmt`` (asked only for md and tex,
    and only when the record cannot tell).

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "handout.md").write_text("old")
    >>> _ = (d / "handout.pdf").write_bytes(b"%PDF")
    >>> stale_formats(read_earlier(d), ["md", "pdf"], "new", {"md": "old"}.get)
    ['pdf']
    """
    if earlier is None:
        return []
    stale = []
    for fmt in kept:
        if earlier.source == source and fmt in earlier.formats:
            continue
        if fmt in ("md", "tex") and (earlier.folder / FILES[fmt]).read_bytes() == current(fmt).encode("utf-8"):
            continue
        stale.append(fmt)
    return stale


__all__ = ["FILES", "MANIFEST", "Earlier", "fingerprint", "foreign_figures", "read_earlier", "record_text", "stale_formats"]
