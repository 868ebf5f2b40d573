"""`cnn-derive build`: reproducible, atomic, honest about TeX, and the output is well formed.

Every subprocess build of this module is started at once by the module fixture `builds`
(they are independent), including the single PDF build of the test session. The orchestrator
the command line calls, `render.build.build_handout_files`, is also tested directly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import render.build
import render.document
import render.pdf
import render.printer
from render.build import build_handout_files, default_out, parse_formats
from render.cli import main
from render.document import seed_sizes
from render.printer import latex
from symbolic.errors import RenderError
from symbolic.spec import load_spec, parse_spec, seed_spec

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "cnn-derive: "
TIMEOUT = 600

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
OLD_MARKER = "marker: an earlier build\n"


def cli(*args: str) -> list:
    return [sys.executable, "-m", "render.cli", *args]


def no_tex_env(folder: Path) -> dict:
    """The environment with PATH set to an empty folder: no latexmk, no pdflatex (nor anything else).

    The CLI is started by the absolute path of the interpreter, so it does not need PATH.
    """
    folder.mkdir(parents=True, exist_ok=True)
    assert shutil.which("latexmk", path=str(folder)) is None and shutil.which("pdflatex", path=str(folder)) is None
    return dict(os.environ, PATH=str(folder))


class Run:
    def __init__(self, argv: list, out: Path, env: dict | None = None):
        self.out = out
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout = self.stderr = self.returncode = None

    def wait(self) -> Run:
        self.stdout, self.stderr = self.popen.communicate(timeout=TIMEOUT)
        self.returncode = self.popen.returncode
        return self


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """All subprocess builds of this module, run concurrently; each is a finished `Run` by name.

    * quiet_a, quiet_b: `--format md,tex --quiet` into two folders (quiet_a over an earlier
      output with a marker handout.md and a stale figure, which the build must replace whole);
    * full: every format, with progress on stderr (the one PDF build);
    * no_tex, no_tex_pdf: without TeX on PATH, default formats and `--format pdf`;
    * bad_sizes: `--n 3 --k 5`.
    """
    base = tmp_path_factory.mktemp("builds")
    old = base / "a" / "seed"
    (old / "figures").mkdir(parents=True)
    (old / "handout.md").write_text(OLD_MARKER)
    (old / "figures" / "stale.png").write_bytes(b"stale")
    (base / "e").mkdir()
    (base / "f").mkdir()
    env = no_tex_env(base / "empty-bin")
    runs = {
        "quiet_a": Run(cli("build", "--out", str(old), "--format", "md,tex", "--quiet"), old),
        "quiet_b": Run(cli("build", "--out", str(base / "b" / "seed"), "--format", "md,tex", "--quiet"), base / "b" / "seed"),
        "full": Run(cli("build", "--out", str(base / "c" / "seed")), base / "c" / "seed"),
        "no_tex": Run(cli("build", "--out", str(base / "d" / "seed"), "--quiet"), base / "d" / "seed", env=env),
        "no_tex_pdf": Run(cli("build", "--out", str(base / "e" / "x" / "seed"), "--format", "pdf"), base / "e" / "x" / "seed", env=env),
        "bad_sizes": Run(cli("build", "--n", "3", "--k", "5", "--out", str(base / "f" / "x" / "seed")), base / "f" / "x" / "seed"),
    }
    return {name: run.wait() for name, run in runs.items()}


def ok(run: Run) -> Path:
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 0, run.stderr
    return run.out


def one_error_line(run: Run) -> str:
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 2, (run.returncode, run.stderr)
    assert run.stdout == "", run.stdout
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(PREFIX), lines[0]
    return lines[0][len(PREFIX) :]


def files(folder: Path) -> dict:
    """Every file under ``folder`` by relative path, as bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path, name: str) -> list:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


