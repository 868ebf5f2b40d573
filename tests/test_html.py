"""The HTML handout: one self-contained page, math as MathML Core, deterministic, and drawn right by a real browser.

The page is opened in headless Chromium (Debian's ``chromium``, installed by ``.ci/setup --test``;
no Selenium). A test copy of the page carries a small script that measures what a reader would see
(every formula laid out with a size, fractions stacked, no raw TeX, every image decoded, nothing
wider than the window) and writes its findings into the DOM, which ``--dump-dom`` hands back.
Screenshots are taken too, and checked to be pictures of a page rather than blank.

The sample document is built here from blocks with every construct our printer emits; the real
seed and part3 handouts are rendered and checked the same way.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from render import figures
from render.blocks import Box, Display, Document, Figure, Heading, Items, Link, PageBreak, Para, Strong, Table, words
from render.build import write_figures
from render.mathml import core_problems
from render.notation import (
    Bar,
    Between,
    Boxed,
    Broken,
    Conv,
    Flow,
    Hadamard,
    Ind,
    IndexSum,
    Lines,
    Partial,
    Relu1,
    Reshape,
    Row,
    S,
    Sigma,
    Softplus,
    Stack,
    SumLines,
    T,
    Unpool,
    Wins,
    chain,
    eq,
)
from render.printer import latex, numbers
from render.templates import render
from symbolic.errors import RenderError

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1280
HEIGHT = 2000
BROWSER_TIMEOUT = 60

# What the browser measures, written into the page as JSON (the test copy only; the handout has no script).
CHECKS = """<script>
window.addEventListener("load", () => {
  const rect = (e) => e.getBoundingClientRect();
  const maths = [...document.querySelectorAll("math")];
  const out = {};
  out.maths = maths.length;
  out.blockMaths = maths.filter((m) => m.getAttribute("display") === "block" && getComputedStyle(m).display === "block math").length;
  out.emptyMaths = maths.filter((m) => !(rect(m).width > 0 && rect(m).height > 0)).map((m) => m.textContent.slice(0, 60));
  // Laid out as mathematics, not as a line of letters: numerators above denominators, subscripts lowered.
  const fracs = [...document.querySelectorAll("mfrac")];
  out.fracs = fracs.length;
  out.flatFracs = fracs.filter((f) => !(rect(f.children[0]).bottom <= rect(f.children[1]).top + 1)).length;
  const subs = [...document.querySelectorAll("msub")];
  out.subs = subs.length;
  out.flatSubs = subs.filter((s) => !(rect(s.children[1]).bottom > rect(s.children[0]).bottom)).length;
  const raw = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.parentElement.closest("script, style") && /\\\\[A-Za-z]+|\\$/.test(n.data)) raw.push(n.data.slice(0, 80));
  }
  out.rawTex = raw;
  const imgs = [...document.images];
  out.images = imgs.length;
  out.brokenImages = imgs.filter((i) => !(i.complete && i.naturalWidth > 0 && rect(i).width > 0)).map((i) => i.alt);
  out.scrollWidth = document.documentElement.scrollWidth;
  out.clientWidth = document.documentElement.clientWidth;
  out.innerWidth = window.innerWidth;
  out.deadLinks = [...document.querySelectorAll('a[href^="#"]')]
    .filter((a) => !document.getElementById(decodeURIComponent(a.hash.slice(1))))
    .map((a) => a.getAttribute("href"));
  out.scrollers = [...document.querySelectorAll(".display, .table-wrap")].filter((d) => d.scrollWidth > d.clientWidth + 1).length;
  const boxed = document.querySelector("mrow.boxed");
  out.boxedBorder = boxed ? parseFloat(getComputedStyle(boxed).borderTopWidth) : null;
  const aside = document.querySelector("aside.box");
  out.asideBorder = aside ? parseFloat(getComputedStyle(aside).borderTopWidth) : null;
  const pre = document.createElement("pre");
  pre.id = "cnn-checks";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str:
    """Debian's headless Chromium; its absence fails the test, since the browser checks are part of the suite."""
    found = shutil.which("chromium") or (Path("/usr/bin/chromium").is_file() and "/usr/bin/chromium")
    if not found:
        pytest.fail("chromium is not installed: run `.ci/setup --test` (it installs Debian's chromium package)")
    return found


def chromium_command(url: str, profile: Path, *args: str) -> list[str]:
    """Chromium headless on one local page, with its own profile and nothing to fetch from the network."""
    return [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--mute-audio",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
        *args,
        url,
    ]


