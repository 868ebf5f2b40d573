"""Both handouts' pictures as ``Figure.draw`` callables, ``draw(path, **data)``: the build's calling
convention (the path first, the data by keyword) put in front of ``render.figures``."""

from __future__ import annotations

from pathlib import Path


def _figures():  # noqa: ANN202 - the module render.figures
    # matplotlib takes about a second to import: only a figure that is really drawn (not copied
    # from the figure cache) pays for it.
    from render import figures

    return figures


def architecture(path: str | Path, *, shapes) -> Path:
    """The network left to right (``figures.architecture``).

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> architecture(d / "a.png", shapes=[("X", "4", "dense W1,B1"), ("L", "1", None)]).name
    'a.png'
    """
    return _figures().architecture(list(shapes), path)


def panels(path: str | Path, *, mats, titles, marks=None, shared=False) -> Path:
    """Matrices side by side (``figures.matrix_panel``); ``marks`` outlines cells (window members,
    winners); ``shared``: the panels (True: all) that share one colour range.

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> panels(d / "p.png", mats=[[[1, -2], [0, 3]]], titles=["Z1"], marks=[[[1, 0], [0, 0]]]).name
    'p.png'
    """
    return _figures().matrix_panel(list(mats), list(titles), path, marks=None if marks is None else list(marks), shared=shared)


def routing(path: str | Path, *, a1, mask, grad_p1, grad_a1, pool: int) -> Path:
    """The max-pool backward pass (``figures.pool_routing``)."""
    return _figures().pool_routing(a1, mask, grad_p1, grad_a1, pool, path)


def sliding(path: str | Path, *, x, grad, offsets, titles) -> Path:
    """The filter gradient as a sliding window (``figures.sliding``)."""
    return _figures().sliding(x, grad, offsets, path, titles=titles, result=False)


def training(path: str | Path, *, history, title: str) -> Path:
    """The training run's loss and accuracy (``figures.training``)."""
    return _figures().training(history, path, title=title)
