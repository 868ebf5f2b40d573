"""Deterministic PNG figures for the handouts: architecture diagram, heatmaps, max-pool routing.

Every public function takes numpy arrays / plain values, writes exactly one PNG and returns
its ``Path``.  Rendering uses ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no
global state), a local ``matplotlib.rc_context`` (DejaVu Sans, which matplotlib ships), a fixed
dpi, a figure size computed only from the inputs' shapes, and PNG metadata without the
"Software" entry -- so the same inputs always give byte-identical files.

Cell rules shared by ``heatmap``, ``matrix_panel`` and ``pool_routing``:

* colours come from a diverging colormap centred on 0 with the symmetric range
  ``[-max|x|, +max|x|]`` of the data (so the sign of a gradient is visible at a glance);
* every cell carries its value (``format_value``), dark text on light cells, white on dark;
  matrices with more than 144 cells, or cells too small for a legible font, show a colour
  bar instead of numbers;
* row and column indices start at 1, as in the lecture;
* a 1-D vector is drawn as a single row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import patheffects
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.textpath import TextToPath

from render.cells import format_value

__all__ = [
    "DPI",
    "architecture",
    "format_value",
    "heatmap",
    "matrix_panel",
    "pool_routing",
    "sliding",
    "training",
]

PathLike = str | Path
Formatter = Callable[[float], str]

DPI = 150
#: No figure is wider than this (inches); 11.5 in x 150 dpi = 1725 px.
MAX_WIDTH_IN = 11.5
#: No matrix grid is taller than this (inches).
MAX_GRID_HEIGHT_IN = 7.0
#: Matrices with more cells than this are drawn without numbers (with a colour bar).
MAX_NUMBERED_CELLS = 144
#: Below this font size (pt) cell numbers are omitted.
MIN_CELL_FONT = 5.5

# Blue = negative, white = 0, red = positive: RdBu_r without its darkest ends, so that dark text stays
# legible (contrast at least 5:1) on every cell, the largest values included.
DEFAULT_CMAP = LinearSegmentedColormap.from_list("RdBu_r_light", matplotlib.colormaps["RdBu_r"](np.linspace(0.22, 0.78, 256)))

_RC = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "mathtext.fontset": "dejavusans",
    "axes.unicode_minus": True,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "text.color": "#1a1a1a",
    "axes.edgecolor": "#555555",
    "xtick.color": "#333333",
    "ytick.color": "#333333",
    "svg.hashsalt": "cnn-derive",
}

# Per-window colours for the pool routing picture (ColorBrewer Dark2 without its red/blue-ish
# members first, so they stand out against the RdBu cells).
_WINDOW_COLOURS = [
    "#1b9e77",  # green
    "#d95f02",  # orange
    "#7570b3",  # purple
    "#e7298a",  # magenta
    "#66a61e",  # lime
    "#e6ab02",  # mustard
    "#a6761d",  # brown
    "#555555",  # grey
]

_TRAINABLE_COLOUR = "#d95f02"
_PLAIN_ARROW_COLOUR = "#4d4d4d"
_MARK_COLOUR = "#111111"

_EM_FONT = FontProperties(family="DejaVu Sans", size=100)

_TEXT_DARK = "#1a1a1a"
_TEXT_LIGHT = "#ffffff"

_TEXT_WIDTHS: dict[str, float] = {}


def _text_em(text: str) -> float:
    """Width of ``text`` in DejaVu Sans, in em (exact, from the glyph outlines; cached)."""
    if text not in _TEXT_WIDTHS:
        width = 0.0
        for line in text.split("\n"):
            w, _, _ = TextToPath().get_text_width_height_descent(line, _EM_FONT, ismath="$" in line)
            width = max(width, w / 100.0)
        _TEXT_WIDTHS[text] = width
    return max(_TEXT_WIDTHS[text], 0.3)


def _outline_width(cell_pt: float) -> float:
    """Line width (pt) of a mark outline in a cell of ``cell_pt`` points."""
    return max(1.2, min(3.2, cell_pt * 0.085))


def _cell_pad_pt(cell_pt: float) -> float:
    """Room a cell keeps beside its text: two outlines (drawn inside the cell) and a little air."""
    return 2.4 * _outline_width(cell_pt) + 5.0


# --------------------------------------------------------------------------------------------
# value formatting
# --------------------------------------------------------------------------------------------


def _cell_label(value: object, fmt: Formatter | None) -> str:
    if fmt is not None:
        return str(fmt(value))  # type: ignore[arg-type]
    # Typographic minus sign for the default format (DejaVu Sans has U+2212).
    return format_value(value).replace("-", "\u2212")


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _as_matrix(a: object, what: str) -> np.ndarray:
    m = np.asarray(a)
    if m.ndim == 0:
        m = m.reshape(1, 1)
    elif m.ndim == 1:
        m = m.reshape(1, -1)
    if m.ndim != 2:
        raise ValueError(f"{what}: expected a scalar, 1-D or 2-D array, got shape {m.shape}")
    if m.size == 0:
        raise ValueError(f"{what}: expected a non-empty array, got shape {m.shape}")
    if m.dtype.kind not in "biuf":
        raise ValueError(f"{what}: expected numbers, got dtype {m.dtype}")
    return m


def _as_mask(mark: object, shape: tuple, what: str) -> np.ndarray | None:
    if mark is None:
        return None
    m = np.asarray(mark)
    if m.ndim <= 1:
        m = m.reshape(1, -1) if m.ndim == 1 else m.reshape(1, 1)
    if m.shape != shape:
        raise ValueError(f"{what}: expected a mask of shape {shape}, got {np.asarray(mark).shape}")
    return m.astype(bool)


def _cmap(cmap: str | Colormap) -> Colormap:
    return matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap


def _symmetric_norm(*mats: np.ndarray) -> Normalize:
    vmax = 0.0
    for m in mats:
        finite = np.asarray(m, dtype=float)
        finite = finite[np.isfinite(finite)]
        if finite.size:
            vmax = max(vmax, float(np.max(np.abs(finite))))
    if vmax == 0.0:
        vmax = 1.0
    return Normalize(vmin=-vmax, vmax=vmax)


def _luminance(rgb: Sequence[float]) -> float:
    """Relative luminance (WCAG 2) of an sRGB colour given in 0..1."""
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _text_colour(rgba: Sequence[float]) -> str:
    """Dark or white text, whichever contrasts more with the cell (WCAG contrast ratio).

    >>> _text_colour((1.0, 1.0, 1.0)), _text_colour((0.02, 0.19, 0.38))
    ('#1a1a1a', '#ffffff')
    """
    cell = _luminance(rgba) + 0.05
    dark = _luminance(matplotlib.colors.to_rgb(_TEXT_DARK)) + 0.05
    return _TEXT_DARK if cell / dark >= 1.05 / cell else _TEXT_LIGHT


def _ensure_path(path: PathLike) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _save(fig: Figure, path: PathLike) -> Path:
    p = _ensure_path(path)
    FigureCanvasAgg(fig)
    fig.savefig(p, format="png", dpi=DPI, metadata={"Software": None})
    return p


# --------------------------------------------------------------------------------------------
# matrix panels (heatmap, matrix_panel, pool_routing)
# --------------------------------------------------------------------------------------------

# Layout constants, inches.
_MARGIN = 0.12
_ROW_LABEL_W = 0.30
_COL_LABEL_H = 0.22
_TITLE_LINE_H = 0.24
_TITLE_PAD = 0.10
_PANEL_GAP = 0.30
_CBAR_GAP = 0.08
_CBAR_W = 0.13
_CBAR_LABEL_W = 0.55
_TARGET_FONT = 9.0
_MIN_CELL_IN = 0.34
_PLAIN_PAD_PT = 5.0  # room beside a cell's text when the cell gets no outline
_MAX_CELL_IN = 0.68
_MAX_FONT = 10.0
_TITLE_FONT = 10.5


class _Panel:
    """One matrix to draw: values, labels, and layout decisions."""

    def __init__(self, values: np.ndarray, title: str, mark: np.ndarray | None, norm: Normalize, fmt: Formatter | None):
        self.values = values
        self.title = title
        self.mark = mark
        self.norm = norm
        self.labels = [[_cell_label(v, fmt) for v in row] for row in values.tolist()]
        self.max_em = max(_text_em(s) for row in self.labels for s in row)
        self.rows, self.cols = values.shape
        self.numbers = values.size <= MAX_NUMBERED_CELLS
        self.colorbar = False
        self.labels_right = False  # row indices on the right (keeps them clear of incoming arrows)
        self.ax = None
        self.cax = None
        self.outlines = mark is not None  # cells get outlines: they keep room for them beside the text
        self.cell = 0.0  # inches; set by _layout (a panel of short labels gets smaller cells)
        self.scale = 1.0  # this panel's cell / the largest cell

    def extra_width(self) -> float:
        return (_CBAR_GAP + _CBAR_W + _CBAR_LABEL_W) if self.colorbar else 0.0


def _layout(panels: Sequence[_Panel], gaps: Sequence[float] | None = None) -> tuple[Figure, float, float]:
    """Create the figure and place one axes per panel, same cell size everywhere.

    Returns (figure, cell size in inches, cell font size in points).
    """
    n = len(panels)
    if gaps is None:
        gaps = [_PANEL_GAP] * (n - 1)

    def pad(p: _Panel, cell_pt: float) -> float:
        return _cell_pad_pt(cell_pt) if p.outlines else _PLAIN_PAD_PT

    def wanted_cell(p: _Panel) -> float:
        return min(max((p.max_em * _TARGET_FONT + pad(p, 0.6 * 72.0)) / 72.0, _MIN_CELL_IN), _MAX_CELL_IN)

    def set_scales() -> None:
        # A panel of short labels (0/1, small integers) needs smaller cells than one of 4-digit numbers: its
        # cells shrink in proportion, so the figure is narrower and prints larger (same font everywhere).
        top = max((wanted_cell(p) for p in panels if p.numbers), default=_MAX_CELL_IN)
        for p in panels:
            p.scale = wanted_cell(p) / top if p.numbers else 1.0

    def total_cols() -> float:
        return sum(p.cols * p.scale for p in panels)

    def max_rows() -> float:
        return max(p.rows * p.scale for p in panels)

    def pads(cell_in: float) -> list[tuple[float, float]]:
        """Room added left/right of each panel so its (centred) title fits over it."""
        out = []
        for p in panels:
            half_title = (_text_em(p.title) * _TITLE_FONT / 72.0 + 0.12) / 2.0 if p.title else 0.0
            half_grid = p.cols * cell_in * p.scale / 2.0
            left = (0.0 if p.labels_right else _ROW_LABEL_W) + half_grid
            right = half_grid + (_ROW_LABEL_W if p.labels_right else 0.0) + p.extra_width()
            out.append((max(0.0, half_title - left), max(0.0, half_title - right)))
        return out

    def fixed_width(cell_in: float) -> float:
        return 2 * _MARGIN + sum(_ROW_LABEL_W + p.extra_width() for p in panels) + sum(gaps) + sum(a + b for a, b in pads(cell_in))

    def widest_cell(cell_in: float) -> float:
        # fixed_width grows as cells shrink (title pads), so settle it with a few passes.
        for _ in range(4):
            cell_in = min(cell_in, (MAX_WIDTH_IN - fixed_width(cell_in)) / total_cols())
        return cell_in

    def fit_font(cell_in: float, p: _Panel) -> float:
        cell_pt = cell_in * 72.0
        return min(_MAX_FONT, (cell_pt - pad(p, cell_pt)) / p.max_em, cell_pt * 0.45)

    # Cells wide enough for the longest label at the target font, within sane bounds; then
    # panels whose labels cannot be written legibly lose their numbers (and get a colour bar,
    # which takes width, so repeat until stable: it only ever removes numbers).
    for p in panels:
        p.colorbar = not p.numbers
    while True:
        set_scales()
        cell = max((wanted_cell(p) for p in panels if p.numbers), default=wanted_cell(panels[0]))
        cell = min(cell, MAX_GRID_HEIGHT_IN / max_rows())
        cell = widest_cell(cell)
        changed = False
        for p in panels:
            if p.numbers and fit_font(cell * p.scale, p) < MIN_CELL_FONT:
                p.numbers, p.colorbar, changed = False, True, True
        if not changed:
            break
    font = min((fit_font(cell * p.scale, p) for p in panels if p.numbers), default=_TARGET_FONT)
    for p in panels:
        p.cell = cell * p.scale

    title_lines = max(p.title.count("\n") + 1 if p.title else 0 for p in panels)
    title_h = title_lines * _TITLE_LINE_H + (_TITLE_PAD if title_lines else 0.0)
    grid_h = max_rows() * cell
    width = fixed_width(cell) + total_cols() * cell
    panel_pads = pads(cell)
    height = 2 * _MARGIN + title_h + grid_h + _COL_LABEL_H
    fig = Figure(figsize=(round(width, 3), round(height, 3)), dpi=DPI)

    x = _MARGIN
    grid_bottom = _MARGIN + _COL_LABEL_H
    for i, p in enumerate(panels):
        x += panel_pads[i][0]
        if not p.labels_right:
            x += _ROW_LABEL_W
        w, h = p.cols * p.cell, p.rows * p.cell
        y = grid_bottom + (grid_h - h) / 2.0
        p.ax = fig.add_axes((x / width, y / height, w / width, h / height))
        x += w
        if p.labels_right:
            x += _ROW_LABEL_W
        if p.colorbar:
            cb_h = max(h, min(grid_h, 1.2))
            cb_y = grid_bottom + (grid_h - cb_h) / 2.0
            p.cax = fig.add_axes(((x + _CBAR_GAP) / width, cb_y / height, _CBAR_W / width, cb_h / height))
            x += p.extra_width()
        x += panel_pads[i][1]
        if i < n - 1:
            x += gaps[i]
    return fig, cell, font


def _draw_panel(p: _Panel, cmap: Colormap, font: float, title_top: float) -> None:
    ax = p.ax
    cell = p.cell
    fig = ax.figure
    rows, cols = p.rows, p.cols
    ax.imshow(
        np.asarray(p.values, dtype=float),
        cmap=cmap,
        norm=p.norm,
        interpolation="nearest",
        aspect="auto",
        extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
    )
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)

    cell_pt = cell * 72.0
    tick_font = max(5.0, min(9.0, cell_pt * 0.42))

    def ticks(count: int) -> list[int]:
        step = 1 if count <= 16 else 5
        if step == 1:
            return list(range(count))
        if count == 1:
            return [0]
        picks = [0, *range(step - 1, count - 1, step)]
        if len(picks) > 1 and count - 1 - picks[-1] < 3:  # "25" beside "26" would collide
            picks.pop()
        return [*picks, count - 1]

    xt, yt = ticks(cols), ticks(rows)
    ax.set_xticks(xt, [str(t + 1) for t in xt], fontsize=tick_font)
    ax.set_yticks(yt, [str(t + 1) for t in yt], fontsize=tick_font)
    ax.tick_params(length=0, pad=2)
    if p.labels_right:
        ax.yaxis.tick_right()
    # Thin white separators between cells.
    ax.set_xticks(np.arange(-0.5, cols, 1.0), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1.0), minor=True)
    ax.tick_params(which="minor", length=0)
    ax.grid(which="minor", color="white", linewidth=0.8 if cell_pt >= 14 else 0.4)
    for spine in ax.spines.values():
        spine.set_linewidth(0.6)

    if p.numbers:
        for i in range(rows):
            for j in range(cols):
                v = float(p.values[i, j])
                colour = _text_colour(cmap(p.norm(v))) if np.isfinite(v) else _TEXT_DARK
                ax.text(j, i, p.labels[i][j], ha="center", va="center", fontsize=font, color=colour)
    elif p.cax is not None:
        cb = fig.colorbar(ax.images[0], cax=p.cax)
        cb.ax.tick_params(labelsize=7, length=2)
        cb.outline.set_linewidth(0.5)

    if p.mark is not None:
        _outline_cells(ax, np.argwhere(p.mark), p.cell, _MARK_COLOUR)

    if p.title:
        # Titles sit at a common height above the tallest grid (panels are vertically centred).
        fig.text(_axes_centre_x(ax), title_top, p.title, ha="center", va="top", fontsize=_TITLE_FONT)


def _axes_centre_x(ax) -> float:
    box = ax.get_position()
    return box.x0 + box.width / 2.0


def _outline_cells(ax, cells, cell: float, colour: str, *, scale: float = 1.0, style: str = "-") -> None:
    """Thick outline drawn just inside each listed cell (i, j)."""
    cell_pt = cell * 72.0
    lw = _outline_width(cell_pt) * scale
    inset = (lw / 2.0) / cell_pt  # keep the whole stroke inside the cell (data units)
    for i, j in cells:
        ax.add_patch(
            Rectangle(
                (j - 0.5 + inset, i - 0.5 + inset),
                1 - 2 * inset,
                1 - 2 * inset,
                fill=False,
                edgecolor=colour,
                linewidth=lw,
                linestyle=style,
                joinstyle="miter",
                zorder=4,
            )
        )


def _title_top(fig: Figure) -> float:
    return 1.0 - _MARGIN / fig.get_figheight()


def _render_panels(panels: list[_Panel], path: PathLike, cmap: str | Colormap) -> Path:
    with matplotlib.rc_context(_RC):
        fig, cell, font = _layout(panels)
        cm = _cmap(cmap)
        for p in panels:
            _draw_panel(p, cm, font, _title_top(fig))
        return _save(fig, path)


def heatmap(
    matrix: object, title: str, path: PathLike, *, mark: object = None, fmt: Formatter | None = None, cmap: str | Colormap = DEFAULT_CMAP
) -> Path:
    """Draw one matrix as coloured cells with its values written in, and write a PNG.

    ``mark`` is an optional boolean mask of the same shape; marked cells get a thick outline
    (the max-pool winners).  ``fmt`` overrides ``format_value`` for the cell text.  Colours are
    centred on 0 with the symmetric range of the data.  A 1-D vector is drawn as one row.

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> heatmap([[0.5, -0.25], [0.0, 1.0]], "dL/dW1", d / "dW1.png", mark=[[False, False], [False, True]]).name
    'dW1.png'
    """
    m = _as_matrix(matrix, "heatmap matrix")
    panel = _Panel(m, title, _as_mask(mark, m.shape, "heatmap mark"), _symmetric_norm(m), fmt)
    return _render_panels([panel], path, cmap)


def matrix_panel(
    mats: Sequence[object],
    titles: Sequence[str],
    path: PathLike,
    *,
    marks: Sequence[object] | None = None,
    fmt: Formatter | None = None,
    cmap: str | Colormap = DEFAULT_CMAP,
    shared: bool | Sequence[int] = False,
) -> Path:
    """Draw several matrices side by side, each with its own colour range; ``shared`` (True, or the
    indices of some panels) gives those panels one common range, so equal values get equal colours.

    Used for the worked forward pass (X, Z1, A1, P1, ...).  ``marks``, if given, has one entry
    per matrix: a boolean mask of that matrix's shape or ``None``.  Cell rules as in ``heatmap``.

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> matrix_panel([[[1, 2], [3, 4]], [[9]]], ["A1", "P1"], d / "forward.png", marks=[[[0, 0], [0, 1]], None]).name
    'forward.png'
    """
    mats = list(mats)
    titles = list(titles)
    if not mats:
        raise ValueError("matrix_panel: expected at least one matrix")
    if len(titles) != len(mats):
        raise ValueError(f"matrix_panel: expected {len(mats)} titles, got {len(titles)}")
    if marks is None:
        marks = [None] * len(mats)
    marks = list(marks)
    if len(marks) != len(mats):
        raise ValueError(f"matrix_panel: expected {len(mats)} marks (or None), got {len(marks)}")
    ms = [_as_matrix(a, f"matrix_panel mats[{k}]") for k, a in enumerate(mats)]
    # One range for all: equal values get equal colours across the panels (the gradients of one figure).
    together = set(range(len(ms))) if shared is True else set(shared or ())
    common = _symmetric_norm(*(ms[k] for k in sorted(together))) if together else None
    panels = []
    for k, (m, t, mk) in enumerate(zip(ms, titles, marks)):
        norm = common if k in together else _symmetric_norm(m)
        panels.append(_Panel(m, t, _as_mask(mk, m.shape, f"matrix_panel marks[{k}]"), norm, fmt))
    return _render_panels(panels, path, cmap)


def pool_routing(
    a1: object,
    mask: object,
    grad_p1: object,
    grad_a1: object,
    pool: int,
    path: PathLike,
    *,
    titles: Sequence[str] | None = None,
    fmt: Formatter | None = None,
    cmap: str | Colormap = DEFAULT_CMAP,
) -> Path:
    """Draw the max-pool backward pass: A1 with windows and winners | dL/dP1 | dL/dA1.

    ``mask`` is the 0/1 one-hot of the (first) maximum of each ``pool`` x ``pool`` window, same
    shape as ``a1``; ``grad_p1`` has one cell per window (2-D, or flattened row-major);
    ``grad_a1`` is the routed gradient, same shape as ``a1``.  Each window has its own colour:
    its winner in A1 and dL/dA1 and its dL/dP1 cell are outlined in it, and an arrow of that
    colour runs from the dL/dP1 cell to its destination (arrows up to 2x2 windows).  Cells equal
    to the window's maximum that did not win (ties) get a dashed outline.  dL/dP1 and dL/dA1
    share one colour range.

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> pool_routing([[1, 3], [2, 0]], [[0, 1], [0, 0]], [[0.5]], [[0, 0.5], [0, 0]], 2, d / "pool.png").name
    'pool.png'
    """
    if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or pool < 1:
        raise ValueError(f"pool_routing pool: expected an integer >= 1, got {pool!r}")
    pool = int(pool)
    a = _as_matrix(a1, "pool_routing a1")
    rows, cols = a.shape
    if rows % pool or cols % pool:
        raise ValueError(f"pool_routing a1: shape {a.shape} is not divisible by the pool size {pool}")
    pr, pc = rows // pool, cols // pool
    win = _as_mask(mask, a.shape, "pool_routing mask")
    gp = np.asarray(grad_p1)
    if gp.size != pr * pc:
        raise ValueError(f"pool_routing grad_p1: expected {pr}x{pc} values, got shape {gp.shape}")
    gp = _as_matrix(gp.reshape(pr, pc), "pool_routing grad_p1")
    ga = _as_matrix(grad_a1, "pool_routing grad_a1")
    if ga.shape != a.shape:
        raise ValueError(f"pool_routing grad_a1: expected shape {a.shape}, got {ga.shape}")
    if titles is not None:
        titles = list(titles)
        if len(titles) != 3:
            raise ValueError(f"pool_routing titles: expected 3, got {len(titles)}")

    gnorm = _symmetric_norm(gp, ga)
    panels = [
        _Panel(a, "", None, _symmetric_norm(a), fmt),
        _Panel(gp, "", None, gnorm, fmt),
        _Panel(ga, "", None, gnorm, fmt),
    ]
    arrows = pr <= 2 and pc <= 2  # routing is clean up to 2x2 windows; beyond, colours only

    # For each window: the winner (first True in the mask, row-major) and any tied non-winners.
    winners: dict[tuple[int, int], tuple[int, int] | None] = {}
    ties: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for wi in range(pr):
        for wj in range(pc):
            block = a[wi * pool : (wi + 1) * pool, wj * pool : (wj + 1) * pool]
            wblock = win[wi * pool : (wi + 1) * pool, wj * pool : (wj + 1) * pool]
            hits = np.argwhere(wblock)
            winner = None
            if len(hits):
                winner = (wi * pool + int(hits[0][0]), wj * pool + int(hits[0][1]))
            winners[(wi, wj)] = winner
            tied = []
            # Ties: other cells equal to the winner's value (skipped for a constant window, e.g. a
            # dead all-zero ReLU window, where outlining every cell would only add noise).
            if winner is not None and not np.all(block == block.flat[0]):
                best = a[winner]
                for bi, bj in np.argwhere(block == best):
                    cell_ij = (wi * pool + int(bi), wj * pool + int(bj))
                    if cell_ij != winner:
                        tied.append(cell_ij)
            ties[(wi, wj)] = tied

    if titles is None:
        any_tie = any(ties.values())
        titles = [
            "A\u2081: pool windows, max outlined" + ("\n(dashed: tie, not routed)" if any_tie else ""),
            "\u2202L/\u2202P\u2081",
            "\u2202L/\u2202A\u2081: routed to the max",
        ]
    for p, t in zip(panels, titles):
        p.title = t
        p.outlines = True  # winners, ties and windows are outlined
    panels[2].labels_right = arrows

    with matplotlib.rc_context(_RC):
        gap_arrows = 0.9 if arrows else _PANEL_GAP
        fig, cell, font = _layout(panels, gaps=[_PANEL_GAP + 0.1, gap_arrows])
        cm = _cmap(cmap)
        top = _title_top(fig)
        for p in panels:
            _draw_panel(p, cm, font, top)
        ax_a, ax_p, ax_g = (p.ax for p in panels)

        # Window boundaries on A1 and dL/dA1.
        for ax, p in ((ax_a, panels[0]), (ax_g, panels[2])):
            wlw = max(1.0, min(2.4, p.cell * 72.0 * 0.06))
            for k in range(1, pc):
                ax.axvline(k * pool - 0.5, color="#222222", linewidth=wlw, zorder=3)
            for k in range(1, pr):
                ax.axhline(k * pool - 0.5, color="#222222", linewidth=wlw, zorder=3)

        lanes = _assign_lanes([w for w in winners.values() if w is not None])
        for (wi, wj), winner in winners.items():
            colour = _WINDOW_COLOURS[(wi * pc + wj) % len(_WINDOW_COLOURS)]
            _outline_cells(ax_p, [(wi, wj)], panels[1].cell, colour, scale=1.15)
            if winner is None:
                continue
            _outline_cells(ax_a, [winner], panels[0].cell, colour, scale=1.15)
            _outline_cells(ax_g, [winner], panels[2].cell, colour, scale=1.15)
            if ties[(wi, wj)]:
                _outline_cells(ax_a, ties[(wi, wj)], panels[0].cell, colour, scale=0.7, style=(0, (2, 1.5)))
            if arrows:
                _route_arrow(fig, ax_p, ax_g, (wi, wj), winner, lanes.get(winner), pr, pc, colour, panels[2].cell)
        return _save(fig, path)


def sliding(
    x: object,
    grad: object,
    offsets: Sequence[tuple[int, int]],
    path: PathLike,
    *,
    titles: Sequence[str] | None = None,
    result: bool = True,
    fmt: Formatter | None = None,
    cmap: str | Colormap = DEFAULT_CMAP,
) -> Path:
    """Draw the filter gradient as a sliding window: dL/dZ1 | X under the window at each offset | dL/dW1.

    The gradient at Z1 (``grad``, ho x wo) slides over X like a filter; at offset (k, l)
    (0-based) it covers X[k:k+ho, l:l+wo], and the sum of the products is dL/dW1[k, l].  Each
    offset gets its own colour: its window on its copy of X and its entry of dL/dW1 (computed
    here as that sum, so the picture cannot disagree with itself).  ``titles``: one per panel
    (2 + len(offsets), or 1 + len(offsets) without the ``result`` panel), else short defaults.
    Without the result panel the cells are larger, so long numbers still fit in them.

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> sliding([[1, 2, 0], [0, 1, 3], [2, 2, 1]], [[0.5, 0], [0, -1]], [(0, 0), (1, 1)], d / "slide.png").name
    'slide.png'
    """
    xm = _as_matrix(x, "sliding x")
    gm = _as_matrix(grad, "sliding grad")
    ho, wo = gm.shape
    kh, kw = xm.shape[0] - ho + 1, xm.shape[1] - wo + 1
    if kh < 1 or kw < 1:
        raise ValueError(f"sliding grad: shape {gm.shape} does not fit inside x of shape {xm.shape}")
    offsets = [(int(k), int(col)) for k, col in offsets]
    for k, col in offsets:
        if not (0 <= k < kh and 0 <= col < kw):
            raise ValueError(f"sliding offsets: ({k}, {col}) is outside the {kh}x{kw} filter")
    sums = np.array([[float(np.sum(xm[k : k + ho, col : col + wo] * gm)) for col in range(kw)] for k in range(kh)])
    if titles is None:
        titles = ["dL/dZ1", *[f"X, window at ({k + 1}, {col + 1})" for k, col in offsets]] + (["dL/dW1"] if result else [])
    titles = list(titles)
    if len(titles) != len(offsets) + 1 + result:
        raise ValueError(f"sliding titles: expected {len(offsets) + 1 + result}, got {len(titles)}")
    xnorm = _symmetric_norm(xm)
    panels = [_Panel(gm, titles[0], None, _symmetric_norm(gm), fmt)]
    panels += [_Panel(xm, t, None, xnorm, fmt) for t in titles[1 : 1 + len(offsets)]]
    if result:
        panels.append(_Panel(sums, titles[-1], None, _symmetric_norm(sums), fmt))
        panels[-1].outlines = True
    with matplotlib.rc_context(_RC):
        fig, cell, font = _layout(panels)
        cm = _cmap(cmap)
        top = _title_top(fig)
        for p in panels:
            _draw_panel(p, cm, font, top)
        for n, (k, col) in enumerate(offsets):
            lw = _outline_width(panels[1 + n].cell * 72.0) * 1.2
            colour = _WINDOW_COLOURS[n % len(_WINDOW_COLOURS)]
            panels[1 + n].ax.add_patch(
                Rectangle((col - 0.5, k - 0.5), wo, ho, fill=False, edgecolor=colour, linewidth=lw, joinstyle="miter", zorder=4)
            )
            if result:
                _outline_cells(panels[-1].ax, [(k, col)], panels[-1].cell, colour, scale=1.15)
        return _save(fig, path)


class _PathBuilder:
    """A path in inches made of straight runs, rounded corners and S-bends (all horizontal/vertical ends)."""

    def __init__(self, start: Sequence[float]):
        self.verts = [tuple(map(float, start))]
        self.codes = [MplPath.MOVETO]

    @property
    def here(self) -> np.ndarray:
        return np.asarray(self.verts[-1])

    def line(self, to: Sequence[float]) -> None:
        self.verts.append(tuple(map(float, to)))
        self.codes.append(MplPath.LINETO)

    def corner(self, at: Sequence[float], to: Sequence[float], radius: float) -> None:
        """Run towards ``at``, turn there with a rounded corner, run on to ``to``."""
        at, here, to = np.asarray(at, float), self.here, np.asarray(to, float)
        r = min(radius, np.linalg.norm(at - here) / 2, np.linalg.norm(to - at) / 2)
        u_in = (at - here) / max(np.linalg.norm(at - here), 1e-9)
        u_out = (to - at) / max(np.linalg.norm(to - at), 1e-9)
        self.line(at - r * u_in)
        self.verts += [tuple(at), tuple(at + r * u_out)]
        self.codes += [MplPath.CURVE3, MplPath.CURVE3]
        self.line(to)

    def bend(self, to: Sequence[float], d_out: Sequence[float], d_in: Sequence[float]) -> None:
        """Cubic curve to ``to``, leaving along ``d_out`` and arriving along ``d_in`` (vectors, inches)."""
        here, to = self.here, np.asarray(to, float)
        self.verts += [tuple(here + np.asarray(d_out)), tuple(to - np.asarray(d_in)), tuple(to)]
        self.codes += [MplPath.CURVE4] * 3

    def path(self) -> MplPath:
        return MplPath(np.asarray(self.verts), self.codes)


def _assign_lanes(winners: Sequence[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """Pick, for each winner not in column 0, the grid line (row - 0.5 or row + 0.5) its arrow runs along.

    Two arrows never share a line when that can be avoided, and a line touching another winner
    to the left (whose outline the arrow would run over) is avoided next.
    """
    lanes: dict[tuple[int, int], float] = {}
    used: set[float] = set()
    for r, c in sorted(winners, key=lambda w: (-w[1], w[0])):  # farthest right first: longest runs
        if c == 0:
            continue
        best = None
        for y in (r - 0.5, r + 0.5):
            touches = sum(1 for (r2, c2) in winners if c2 < c and y in (r2 - 0.5, r2 + 0.5))
            score = (10 if y in used else 0) + touches
            if best is None or score < best[0]:
                best = (score, y)
        lanes[(r, c)] = best[1]
        used.add(best[1])
    return lanes


def _route_arrow(
    fig: Figure, ax_p, ax_g, src: tuple[int, int], dst: tuple[int, int], lane: float | None, pr: int, pc: int, colour: str, cell: float
) -> None:
    """Arrow from dL/dP1 cell ``src`` to dL/dA1 winner ``dst`` that covers no cell's number.

    It leaves the dL/dP1 cell through its right edge (last column) or its top/bottom edge and runs
    round the panel; crosses the gap; runs along the grid line ``lane`` between dL/dA1 rows (so it
    passes between numbers, not over them); and bends into the winner's left edge.  The arrow
    belongs to the dL/dA1 axes, above its cell colours, below its numbers, outlines and window
    lines.  Clean for dL/dP1 up to 2x2 (the only size arrows are drawn for).
    """
    to_in = fig.dpi_scale_trans.inverted()

    def inch(ax, xy):
        return np.asarray(to_in.transform(ax.transData.transform(xy)))

    wi, wj = src
    di, dj = dst
    clear = 0.16  # inches kept between an arrow and a panel it runs around
    p_box = to_in.transform(ax_p.get_window_extent())
    g_left = to_in.transform(ax_g.get_window_extent())[0][0]

    if wj == pc - 1:
        pb = _PathBuilder(inch(ax_p, (wj + 0.5, wi)))
    else:
        up = wi < pr / 2
        edge = wi - 0.5 if up else wi + 0.5
        pb = _PathBuilder(inch(ax_p, (wj + 0.28, edge)))
        y_out = p_box[1][1] + clear if up else p_box[0][1] - clear
        pb.corner((pb.here[0], y_out), (p_box[1][0] + clear, y_out), radius=0.1)

    # From a lane, enter the winner's left edge near the lane's side, not at mid-height: the bend then
    # stays above (or below) the numbers written in the neighbouring cell.
    end = inch(ax_g, (dj - 0.5, di if lane is None else di + (0.3 if lane > di else -0.3)))
    if lane is None:  # winner in the first column: straight into its left edge
        dx = end[0] - pb.here[0]
        pb.bend(end, (0.45 * dx, 0.0), (0.35 * dx, 0.0))
    else:
        lane_y = inch(ax_g, (0.0, lane))[1]
        lane_start = np.array([g_left - 0.04, lane_y])
        dx = lane_start[0] - pb.here[0]
        pb.bend(lane_start, (0.45 * dx, 0.0), (0.35 * dx, 0.0))
        approach = min(0.32 * cell, 0.22)
        pb.line((end[0] - approach * 1.6, lane_y))
        pb.bend(end, (approach * 0.8, 0.0), (approach * 0.6, 0.0))

    cell_pt = cell * 72.0
    lw = max(1.1, min(1.8, cell_pt * 0.045))
    arrow = FancyArrowPatch(
        path=pb.path(),
        transform=fig.dpi_scale_trans,
        arrowstyle="-|>,head_length=0.55,head_width=0.28",
        mutation_scale=13,
        color=colour,
        linewidth=lw,
        shrinkA=0,
        shrinkB=0,
        zorder=2.5,
        clip_on=False,
        joinstyle="round",
        capstyle="round",
        path_effects=[patheffects.withStroke(linewidth=lw + 2.0, foreground="white")],
    )
    ax_g.add_artist(arrow)


# --------------------------------------------------------------------------------------------
# architecture diagram
# --------------------------------------------------------------------------------------------

_PARAM_RE = re.compile(r"\b[WB]\d+\b")

_ARCH_WIDTH_IN = 7.0  # ~1050 px; at 16 cm text width the fonts shrink by only ~10 %


_INDEXED = re.compile(r"\b([A-Za-z])(\d+)\b")


def _math_label(text: str, *, whole: bool = False) -> str:
    r"""Names with an index as mathtext subscripts, as the handout's text writes them (Z1 → $Z_{1}$).

    ``whole``: the text is one name, set in math italic even without an index (X → $X$).

    >>> _math_label("dense\nW2, B2"), _math_label("X", whole=True), _math_label("conv1 3×3")
    ('dense\n$W_{2}$, $B_{2}$', '$X$', 'conv1 3×3')
    """
    if whole and re.fullmatch(r"[A-Za-z]\d*", text):
        return f"${text[0]}_{{{text[1:]}}}$" if len(text) > 1 else f"${text}$"
    return _INDEXED.sub(lambda m: f"${m.group(1)}_{{{m.group(2)}}}$", text)


def _split_op(op: str) -> str:
    """Two-line arrow label: "max-pool 2×2" -> "max-pool\\n2×2" (already multi-line kept)."""
    if "\n" in op or " " not in op:
        return op
    head, tail = op.split(" ", 1)
    return f"{head}\n{tail}"


def architecture(shapes: Sequence[Sequence[object]], path: PathLike) -> Path:
    """Draw the network left to right as labelled boxes joined by arrows named by their operation.

    ``shapes`` lists ``(name, shape_text, op_to_next)`` per tensor, the last one with
    ``op_to_next`` None.  An op is highlighted as trainable when it names a parameter
    (``W1``, ``B2``, ...); a fourth element ``True``/``False`` overrides that guess.

    >>> import pathlib, tempfile; d = pathlib.Path(tempfile.mkdtemp())
    >>> architecture([("X", "6×6", "conv W1,B1"), ("Z1", "4×4", "ReLU"), ("A1", "4×4", "max-pool 2×2"),
    ...               ("P1", "2×2", "flatten"), ("F", "4", "dense W2,B2"), ("Z2", "1", "sigmoid"),
    ...               ("A2", "1", "BCE"), ("L", "scalar", None)], d / "arch.png").name
    'arch.png'
    """
    items = []
    for k, entry in enumerate(shapes):
        entry = tuple(entry)
        if len(entry) not in (3, 4):
            raise ValueError(f"architecture shapes[{k}]: expected (name, shape_text, op_to_next[, trainable]), got {entry!r}")
        name, shape_text, op = entry[0], entry[1], entry[2]
        trainable = bool(entry[3]) if len(entry) == 4 else bool(op and _PARAM_RE.search(str(op)))
        items.append((str(name), str(shape_text), None if op is None else str(op), trainable))
    if not items:
        raise ValueError("architecture shapes: expected at least one tensor")
    if items[-1][2] is not None:
        raise ValueError(f"architecture shapes[-1]: the last tensor has no next step, got op {items[-1][2]!r}")

    # The trainable guess reads the plain names; the picture shows them with subscripts.
    items = [(_math_label(nm, whole=True), sh, None if op is None else _math_label(op), t) for nm, sh, op, t in items]
    n = len(items)
    any_trainable = any(t for _, _, op, t in items if op is not None)
    # 7 in for the lecture's 8 tensors; longer chains get wider (up to the width cap) before
    # their boxes shrink.
    width = max(_ARCH_WIDTH_IN, min(MAX_WIDTH_IN, 0.85 * n + 0.2))
    margin = 0.1
    usable = width - 2 * margin
    # Boxes take 58 % of the row, arrows the rest (but boxes never wider than 0.9 in).
    box_w = min(0.9, usable * 0.58 / n) if n > 1 else min(0.9, usable)
    gap = (usable - n * box_w) / (n - 1) if n > 1 else 0.0
    if n > 1 and gap < 0.25:
        gap = 0.25
        box_w = (usable - (n - 1) * gap) / n
    box_h = 0.62
    label_h = 0.42  # two lines of op text above the boxes
    legend_h = 0.28 if any_trainable else 0.0
    height = margin + legend_h + box_h + 0.06 + label_h + margin
    scale = max(0.6, min(1.0, box_w / 0.62))  # shrink fonts for very long chains
    name_font = 13.0 * scale
    shape_font = 10.0 * scale
    op_font = 10.0 * max(scale, 0.8)
    # Neighbouring op labels are centred box_w + gap apart; shrink the font if one would collide.
    widest = max((_text_em(_split_op(op)) for _, _, op, _ in items if op), default=0.0)
    if widest:
        op_font = min(op_font, 0.92 * (box_w + gap) * 72.0 / widest)

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, round(height, 3)), dpi=DPI)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.set_axis_off()

        y0 = margin + legend_h
        yc = y0 + box_h / 2
        for k, (name, shape_text, op, trainable) in enumerate(items):
            x0 = margin + k * (box_w + gap)
            last = k == n - 1
            face = "#fbe3e1" if last else ("#eeeeee" if k == 0 else "#e4eefa")
            edge = "#a33a2f" if last else ("#555555" if k == 0 else "#3a6ea5")
            ax.add_patch(
                FancyBboxPatch(
                    (x0, y0),
                    box_w,
                    box_h,
                    boxstyle="round,pad=0,rounding_size=0.07",
                    facecolor=face,
                    edgecolor=edge,
                    linewidth=1.2,
                    zorder=2,
                )
            )
            ax.text(x0 + box_w / 2, yc + 0.1, name, ha="center", va="center", fontsize=name_font, fontweight="bold", zorder=3)
            ax.text(x0 + box_w / 2, yc - 0.14, shape_text, ha="center", va="center", fontsize=shape_font, color="#333333", zorder=3)
            if op is None and last:
                continue
            xa, xb = x0 + box_w, x0 + box_w + gap
            colour = _TRAINABLE_COLOUR if trainable else _PLAIN_ARROW_COLOUR
            ax.add_patch(
                FancyArrowPatch(
                    (xa, yc),
                    (xb, yc),
                    arrowstyle="-|>,head_length=4,head_width=2.2" if trainable else "-|>,head_length=3.5,head_width=1.8",
                    mutation_scale=1.6 if trainable else 1.5,
                    color=colour,
                    linewidth=2.6 if trainable else 1.3,
                    shrinkA=2,
                    shrinkB=2,
                    zorder=2,
                )
            )
            if op:
                ax.text(
                    (xa + xb) / 2,
                    y0 + box_h + 0.06,
                    _split_op(op),
                    ha="center",
                    va="bottom",
                    fontsize=op_font,
                    color=colour,
                    fontweight="bold" if trainable else "normal",
                    linespacing=1.1,
                    zorder=3,
                )
        if any_trainable:
            lx = margin + 0.05
            ly = margin + legend_h / 2 - 0.02
            ax.add_line(Line2D([lx, lx + 0.3], [ly, ly], color=_TRAINABLE_COLOUR, linewidth=2.6))
            ax.text(
                lx + 0.38,
                ly,
                "step with trainable parameters (updated by gradient descent)",
                ha="left",
                va="center",
                fontsize=9.0,
                color="#333333",
            )
        return _save(fig, path)


def training(history: Sequence[dict], path: PathLike, title: str = "") -> Path:
    """The training run's loss and accuracy curves: ``symbolic.train.plot_history`` (the plot
    `cnn-derive train` writes as training.png), deterministic (no timestamp or version)."""
    from symbolic.train import plot_history

    return plot_history(history, _ensure_path(path), title=title)
