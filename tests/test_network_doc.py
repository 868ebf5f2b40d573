"""The per-layer handout (render.network_doc): its structure, its proof marks, its numbers, its honesty.

The part3 and lenet-tiny documents are built once for the module. Their worked-example numbers
are read back from the document's own matrices and compared with PyTorch float64 autograd
(``tests/reference.py``), which shares nothing with the engine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import reference as R
import sympy as sp
import tomllib

from render import network_doc
from render.blocks import Display, Heading, Link, Para, Strong, Table, Words
from render.notation import Partial, Row
from render.sections import check
from render.sections.common import sym
from render.sections.overview import loss_name
from render.templates import render
from symbolic import rules as rules_module
from symbolic.layers import Tanh
from symbolic.network import make_layers
from symbolic.numeric import cache, compile_network
from symbolic.rules import rules_for
from symbolic.spec import load_spec, parse_spec, presets

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("part3", "lenet-tiny")
# A small network with a smooth activation: fast to build from scratch, and a rule to break.
SMALL = {
    "name": "small",
    "input": [2, 2],
    "loss": "mse",
    "layers": [{"type": "flatten"}, {"type": "dense", "units": 2}, {"type": "tanh"}, {"type": "dense", "units": 2}],
}


@pytest.fixture(scope="module")
def docs() -> dict:
    return {name: network_doc.build_document(load_spec(name)) for name in NAMES}


def sections(doc) -> dict:
    """The document's blocks by top-level section title."""
    out: dict = {}
    current = None
    for b in doc.blocks:
        if isinstance(b, Heading) and b.level == 1:
            current = b.title
            out[current] = []
        elif current is not None:
            out[current].append(b)
    return out


def section(doc, start: str) -> list:
    return next(blocks for title, blocks in sections(doc).items() if title.startswith(start))


def parts(block) -> list:
    """Every Words part of a block (paragraphs and table cells)."""
    if isinstance(block, Para):
        return list(block.words.parts)
    if isinstance(block, Table):
        return [p for row in (block.header, *block.rows) for cell in row for p in cell.parts]
    return []


# -- structure ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_one_forward_and_one_backward_section_per_layer_in_order(docs, name):
    layers, loss = make_layers(load_spec(name))
    everything = [*layers, loss]
    fwd = [b for b in section(docs[name], "2. Forward") if isinstance(b, Heading)]
    bwd = [b for b in section(docs[name], "3. Backward") if isinstance(b, Heading)]
    assert [h.anchor for h in fwd] == [f"forward-{la.index}" for la in everything]
    assert [h.anchor for h in bwd] == [f"backward-{la.index}" for la in reversed(everything)]
    # Each heading names its layer's kind and stages, from the engine's names.
    for h, la in zip(fwd, everything):
        said = "".join(p for p in h.title.parts if isinstance(p, str))
        kind = loss_name(la) if la is loss else la.kind
        assert kind in said and sym(la.names["in"]) in h.title.parts, h.title


@pytest.mark.parametrize("name", NAMES)
def test_every_layer_section_has_its_equations(docs, name):
    blocks = section(docs[name], "2. Forward") + section(docs[name], "3. Backward")
    counts, current = {}, None
    for b in blocks:
        if isinstance(b, Heading):
            current = b.anchor
            counts[current] = 0
        elif isinstance(b, Display):
            counts[current] += 1
    assert all(n >= 2 for n in counts.values()), counts


@pytest.mark.parametrize("name", NAMES)
def test_every_layer_rule_has_a_proof_mark_linking_to_an_anchor_that_exists(docs, name):
    doc = docs[name]
    anchors = {b.anchor for b in doc.blocks if isinstance(b, Heading) and b.anchor}
    links = [p for b in doc.blocks for p in parts(b) if isinstance(p, Link)]
    assert links and all(link.target in anchors for link in links), [lk.target for lk in links if lk.target not in anchors]
    marks = [p for b in section(doc, "3. Backward") for p in parts(b) if isinstance(p, Link) and p.text == "✓ proven"]
    layer_rules = [r for r in rules_for(load_spec(name)) if r.kind not in ("lemma", "chain")]
    assert len(marks) == len(layer_rules)
    # A mark points at its own layer's group in the appendix.
    groups = {b.anchor for b in section(doc, "Appendix") if isinstance(b, Heading)}
    assert {m.target for m in marks} <= groups
    assert not [p for b in doc.blocks for p in parts(b) if isinstance(p, Strong) and "NOT" in p.text]