def open_in_chromium(page: Path, sections: tuple = ()) -> tuple[dict, list[Path]]:
    """Open the page in Chromium: what it measured, and screenshots of its top and of each section in ``sections``.

    One browser measures a copy of the page that carries ``CHECKS`` and photographs its top; one
    more per section photographs a copy that starts at that section's heading (headless Chromium
    photographs a long page scrolled by a fragment before painting it, blank). They run at once.
    """
    text = page.read_text(encoding="utf-8")
    folder = page.parent
    probe = folder / f"{page.stem}-probe.html"
    probe.write_text(text.replace("</body>", CHECKS + "</body>", 1), encoding="utf-8")
    shots = [folder / f"{page.stem}-top.png"]
    commands = [
        chromium_command(probe.as_uri(), folder / "profile-probe", "--virtual-time-budget=10000", "--dump-dom", f"--screenshot={shots[0]}")
    ]
    for anchor in sections:
        cut = f"<script>for (const h = document.getElementById({json.dumps(anchor)}); h.previousElementSibling; ) h.previousElementSibling.remove();</script>"
        copy = folder / f"{page.stem}-{anchor}.html"
        copy.write_text(text.replace("</main>", cut + "</main>", 1), encoding="utf-8")
        shots.append(copy.with_suffix(".png"))
        commands.append(chromium_command(copy.as_uri(), folder / f"profile-{anchor}", f"--screenshot={shots[-1]}"))
    running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    outputs = [proc.communicate(timeout=BROWSER_TIMEOUT) for proc in running]
    stdout, stderr = outputs[0]
    found = re.search(r'<pre id="cnn-checks">(.*?)</pre>', stdout, re.S)
    assert found, f"the page's checks did not run (exit {running[0].returncode}): {stderr[-2000:]}"
    for shot, (_, err) in zip(shots, outputs):
        assert shot.is_file(), f"no screenshot {shot.name}: {err[-2000:]}"
    return json.loads(html.unescape(found.group(1))), shots


