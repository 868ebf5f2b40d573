"""The seed handout's content: sections, key words, well-formed Markdown and LaTeX, the general section.

One build of every format, in a subprocess, into a temporary folder (module fixture ``full``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from render.document import GENERAL_SHOWN, _general_section
from render.printer import latex
from symbolic import general
from symbolic.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]

SECTION_TITLES = (
    "The network",
    "Forward propagation",
    "The fully connected part",
    "The convolutional part",
    "A worked example",
    "The same rule for every size",
    "Appendix",
    "The general rules of every layer",
)
KEY_WORDS = (
    "proven symbolically",
    "conv",
    "unpool",
    "reshape",
    "softplus",
    "sigmoid",
    "ReLU",
    "Kronecker delta",
    "border conditions",
    "Proven for every size",
)
JINJA_DELIMITERS = ("<<", "<%", "%>", "<#", "#>")


def poppler(tool: str) -> str:
    import shutil

    path = shutil.which(tool)
    assert path, f"{tool} (poppler-utils) is needed: .ci/setup installs it"
    return path


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seed") / "seed"
    run = subprocess.run(
        [sys.executable, "-m", "render.cli", "build", "--quiet", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    return out


@pytest.fixture(scope="module")
def pdf_text(full) -> str:
    pdf = full / "handout.pdf"
    assert pdf.is_file(), "the default build must write handout.pdf when TeX is installed"
    text = subprocess.run([poppler("pdftotext"), "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for lig, plain in {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"}.items():
        text = text.replace(lig, plain)
    return " ".join(text.split())


def test_pdf_has_every_section(pdf_text):
    for title in SECTION_TITLES:
        assert title in pdf_text, title


def test_pdf_has_the_key_words(pdf_text):
    for word in KEY_WORDS:
        assert word in pdf_text, word


def test_pdf_page_count(full):
    pdf = full / "handout.pdf"
    info = subprocess.run([poppler("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = re.search(r"^Pages:\s+(\d+)$", info, re.M)
    assert pages, info
    assert int(pages.group(1)) >= 5


@pytest.fixture(scope="module")
def handout(full):
    out = full
    return out, (out / "handout.md").read_text(encoding="utf-8"), (out / "handout.tex").read_text(encoding="utf-8")


def test_markdown_math_fences_are_closed(handout):
    _, md, _ = handout
    opened = None
    count = 0
    for number, line in enumerate(md.splitlines(), 1):
        fence = line.strip()
        if opened is None and fence.startswith("```"):
            opened = (number, fence)
            count += fence == "```math"
        elif opened is not None and fence == "```":
            opened = None
        elif opened is not None and fence.startswith("```"):
            pytest.fail(f"line {number}: a fence opens inside the fence opened at line {opened[0]}")
    assert opened is None, f"the fence {opened[1]!r} opened at line {opened[0]} is never closed"
    assert count > 0, "expected display math in ```math fences"


def test_markdown_dollars_are_balanced(handout):
    _, md, _ = handout
    assert md.count("$$") % 2 == 0, "unbalanced $$"
    prose = re.sub(r"^```.*?^```[ \t]*$", "", md, flags=re.M | re.S)
    for paragraph in re.split(r"\n\s*\n", prose):
        dollars = len(re.findall(r"(?<!\\)\$", paragraph))
        assert dollars % 2 == 0, f"unbalanced inline math in: {paragraph[:200]!r}"


def test_markdown_figures_exist(handout):
    out, md, _ = handout
    referenced = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", md)
    assert referenced, "expected figures in the Markdown"
    for ref in referenced:
        assert re.fullmatch(r"figures/[\w.-]+\.png", ref), f"figure {ref!r} is not a relative figures/NAME.png"
        assert (out / ref).is_file(), ref
    for ref in re.findall(r"figures/[\w.-]+\.png", md):
        assert (out / ref).is_file(), ref


def test_no_template_syntax_or_build_paths_leak(handout):
    out, md, tex = handout
    for name, text in (("handout.md", md), ("handout.tex", tex)):
        for delimiter in JINJA_DELIMITERS:
            assert delimiter not in text, f"{name}: Jinja delimiter {delimiter!r} leaked"
        assert str(out.parent) not in text, f"{name}: mentions the build folder"
        assert f".{out.name}." not in text, f"{name}: mentions the temporary build folder"


def test_latex_document_structure(handout):
    out, _, tex = handout
    assert tex.count(r"\begin{document}") == 1 and tex.count(r"\end{document}") == 1
    assert tex.index(r"\documentclass") < tex.index(r"\begin{document}")
    assert tex.rstrip().endswith(r"\end{document}")
    graphics = re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]+)\}", tex)
    assert graphics, "expected figures in the LaTeX"
    for ref in graphics:
        candidates = [out / ref] + [out / (ref + ext) for ext in (".png", ".pdf", ".jpg")]
        assert any(p.is_file() for p in candidates), ref


# --------------------------------------------------------------------------------------------
# section 7 and appendix D: the general rules
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def general_model():
    return _general_section(load_spec()), {r.rule.name: r for r in general.prove_general()}


def test_general_section_is_the_proof_as_sympy_ran_it(general_model):
    model, results = general_model
    assert [d.name for d in model["general"]] == list(GENERAL_SHOWN) == ["conv2d.weight", "conv2d.input"]
    for d in model["general"]:
        r = results[d.name]
        assert d.status == r.status == "proven"
        assert len(d.steps) == len(r.steps), d.name  # one printed step, with its sentence, per SymPy step
        assert all(st.says.parts and st.expr is not None for st in d.steps)
        said = ["".join(p for p in st.says.parts if isinstance(p, str)) for st in d.steps]
        assert "a sum of Kronecker deltas" in said[1]
        collapses = [k for k, text in enumerate(said) if "collapses the sum over" in text]
        assert collapses and all("lemma delta_sum" in said[k] for k in collapses)
        assert "exactly 0" in said[-1]
    weight, inp = model["general"]
    # The weight gradient collapses four deltas, none leaves a condition; the input gradient keeps
    # the two border conditions, both in the brute force and in the rule.
    assert sum("collapses" in "".join(map(str, st.says.parts)) for st in weight.steps) == 4
    assert weight.borders == () and weight.border_note is None
    kept = [st for st in inp.steps if "does not always hold" in "".join(p for p in st.says.parts if isinstance(p, str))]
    assert len(kept) == 4
    assert [latex(b) for b in inp.borders] == [r"0 \le h + p - s\,i \le K_{h} - 1", r"0 \le p + w - s\,j \le K_{w} - 1"]
    note = "".join(p for p in inp.border_note.parts if isinstance(p, str))
    assert "reached from 1 output position, the inner entry" in note and "from 9 output positions" in note


def test_general_table_has_every_rule_and_no_seconds(general_model):
    model, results = general_model
    table = model["general_table"]
    assert "seconds" not in " ".join(table.header)
    rows = [["".join(map(str, cell.parts)) for cell in row] for row in table.rows]
    assert [row[0] for row in rows] == [r.name for r in general.GENERAL_RULES]
    for name, layer, status, steps, lemmas in rows:
        assert status == "proven" and layer == results[name].rule.layer
        assert steps == str(len(results[name].steps)) and lemmas == ", ".join(results[name].lemmas)


def test_general_section_in_the_files(handout):
    _, md, tex = handout
    section = md[md.index("## 7. The same rule for every size") : md.index("## Appendix A")]
    assert section.count("**Step ") == sum(len(r.prove().steps) for r in map(general.rule_by_name, GENERAL_SHOWN))
    assert r"0 \le h + p - s\,i \le K_{h} - 1" in section
    appendix = md[md.index("## Appendix D") :]
    assert "| conv2d.input | conv2d | proven | 12 |" in appendix
    assert not re.search(r"\d\.\d", appendix), "a time (or any decimal) in the general rules' table"
    assert r"\section*{7. The same rule for every size}" in tex and r"\section*{Appendix D. The general rules of every layer}" in tex