@pytest.mark.parametrize("name", NAMES)
def test_the_appendix_lists_every_rule_once(docs, name):
    tables = [b for b in section(docs[name], "Appendix") if isinstance(b, Table)]
    rows = sum(len(t.rows) for t in tables)
    assert rows == len(rules_for(load_spec(name)))


@pytest.mark.parametrize("name", NAMES)
def test_facts_come_from_the_spec(docs, name):
    spec = load_spec(name)
    md = render("md", docs[name])
    assert f"{spec.n_params} trainable parameters" in md
    params = next(b for b in section(docs[name], "1. The network") if isinstance(b, Table) and "parameter" in b.header[0].parts[0])
    counts = [int(row[2].parts[0]) for row in params.rows[:-1]]
    assert sum(counts) == spec.n_params == int(params.rows[-1][2].parts[0].text)


def test_both_formats_render(docs):
    for doc in docs.values():
        md, tex = render("md", doc), render("tex", doc)
        assert "```math" in md and "\\begin{equation*}" in tex
        # pdflatex knows only these characters outside ASCII (document.tex.j2's newunicodechar list).
        assert not {ch for ch in tex if ord(ch) > 127} - set("×−—–ᵀ→✓⋯“”’✗"), "a character pdflatex cannot typeset"


@pytest.mark.parametrize("name", NAMES)
def test_prose_and_headings_name_things_as_a_student_reads_them(docs, name):
    doc = docs[name]
    layers, loss = make_layers(load_spec(name))
    text = "".join(p for b in doc.blocks for p in parts(b) if isinstance(p, str))
    text += "".join(p for p in doc.subtitle.parts if isinstance(p, str))
    assert loss.kind not in text or loss.kind == loss_name(loss), "a code name of the loss in the prose"
    assert f"{len(layers)} layers and the loss" in text
    # Appendix headings print their stages as math, like the sections they point back to.
    for h in [b for b in section(doc, "Appendix") if isinstance(b, Heading) and b.anchor.startswith("proofs-layer")]:
        assert isinstance(h.title, Words) and any(isinstance(p, sp.Symbol) for p in h.title.parts), h.title
    # A channel or filter piece is named with brackets: a superscript (k) is a layer everywhere.
    shown = [str(e.args[0]) for b in section(doc, "4. A worked example") if isinstance(b, Display) for e in equations(b.expr)]
    assert not [n for n in shown if "^(" in n], shown


def equations(expr) -> tuple:
    return expr.args if isinstance(expr, Row) else (expr,)


def numbers_in(words_: Words) -> list[float]:
    """Every decimal printed inside a paragraph's formulas, in order (indices are integers and left out)."""
    out: list = []
    for p in words_.parts:
        if isinstance(p, sp.Basic):
            out += [float(x) for x in sp.preorder_traversal(p) if isinstance(x, sp.Float)]
    return out


def test_the_double_winner_note_adds_what_its_windows_send(docs):
    """The note's terms add up to the total it prints (to the 4 digits shown), and both come from the gradients."""
    note = next(b for b in section(docs["part3"], "4. A worked example") if isinstance(b, Para) and "Overlapping windows" in str(b.words))
    nums = numbers_in(note.words)
    # a = value; dL/da = t1 + t2; = total
    *terms, total = nums[1:]
    assert len(terms) >= 2 and abs(sum(terms) - total) <= 1e-3 * abs(total), nums


def test_the_hand_computed_conv_entry_adds_up(docs):
    """The worked numbers under a conv layer's rule multiply and add to the value printed with them."""
    blocks = section(docs["part3"], "3. Backward")
    k = next(i for i, b in enumerate(blocks) if isinstance(b, Para) and "worked example's numbers" in str(b.words))
    numeric = blocks[k + 2].expr
    lhs, rhs = numeric.args

    # Each factor is one number in parentheses, \left(-0.1\right), as a symbol of that name.
    def value(f: sp.Symbol) -> float:
        return float(re.search(r"\(([^\\]*)\\right", f.name).group(1))

    got = sum(value(a) * value(b) for a, b in (t.args for t in lhs.args))
    assert abs(got - float(rhs)) <= 2e-3 * abs(float(rhs)), (got, rhs)


# -- the worked example's numbers against PyTorch -------------------------------------------------------


def shown_values(doc) -> dict:
    """Every matrix or number the worked example displays, by its printed name: "Z_{1}[2]", "dL/dW_{1}[1,2]"."""
    out = {}
    for b in section(doc, "4. A worked example"):
        if not isinstance(b, Display):
            continue
        eqs = b.expr.args if isinstance(b.expr, Row) else (b.expr,)
        for e in eqs:
            lhs, rhs = e.args
            key = f"dL/d{lhs.args[1]}" if isinstance(lhs, Partial) else str(lhs)
            # The printed decimals (str), not the binary value of a 4-digit Float.
            out[key] = (
                np.vectorize(lambda x: float(str(x)))(np.array(rhs.tolist(), dtype=object))
                if isinstance(rhs, sp.MatrixBase)
                else np.array(float(str(rhs)))
            )
    return out