# --------------------------------------------------------------------------------------------
# reproducible, quiet, in place
# --------------------------------------------------------------------------------------------
def test_quiet_builds_are_byte_identical(builds):
    a, b = ok(builds["quiet_a"]), ok(builds["quiet_b"])
    fa, fb = files(a), files(b)
    assert {"handout.md", "handout.tex"} <= set(fa)
    figures = [name for name in fa if name.startswith("figures/") and name.endswith(".png")]
    assert figures, sorted(fa)
    assert "handout.pdf" not in fa
    assert sorted(fa) == sorted(fb)
    for name in fa:
        assert fa[name] == fb[name], f"{name} differs between two builds of the same handout"


def test_quiet_means_silent(builds):
    for name in ("quiet_a", "quiet_b"):
        ok(builds[name])
        assert builds[name].stderr == "", builds[name].stderr
        assert builds[name].stdout == "", builds[name].stdout


def test_successful_build_replaces_old_output(builds):
    out = ok(builds["quiet_a"])
    assert (out / "handout.md").read_text(encoding="utf-8") != OLD_MARKER
    assert not (out / "figures" / "stale.png").exists(), "the old output folder must be replaced, not merged into"
    assert files(out) == files(ok(builds["quiet_b"]))
    assert leftovers(out.parent, out.name) == []


def test_progress_goes_to_stderr_only(builds):
    run = builds["full"]
    out = ok(run)
    assert run.stdout == ""
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) >= 3, run.stderr
    assert str(out) in run.stderr.replace("\n", ""), "the last stage should say where the handout went"
    assert leftovers(out.parent, out.name) == []


def test_formats_do_not_change_the_content(builds):
    full, quiet = files(ok(builds["full"])), files(ok(builds["quiet_b"]))
    for name, data in quiet.items():
        assert full.get(name) == data, f"{name} differs between --format md,tex and the full build"


# --------------------------------------------------------------------------------------------
# the PDF
# --------------------------------------------------------------------------------------------
def poppler(tool: str) -> str:
    found = shutil.which(tool)
    assert found, f"{tool} (poppler-utils) is required for the PDF tests"
    return found


def test_full_build_leaves_no_latex_aux_files(builds):
    names = set(files(ok(builds["full"])))
    assert {"handout.md", "handout.tex", "handout.pdf"} <= names
    aux = [n for n in names if Path(n).suffix in {".aux", ".log", ".fls", ".fdb_latexmk", ".out", ".toc"}]
    assert aux == [], aux


# --------------------------------------------------------------------------------------------
# failures
# --------------------------------------------------------------------------------------------
def test_failed_build_leaves_previous_output_untouched(tmp_path, monkeypatch, capsys):
    out = tmp_path / "seed"
    (out / "figures").mkdir(parents=True)
    (out / "handout.md").write_text(OLD_MARKER)
    (out / "handout.pdf").write_bytes(b"%PDF-1.5 previous")
    (out / "figures" / "old.png").write_bytes(b"old")
    before = files(out)
    seen = {}

    def failing_compile(tex: Path) -> Path:
        # Called at the very end, after the Markdown, LaTeX and figures are written.
        seen["tex"] = tex
        seen["files"] = sorted(files(tex.parent))
        raise RenderError("pdf: latexmk failed on handout.tex: ! simulated failure")

    monkeypatch.setattr(render.pdf, "tex_available", lambda: True)
    monkeypatch.setattr(render.pdf, "compile_pdf", failing_compile)
    assert main(["build", "--out", str(out), "--quiet"]) == 2
    stdout, stderr = capsys.readouterr()

    assert "tex" in seen, "the build failed before it reached the PDF stage"
    assert seen["tex"].parent != out and seen["tex"].parent.parent == out.parent, "must build in a temp folder"
    assert {"handout.md", "handout.tex"} <= set(seen["files"]), seen["files"]
    assert stdout == ""
    assert stderr.splitlines() == [f"{PREFIX}pdf: latexmk failed on handout.tex: ! simulated failure"], stderr
    assert files(out) == before, "a failed build must leave the previous output exactly as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed"], "temporary folders left behind"
    assert not seen["tex"].parent.exists()