def assert_not_blank(png: Path) -> None:
    """The screenshot is a picture of a page: the window's size, with ink on a fair share of it."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("L"))
    assert img.shape == (HEIGHT, WIDTH), img.shape
    ink = float((img < 128).mean())
    assert ink > 0.005, f"{png.name}: only {ink:.2%} of the pixels are dark: a blank page?"
    assert len(np.unique(img)) > 16, f"{png.name}: too few grey levels for text and math"


# ---------------------------------------------------------------- the sample document


def _heatmap(path: Path, matrix: list, title: str) -> None:
    figures.heatmap(matrix, title, path)


def sample_document() -> Document:
    """A handout with every construct the printer emits: matrices (boxed, elided), sums with limits, fractions,
    indicators, aligned and gathered displays, arrows, tables, lists, a box, a figure and a link."""
    x11, w11, z12, a12, p11 = (S(n) for n in ("x_11", "w_11", "z_12", "a_12", "p_11"))
    L, Z1, W1, X, A2, Y = (S(n) for n in ("L", "Z_1", "W_1", "X", "A_2", "Y"))
    i, j, k, n = sp.symbols("i j k n")
    values = np.array([[0.5, -1.25, 3.0], [0.0, 2.5e-07, -0.8807970779778824], [1.0, 2.0, -3.0]])
    dots, vdots, ddots = sp.Symbol(r"\cdots"), sp.Symbol(r"\vdots"), sp.Symbol(r"\ddots")
    elided = sp.Matrix(
        [[S("x_11"), S("x_12"), dots, S("x_1,28")], [vdots, vdots, ddots, vdots], [S("x_28,1"), S("x_28,2"), dots, S("x_28,28")]]
    )
    terms = [
        chain(S(f"x_{r}{c}"), Bar(S(f"z_{r}{c}")), Relu1(S(f"z_{r}{c}")), Wins(S(f"a_{r}{c}"), p11))
        for r in range(1, 5)
        for c in range(1, 5)
    ]
    wide = Row(*(eq(S(f"W_{q}"), numbers(np.arange(8.0) + q * 0.123)) for q in range(1, 4)))
    blocks = (
        Heading("Forward <propagation> & “quotes”", anchor="forward"),
        Para(
            words(
                "Plain text with HTML specials: <b>not bold</b> & more; then ",
                Strong("strong"),
                ", math ",
                Partial(L, w11),
                ", ",
                Relu1(z12),
                ", ",
                Wins(a12, p11),
                " and ",
                Link("✓ proven", "proofs"),
                ".",
            )
        ),
        Display(eq(Z1, Conv(X, W1) + S("B_1"))),
        Display(eq(Partial(L, w11), chain(A2 - Y, S("w2_1"), Wins(a12, p11), Relu1(z12), x11))),
        Display(eq(S("A_1"), numbers(values, boxed=values > 1))),
        Display(eq(X, elided)),
        Display(SumLines(Partial(L, w11), 4, *terms)),
        Display(Flow(X, S("conv"), Z1, S("ReLU"), S("A_1"), S("maxpool"), S("P_1"))),
        Display(
            Stack(
                Row(eq(Bar(Z1), Hadamard(Unpool(Bar(S("P_1"))), Relu1(Z1))), eq(S("F"), Reshape(S("P_1"), X))),
                eq(Softplus(S("Z_2")), Sigma(S("Z_2"))),
            )
        ),
        Display(eq(Bar(S("w_kl")), IndexSum(chain(S("x_{i+k-1,j+l-1}"), Bar(S("z_ij"))), (i, 0, n - 1), (j, 1, n)))),
        Display(eq(Ind(sp.Le(S("z_11"), 0)), Between(1, k, n))),
        Display(Broken(Partial(L, W1), Conv(X, Bar(Z1)))),
        Display(Lines(S("Q"), *terms[:3])),
        Display(eq(Partial(L, S("F")), T("F") * numbers([[2.5e-07, -3.25]]))),
        Display(sp.Piecewise((1, S("z") > 0), (0, True))),
        Display(wide),
        PageBreak(),
        Heading("A table", level=2, anchor="table"),
        Table(
            (words("rule"), words("statement"), words("method")),
            tuple(
                (words(f"({q})"), words(eq(Partial(L, S(f"w_{q}1")), Boxed(q))), words(Strong("symbolic"), " & exact")) for q in range(1, 4)
            ),
            align="lcr",
        ),
        Table(tuple(words(S(f"x_1,{c}")) for c in range(1, 41)), (tuple(words(f"{c * 1.25:.4g}") for c in range(1, 41)),)),
        Items((words("one ", x11), words("two ", Strong("bold")))),
        Box(
            "The backward recipe",
            (Para(words("In a box: ", Bar(Z1))), Display(eq(Bar(W1), Conv(X, Bar(Z1)))), Items((words("item ", w11),))),
        ),
        Figure(
            "grad.png",
            words("The gradient ", Partial(L, W1), " <as a picture>."),
            _heatmap,
            {"matrix": values.tolist(), "title": "dL/dW1"},
            width=0.6,
        ),
        Heading("Proofs", anchor="proofs"),
        Para(words("Every rule was proven.")),
    )
    return Document("A <sample> handout", words("for the browser ", Strong("tests")), blocks)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Document, Path, str]:
    """The sample document, its figures drawn, and its page written to ``handout.html``."""
    folder = tmp_path_factory.mktemp("html-sample")
    doc = sample_document()
    write_figures(doc, folder / "figures")
    page = render("html", doc, base=folder)
    (folder / "handout.html").write_text(page, encoding="utf-8")
    return doc, folder, page


MATH = re.compile(r"<math\b.*?</math>", re.S)


def assert_well_formed(page: str, figures: int, displays: int) -> None:
    """Static checks on a page: self-contained, every formula MathML Core, every link target present."""
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page must not load anything from the network"
    assert "<script" not in page and "<link" not in page
    imgs = re.findall(r'<img src="([^"]*)"', page)
    assert len(imgs) == figures and all(s.startswith("data:image/") for s in imgs), (len(imgs), figures)
    maths = MATH.findall(page)
    assert maths, "no MathML in the page"
    problems = {p for m in maths for p in core_problems(m)}
    assert not problems, sorted(problems)[:10]
    text_only = html.unescape(re.sub(r"<[^>]+>", " ", MATH.sub(" ", page.split("</style>", 1)[1])))
    assert not re.search(r"\\[A-Za-z]+|\$", text_only), "raw TeX outside MathML"
    assert "<merror" not in page, "a formula failed to convert"
    unglued = re.sub(r'<span class="nobr">.*?</span>', "", page, flags=re.S)
    assert not re.search(r"</math>[,.;:]", unglued), "an inline formula and its punctuation may be split over two lines"
    ids = set(re.findall(r'\sid="([^"]+)"', page))
    targets = set(re.findall(r'href="#([^"]+)"', page))
    assert targets <= ids, targets - ids
    assert len(re.findall(r'<math display="block">', page)) == displays


def count_displays(doc: Document) -> int:
    """Displays of a document, those inside its boxes included."""
    return sum(b.kind == "display" for b in doc.blocks) + sum(i.kind == "display" for b in doc.blocks if b.kind == "box" for i in b.blocks)


# ---------------------------------------------------------------- static tests


def test_sample_page_is_self_contained_mathml_core(sample):
    doc, _, page = sample
    assert_well_formed(page, len(doc.figures), count_displays(doc))
    # Plain text is escaped, never taken for markup.
    assert "Plain text with HTML specials: &lt;b&gt;not bold&lt;/b&gt; &amp; more" in page
    assert '<h2 id="forward">Forward &lt;propagation&gt; &amp; “quotes”' in page
    assert '<h3 id="table">A table' in page
    assert '<a href="#proofs">✓ proven</a>' in page
    assert '<aside class="box">' in page and "The backward recipe" in page
    assert "𝟙" in page and 'class="boxed"' in page and "⋯" in page and "⋮" in page and "⋱" in page
    assert "<title>A &lt;sample&gt; handout</title>" in page
    assert 'alt="The gradient ' in page and "&lt;as a picture&gt;" in page


def test_page_does_not_name_its_folder(sample):
    _, folder, page = sample
    assert str(folder) not in page and "file:" not in page


@pytest.mark.parametrize(
    ("tex", "display", "wanted"),
    [
        (r"\mathbb{1}[z > 0]", False, "<mn>𝟙</mn>"),
        (r"\boxed{3}", False, '<mrow class="boxed"><mrow><mn>3</mn></mrow></mrow>'),
        (r"\begin{aligned} a &= b \\ &\quad + c \end{aligned}", True, '<mtable displaystyle="true" class="aligned">'),
        (r"\begin{aligned} a &= b \end{aligned}", True, '<mtd style="text-align: right"><mi>a</mi></mtd>'),
        (r"\begin{gathered} a \\[6pt] b \end{gathered}", True, '<mtable class="gathered" displaystyle="true">'),
        (r"X \xrightarrow{\text{conv}} Z", True, '<mover><mrow><mo>→</mo></mrow><mrow><mspace width="0.278em" /><mtext>conv</mtext>'),
        (r"\bar{Z_{1}}", False, '<msub><mover accent="true"><mi>Z</mi><mo stretchy="true">‾</mo></mover>'),
        (r"\operatorname{conv}\left(X, W\right)", False, '<mi>conv</mi><mrow><mo stretchy="false" fence="true" form="prefix">(</mo>'),
        (r"\left[\begin{matrix}\frac{a}{b}\end{matrix}\right]", True, '<mo stretchy="true" fence="true" form="prefix">[</mo>'),
        (r"B = -1", False, '<mo>=</mo><mo form="prefix">−</mo>'),
        (r"-Y \log\left(A\right)", False, '<mi>Y</mi><mspace width="0.1667em" /><mi>log</mi>'),
        (r"z = \sum_{i < n} x_{i}", True, "<munder><mo>∑</mo>"),
        (r"z = \sum_{i < n} x_{i}", False, "<msub><mo>∑</mo>"),
        (r"\left[\begin{matrix}\sum_{i} x\end{matrix}\right]", True, "<msub><mo>∑</mo>"),
    ],
)
def test_mathml_rewrites(tex, display, wanted):
    """Each correction of latex2mathml's output is there, and the result is MathML Core."""
    from render.mathml import to_mathml

    mathml = to_mathml(tex, display)
    assert wanted in mathml, mathml
    assert core_problems(mathml) == []


