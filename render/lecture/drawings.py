"""The lecture handout's pictures as ``Figure.draw`` callables, ``draw(path, **data)``: the build's
calling convention (the path first, the data by keyword) put in front of ``render.figures``."""

from __future__ import annotations

from pathlib import Path

from render import figures


def architecture(path: str | Path, *, shapes) -> Path:
    """The network left to right (``figures.architecture``).

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> architecture(d / "a.png", shapes=[("X", "4", "dense W1,B1"), ("L", "1", None)]).name
    'a.png'
    """
    return figures.architecture(list(shapes), path)


def panels(path: str | Path, *, mats, titles, marks=None) -> Path:
    """Matrices side by side (``figures.matrix_panel``)."""
    return figures.matrix_panel(list(mats), list(titles), path, marks=None if marks is None else list(marks))


def routing(path: str | Path, *, a1, mask, grad_p1, grad_a1, pool: int) -> Path:
    """The max-pool backward pass (``figures.pool_routing``)."""
    return figures.pool_routing(a1, mask, grad_p1, grad_a1, pool, path)


def sliding(path: str | Path, *, x, grad, offsets, titles) -> Path:
    """The filter gradient as a sliding window (``figures.sliding``)."""
    return figures.sliding(x, grad, offsets, path, titles=titles, result=False)


def training(path: str | Path, *, history, title: str) -> Path:
    """The training run's loss and accuracy (``figures.training``)."""
    return figures.training(history, path, title=title)
