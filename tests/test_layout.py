"""Any size fits the page: the handout of the seed at n = 8, 16, 28 and of the part3 preset, compiled.

Each handout is built in a fresh process (md, tex and pdf, as a user would), all at once; the
build removes TeX's log with the other auxiliary files, so a copy of ``handout.tex`` (and its
figures) is compiled again the way ``render.pdf`` does it, and its log is read:

* ``Overfull \\hbox`` wider than ``HBOX_LIMIT`` points: something runs off the right edge;
* any ``Overfull \\vbox``: content runs past the bottom margin.

A failure lists every offending box with its page, the source lines it comes from and what TeX
printed of its content, so one run shows all that is wrong.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import render.pdf

ROOT = Path(__file__).resolve().parents[1]
HBOX_LIMIT = 10.0  # points; smaller overshoots are not visible in print
CASES = {
    "n8": ["--n", "8", "--k", "3"],
    "n16": ["--n", "16", "--k", "3"],
    "n28": ["--n", "28", "--k", "3"],
    "part3": ["--spec", "part3"],
}
BUILD_TIMEOUT = 240  # seconds per build; a build that long is a failure of its own (target: n = 28 in 60 s)


@dataclass(frozen=True)
class Compiled:
    """One handout: how its build went, and the log and source of its compilation."""

    name: str
    build_rc: int
    build_output: str
    log: str
    tex: list
    seconds: float


def _build_and_compile(name: str, args: list, tmp: Path) -> Compiled:
    out = tmp / name
    cmd = [sys.executable, "-m", "render.cli", "build", *args, "--format", "md,tex,pdf", "--quiet", "--out", str(out)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        rc, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        rc, output = -1, f"build timed out after {BUILD_TIMEOUT} s"
    if rc != 0 or not (out / "handout.tex").exists():
        return Compiled(name, rc, output, "", [], time.perf_counter() - t0)
    # The same source and figures, compiled again where the log is kept.
    copy = tmp / f"{name}-tex"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("*.pdf", "*.md", "*.html"))
    env = dict(os.environ, SOURCE_DATE_EPOCH="0", FORCE_SOURCE_DATE="1")
    latexmk = ["latexmk", "-pdf", "-halt-on-error", "-interaction=nonstopmode", "-quiet", "handout.tex"]
    proc = subprocess.run(latexmk, cwd=copy, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    log = (copy / "handout.log").read_text(errors="replace") if (copy / "handout.log").exists() else ""
    if proc.returncode != 0:
        output += f"\nlatexmk failed on the copy (exit {proc.returncode}): {proc.stdout[-800:]}"
    tex = (copy / "handout.tex").read_text().splitlines()
    return Compiled(name, proc.returncode, output, log, tex, time.perf_counter() - t0)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict:
    assert render.pdf.tex_available(), "TeX (latexmk, pdflatex) is needed: .ci/setup installs it"
    tmp = tmp_path_factory.mktemp("layout")
    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        futures = {name: pool.submit(_build_and_compile, name, args, tmp) for name, args in CASES.items()}
        return {name: f.result() for name, f in futures.items()}


_OVERFULL = re.compile(r"^Overfull \\([hv])box \((-?[\d.]+)pt too (?:wide|high)\)(.*)$")
_LINES = re.compile(r"at lines? (\d+)(?:--(\d+))?")


def _source_span(tex: list, a: int, b: int) -> tuple:
    """The source lines to show for a box TeX places at lines a..b: a display is reported at its
    last line, so reach back to where it begins.

    >>> _source_span(["x", r"\\begin{equation*}", "a = b", r"\\end{equation*}"], 4, 4)
    (2, 4)
    """
    begins = (r"\begin{", r"\[", "$$")
    if (
        a == b
        and 1 <= a <= len(tex)
        and (tex[a - 1].lstrip().startswith((r"\end{", r"\]", "$$")) or tex[a - 1].rstrip().endswith((r"\]", "$$")))
    ):
        start = a
        while start > 1 and not tex[start - 1].lstrip().startswith(begins) and a - start < 40:
            start -= 1
        return start, b
    return a, b


def overfull_boxes(log: str, tex: list, hbox_limit: float = HBOX_LIMIT) -> list:
    """Every box of the log that is too wide (over ``hbox_limit`` pt) or too high (any), as one line of
    text each: page, kind, size, the source lines and what TeX shows of the content.

    The page is the one being filled: TeX writes ``[n`` to the log as it ships page n out.

    >>> log = "[1] [2\\n\\n]\\nOverfull \\\\hbox (25.3pt too wide) in paragraph at lines 3--3\\n[]\\\\OT1/cmr/m/n/10 wide\\n"
    >>> overfull_boxes(log, ["a", "b", r"$\\left[\\begin{matrix}1 & 2\\end{matrix}\\right]$"])
    ['page 3: hbox 25.3pt too wide, tex lines 3-3: $\\\\left[\\\\begin{matrix}1 & 2\\\\end{matrix}\\\\right]$ | []\\\\OT1/cmr/m/n/10 wide']
    >>> overfull_boxes("Overfull \\\\hbox (4.0pt too wide) detected at line 1\\n", ["x"])
    []
    """
    found = []
    page = 0
    lines = log.splitlines()
    for k, line in enumerate(lines):
        # Page numbers shipped so far: "[12" possibly followed by more on the same line.
        for m in re.finditer(r"\[(\d+)(?=[\s\]{<]|$)", line):
            if not line.startswith("Overfull"):
                page = max(page, int(m.group(1)))
        hit = _OVERFULL.match(line)
        if not hit:
            continue
        kind, size, rest = hit.group(1), float(hit.group(2)), hit.group(3)
        if (kind == "h" and size <= hbox_limit) or size <= 0:
            continue
        where = ""
        span = _LINES.search(rest)
        if span:
            a, b = _source_span(tex, int(span.group(1)), int(span.group(2) or span.group(1)))
            source = " / ".join(s.strip() for s in tex[a - 1 : b])
            where = f", tex lines {a}-{b}: {source[:300]}"
        shown = lines[k + 1].strip() if k + 1 < len(lines) and kind == "h" else rest.strip()
        found.append(f"page {page + 1}: {kind}box {size}pt too {'wide' if kind == 'h' else 'high'}{where} | {shown[:160]}")
    return found


@pytest.mark.parametrize("name", list(CASES))
def test_every_page_fits(compiled, name):
    c = compiled[name]
    assert c.build_rc == 0, f"{name}: the build or its compilation failed ({c.seconds:.0f} s):\n{c.build_output[-2000:]}"
    assert c.log, f"{name}: no TeX log"
    bad = overfull_boxes(c.log, c.tex)
    assert not bad, f"{name}: {len(bad)} box(es) off the page ({c.seconds:.0f} s):\n" + "\n".join(bad)
