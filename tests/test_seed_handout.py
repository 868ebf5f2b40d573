"""The seed handout's content: the lecture's order, the conv rule made obvious, the worked example with
the mask and the tie at work, honest checks, and well-formed Markdown, LaTeX and PDF.

The document model is built once in-process (``doc``); one full build of every format runs in a
subprocess into a temporary folder (``full``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from render.blocks import Box, Display, Figure, Heading, Items, Link, Para, Table, Words
from render.lecture import TITLE, checks, seed_document, worked
from render.lecture.example import SEED_EXAMPLE
from render.lecture.general import GENERAL_SHOWN, general_model
from render.notation import Partial, Relu1, Stack, SumLines, Wins
from render.printer import latex
from symbolic import general
from symbolic.errors import CaseError
from symbolic.spec import load_spec, seed_spec

ROOT = Path(__file__).resolve().parents[1]

LECTURE_ORDER = (
    "1. The network",
    "2. Forward propagation",
    "3. What backpropagation has to find",
    "4. The fully connected part",
    "5. The convolutional part",
    "5.1 The filter gradient, step by step",
    "5.2 The backward recipe",
    "6. A worked example",
    "7. The same rule for every size",
    "Appendix A. The derivative of one weight in full",
    "Appendix B. The rules and their proofs",
    "Appendix C. Numeric checks",
    "Appendix D. The general rules of every layer",
)
KEY_WORDS = (
    "✓ proven",
    "cross-correlation",
    "unpool",
    "reshape",
    "softplus",
    "sigmoid",
    "ReLU",
    "Kronecker delta",
    "Proven for every size",
)
JINJA_DELIMITERS = ("<<", "<%", "%>", "<#", "#>")


# --------------------------------------------------------------------------------------------
# walking the document model
# --------------------------------------------------------------------------------------------
def all_words(blocks) -> list:
    """Every Words of the blocks: paragraphs, list items, table cells, captions, inside boxes too."""
    out = []
    for b in blocks:
        if isinstance(b, Para):
            out.append(b.words)
        elif isinstance(b, Items):
            out += list(b.lines)
        elif isinstance(b, Table):
            out += list(b.header) + [cell for row in b.rows for cell in row]
        elif isinstance(b, Figure):
            out.append(b.caption)
        elif isinstance(b, Box):
            out += all_words(b.blocks)
    return out


def plain(w: Words) -> str:
    return "".join(p for p in w.parts if isinstance(p, str))


def section(doc, title: str) -> tuple:
    """The blocks from the heading ``title`` to the next heading of the same or a higher level."""
    start = next(k for k, b in enumerate(doc.blocks) if isinstance(b, Heading) and b.title == title)
    level = doc.blocks[start].level
    end = next((k for k in range(start + 1, len(doc.blocks)) if isinstance(doc.blocks[k], Heading) and doc.blocks[k].level <= level), None)
    return doc.blocks[start + 1 : end]


def section_text(doc, title: str) -> str:
    return " ".join(plain(w) for w in all_words(section(doc, title)))


def index(name: str) -> tuple:
    """The indices of an entry name: x_24 -> (2, 4), x_1,12 -> (1, 12)."""
    sub = name.partition("_")[2]
    return tuple(int(v) for v in sub.split(",")) if "," in sub else tuple(int(v) for v in sub)


@pytest.fixture(scope="module")
def doc():
    return seed_document(load_spec())


# --------------------------------------------------------------------------------------------
# the lecture's order and notation
# --------------------------------------------------------------------------------------------
def test_headings_follow_the_lecture(doc):
    titles = [b.title for b in doc.blocks if isinstance(b, Heading) and (b.level == 1 or b.title[:2] in ("5.",))]
    assert titles == list(LECTURE_ORDER)
    assert doc.title == TITLE


def test_the_lectures_context_comes_first(doc):
    first = doc.blocks[0]
    assert isinstance(first, Para)
    text = plain(first.words)
    assert "very important and conceptual topic" in text and "part 1" in text and "part 2" in text


def test_forward_equations_in_matrix_form_first(doc):
    blocks = section(doc, "2. Forward propagation")
    displays = [b.expr for b in blocks if isinstance(b, Display)]
    matrix_form = next(d for d in displays if isinstance(d, Stack))
    assert displays.index(matrix_form) < next(k for k, d in enumerate(displays) if d.has(sp.Indexed))
    shown = [latex(e) for e in matrix_form.args]
    assert shown[0] == r"Z_{1} = \operatorname{conv}\left(X, W_{1}\right) + B_{1}"
    assert shown[4] == r"Z_{2} = W_{2} F + B_{2}"
    assert shown[5].endswith(r"= \hat{y}") and shown[6].startswith("L = ")
    assert len(shown) == 7  # the lecture's seven equations


def test_dz2_df_is_its_own_step(doc):
    blocks = section(doc, "5. The convolutional part")
    step = [
        b.expr
        for b in blocks
        if isinstance(b, Display) and isinstance(b.expr, sp.Eq) and b.expr.lhs == Partial(sp.Symbol("Z_2"), sp.Symbol("F"))
    ]
    assert len(step) == 1
    row, w2 = step[0].rhs.lhs, step[0].rhs.rhs
    assert w2 == sp.Symbol("W_2") and [str(e) for e in row] == ["w2_1", "w2_2", "w2_3", "w2_4"]


def test_conv_rule_states_dz_dw_and_the_engine_agrees(doc):
    blocks = section(doc, "5.1 The filter gradient, step by step")
    exprs = [b.expr for b in blocks if isinstance(b, Display)]
    # The lecture's z_ij style: plain letter indices together, a comma only between shifted ones.
    assert r"\frac{\partial z_{ij}}{\partial w_{kl}} = x_{i + k - 1,j + l - 1}" in [latex(e) for e in exprs]
    assert not any(re.search(r"[zw]\}?_\{[a-z],[a-z]\}", latex(e)) for e in exprs)
    samples = next(e for e in exprs if type(e).__name__ == "Row").args
    assert len(samples) == 2
    for eq in samples:
        (i, j), (k, m), (a, b) = index(str(eq.lhs.args[0])), index(str(eq.lhs.args[1])), index(str(eq.rhs))
        assert (a, b) == (i + k - 1, j + m - 1), latex(eq)
    text = section_text(doc, "2. Forward propagation") + section_text(doc, "5.1 The filter gradient, step by step")
    assert "cross-correlation" in text and "flipped" in text


def test_the_identity_for_zbar(doc):
    exprs = [latex(b.expr) for b in section(doc, "5.1 The filter gradient, step by step") if isinstance(b, Display)]
    assert r"\bar{z}_{ij} = \left(A_{2} - Y\right) w^{(2)}_{r} \mathbb{1}[a_{ij} \to p_{r}] \mathbb{1}[z_{ij} > 0]" in exprs


def test_both_expansions_match_term_by_term(doc):
    table = next(b for b in section(doc, "5.1 The filter gradient, step by step") if isinstance(b, Table))
    assert "brute force" in plain(table.header[1])
    assert len(table.rows) == 16
    windows = [str(row[0].parts[0]) for row in table.rows]
    assert windows == [w for w in ("p_11", "p_12", "p_21", "p_22") for _ in range(4)]
    for window, brute, rule in table.rows:
        term, pair = brute.parts[0], rule.parts[0]
        x, zbar = pair.args
        wins = next(iter(term.atoms(Wins)))
        relu = next(iter(term.atoms(Relu1)))
        assert x in term.free_symbols, latex(term)
        assert index(str(wins.args[0])) == index(str(relu.args[0])) == index(str(zbar)) == index(str(x)), latex(term)
        assert str(wins.args[1]) == str(window.parts[0])


def test_one_entry_by_hand(doc):
    blocks = section(doc, "The filter gradient by hand")
    shown = next(b.expr for b in blocks if isinstance(b, Display))
    numeric, value = shown.rhs.rhs.lhs, shown.rhs.rhs.rhs
    total = sum(float(sp.Mul(*t.args)) for t in numeric.args)
    assert total == pytest.approx(float(value), rel=1e-3)
    assert float(value) == pytest.approx(-0.5379, abs=1e-4)  # dL/dw_11 of the lecture's example
    fig = next(b for b in blocks if isinstance(b, Figure))
    assert fig.file == "sliding.png" and fig.data["offsets"][0] == (0, 0)
    assert np.array_equal(fig.data["x"], np.asarray(SEED_EXAMPLE["X"], float))


# --------------------------------------------------------------------------------------------
# the worked example: the mask and the tie at work, every zero explained
# --------------------------------------------------------------------------------------------
def test_seed_example_shows_the_mask_and_the_tie():
    lec = _lecture()
    win = worked.Windows(lec)
    assert [name for name, _ in win.dead] == ["p_12"]
    assert [(name, at) for name, at, _ in win.tied] == [("p_21", (2, 1))]
    assert lec.example.out["dL/dZ1"][0, 2] == 0 and lec.example.out["dL/dA1"][0, 2] != 0  # routed, then blocked


def test_the_text_says_why(doc):
    text = section_text(doc, "6. A worked example")
    assert "dead" in text and "ReLU mask blocks it" in text
    assert "ties" in text and "first maximum in row-major order" in text
    assert "lost their window" in text
    zero = [
        plain(w)
        for w in all_words(section(doc, "6. A worked example"))
        if any(p == Partial(sp.Symbol("L"), sp.Symbol("w_23")) for p in w.parts)
    ]
    assert any("is 0 because" in t and "meets a 0 of" in t for t in zero)


def test_routing_figure_comes_after_the_forward_pass(doc):
    files = [b.file for b in doc.blocks if isinstance(b, Figure)]
    assert files.index("forward.png") < files.index("pool_routing.png") < files.index("backward.png")
    titles = [b.title for b in doc.blocks if isinstance(b, Heading)]
    at = {b.file: k for k, b in enumerate(doc.blocks) if isinstance(b, Figure)}
    assert at["pool_routing.png"] > doc.blocks.index(next(b for b in doc.blocks if isinstance(b, Heading) and b.title == "Forward pass"))
    assert "Backward pass" in titles


# --------------------------------------------------------------------------------------------
# the recipe, the proofs, the appendices
# --------------------------------------------------------------------------------------------
def test_one_box_with_the_shape_at_every_stage(doc):
    boxes = [b for b in doc.blocks if isinstance(b, Box)]
    assert len(boxes) == 1
    table = next(b for b in boxes[0].blocks if isinstance(b, Table))
    shapes = [plain(row[2]) for row in table.rows]
    assert shapes == ["1×1", "1×4", "1×1", "4×1", "2×2", "4×4", "4×4", "1×1", "3×3"]
    said = " ".join(plain(w) for w in all_words(boxes[0].blocks))
    assert "seven-factor product" in said and "(4×4)×(4×4)" in said


def test_proofs_are_marks_linked_to_one_table(doc):
    links = [p for w in all_words(doc.blocks) for p in w.parts if isinstance(p, Link) and p.target == "proofs"]
    marked = {re.search(r"\((\w)\)", p.text).group(1) for p in links if p.text.startswith("✓ proven")}
    assert marked == set("abcdefghij")
    anchors = [b.anchor for b in doc.blocks if isinstance(b, Heading)]
    assert "proofs" in anchors
    table = next(b for b in section(doc, "Appendix B. The rules and their proofs") if isinstance(b, Table))
    assert [plain(r[0]) for r in table.rows] == [f"({c})" for c in "abcdefghij"]
    assert all(plain(r[3]) == "✓ proven" for r in table.rows)
    assert not any("proven symbolically" in plain(w) for w in all_words(doc.blocks))  # no repeated proof boxes


def test_appendix_a_shows_one_weight(doc):
    blocks = section(doc, "Appendix A. The derivative of one weight in full")
    sums = [b.expr for b in blocks if isinstance(b, Display)]
    assert len(sums) == 1 and isinstance(sums[0], SumLines)
    assert sums[0].args[0] == Partial(sp.Symbol("L"), sp.Symbol("w_11")) and len(sums[0].args) == 2 + 16
    assert "cnn-derive expand w_12" in section_text(doc, "Appendix A. The derivative of one weight in full")


# --------------------------------------------------------------------------------------------
# layout of the prose
# --------------------------------------------------------------------------------------------
def test_symbols_in_prose_are_math(doc):
    for w in all_words(doc.blocks):
        text = plain(w)
        assert not re.search(r"\b[WBZAP][12]\b|\bdL/d|\bf_j\b|\bX\b(?!-)", text), text


def test_quotes_are_typographic(doc):
    for w in all_words(doc.blocks):
        text = plain(w)
        assert '"' not in text and "'" not in text and "`" not in text, text


# --------------------------------------------------------------------------------------------
# the checks say what ran
# --------------------------------------------------------------------------------------------
_LECTURE = {}


def _lecture():
    if not _LECTURE:
        from render.document import seed_sizes
        from render.lecture.appendix import lecture_proofs
        from render.lecture.common import Lecture
        from render.lecture.example import worked_example
        from symbolic.network import build

        spec = load_spec()
        full = build(spec)
        _LECTURE["lec"] = Lecture(
            spec, seed_sizes(spec), full, lecture_proofs(spec), worked_example(spec, seed_sizes(spec), list(full.entries())), print
        )
    return _LECTURE["lec"]


def test_crosscheck_names_the_kinks_and_prints_no_central_difference_there():
    lec = _lecture()
    slopes = checks.slopes(lec.spec, lec.full, lec.example, list(lec.example.names))
    kinks = {s.name for s in slopes if s.central is None}
    # The tie of window p_21 (a_32 = a_41) is a kink for each weight that sees different inputs there.
    assert kinks and kinks <= {f"w_{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3)}
    assert {"B_1", "w2_1", "w2_2", "w2_3", "w2_4", "B_2"}.isdisjoint(kinks)
    for s in slopes:
        if s.central is None:
            assert s.side in ("left", "right")
            # the average a central difference would print is far from the engine's value
            assert abs((s.left + s.right) / 2 - s.engine) > 1e-3
        else:
            assert s.relative < 1e-12


def test_pytorch_check_is_claimed_only_when_it_ran(doc, monkeypatch):
    lec = _lecture()
    text = section_text(doc, "6. A worked example")
    if importlib.util.find_spec("torch") is not None:
        assert "Checked against PyTorch" in text
    else:
        assert "Not checked against PyTorch" in text
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    absent = checks.finish_torch(checks.start_torch(lec.example, 2), lec.example)
    assert absent.status == "absent"
    said = plain(worked._checked(lec, absent, [])[0].words)
    assert "Not checked against PyTorch" in said and "Checked against" not in said


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch (the absent case is tested above)")
def test_pytorch_agrees_on_the_worked_example():
    lec = _lecture()
    result = checks.finish_torch(checks.start_torch(lec.example, 2), lec.example)
    assert result.status == "ran" and result.relative < 1e-14
    # The same inputs with the same torch: the earlier run's gradients, without importing torch again.
    again = checks.start_torch(lec.example, 2)
    assert again.child is None and again.grads is not None
    assert checks.finish_torch(again, lec.example) == result
    # A wrong engine value would show.
    wrong = dataclasses.replace(lec.example, grads=(lec.example.grads[0] + 1e-3, *lec.example.grads[1:]))
    assert checks.finish_torch(checks.start_torch(wrong, 2), wrong).relative > 1e-4


def test_a_case_replaces_the_numbers():
    case = {**SEED_EXAMPLE, "X": [[(i * j) % 3 for j in range(6)] for i in range(6)], "B2": 2}
    d = seed_document(load_spec(), case=case)
    text = section_text(d, "6. A worked example")
    assert "case file" in text
    inputs = next(b.expr for b in section(d, "6. A worked example") if isinstance(b, Display))
    assert any(isinstance(m, sp.Eq) and m.lhs == sp.Symbol("X") and m.rhs == sp.Matrix(case["X"]) for m in sp.preorder_traversal(inputs))
    with pytest.raises(CaseError, match="^W2: "):
        seed_document(load_spec(), case={**SEED_EXAMPLE, "W2": [1, 2]})


def test_large_sizes_shorten_long_sums():
    d = seed_document(seed_spec(10, 3))  # 8×8 after the conv: 64 terms in the sums
    table = next(b for b in section(d, "5.1 The filter gradient, step by step") if isinstance(b, Table))
    assert len(table.rows) == 6 + 1 + 2
    assert "64 terms" in section_text(d, "5.1 The filter gradient, step by step")
    full = next(b.expr for b in section(d, "Appendix A. The derivative of one weight in full") if isinstance(b, Display))
    assert sp.Symbol(r"\cdots") in full.args and len(full.args) == 2 + 6 + 1 + 2
    assert "64 terms" in section_text(d, "Appendix A. The derivative of one weight in full")
    assert "window is dead and a window ties" in section_text(d, "6. A worked example")


# --------------------------------------------------------------------------------------------
# section 7 and appendix D: the general rules
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def general_results():
    return general_model(load_spec()), {r.rule.name: r for r in general.prove_general()}


def test_general_section_is_the_proof_as_sympy_ran_it(general_results):
    model, results = general_results
    assert [d.name for d in model.derivations] == list(GENERAL_SHOWN) == ["conv2d.weight", "conv2d.input"]
    for d in model.derivations:
        r = results[d.name]
        assert d.status == r.status == "proven"
        assert len(d.steps) == len(r.steps), d.name  # one printed step, with its sentence, per SymPy step
        said = [plain(st.says) for st in d.steps]
        assert "a sum of Kronecker deltas" in said[1]
        collapses = [k for k, text in enumerate(said) if "collapses the sum over" in text]
        assert collapses and all("delta-sum lemma" in said[k] for k in collapses)
        assert "exactly 0" in said[-1]
    weight, inp = model.derivations
    assert sum("collapses" in plain(st.says) for st in weight.steps) == 4
    assert weight.borders == () and weight.border_note is None
    assert len([st for st in inp.steps if "does not always hold" in plain(st.says)]) == 4
    assert [latex(b) for b in inp.borders] == [r"0 \le h + p - s\,i \le K_{h} - 1", r"0 \le p + w - s\,j \le K_{w} - 1"]
    note = plain(inp.border_note)
    assert "reached from 1 output position, the inner entry" in note and "from 9 output positions" in note


def test_general_table_has_every_rule_and_no_seconds(general_results):
    model, results = general_results
    assert "seconds" not in " ".join(model.header)
    rows = [[plain(cell) for cell in row] for row in model.rows]
    assert [row[0] for row in rows] == [r.name for r in general.GENERAL_RULES]
    for name, layer, status, steps, lemmas in rows:
        assert status == "proven" and layer == results[name].rule.layer
        assert steps == str(len(results[name].steps)) and lemmas == ", ".join(n.replace("_", "-") for n in results[name].lemmas)


# --------------------------------------------------------------------------------------------
# the files: one build of every format
# --------------------------------------------------------------------------------------------
def poppler(tool: str) -> str:
    import shutil

    path = shutil.which(tool)
    assert path, f"{tool} (poppler-utils) is needed: .ci/setup installs it"
    return path


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("seed") / "seed"
    run = subprocess.run(
        [sys.executable, "-m", "render.cli", "build", "--quiet", "--format", "md,tex,pdf", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    return out


@pytest.fixture(scope="module")
def pdf_text(full) -> str:
    text = subprocess.run(
        [poppler("pdftotext"), "-enc", "UTF-8", str(full / "handout.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    for lig, flat in {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl"}.items():
        text = text.replace(lig, flat)
    return " ".join(text.split())


def test_pdf_has_every_section_and_the_key_words(pdf_text):
    for title in LECTURE_ORDER:
        assert title in pdf_text, title
    for word in KEY_WORDS:
        assert word in pdf_text, word


def test_pdf_has_its_title_and_enough_pages(full):
    info = subprocess.run([poppler("pdfinfo"), str(full / "handout.pdf")], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Title:\s+(.*)$", info, re.M).group(1) == TITLE
    assert int(re.search(r"^Pages:\s+(\d+)$", info, re.M).group(1)) >= 10


@pytest.fixture(scope="module")
def handout(full):
    return full, (full / "handout.md").read_text(encoding="utf-8"), (full / "handout.tex").read_text(encoding="utf-8")


def test_markdown_math_fences_are_closed(handout):
    _, md, _ = handout
    opened, count = None, 0
    for number, line in enumerate(md.splitlines(), 1):
        fence = line.strip().lstrip("> ").strip()
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
    prose = re.sub(r"^```.*?^```[ \t]*$", "", md, flags=re.M | re.S)
    for paragraph in re.split(r"\n\s*\n", prose):
        dollars = len(re.findall(r"(?<!\\)\$", paragraph))
        assert dollars % 2 == 0, f"unbalanced inline math in: {paragraph[:200]!r}"


def test_figures_exist_and_are_referenced(handout, doc):
    out, md, tex = handout
    # Captions may hold balanced brackets (1[z > 0]), as Markdown allows in an image's text.
    referenced = re.findall(r"!\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(([^)\s]+)\)", md)
    assert sorted(set(referenced)) == sorted(f"figures/{f.file}" for f in doc.figures)
    for ref in referenced:
        assert (out / ref).is_file(), ref
    graphics = re.findall(r"\\includegraphics(?:\[[^\]]*\])?\{([^}]+)\}", tex)
    assert sorted(set(graphics)) == sorted(set(referenced))


def test_no_template_syntax_or_build_paths_leak(handout):
    out, md, tex = handout
    for name, text in (("handout.md", md), ("handout.tex", tex)):
        for delimiter in JINJA_DELIMITERS:
            assert delimiter not in text, f"{name}: Jinja delimiter {delimiter!r} leaked"
        assert str(out.parent) not in text, f"{name}: mentions the build folder"


def test_latex_document_structure(handout):
    _, _, tex = handout
    assert tex.count(r"\begin{document}") == 1 and tex.rstrip().endswith(r"\end{document}")
    assert r"\section*{7. The same rule for every size}" in tex and r"\label{proofs}" in tex
    assert tex.count(r"\hyperref[proofs]") >= 10


# --------------------------------------------------------------------------------------------
# the reviewer's findings: claims that are true of this network and this example
# --------------------------------------------------------------------------------------------
def test_recipe_says_which_lines_each_gradient_uses(doc):
    box = next(b for b in section(doc, "5.2 The backward recipe") if isinstance(b, Box))
    said = plain(box.blocks[0].words)
    assert "only the line above" not in said and "two lines up" in said
    # ∂L/∂W2, ∂L/∂B2 and ∂L/∂F really all start from ∂L/∂Z2 in the recipe's table
    rows = box.blocks[1].rows
    starts = [latex(r[1].parts[0]) for r in rows[1:4]]
    assert all("A_{2} - Y" in s for s in starts), starts


def test_kinks_are_named_from_the_example(doc):
    text = section_text(doc, "Appendix C. Numeric checks")
    words_c = [w for w in all_words(section(doc, "Appendix C. Numeric checks")) if "two slopes differ" in plain(w)]
    assert len(words_c) == 1
    parts = words_c[0].parts
    # the lecture's example: the tie of p_21 (a_32 = a_41), no z at exactly 0
    assert sp.Symbol("p_21") in parts and "No entry of" in plain(words_c[0]) and "or a ReLU input at exactly 0" not in text
    tie = next(p for p in parts if isinstance(p, sp.Eq))
    assert {str(s) for s in tie.free_symbols} == {"a_32", "a_41"}


def test_counts_say_all_when_all(doc):
    text = " ".join(plain(w) for w in all_words(section(doc, "6. A worked example")))
    assert "compares all 15 gradient entries" in text and "15 of the 15" not in text


def test_beyond_the_lecture_is_marked_optional(doc):
    for title in ("7. The same rule for every size", "Appendix D. The general rules of every layer"):
        first = next(b for b in section(doc, title) if isinstance(b, Para))
        assert plain(first.words).startswith("Optional, beyond the lecture.") or "Optional, beyond the lecture." in str(first.words)


def test_lemma_identifiers_stay_out_of_the_prose(doc):
    for w in all_words(doc.blocks):
        assert not re.search(r"\b(delta_sum|finite_sums|pad_delta)\b", plain(w)), plain(w)


def test_gpad_is_defined_with_the_output_channel_letter(doc):
    blocks = section(doc, "7. The same rule for every size")
    defs = [latex(b.expr) for b in blocks if isinstance(b, Display) and r"G^{\mathrm{pad}}" in latex(b.expr)]
    definition = next(t for t in defs if "\\delta" in t and t.index("=") < t.index("\\delta"))
    assert definition.startswith(r"G^{\mathrm{pad}}_{o,") and r"\bar{g}_{o," in definition, definition


def test_the_window_map_is_explicit(doc):
    para = next(b for b in section(doc, "2. Forward propagation") if isinstance(b, Para) and "window number" in plain(b.words))
    pairs = {(str(e.lhs), str(e.rhs)) for e in para.words.parts if isinstance(e, sp.Eq)}
    assert pairs == {("f_1", "p_11"), ("f_2", "p_12"), ("f_3", "p_21"), ("f_4", "p_22")}


def test_softplus_is_defined_where_first_used(doc):
    para = next(b for b in section(doc, "2. Forward propagation") if isinstance(b, Para) and "saturates" in plain(b.words))
    assert any(isinstance(e, sp.Eq) and "softplus" in latex(e) and r"e^{z}" in latex(e) for e in para.words.parts)


def test_mpmath_quotients_are_kept_exactly_and_recomputed_when_the_point_moves(tmp_path, monkeypatch):
    """The kept quotients are mpmath's own, bit for bit; another point (or an empty cache) computes afresh."""
    from render.document import seed_sizes
    from render.lecture.example import worked_example
    from symbolic import check
    from symbolic.network import build

    monkeypatch.setenv("CNN_DERIVE_CACHE", str(tmp_path))
    spec = load_spec()
    net = build(spec)
    example = worked_example(spec, seed_sizes(spec), list(net.entries()))
    names = list(example.names)[:3]
    calls = []
    real = check.evaluate_mp
    monkeypatch.setattr(check, "evaluate_mp", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = checks.one_sided(spec, net, example, names)
    assert len(calls) == 1 + 2 * len(names)
    again = checks.one_sided(spec, net, example, names)
    assert again == first and len(calls) == 1 + 2 * len(names), "the second call must read the kept quotients"
    moved = dataclasses.replace(example, values=tuple(v + 0.5 for v in example.values))
    checks.one_sided(spec, net, moved, names)
    assert len(calls) == 2 * (1 + 2 * len(names)), "a new point must be computed, never read from another point"