def expected_pieces(name: str, arr: np.ndarray, prefix: str = "") -> dict:
    """A reference array cut into the 2-D pieces the document shows, keyed like ``shown_values``."""
    from render.sections.common import piece_name

    a = np.asarray(arr, dtype=float)
    if a.size == 1:
        return {prefix + str(piece_name(name, ())): a.reshape(())}
    if a.ndim <= 2:
        return {prefix + str(piece_name(name, ())): a.reshape(-1, 1) if a.ndim < 2 else a}
    lead = a.shape[:-2]
    return {prefix + str(piece_name(name, tuple(i + 1 for i, n in zip(idx, lead) if n > 1))): a[idx] for idx in np.ndindex(*lead)}


@pytest.mark.parametrize("name", NAMES)
def test_worked_example_numbers_equal_pytorch_float64(docs, name):
    spec_dict = tomllib.loads(presets()[name].read_text(encoding="utf-8"))
    case = json.loads((ROOT / "examples" / f"{name}.json").read_text(encoding="utf-8"))
    ref = R.torch_reference(spec_dict, case)
    spec = load_spec(name)
    expected: dict = {}
    for key in ("X", *spec.param_shapes):
        expected.update(expected_pieces(key, np.asarray(case[key]).reshape(spec.input if key == "X" else spec.param_shapes[key])))
    for stage in [*spec.stages[1:-2], "L"]:
        expected.update(expected_pieces(stage, ref[stage]))
    for key in [k for k in ref if k.startswith("dL/d")]:
        expected.update(expected_pieces(key[4:], ref[key], prefix="dL/d"))
    shown = shown_values(docs[name])
    missing = sorted(set(expected) - set(shown))
    assert not missing, f"not shown in the worked example: {missing}"
    for key, want in expected.items():
        got = shown[key]
        assert got.shape == want.shape, key
        # 4 significant digits: each entry within half a unit of its 4th digit; exact zeros may be ±1e-16 in torch.
        tol = (5e-4 + 1e-12) * np.abs(want) + 1e-12 * max(1.0, float(np.max(np.abs(want))))
        bad = np.abs(got - want) > tol
        assert not bad.any(), f"{key}: shown {got[bad][:3]}, PyTorch {want[bad][:3]}"


def test_the_check_section_reports_the_pytorch_comparison_it_ran(docs):
    blocks = section(docs["part3"], "5. Checking")
    text = "".join(p for b in blocks for p in parts(b) if isinstance(p, str))
    assert "through PyTorch in float64" in text and "They agree" in text
    table = next(b for b in blocks if isinstance(b, Table))
    assert len(table.rows) == len(load_spec("part3").layers) + 1


# -- honesty: a broken rule, no torch -----------------------------------------------------------------------


@pytest.fixture
def isolated_numbers(monkeypatch):
    """Numbers compiled in this test stay in this test: no disk cache written, the process caches cleared after."""
    monkeypatch.setattr(cache, "store", lambda name, compiled: None)
    monkeypatch.setattr(cache, "load", lambda name: None)
    compile_network.cache_clear()
    rules_module.clear_caches()
    yield
    compile_network.cache_clear()
    rules_module.clear_caches()


def marks_by_layer(doc) -> dict:
    out: dict = {}
    current = None
    for b in section(doc, "3. Backward"):
        if isinstance(b, Heading):
            current = b.anchor
        for p in parts(b):
            if isinstance(p, Link) or (isinstance(p, Strong) and "proven" in p.text):
                out.setdefault(current, []).append(p)
    return out


def test_a_broken_rule_is_marked_not_proven(monkeypatch, isolated_numbers):
    spec = parse_spec(SMALL)
    tanh = next(la for la in make_layers(spec)[0] if isinstance(la, Tanh))
    monkeypatch.setattr(Tanh, "derivative", staticmethod(lambda t: 1 - t))  # the true one is 1 − t²
    doc = network_doc.build_document(spec)
    marks = marks_by_layer(doc)
    assert marks[f"backward-{tanh.index}"] == [Strong("✗ NOT proven")]
    assert all(isinstance(m, Link) for m in marks[f"backward-{tanh.index + 1}"])
    assert "✗ NOT proven" in render("md", doc)