def test_unconvertible_formula_is_a_render_error():
    from render.mathml import to_mathml

    with pytest.raises(RenderError, match=r"cannot convert the formula 'a\^' to MathML"):
        to_mathml("a^")


def test_every_block_kind_has_an_html_macro():
    import dataclasses

    import render.blocks as blocks
    from render.templates import environment

    kinds = {f.default for c in vars(blocks).values() if dataclasses.is_dataclass(c) for f in dataclasses.fields(c) if f.name == "kind"}
    macros = environment("html").get_template("blocks.html.j2").module
    assert kinds and all(callable(getattr(macros, k, None)) for k in kinds | {"words"}), kinds


def test_pagebreak_prints_nothing():
    base = (Heading("H", anchor="h"), Para(words("a")))
    with_break = render("html", Document("T", words("s"), (*base[:1], PageBreak(), *base[1:])))
    assert with_break == render("html", Document("T", words("s"), base))


def test_page_is_deterministic(sample, tmp_path):
    doc, folder, page = sample
    again = sample_document()
    write_figures(again, tmp_path / "figures")
    assert render("html", again, base=tmp_path) == page


def test_missing_figure_is_an_error(tmp_path):
    doc = Document("T", words("s"), (Figure("none.png", words("c"), _heatmap, {}),))
    with pytest.raises(RenderError, match="none.png"):
        render("html", doc, base=tmp_path)
    with pytest.raises(RenderError, match="none.png"):
        render("html", doc)


