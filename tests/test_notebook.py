"""examples/seed.ipynb runs from top to bottom in a fresh kernel, shows what its text promises, and is
committed with the outputs it gives today (GitHub shows the stored outputs, so they must be current).

The notebook runs once per session (about 10 s, most of it the kernel's imports); every test reads
that run. Regenerate the stored outputs with ``.venv/bin/python tests/test_notebook.py``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import tomllib
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "seed.ipynb"
FIX = "run `.venv/bin/python tests/test_notebook.py` (it executes the notebook and stores its outputs) and commit examples/seed.ipynb"
KERNEL = "cnn-derive-test"
# Asked of the kernel after the notebook's own cells, in the copy the tests execute, never stored.
WHO = "import sys; print(sys.executable)"


def kernel_manager(folder: Path) -> AsyncKernelManager:
    """A kernel that is this very interpreter (the venv's, where cnn-derive is installed).

    Jupyter's "python3" is whichever kernel spec comes first on the user's Jupyter path; a spec of
    our own, in a folder of our own, cannot pick another Python.
    """
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "cnn-derive tests", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(folder / "kernels")], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def execute(nb: nbformat.NotebookNode, folder: Path) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` (in place) in a fresh kernel started in the notebook's folder.

    IPython's history and the kernel's connection file go under ``folder``, not the user's home.
    """
    client = NotebookClient(
        nb,
        km=kernel_manager(folder),
        timeout=120,
        record_timing=False,  # timestamps in the cells' metadata would change on every run
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    private = {"IPYTHONDIR": str(folder / "ipython"), "JUPYTER_RUNTIME_DIR": str(folder / "runtime")}
    saved = {k: os.environ.get(k) for k in private}
    os.environ.update(private)
    try:
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def cleared(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without outputs: what a fresh run starts from."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def shown(nb: nbformat.NotebookNode) -> dict[str, list]:
    """What a reader sees of each code cell, by cell id: printed text and displayed text/LaTeX.

    stderr is left out: a machine without SymEngine's LLVM backend says so there, and a first
    compile reports its time.
    """
    out: dict[str, list] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        items = []
        for o in cell.outputs:
            if o.output_type == "stream" and o.name == "stdout":
                items.append(("stdout", o.text))
            elif o.output_type in ("display_data", "execute_result"):
                items.append((o.output_type, o.data.get("text/plain"), o.data.get("text/latex")))
            elif o.output_type == "error":
                items.append(("error", o.ename, o.evalue))
        out[cell.id] = items
    return out


def write() -> None:
    """Execute the committed notebook afresh and store it with its outputs."""
    import tempfile

    nb = cleared(nbformat.read(NOTEBOOK, as_version=4))
    with tempfile.TemporaryDirectory() as folder:
        execute(nb, Path(folder))
    # The kernel reports its exact Python version; the file keeps only what every machine agrees on.
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.validate(nb)
    nbformat.write(nb, NOTEBOOK)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """(the committed notebook, a fresh run of its cells plus the WHO cell)."""
    committed = nbformat.read(NOTEBOOK, as_version=4)
    fresh = cleared(committed)
    fresh.cells.append(nbformat.v4.new_code_cell(WHO, id="who"))
    execute(fresh, tmp_path_factory.mktemp("kernel"))
    return committed, fresh


def outputs(nb: nbformat.NotebookNode, cell_id: str) -> list:
    cell = next((c for c in nb.cells if c.get("id") == cell_id), None)
    assert cell is not None, f"examples/seed.ipynb has no cell with id {cell_id!r}: the tests find the steps by their ids"
    return cell.outputs


def stdout(nb: nbformat.NotebookNode, cell_id: str) -> str:
    return "".join(o.text for o in outputs(nb, cell_id) if o.output_type == "stream" and o.name == "stdout")


def latex_of(nb: nbformat.NotebookNode, cell_id: str) -> list[str]:
    return [o.data["text/latex"] for o in outputs(nb, cell_id) if "text/latex" in o.get("data", {})]


def test_kernel_is_this_interpreter(run):
    _, fresh = run
    assert stdout(fresh, "who").strip() == sys.executable


def test_network_shows_its_chain_and_shapes(run):
    _, fresh = run
    [shown_] = latex_of(fresh, "build")
    from symbolic.spec import load_spec

    spec = load_spec("seed")
    # Every stage from X to L is an arrow's end: one arrow per layer, the link and the loss.
    assert shown_.count(r"\xrightarrow") == len(spec.layers) + 2
    assert r"\underset{1 \times 6 \times 6}{X}" in shown_ and r"\underset{1 \times 4 \times 4}{Z_{1}}" in shown_


def test_expansion_shows_16_terms(run):
    _, fresh = run
    [shown_] = latex_of(fresh, "expand")
    # One ReLU mask and one window selector per term: 4 windows of 4 positions.
    assert shown_.count(r"\mathbb{1}[z_{") == 16 and shown_.count(r"\to p_{") == 16
    text = stdout(fresh, "expand-text").splitlines()
    assert text[0] == "dL/dw_11 = sum of 16 terms over 4 pooling windows"
    terms = [line for line in text if line.startswith("  + ")]
    assert len(terms) == 16 and all("x_" in t and "[z_" in t for t in terms)
    assert [line for line in text if line.startswith("window ")] == ["window p_11:", "window p_12:", "window p_21:", "window p_22:"]


def test_verify_reports_every_rule_proven(run):
    _, fresh = run
    from symbolic.rules import rules_for
    from symbolic.spec import load_spec

    count = len(rules_for(load_spec("seed")))
    assert stdout(fresh, "verdict") == f"all {count} rules proven\n"
    shown_ = latex_of(fresh, "verify")
    assert len(shown_) == count
    assert all(r"\checkmark\ \text{proven" in s for s in shown_), [s for s in shown_ if r"\checkmark" not in s]
    [rule] = latex_of(fresh, "rules")
    assert rule.startswith(r"$$\text{(g)}") and "not run yet" in rule


def torch_oracle() -> dict:
    """PyTorch float64 autograd on the notebook's case: the independent oracle."""
    import reference as R

    from symbolic.spec import presets

    spec = tomllib.loads(presets()["seed"].read_text(encoding="utf-8"))
    case = json.loads((NOTEBOOK.parent / "seed.json").read_text(encoding="utf-8"))
    return R.torch_reference(spec, case)


def test_evaluated_loss_and_gradients_match_pytorch(run):
    _, fresh = run
    ref = torch_oracle()
    match = re.fullmatch(r"L = (\S+)\n", stdout(fresh, "evaluate"))
    assert match, stdout(fresh, "evaluate")
    # Printed to 12 significant digits.
    assert float(match[1]) == pytest.approx(float(ref["L"]), rel=1e-11)
    [values] = [o.data["text/plain"] for o in outputs(fresh, "values") if o.output_type == "execute_result"]
    shown_ = dict(line.split(" = ", 1) for line in values.splitlines())
    assert list(shown_) == ["L", "A2", "dL/dW1", "dL/dB1", "dL/dW2", "dL/dB2"]
    for key, value in shown_.items():
        want = np.squeeze(ref[key])
        got = np.asarray(json.loads(value), dtype=float)
        assert got.shape == want.shape, key
        # 4 significant digits: off by at most half a unit in the 4th digit.
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-12, err_msg=key)


def well_formed(tex: str) -> str | None:
    """Why ``tex`` would not typeset (MathJax and LaTeX alike), or None: unbalanced braces, or a
    double subscript such as ``Z_{1}_o``."""
    depth = 0
    for ch in tex.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return "a } closes nothing"
    if depth:
        return "unbalanced braces"
    double = re.search(r"_(\{[^{}]*\}|\w)_", tex)
    return f"double subscript {double[0]!r}" if double else None


def test_math_is_shown_and_typesets(run):
    _, fresh = run
    shown_ = [s for cell in fresh.cells if cell.cell_type == "code" for s in latex_of(fresh, cell.id)]
    assert shown_, "no output of the notebook has text/latex"
    bad = {s[:80]: why for s in shown_ if (why := well_formed(s))}
    assert not bad, f"LaTeX that MathJax would show as an error: {bad}"


def test_committed_outputs_are_current(run):
    committed, fresh = run
    old, new = shown(committed), shown(fresh)
    new.pop("who")
    assert any(old.values()), f"examples/seed.ipynb is stored without outputs: {FIX}"
    stale = [cell for cell in new if old.get(cell) != new[cell]]
    assert not stale, f"examples/seed.ipynb shows outdated outputs in cells {stale}: {FIX}"
    assert "execution" not in json.dumps([c.metadata for c in committed.cells]), f"timings are stored in the notebook: {FIX}"


def test_a_failed_proof_shows_as_failed():
    from symbolic.rules import RuleResult, rules_for
    from symbolic.spec import load_spec

    rule = rules_for(load_spec("seed"))[6]
    failed = RuleResult(rule, False, 0.0, 16, failures=((0, 0, 1, 2), (0, 0, 3, 3)))
    assert r"\checkmark" not in failed._repr_latex_() and "NOT proven" in failed._repr_latex_()
    assert "2 entries where brute force minus rule is not 0" in failed._repr_latex_()
    assert pretty_text(failed).startswith("(g)  NOT proven")


def pretty_text(obj: object) -> str:
    from IPython.lib.pretty import pretty

    return pretty(obj)


def test_a_long_expansion_is_shown_in_part():
    from render.display import MAX_TERMS
    from symbolic.derive import expansion
    from symbolic.network import build
    from symbolic.spec import seed_spec

    # n = 8: Z1 is 6×6, so w_11 reaches 36 entries, more than a notebook shows.
    e = expansion(build(seed_spec(8, 3)), "w_11")
    assert len(e.terms) == 36 > MAX_TERMS
    assert e._repr_latex_().count(r"\to p_{") == MAX_TERMS and "and 4 more terms" in e._repr_latex_()
    lines = pretty_text(e).splitlines()
    assert lines[0] == "dL/dw_11 = sum of 36 terms over 9 pooling windows"
    assert sum(line.startswith("  + ") for line in lines) == MAX_TERMS and lines[-1].startswith("  ... and 4 more terms")


if __name__ == "__main__":
    write()
    print(f"wrote {NOTEBOOK.relative_to(ROOT)}")