def test_folder_with_other_files_is_not_replaced(tmp_path, capsys):
    """The swap removes the old folder whole, so a folder that is not an earlier handout is refused."""
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("mine\n")
    before = files(out)
    assert main(["build", "--out", str(out), "--format", "md", "--quiet"]) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith(f"{PREFIX}--out"), stderr
    assert files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_bad_sizes_write_nothing(builds):
    run = builds["bad_sizes"]
    message = one_error_line(run)
    assert re.match(r"(build: )?(argument )?(--)?[nk]\b", message), message
    assert list(run.out.parent.parent.iterdir()) == [], "a rejected build must not create anything"


# --------------------------------------------------------------------------------------------
# without TeX
# --------------------------------------------------------------------------------------------
def test_without_tex_default_build_writes_md_and_tex(builds):
    run = builds["no_tex"]
    out = ok(run)
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(PREFIX) and "latexmk" in lines[0] and "install" in lines[0], lines[0]
    names = set(files(out))
    assert {"handout.md", "handout.tex"} <= names
    assert any(n.startswith("figures/") for n in names)
    assert "handout.pdf" not in names


def test_without_tex_same_md_and_tex(builds):
    no_tex, quiet = files(ok(builds["no_tex"])), files(ok(builds["quiet_b"]))
    assert no_tex == quiet


def test_without_tex_explicit_pdf_is_an_error(builds):
    run = builds["no_tex_pdf"]
    message = one_error_line(run)
    assert "latexmk" in message, message
    assert list(run.out.parent.parent.iterdir()) == [], "a rejected build must not create anything"