def test_every_printer_construct_converts():
    """Each display of the sample, printed by our printer, is MathML Core with no TeX left in it."""
    from render.mathml import to_mathml

    for block in sample_document().blocks:
        if block.kind == "display":
            tex = latex(block.expr)
            mathml = to_mathml(tex, display=True)
            assert core_problems(mathml) == [], (tex, core_problems(mathml))
            assert "merror" not in mathml, tex


# ---------------------------------------------------------------- in the browser


def assert_browser_checks(found: dict, figures: int) -> None:
    assert found["maths"] >= 10, found
    assert found["emptyMaths"] == [], found["emptyMaths"][:5]
    assert found["fracs"] > 0 and found["flatFracs"] == 0, found
    assert found["subs"] > 0 and found["flatSubs"] == 0, found
    assert found["rawTex"] == [], found["rawTex"][:5]
    assert found["images"] == figures and found["brokenImages"] == [], found
    assert found["scrollWidth"] <= min(WIDTH, found["clientWidth"]), f"the page is {found['scrollWidth']} px wide at {WIDTH} px"
    assert found["deadLinks"] == [], found["deadLinks"]


def test_sample_page_in_chromium(sample):
    doc, folder, page = sample
    found, shots = open_in_chromium(folder / "handout.html", sections=("table",))
    assert_browser_checks(found, len(doc.figures))
    assert found["blockMaths"] == page.count('<math display="block">')
    assert found["boxedBorder"] and found["boxedBorder"] > 0, "\\boxed must draw a border"
    assert found["asideBorder"] and found["asideBorder"] > 0, "a Box is a framed aside"
    # The three side-by-side 8-column matrices and the 40-column table are wider than the text: they scroll in their own box.
    assert found["scrollers"] >= 1, found
    for shot in shots:
        assert_not_blank(shot)
    assert shots[0].read_bytes() != shots[1].read_bytes(), "the section's screenshot must show another part of the page"


# ---------------------------------------------------------------- the real handouts


REAL = ("seed", "part3")


@pytest.fixture(scope="module")
def real_builds(tmp_path_factory) -> dict:
    """``cnn-derive build --spec NAME --format html`` for the lecture's seed network and the part3 preset, both at once."""
    base = tmp_path_factory.mktemp("html-real")
    started = {}
    for name in REAL:
        cmd = [sys.executable, "-m", "render.cli", "build", "--spec", name, "--format", "html", "--out", str(base / name), "--quiet"]
        started[name] = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, proc in started.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"build --spec {name} --format html failed: {err[-2000:]}"
    return {name: base / name for name in REAL}


@pytest.mark.parametrize("name", REAL)
def test_real_handout_page(real_builds, name):
    out = real_builds[name]
    page = (out / "handout.html").read_text(encoding="utf-8")
    written = {p.name for p in out.iterdir()}
    assert "handout.html" in written and not written & {"handout.md", "handout.tex", "handout.pdf"}, written
    figures_drawn = len(list((out / "figures").iterdir()))
    assert_well_formed(page, figures_drawn, page.count('<math display="block">'))
    assert page.count('<math display="block">') >= 10, f"{name}: too few displays for a handout"
    anchors = re.findall(r'<h2 id="([^"]+)"', page)
    assert anchors, f"{name}: no section can be linked to"
    found, shots = open_in_chromium(out / "handout.html", sections=(anchors[len(anchors) // 2],))
    assert found["maths"] == len(MATH.findall(page))
    assert found["blockMaths"] == page.count('<math display="block">')
    assert_browser_checks(found, figures_drawn)
    for shot in shots:
        assert_not_blank(shot)
