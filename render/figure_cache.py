"""Figures drawn once: a figure's PNG is kept in the cache folder under a digest of all that draws it.

A figure is a pure function of its drawing code, matplotlib's version and its data (the figure
tests check that the same inputs give the same bytes, across processes). So a later build with
the same digest copies the PNG instead of paying for matplotlib again. The digest covers the
source of the drawing function's module and of ``render.figures`` (which every drawing uses),
matplotlib's version and the pickled data; data that cannot be pickled is simply drawn. A cache
file that cannot be read, or is not a PNG, is ignored; one that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pickle
from importlib import metadata
from pathlib import Path

from render.blocks import Figure
from symbolic.files import write_atomic
from symbolic.numeric.cache import folder

PNG = b"\x89PNG\r\n\x1a\n"


def digest(fig: Figure) -> str | None:
    """The cache key of a figure, or None when its data cannot be pickled (then it is always drawn).

    >>> import numpy as np
    >>> from render.blocks import words
    >>> from render.drawings import panels as matrix_panel
    >>> a = Figure("a.png", words("A"), matrix_panel, {"mats": [np.eye(2)], "titles": ["I"]})
    >>> b = Figure("b.png", words("B"), matrix_panel, {"mats": [np.eye(2)], "titles": ["I"]})
    >>> c = Figure("a.png", words("A"), matrix_panel, {"mats": [2 * np.eye(2)], "titles": ["I"]})
    >>> digest(a) == digest(b), digest(a) == digest(c), digest(Figure("d.png", words("D"), matrix_panel, {"f": lambda: 1}))
    (True, False, None)
    """
    try:
        data = pickle.dumps((fig.draw.__module__, fig.draw.__qualname__, fig.data), protocol=4)
    except (pickle.PicklingError, AttributeError, TypeError):
        return None
    h = hashlib.sha256(data)
    for module in sorted({fig.draw.__module__, "render.figures"}):
        # The source file, found without importing the module (render.figures imports matplotlib).
        found = importlib.util.find_spec(module)
        h.update(Path(found.origin).read_bytes() if found is not None and found.origin else module.encode())
    h.update(metadata.version("matplotlib").encode())
    return h.hexdigest()[:32]


def draw(fig: Figure, path: Path) -> None:
    """Write ``fig`` to ``path``: the cached PNG when there is one, else drawn (and then cached).

    >>> import os, tempfile, numpy as np
    >>> from render.blocks import words
    >>> from render.drawings import panels as matrix_panel
    >>> fig = Figure("m.png", words("M"), matrix_panel, {"mats": [np.eye(2)], "titles": ["I"]})
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     saved = os.environ.get("CNN_DERIVE_CACHE"); os.environ["CNN_DERIVE_CACHE"] = tmp
    ...     draw(fig, Path(tmp) / "one.png"); draw(fig, Path(tmp) / "two.png")
    ...     same = (Path(tmp) / "one.png").read_bytes() == (Path(tmp) / "two.png").read_bytes()
    ...     cached = len(list((Path(tmp) / "figures").iterdir()))
    ...     _ = os.environ.pop("CNN_DERIVE_CACHE") if saved is None else os.environ.update(CNN_DERIVE_CACHE=saved)
    >>> same, cached
    (True, 1)
    """
    key = digest(fig)
    store = folder() / "figures" / f"{key}.png" if key else None
    if store is not None:
        try:
            png = store.read_bytes()
        except OSError:
            png = b""
        if png.startswith(PNG):
            path.write_bytes(png)
            return
    fig.draw(path, **fig.data)
    if store is None:
        return
    write_atomic(store, path.read_bytes())