def test_without_torch_the_document_says_so_and_shows_central_differences(monkeypatch):
    monkeypatch.setattr(check, "torch_available", lambda: False)
    doc = network_doc.build_document(parse_spec(SMALL))
    blocks = section(doc, "5. Checking")
    text = "".join(p for b in blocks for p in parts(b) if isinstance(p, str))
    assert "PyTorch is not installed here" in text and "through PyTorch" not in text
    table = next(b for b in blocks if isinstance(b, Table))
    gaps = [float(row[3].parts[0]) for row in table.rows]
    assert len(gaps) == parse_spec(SMALL).n_params and max(gaps) < 1e-9


# -- any spec ---------------------------------------------------------------------------------------------


def test_a_spec_file_given_by_path_builds(tmp_path):
    from render.build import build_handout

    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\ninput = [1, 4, 4]\nloss = "bce"\n[[layers]]\ntype = "conv2d"\nfilters = 1\nkernel = 2\n'
        '[[layers]]\ntype = "leaky_relu"\n[[layers]]\ntype = "avgpool"\nwindow = 3\n[[layers]]\ntype = "flatten"\n'
        '[[layers]]\ntype = "dense"\nunits = 1\n',
        encoding="utf-8",
    )
    out = build_handout(load_spec(str(path)), out=tmp_path / "out", formats="md", quiet=True)
    md = (out / "handout.md").read_text(encoding="utf-8")
    assert md.startswith("# Backpropagation through mine")
    assert "seeded case" in md and "leaky_relu" in md
    assert (out / "figures" / "architecture.png").is_file()


def test_a_given_case_replaces_the_example():
    spec = parse_spec(SMALL)
    case = {
        "X": [[1, -2], [0.5, 3]],
        "W1": [[0.1, 0.2, 0.3, 0.4], [-1, 0, 1, 2]],
        "B1": [0, 1],
        "W2": [[1, 2], [3, 4]],
        "B2": [0, 0],
        "Y": [1, 0],
    }
    doc = network_doc.build_document(spec, case=case)
    shown = shown_values(doc)
    assert np.array_equal(shown["X"], np.array([[1, -2], [0.5, 3]]))
    assert np.array_equal(shown["W_1"], np.array(case["W1"], dtype=float))
    assert "the case given to the build" in render("md", doc)


@pytest.mark.parametrize(
    "spec",
    [
        {
            "input": [4, 4],
            "loss": "softmax_ce",
            "batch": 2,
            "ties": "split",
            "layers": [{"type": "maxpool", "window": 2}, {"type": "flatten"}, {"type": "dense", "units": 2}],
        },
        {"input": [2, 2], "loss": "mse", "layers": [{"type": "flatten"}]},
        {
            "input": [1, 3, 3],
            "loss": "bce",
            "layers": [
                {"type": "conv2d", "filters": 1, "kernel": [2, 3], "padding": [1, 0]},
                {"type": "sigmoid"},
                {"type": "flatten"},
                {"type": "dense", "units": 1},
            ],
        },
    ],
    ids=["batch-split-ties", "flatten-only", "rect-kernel-sigmoid"],
)
def test_unusual_specs_give_a_whole_document(spec):
    doc = network_doc.build_document(parse_spec(spec))
    titles = [b.title for b in doc.blocks if isinstance(b, Heading) and b.level == 1]
    assert [t.split(" ")[0] for t in titles] == ["1.", "2.", "3.", "4.", "5.", "Appendix:"]
    assert isinstance(doc.subtitle, Words) and render("md", doc) and render("tex", doc)


def test_the_conv_operations_are_defined_once_as_the_network_uses_them(docs):
    # part3 has a strided, padded conv: all six operations; a network without conv layers gets no box.
    from render.blocks import Box
    from render.printer import latex

    def boxes(doc) -> list:
        return [b for b in section(doc, "2.") if isinstance(b, Box)]

    (box,) = boxes(docs["part3"])
    defined = [latex(line.parts[0]) for items in box.blocks for line in items.lines]
    assert [d.split("{")[1].split("}")[0] for d in defined] == ["conv", "conv", "pad", "dilate", "rot", "fullconv"]
    assert not boxes(network_doc.build_document(parse_spec(SMALL)))


def test_an_entrywise_product_with_a_sum_is_parenthesized():
    # ⊙ binds tighter than −: dL/dA ⊙ (1 − A ⊙ A) for tanh, never dL/dA ⊙ 1 − A ⊙ A.
    from render.notation import Hadamard
    from render.printer import latex, text

    a, b = sp.symbols("a b")
    assert latex(Hadamard(a, 1 - b)) == r"a \odot \left(1 - b\right)"
    assert text(Hadamard(1 - b, a)) == "(1 - b) ⊙ a"