# --------------------------------------------------------------------------------------------
# the files themselves
# --------------------------------------------------------------------------------------------
# --------------------------------------------------------------------------------------------
# the orchestrator, called directly
# --------------------------------------------------------------------------------------------
def no_derivation(monkeypatch):
    """Make any attempt to derive the handout fail loudly: refusals must come before the work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the handout was derived before the refusal")

    monkeypatch.setattr(render.document, "build_handout", refuse)


def test_api_refuses_specs_other_than_the_seed(tmp_path, monkeypatch):
    no_derivation(monkeypatch)
    with pytest.raises(RenderError) as err:
        build_handout_files(load_spec("part3"), out=tmp_path / "part3", quiet=True)
    assert str(err.value) == "build: handouts for specs other than the seed are not supported yet"
    assert list(tmp_path.iterdir()) == []


def test_api_knows_the_seed_by_its_layers_not_its_name():
    seed = {
        "input": [6, 6],
        "loss": "bce",
        "layers": [
            {"type": "conv2d", "filters": 1, "kernel": 3},
            {"type": "relu"},
            {"type": "maxpool", "window": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 1},
        ],
    }
    assert seed_sizes(parse_spec({**seed, "name": "mine"})) == seed_sizes(load_spec())
    assert seed_sizes(parse_spec({**seed, "input": [1, 6, 6]})) == seed_sizes(load_spec())
    two_filters = {**seed, "layers": [{**seed["layers"][0], "filters": 2}, *seed["layers"][1:]]}
    assert seed_sizes(parse_spec(two_filters)) is None
    assert seed_sizes(parse_spec({**seed, "ties": "split"})) is None


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_api_unwritable_out_is_one_render_error(tmp_path, monkeypatch, where):
    no_derivation(monkeypatch)
    if where == "under-a-file":
        (tmp_path / "notes.txt").write_text("mine\n")
        out, reason = tmp_path / "notes.txt" / "seed", f"{tmp_path / 'notes.txt'} is a file"
    else:
        if not Path("/proc/self").is_dir():
            pytest.skip("no /proc on this system")
        out, reason = Path("/proc/cnn-derive-test/seed"), ""
    with pytest.raises(RenderError) as err:
        build_handout_files(load_spec(), out=out, formats="md", quiet=True)
    message = str(err.value)
    assert message.startswith(f"--out: cannot create {out}: ") and reason in message, message
    assert "\n" not in message
    if where == "under-a-file":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_api_default_folders():
    assert default_out(load_spec()) == default_out(seed_spec()) == Path("output/seed")
    assert default_out(seed_spec(5, 2)) == Path("output/n5-k2")
    assert default_out(load_spec("part3")) == Path("output/part3")


def test_api_formats_are_a_string_or_a_sequence():
    assert parse_formats("tex, md") == parse_formats(["md", "tex"]) == ("md", "tex")
    with pytest.raises(RenderError, match=r"^--format: "):
        parse_formats(["md", "html"])
    with pytest.raises(RenderError, match=r"^--format: "):
        parse_formats("")


def test_api_builds_the_seed_at_other_sizes_into_the_default_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = build_handout_files(seed_spec(5, 2), formats=("md",), quiet=True)
    assert out == Path("output/n5-k2")
    assert sorted(p.name for p in (tmp_path / out).iterdir()) == ["figures", "handout.md"]
    md = (tmp_path / out / "handout.md").read_text(encoding="utf-8")
    assert "for X 5×5 and a 2×2 filter (10 trainable parameters)" in md
    assert md.count("proven symbolically.**") == 10 and "NOT proven" not in md
    assert leftovers(tmp_path / "output", "n5-k2") == []


# --------------------------------------------------------------------------------------------
# --train: the section "The gradients at work"
# --------------------------------------------------------------------------------------------
TRAIN_STEPS = 100  # fewer than the default 500: the section is the same, the test is faster


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two builds with train=True (md and tex) into two folders, and the training run they show."""
    from symbolic.train import train

    base = tmp_path_factory.mktemp("trained")
    outs = [
        build_handout_files(load_spec(), out=base / name, formats="md,tex", quiet=True, train=True, train_steps=TRAIN_STEPS)
        for name in "ab"
    ]
    return outs, train(steps=TRAIN_STEPS, quiet=True)


def test_train_adds_the_section_and_its_figure(trained):
    (out, _), result = trained
    md, tex = (out / "handout.md").read_text(encoding="utf-8"), (out / "handout.tex").read_text(encoding="utf-8")
    assert "## 8. The gradients at work" in md and "\\section*{8. The gradients at work}" in tex
    for text in (md, tex):
        section = text[text.index("8. The gradients at work") : text.index("Appendix A.")]
        assert "figures/training.png" in section
        assert "handwritten digits" in section and "scikit-learn" in section
        assert f"{TRAIN_STEPS} steps of 32 images" in section
        held = len(result.heldout_idx)
        assert f"labels {round(result.accuracy * held)} of the {held} held-out images correctly" in section
        accuracy = latex(render.printer.number(result.accuracy, 4))
        assert f"a held-out accuracy of ${accuracy}$." in section
        assert not any(d in section for d in JINJA_DELIMITERS)
        assert "seconds" not in section
    png = out / "figures" / "training.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_builds_are_byte_identical(trained):
    (a, b), _ = trained
    fa, fb = files(a), files(b)
    assert "figures/training.png" in fa
    assert fa == fb


def test_without_train_there_is_no_such_section(handout):
    out, md, tex = handout
    assert "gradients at work" not in md and "gradients at work" not in tex
    assert not (out / "figures" / "training.png").exists()


def test_cli_train_flag_reaches_the_orchestrator(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(render.build, "build_handout_files", lambda **kw: calls.append(kw) or tmp_path)
    assert main(["build", "--train", "--quiet", "--out", str(tmp_path)]) == 0
    assert main(["build", "--quiet", "--out", str(tmp_path)]) == 0
    assert [c["train"] for c in calls] == [True, False]
