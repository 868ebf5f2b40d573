"""The document model's building blocks: what every handout is made of, in every format.

A handout is a ``Document``: a title and a flat sequence of typed blocks (``Heading``, ``Para``,
``Display``, ``Figure``, ``Table``, ``Items``, ``Box``, ``PageBreak``). Text is ``Words``: plain
strings, inline formulas (SymPy objects, printed only by our printers), ``Strong`` text and
``Link`` references (a proof mark pointing at the appendix row of its rule). Templates print blocks
and never compute: each block names the macro that prints it (``kind``), one macro per block type
in each format's macro file, and ``Words`` parts are told apart by Jinja tests on their types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import count


@dataclass(frozen=True)
class Strong:
    """Bold plain text inside a sentence."""

    text: str


@dataclass(frozen=True)
class Link:
    """A reference inside the document: ``text`` (plain) pointing at the block whose ``anchor`` is ``target``."""

    text: str
    target: str


@dataclass(frozen=True)
class Words:
    """A sentence: plain text (str), inline formulas (SymPy objects), ``Strong`` and ``Link`` parts, in reading order."""

    parts: tuple


def words(*parts: object) -> Words:
    """A sentence from its parts; a ``Words`` among them is spliced in.

    >>> import sympy as sp
    >>> w = words("the weight ", sp.Symbol("w_11"), words(" and ", Strong("more")))
    >>> [type(p).__name__ for p in w.parts]
    ['str', 'Symbol', 'str', 'Strong']
    """
    out: list = []
    for part in parts:
        if isinstance(part, Words):
            out.extend(part.parts)
        elif part is not None and part != "":
            out.append(part)
    return Words(tuple(out))


@dataclass(frozen=True)
class Heading:
    """A section (level 1) or subsection (level 2) title, plain or with math; ``anchor`` lets links point at it."""

    title: str | Words
    level: int = 1
    anchor: str = ""
    kind: str = field(default="heading", init=False)


@dataclass(frozen=True)
class Para:
    """One paragraph."""

    words: Words
    kind: str = field(default="para", init=False)

    @property
    def introduces(self) -> bool:
        """Whether the paragraph ends in a colon: it introduces what follows and stays on its page.

        >>> Para(words("Then:")).introduces, Para(words("Done.")).introduces
        (True, False)
        """
        last = self.words.parts[-1] if self.words.parts else ""
        return isinstance(last, str) and last.rstrip().endswith(":")


@dataclass(frozen=True)
class Display:
    """One displayed formula (a SymPy object, or a display object of ``render.notation``)."""

    expr: object
    kind: str = field(default="display", init=False)


@dataclass(frozen=True)
class Figure:
    """A picture in ``figures/``: its file, its caption, and how to draw it: ``draw(path, **data)``.

    ``draw`` is a drawing function (``render.figures``); ``width`` is the fraction of the text
    width the picture takes in LaTeX.
    """

    file: str
    caption: Words
    draw: Callable
    data: dict = field(default_factory=dict, compare=False, hash=False)
    width: float = 0.9
    number: int = 0  # set by the Document: figures are numbered in reading order
    kind: str = field(default="figure", init=False)


@dataclass(frozen=True)
class Table:
    """A table built in full: a header and rows of ``Words`` cells, ``align`` one of l/r/c per column."""

    header: tuple
    rows: tuple
    align: str = ""
    kind: str = field(default="table", init=False)


@dataclass(frozen=True)
class Items:
    """A bulleted list, one ``Words`` per item."""

    lines: tuple
    kind: str = field(default="items", init=False)


@dataclass(frozen=True)
class Box:
    """A framed summary: a title and the blocks inside it (no headings or figures inside)."""

    title: str
    blocks: tuple
    kind: str = field(default="box", init=False)


@dataclass(frozen=True)
class PageBreak:
    """A new page in the PDF (nothing in the other formats)."""

    kind: str = field(default="pagebreak", init=False)


@dataclass(frozen=True)
class Document:
    """A whole handout: its title, one line under it, and its blocks in reading order."""

    title: str
    subtitle: Words
    blocks: tuple

    def __post_init__(self) -> None:
        # Every format says "Figure N" (LaTeX counts by itself), so the numbers live in the model.
        figures = count(1)
        numbered = tuple(replace(b, number=next(figures)) if isinstance(b, Figure) else b for b in self.blocks)
        object.__setattr__(self, "blocks", numbered)

    @property
    def figures(self) -> tuple:
        """Every figure of the document, in order and numbered (a ``Box`` holds none).

        >>> d = Document("T", words("s"), (Para(words("x")), Figure("a.png", words("A"), print), Figure("b.png", words("B"), print)))
        >>> [(f.file, f.number) for f in d.figures]
        [('a.png', 1), ('b.png', 2)]
        """
        return tuple(b for b in self.blocks if isinstance(b, Figure))
