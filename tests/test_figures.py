"""Tests for render/figures.py: deterministic, valid, modest PNGs for every figure and edge shape."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from render import figures
from render.figures import architecture, format_value, heatmap, matrix_panel, pool_routing, sliding

ROOT = Path(__file__).resolve().parents[1]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_WIDTH_PX = 1800

SHAPES = [
    ("X", "6×6", "conv W1,B1"),
    ("Z1", "4×4", "ReLU"),
    ("A1", "4×4", "max-pool 2×2"),
    ("P1", "2×2", "flatten"),
    ("F", "4", "dense W2,B2"),
    ("Z2", "1", "sigmoid"),
    ("A2", "1", "BCE"),
    ("L", "scalar", None),
]


# ---------------------------------------------------------------------------------------------
# helpers


def png_info(path: Path) -> dict:
    """Parse a PNG's chunks: size from IHDR, text keys, and check every chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    pos, chunks, text_keys = 8, [], []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        chunks.append(kind)
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            text_keys.append(body.split(b"\0", 1)[0].decode("latin-1"))
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    width, height = struct.unpack(">II", data[16:24])
    return {"width": width, "height": height, "bytes": len(data), "text_keys": text_keys, "chunks": chunks}


def assert_modest_png(path: Path, *, min_w: int = 100, min_h: int = 80) -> dict:
    info = png_info(path)
    assert min_w <= info["width"] <= MAX_WIDTH_PX, info
    assert min_h <= info["height"] <= MAX_WIDTH_PX, info
    assert info["bytes"] > 1000, info  # not a blank canvas
    assert "Software" not in info["text_keys"]
    return info


