"""The per-layer handout's pictures, as ``Figure.draw`` callables: ``draw(path, **data)``.

``render.figures`` draws; these functions only take the build's calling convention (the path
first, the data by keyword) and pass it on, so every picture keeps its rules: deterministic
PNGs, colours centred on 0, 1-based indices, values written in the cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _figures():  # noqa: ANN202 - the module render.figures
    # matplotlib takes about a second to import: only a figure that is really drawn (not copied
    # from the figure cache) pays for it.
    from render import figures

    return figures


def panels(path: str | Path, *, mats: Sequence[object], titles: Sequence[str], marks: Sequence[object] | None = None) -> Path:
    """Matrices side by side (``figures.matrix_panel``); ``marks`` outlines cells (window members, winners).

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> panels(d / "p.png", mats=[[[1, -2], [0, 3]]], titles=["Z1"], marks=[[[1, 0], [0, 0]]]).name
    'p.png'
    """
    return _figures().matrix_panel(list(mats), list(titles), path, marks=None if marks is None else list(marks))


def network(path: str | Path, *, shapes: Sequence[Sequence[object]]) -> Path:
    """The architecture diagram (``figures.architecture``): one box per stage, arrows named by their layer.

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> network(d / "a.png", shapes=[("X", "4", "dense W1,B1"), ("Z1", "2", "MSE"), ("L", "1", None)]).name
    'a.png'
    """
    return _figures().architecture(list(shapes), path)


__all__ = ["network", "panels"]