def seed_data():
    """Seed-like numbers: X 6x6 integers 0..3, a 4x4 Z1 with negatives and a tie window, ~1e-2 gradients."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 4, size=(6, 6))
    z1 = np.array([[1.5, -0.5, 2.0, 2.0], [0.25, 3.0, 2.0, -1.0], [-2.0, -0.75, 0.5, 1.25], [-1.5, -3.0, 0.125, 0.5]])
    a1 = np.maximum(z1, 0.0)
    mask = np.zeros_like(a1)
    p1 = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            block = a1[2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            r, c = divmod(int(np.argmax(block)), 2)  # first maximum, row-major
            mask[2 * i + r, 2 * j + c] = 1.0
            p1[i, j] = block[r, c]
    dp1 = np.array([[0.0123, -0.00456], [0.0211, -0.0187]])
    da1 = np.kron(dp1, np.ones((2, 2))) * mask
    return {"x": x, "z1": z1, "a1": a1, "mask": mask, "p1": p1, "dp1": dp1, "da1": da1}


def render_all(out: Path) -> dict[str, Path]:
    d = seed_data()
    return {
        "arch": architecture(SHAPES, out / "arch.png"),
        "heat": heatmap(d["z1"], "Z1", out / "heat.png"),
        "heat_mark": heatmap(d["a1"], "A1", out / "heat_mark.png", mark=d["mask"].astype(bool)),
        "panel": matrix_panel(
            [d["x"], d["z1"], d["a1"], d["p1"], d["p1"].ravel()],
            ["X", "Z1", "A1", "P1", "F"],
            out / "panel.png",
            marks=[None, None, d["mask"], None, None],
        ),
        "pool": pool_routing(d["a1"], d["mask"], d["dp1"], d["da1"], 2, out / "pool.png"),
        "slide": sliding(d["x"], d["da1"], [(0, 0), (2, 1)], out / "slide.png"),
    }


# ---------------------------------------------------------------------------------------------
# value formatting


@pytest.mark.parametrize(
    "value, expected",
    [
        (3, "3"),
        (np.int64(-7), "-7"),
        (2.0, "2"),
        (np.float64(0.0), "0"),
        (-0.0, "0"),
        (0.0123456, "0.01235"),
        (-1.5, "-1.5"),
        (2.0417e-05, "2.042e-05"),
        (0.5, "0.5"),
        (0.125, "0.125"),
        (-0.004561, "-0.004561"),
        (0.00012346, "0.0001235"),
        (1 / 3, "0.3333"),
        (2.71828, "2.718"),
        (123.456, "123.5"),
        (12345.6, "1.235e+04"),
        (1e6, "1e+06"),
        (10**7, "10000000"),
        (np.float32(0.1), "0.1"),
        (True, "1"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
    ],
)
def test_format_value_golden(value, expected):
    assert format_value(value) == expected


def test_cell_labels_use_typographic_minus_and_fmt_override():
    assert figures._cell_label(-1.5, None) == "\u22121.5"
    assert figures._cell_label(2.042e-5, None) == "2.042e\u221205"
    assert figures._cell_label(-1.5, lambda v: f"{v:+.2f}") == "-1.50"


def test_fmt_override_changes_the_picture(tmp_path):
    m = np.array([[0.1234, -0.5], [1.0, 2.5]])
    a = heatmap(m, "t", tmp_path / "a.png")
    b = heatmap(m, "t", tmp_path / "b.png", fmt=lambda v: f"{v:.1f}")
    assert a.read_bytes() != b.read_bytes()


# ---------------------------------------------------------------------------------------------
# determinism


def test_same_inputs_give_identical_bytes(tmp_path):
    first = render_all(tmp_path / "one")
    second = render_all(tmp_path / "two")
    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_identical_bytes_across_processes(tmp_path):
    here = render_all(tmp_path / "here")
    script = (
        "import sys; from pathlib import Path\n"
        f"sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_figures as t\n"
        f"t.render_all(Path({str(tmp_path / 'there')!r}))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    for name, path in here.items():
        assert path.read_bytes() == (tmp_path / "there" / path.name).read_bytes(), name


def test_rc_params_do_not_leak(tmp_path):
    before = dict(matplotlib.rcParams)
    render_all(tmp_path)
    after = dict(matplotlib.rcParams)
    assert before == after


def test_pyplot_not_needed():
    # The module must not pull in pyplot's global state.
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import render.figures; print('matplotlib.pyplot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# validity and size


def test_every_figure_is_a_modest_png(tmp_path):
    paths = render_all(tmp_path)
    for path in paths.values():
        assert path.exists() and path.suffix == ".png"
        assert_modest_png(path)
    arch = png_info(paths["arch"])
    # About 7 in at 150 dpi, so it reads at 16 cm text width with little font shrinking.
    assert 1000 <= arch["width"] <= 1100 and arch["height"] < arch["width"] / 2.5
    # Side-by-side panels are wide, not tall.
    panel = png_info(paths["panel"])
    assert panel["width"] > 2 * panel["height"]


def test_returns_path_and_creates_parent_dirs(tmp_path):
    target = tmp_path / "deep" / "er" / "h.png"
    out = heatmap([[1, 2]], "t", str(target))
    assert out == target and isinstance(out, Path) and target.exists()


@pytest.mark.parametrize("shape", [(1, 1), (1, 4), (2, 2), (3, 3), (12, 12), (13, 13), (26, 26), (3, 26), (26, 1)])
def test_heatmap_shapes(tmp_path, shape):
    rng = np.random.default_rng(sum(shape))
    m = rng.normal(0.0, 0.01, size=shape)
    info = assert_modest_png(heatmap(m, f"{shape}", tmp_path / "h.png"), min_w=100, min_h=80)
    if shape == (26, 26):
        assert info["height"] <= 1300


def test_heatmap_1d_vector_is_one_row(tmp_path):
    a = png_info(heatmap(np.arange(4) - 1.5, "v", tmp_path / "v.png"))
    b = png_info(heatmap((np.arange(4) - 1.5).reshape(1, 4), "v", tmp_path / "r.png"))
    assert (a["width"], a["height"]) == (b["width"], b["height"])
    assert (tmp_path / "v.png").read_bytes() == (tmp_path / "r.png").read_bytes()


def test_heatmap_scalar_and_constant_and_nan(tmp_path):
    assert_modest_png(heatmap(0.25, "∂L/∂B2 (scalar)", tmp_path / "s.png"))
    assert_modest_png(heatmap(np.zeros((3, 3)), "zeros", tmp_path / "z.png"))
    assert_modest_png(heatmap([[1.0, np.nan], [np.inf, -2.0]], "odd", tmp_path / "n.png"))


def test_long_title_widens_small_figure(tmp_path):
    short = png_info(heatmap([[1]], "t", tmp_path / "a.png"))
    long = png_info(heatmap([[1]], "a rather long title over one cell", tmp_path / "b.png"))
    assert long["width"] > short["width"] + 100


@pytest.mark.parametrize("fill", [True, False])
@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (26, 26)])
def test_marks_all_true_or_all_false(tmp_path, fill, shape):
    m = np.linspace(-1, 1, shape[0] * shape[1]).reshape(shape)
    mark = np.full(shape, fill)
    assert_modest_png(heatmap(m, "marked", tmp_path / "m.png", mark=mark))
    assert_modest_png(matrix_panel([m, m], ["a", "b"], tmp_path / "p.png", marks=[mark, None]))


def test_mark_changes_pixels(tmp_path):
    m = np.arange(16.0).reshape(4, 4) - 8
    plain = heatmap(m, "A1", tmp_path / "a.png").read_bytes()
    marked = heatmap(m, "A1", tmp_path / "b.png", mark=m == 7).read_bytes()
    assert plain != marked


def test_bad_inputs_raise(tmp_path):
    with pytest.raises(ValueError, match="mask of shape"):
        heatmap(np.zeros((2, 2)), "t", tmp_path / "x.png", mark=np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="2-D"):
        heatmap(np.zeros((2, 2, 2)), "t", tmp_path / "x.png")
    with pytest.raises(ValueError, match="titles"):
        matrix_panel([np.zeros((2, 2))], ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="last tensor"):
        architecture([("X", "6×6", "conv W1,B1")], tmp_path / "x.png")
    with pytest.raises(ValueError, match="divisible"):
        pool_routing(np.zeros((3, 3)), np.zeros((3, 3)), np.zeros(1), np.zeros((3, 3)), 2, tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------
# architecture and pool routing specifics


def test_architecture_highlight_detection_and_override(tmp_path):
    guessed = architecture(SHAPES, tmp_path / "a.png").read_bytes()
    overridden = [(*s, False) for s in SHAPES]
    plain = architecture(overridden, tmp_path / "b.png").read_bytes()
    assert guessed != plain  # W1/B1, W2/B2 arrows are highlighted only in the first
    assert figures._PARAM_RE.search("conv W1,B1") and figures._PARAM_RE.search("dense W2,B2")
    assert not figures._PARAM_RE.search("BCE") and not figures._PARAM_RE.search("max-pool 2×2")


def test_architecture_short_and_long_chains(tmp_path):
    assert_modest_png(architecture([("X", "6×6", "flatten"), ("F", "36", None)], tmp_path / "s.png"))
    chain = [(f"T{i}", f"{i}×{i}", "conv W1,B1" if i % 2 else "ReLU") for i in range(14)] + [("L", "scalar", None)]
    assert_modest_png(architecture(chain, tmp_path / "l.png"))


def test_pool_routing_tie_and_sizes(tmp_path):
    d = seed_data()
    # The top-right window of the seed has a tie (three 2s): first max wins, the rest are dashed.
    assert d["mask"][0, 2] == 1 and d["mask"][0, 3] == 0 and d["a1"][0, 3] == d["a1"][0, 2]
    assert_modest_png(pool_routing(d["a1"], d["mask"], d["dp1"].ravel(), d["da1"], 2, tmp_path / "p.png"))
    # 1x1 pooled output, and an 8x8 A1 (4x4 windows: colours only, no arrows).
    a = np.array([[0.5, 1.0], [0.0, 1.0]])
    mk = np.array([[0, 1], [0, 0]])
    assert_modest_png(pool_routing(a, mk, [[0.02]], mk * 0.02, 2, tmp_path / "one.png"))
    rng = np.random.default_rng(3)
    a8 = np.maximum(rng.normal(size=(8, 8)), 0)
    m8 = np.zeros_like(a8)
    for i in range(4):
        for j in range(4):
            r, c = divmod(int(np.argmax(a8[2 * i : 2 * i + 2, 2 * j : 2 * j + 2])), 2)
            m8[2 * i + r, 2 * j + c] = 1
    g8 = rng.normal(0, 0.01, (4, 4))
    assert_modest_png(pool_routing(a8, m8, g8, np.kron(g8, np.ones((2, 2))) * m8, 2, tmp_path / "eight.png"))


def test_pool_routing_window_without_winner_does_not_crash(tmp_path):
    a = np.zeros((4, 4))
    assert_modest_png(pool_routing(a, np.zeros((4, 4)), np.zeros((2, 2)), np.zeros((4, 4)), 2, tmp_path / "z.png"))


def test_lane_assignment_avoids_sharing():
    lanes = figures._assign_lanes([(0, 0), (0, 2), (3, 1), (3, 3)])
    assert (0, 0) not in lanes  # first column: straight in, no lane
    assert len(set(lanes.values())) == len(lanes)


def test_text_colour_contrast():
    assert figures._text_colour((0.05, 0.2, 0.5, 1.0)) == figures._TEXT_LIGHT
    assert figures._text_colour((0.97, 0.97, 0.97, 1.0)) == figures._TEXT_DARK


# ---------------------------------------------------------------------------------------------
# the sliding window of the filter gradient


def test_sliding_matches_the_text_to_four_digits():
    # The handout's text rounds to 4 significant digits; so do the figures.
    assert format_value(-0.26894142137) == "-0.2689" and format_value(0.5378828427) == "0.5379"


def test_sliding_window_positions_change_the_picture(tmp_path):
    d = seed_data()
    a = sliding(d["x"], d["da1"], [(0, 0), (2, 1)], tmp_path / "a.png").read_bytes()
    b = sliding(d["x"], d["da1"], [(0, 0), (1, 1)], tmp_path / "b.png").read_bytes()
    assert a != b
    assert_modest_png(tmp_path / "a.png")


@pytest.mark.parametrize("n, k", [(6, 3), (28, 3), (5, 2)])
def test_sliding_sizes(tmp_path, n, k):
    rng = np.random.default_rng(n)
    x = rng.integers(0, 4, (n, n))
    g = rng.normal(0, 0.1, (n - k + 1, n - k + 1))
    info = assert_modest_png(sliding(x, g, [(0, 0), (k - 1, k - 1)], tmp_path / "s.png"))
    assert info["width"] > 2 * info["height"]


def test_sliding_refuses_bad_offsets(tmp_path):
    with pytest.raises(ValueError, match="outside the 3x3 filter"):
        sliding(np.zeros((6, 6)), np.zeros((4, 4)), [(3, 0)], tmp_path / "x.png")
    with pytest.raises(ValueError, match="does not fit"):
        sliding(np.zeros((3, 3)), np.zeros((4, 4)), [(0, 0)], tmp_path / "x.png")
    with pytest.raises(ValueError, match="titles"):
        sliding(np.zeros((6, 6)), np.zeros((4, 4)), [(0, 0)], tmp_path / "x.png", titles=["a"])
    with pytest.raises(ValueError, match="expected 2"):
        sliding(np.zeros((6, 6)), np.zeros((4, 4)), [(0, 0)], tmp_path / "x.png", titles=["a", "b", "c"], result=False)


def test_sliding_without_the_result_panel_keeps_the_numbers(tmp_path):
    # Larger cells: the gradient's 4-digit values are written in, not replaced by a colour bar.
    g = np.array([[-0.2689, 0, 0, 0], [0, 0, 0, 0], [0, -0.2689, 0.2689, 0], [0, 0, 0, 0]])
    x = np.arange(36).reshape(6, 6) % 4
    with_result = png_info(sliding(x, g, [(0, 0), (1, 2)], tmp_path / "a.png"))
    without = png_info(sliding(x, g, [(0, 0), (1, 2)], tmp_path / "b.png", result=False))
    # Cells are never smaller without the result panel (here both fit at full size).
    assert without["height"] >= with_result["height"]


def test_short_labels_get_smaller_cells(tmp_path):
    # A 0/1 panel beside a panel of 4-digit numbers: narrower than the same figure with two wide panels.
    g = np.array([[-0.2689, 0.5379], [0.0, 0.2689]])
    mixed = png_info(matrix_panel([g, (g > 0).astype(float)], ["a", "b"], tmp_path / "m.png"))
    wide = png_info(matrix_panel([g, g], ["a", "b"], tmp_path / "w.png"))
    assert mixed["width"] < wide["width"]


def test_shared_colour_range_gives_equal_values_equal_colours(tmp_path):
    # 0.5 is the largest value of the second panel only: with its own range it would be the darkest red.
    g1, g2 = np.array([[0.5, -1.0]]), np.array([[0.5, 0.1]])
    shared = matrix_panel([g1, g2], ["a", "b"], tmp_path / "s.png", shared=True).read_bytes()
    apart = matrix_panel([g1, g2], ["a", "b"], tmp_path / "p.png").read_bytes()
    assert shared != apart
    one = matrix_panel([g1, g2], ["a", "b"], tmp_path / "o.png", shared=(0, 1)).read_bytes()
    assert one == shared


def test_cell_text_contrast_is_at_least_4_5():
    cmap = figures._cmap(figures.DEFAULT_CMAP)
    for v in np.linspace(0.0, 1.0, 41):
        rgba = cmap(v)
        text = matplotlib.colors.to_rgb(figures._text_colour(rgba))
        a, b = figures._luminance(rgba) + 0.05, figures._luminance(text) + 0.05
        assert max(a, b) / min(a, b) >= 4.5, (v, rgba)


def test_architecture_labels_use_subscripts():
    assert figures._math_label("Z1", whole=True) == "$Z_{1}$"
    assert figures._math_label("conv 3×3\nW1, B1") == "conv 3×3\n$W_{1}$, $B_{1}$"
