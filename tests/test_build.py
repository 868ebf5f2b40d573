"""`cnn-derive build`: reproducible, atomic, honest about TeX, safe for the folder it writes into.

Every subprocess build of this module with the real handout is started at once by the module
fixture `builds` (they are independent), including the single real PDF build of the test
session. The orchestrator the command line calls, `render.build.build_handout`, is also tested
in-process with a small stand-in document (`Stub`), so that what the orchestrator promises (which
files it keeps, refuses, cleans up, what it passes on, what it prints) is tested in seconds and
apart from what the handout says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import sympy as sp

import render.build
import render.handout
import render.pdf
import render.templates
from render.blocks import Document, Figure, Heading, Para, words
from render.build import build_handout, default_out, parse_formats
from render.cli import main
from render.document import seed_sizes
from render.manifest import MANIFEST
from symbolic.errors import CaseError, RenderError
from symbolic.spec import load_spec, parse_spec, seed_spec

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "cnn-derive: "
TIMEOUT = 600
JINJA_DELIMITERS = ("<<", "<%", "%>", "<#", "#>")
OLD_MARKER = "marker: an earlier build\n"
SEED_CASE = ROOT / "examples" / "seed.json"
TRAIN_STEPS = 100  # fewer than the default 500: the section is the same, the test is faster


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

    * quiet: `--format md,tex --quiet` over an earlier output without a record, with a marker
      handout.md and a stale figure (both formats are written, so the build must replace it whole);
    * full: md, tex and pdf, with progress on stderr (the one real PDF build);
    * no_tex, no_tex_pdf: without TeX on PATH, default formats (`--quiet`) and `--format pdf`; no_tex
      is also the second build of the same handout, for the tests of reproducibility;
    * bad_sizes: `--n 3 --k 5`;
    * trained_a, trained_b: `--train --train-steps TRAIN_STEPS --format md,tex` into two folders.
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
        "quiet": Run(cli("build", "--out", str(old), "--format", "md,tex", "--quiet"), old),
        "full": Run(cli("build", "--out", str(base / "c" / "seed"), "--format", "md,tex,pdf"), base / "c" / "seed"),
        "no_tex": Run(cli("build", "--out", str(base / "d" / "seed"), "--quiet"), base / "d" / "seed", env=env),
        "no_tex_pdf": Run(cli("build", "--out", str(base / "e" / "x" / "seed"), "--format", "pdf"), base / "e" / "x" / "seed", env=env),
        "bad_sizes": Run(cli("build", "--n", "3", "--k", "5", "--out", str(base / "f" / "x" / "seed")), base / "f" / "x" / "seed"),
    }
    for name in ("trained_a", "trained_b"):
        argv = cli("build", "--train", "--train-steps", str(TRAIN_STEPS), "--format", "md,tex", "--quiet", "--out", str(base / name))
        runs[name] = Run(argv, base / name)
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


def files(folder: Path, record: bool = True) -> dict:
    """Every file under ``folder`` by relative path, as bytes (``record`` False: without the build record)."""
    found = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    return found if record else {k: v for k, v in found.items() if k != MANIFEST}


def stamps(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes and modification time: what "left alone" means."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(parent: Path, name: str) -> list:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def record(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# a stand-in document, for testing the orchestrator alone
# --------------------------------------------------------------------------------------------
def draw_png(path: Path, shade: int = 0) -> None:
    """A valid 1×1 PNG of grey ``shade`` (pdfTeX includes it, so a stub PDF compiles)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + bytes([shade] * 3))
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


class Stub:
    """Stands in for ``render.handout.make_document``: records its calls, returns a tiny Document.

    ``text`` is what the document says: change it and the document is another one.
    """

    def __init__(self, monkeypatch, text: str = "first version"):
        self.text = text
        self.calls: list = []
        monkeypatch.setattr(render.handout, "make_document", self)

    def __call__(self, spec, *, training=None, case=None, progress=None):
        self.calls.append({"spec": spec, "training": training, "case": case, "progress": progress})
        if progress is not None:
            progress("the stub's own long step")
        shade = len(self.text) % 256
        return Document(
            "Stub handout",
            words("for the tests"),
            (
                Heading("One", anchor="one"),
                Para(words(self.text, " about ", sp.Symbol("w_11"))),
                Figure("stub.png", words("a grey pixel"), draw_png, {"shade": shade}),
            ),
        )


def no_derivation(monkeypatch) -> Stub:
    """A stub that fails loudly if called: refusals must come before the work."""
    stub = Stub(monkeypatch)

    def refuse(*args, **kwargs):
        raise AssertionError("the handout was derived before the refusal")

    monkeypatch.setattr(render.handout, "make_document", refuse)
    return stub


def fake_html(monkeypatch) -> None:
    """An HTML renderer for the stub (the real one is tested elsewhere): the title, and which figures it embeds."""
    real = render.templates.render

    def rendering(fmt, doc, base=None):
        if fmt != "html":
            return real(fmt, doc, base=base) if base is not None else real(fmt, doc)
        embedded = sorted(p.name for p in (Path(base) / "figures").iterdir())
        return f"<!doctype html><title>{doc.title}</title><!-- {embedded} -->\n"

    monkeypatch.setattr(render.templates, "render", rendering)


def quiet_build(out: Path, formats: str, **kw) -> Path:
    return build_handout(load_spec(), out=out, formats=formats, quiet=True, **kw)


# --------------------------------------------------------------------------------------------
# reproducible, quiet, in place
# --------------------------------------------------------------------------------------------
def same_handout(run: Run) -> dict:
    """The files two builds of the same handout share: all but the record (it names the formats) and the HTML page."""
    return {k: v for k, v in files(ok(run), record=False).items() if k != "handout.html"}


def test_builds_are_byte_identical(builds):
    """Two builds of one handout, one over an earlier output and one without TeX, write the same bytes."""
    a, b = same_handout(builds["quiet"]), same_handout(builds["no_tex"])
    assert {"handout.md", "handout.tex"} <= set(a)
    figures = [name for name in a if name.startswith("figures/") and name.endswith(".png")]
    assert figures, sorted(a)
    assert "handout.pdf" not in a
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], f"{name} differs between two builds of the same handout"
    assert record(builds["quiet"].out)["source"] == record(builds["no_tex"].out)["source"]


def test_quiet_means_silent(builds):
    run = builds["quiet"]
    ok(run)
    assert run.stderr == "" and run.stdout == "", (run.stdout, run.stderr)


def test_successful_build_replaces_old_output(builds):
    out = ok(builds["quiet"])
    assert (out / "handout.md").read_text(encoding="utf-8") != OLD_MARKER
    assert not (out / "figures" / "stale.png").exists(), "a figure of an earlier build must not survive a rebuild"
    assert set(files(out, record=False)) == set(same_handout(builds["no_tex"]))
    assert leftovers(out.parent, out.name) == []


def test_the_record_names_what_was_written(builds):
    for name, formats in (("quiet", ["md", "tex"]), ("no_tex", ["md", "tex", "html"]), ("full", ["md", "tex", "pdf"])):
        out = ok(builds[name])
        data = record(out)
        assert data["formats"] == formats, name
        assert data["figures"] == sorted(p.name for p in (out / "figures").iterdir())
        assert data["source"] == render.manifest.fingerprint((out / "handout.tex").read_text(encoding="utf-8"))


def test_progress_goes_to_stderr_only(builds):
    run = builds["full"]
    out = ok(run)
    assert run.stdout == ""
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) >= 4, run.stderr
    assert all(re.match(r"^\s*\d+\.\d\d s  \S", ln) for ln in lines), run.stderr
    assert any("deriving" in ln for ln in lines) and any("PDF" in ln for ln in lines), run.stderr
    assert str(out) in run.stderr.replace("\n", ""), "the last stage should say where the handout went"
    assert leftovers(out.parent, out.name) == []


def test_formats_do_not_change_the_content(builds):
    full, quiet = same_handout(builds["full"]), same_handout(builds["quiet"])
    for name, data in quiet.items():
        assert full.get(name) == data, f"{name} differs between --format md,tex and --format md,tex,pdf"


# --------------------------------------------------------------------------------------------
# the PDF
# --------------------------------------------------------------------------------------------
def test_full_build_leaves_no_latex_aux_files(builds):
    names = set(files(ok(builds["full"])))
    assert {"handout.md", "handout.tex", "handout.pdf"} <= names
    aux = [n for n in names if Path(n).suffix in {".aux", ".log", ".fls", ".fdb_latexmk", ".out", ".toc"}]
    assert aux == [], aux


# --------------------------------------------------------------------------------------------
# a build replaces only what it writes (issue 7, part 6)
# --------------------------------------------------------------------------------------------
def test_pdf_build_keeps_markdown_and_latex(tmp_path, monkeypatch):
    """`build --format pdf` into a folder with md and tex of the same document keeps them, untouched."""
    assert render.pdf.tex_available(), "TeX (latexmk, pdflatex) is needed: .ci/setup installs it"
    Stub(monkeypatch)
    out = tmp_path / "seed"
    quiet_build(out, "md,tex")
    before = stamps(out)
    time.sleep(0.01)  # so that a rewritten file would show a new modification time
    quiet_build(out, "pdf")
    after = stamps(out)
    assert after["handout.md"] == before["handout.md"] and after["handout.tex"] == before["handout.tex"]
    assert after["handout.pdf"][0].startswith(b"%PDF")
    assert record(out)["formats"] == ["md", "tex", "pdf"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed"]


def test_partial_build_keeps_the_other_formats(tmp_path, monkeypatch):
    Stub(monkeypatch)
    fake_html(monkeypatch)
    out = tmp_path / "seed"
    quiet_build(out, "md,tex,html")
    before = stamps(out)
    time.sleep(0.01)
    quiet_build(out, "md")
    after = stamps(out)
    assert set(after) == set(before)
    assert after["handout.tex"] == before["handout.tex"] and after["handout.html"] == before["handout.html"]
    assert after["handout.md"][0] == before["handout.md"][0]
    assert after["handout.md"][1] != before["handout.md"][1], "the format asked for is written anew"
    assert record(out)["formats"] == ["md", "tex", "html"]


def test_kept_formats_of_another_document_are_refused(tmp_path, monkeypatch, capsys):
    stub = Stub(monkeypatch)
    out = tmp_path / "seed"
    quiet_build(out, "md,tex")
    before = stamps(out)
    stub.text = "a second version"  # the document changed (new code, another case, ...)
    assert main(["build", "--out", str(out), "--format", "md", "--quiet"]) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"{PREFIX}--format: handout.tex in {out} shows another version"), stderr
    assert "--format md,tex" in stderr, "the message should say how to rebuild both"
    assert stamps(out) == before, "a refused build must leave the folder as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed"]
    # The fix the message names works.
    quiet_build(out, "md,tex")
    assert "a second version" in (out / "handout.md").read_text(encoding="utf-8")
    assert "a second version" in (out / "handout.tex").read_text(encoding="utf-8")


def test_a_folder_without_record_is_judged_by_content(tmp_path, monkeypatch, capsys):
    """An output from before the record: an identical handout.md is kept, a PDF that cannot be judged is refused."""
    Stub(monkeypatch)
    fresh = quiet_build(tmp_path / "fresh", "md,tex")
    out = tmp_path / "seed"
    out.mkdir()
    shutil.copy2(fresh / "handout.md", out / "handout.md")
    quiet_build(out, "tex")
    assert (out / "handout.md").read_bytes() == (fresh / "handout.md").read_bytes()
    assert record(out)["formats"] == ["md", "tex"]

    legacy = tmp_path / "legacy"
    (legacy / "figures").mkdir(parents=True)
    (legacy / "handout.pdf").write_bytes(b"%PDF-1.5 from an earlier version")
    before = stamps(legacy)
    assert main(["build", "--out", str(legacy), "--format", "md,tex", "--quiet"]) == 2
    _, stderr = capsys.readouterr()
    assert stderr.startswith(f"{PREFIX}--format: handout.pdf in {legacy} shows another version"), stderr
    assert stamps(legacy) == before


def test_a_file_added_under_figures_is_refused_not_deleted(tmp_path, monkeypatch, capsys):
    """As for one at the top of the folder: one line naming the file, nothing derived, nothing changed."""
    Stub(monkeypatch)
    out = tmp_path / "seed"
    quiet_build(out, "md")
    (out / "figures" / "my-sketch.png").write_bytes(b"mine")
    before = stamps(out)
    no_derivation(monkeypatch)
    assert main(["build", "--out", str(out), "--format", "md", "--quiet"]) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    assert stderr.splitlines() == [
        f"{PREFIX}--out: {out / 'figures' / 'my-sketch.png'} is not a figure cnn-derive drew, "
        f"and a build replaces figures/ whole; move it out of {out}"
    ], stderr
    assert stamps(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed"]


def test_a_folder_without_record_keeps_only_pictures_as_ours(tmp_path, monkeypatch, capsys):
    no_derivation(monkeypatch)
    out = tmp_path / "seed"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "old.png").write_bytes(b"old")
    (out / "figures" / "notes.txt").write_text("mine\n")
    assert main(["build", "--out", str(out), "--format", "md", "--quiet"]) == 2
    _, stderr = capsys.readouterr()
    assert f"{out / 'figures' / 'notes.txt'} is not a figure cnn-derive drew" in stderr, stderr
    assert (out / "figures" / "notes.txt").exists()


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
    assert "thesis.tex" in stderr
    assert files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


# --------------------------------------------------------------------------------------------
# a killed build (issue 7, part 6)
# --------------------------------------------------------------------------------------------
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_folders_of_killed_builds_are_removed_by_the_next(tmp_path, monkeypatch):
    Stub(monkeypatch)
    out = tmp_path / "seed"
    dead, alive = dead_pid(), os.getppid()
    for name in (f".seed.build-{dead}-abc123", f".seed.old.{dead}", f".seed.build-{alive}-def456", ".seedling.build-1-x"):
        (tmp_path / name / "figures").mkdir(parents=True)
        (tmp_path / name / "handout.md").write_text("half\n")
    quiet_build(out, "md")
    assert leftovers(tmp_path, "seed") == [f".seed.build-{alive}-def456"], "only a live build's folder may stay"
    assert (tmp_path / ".seedling.build-1-x").is_dir(), "another output's folders are not ours to judge"
    assert (out / "handout.md").is_file()


def test_a_build_killed_mid_swap_gets_its_old_output_back(tmp_path, monkeypatch):
    """Killed between the two renames: the old output waits under its hidden name; the next build restores, then replaces it."""
    Stub(monkeypatch)
    fresh = quiet_build(tmp_path / "fresh", "md,tex")
    dead = dead_pid()
    shutil.copytree(fresh, tmp_path / f".seed.old.{dead}")
    quiet_build(tmp_path / "seed", "md")  # keeps tex: it was restored, and is the same document
    assert (tmp_path / "seed" / "handout.tex").read_bytes() == (fresh / "handout.tex").read_bytes()
    assert leftovers(tmp_path, "seed") == []


def wait_for_build_folder(parent: Path, name: str, proc: subprocess.Popen) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = [p for p in parent.glob(f".{name}.build-{proc.pid}-*") if p.is_dir()]
        if found:
            return found[0]
        assert proc.poll() is None, "the build ended before its folder was seen"
        time.sleep(0.005)
    raise AssertionError("no build folder appeared")


def test_a_real_kill(tmp_path, monkeypatch):
    """SIGKILL leaves the hidden folder (nothing can prevent that); SIGTERM cleans up; the next build removes the rest."""
    argv = cli("build", "--format", "md,tex", "--quiet", "--out")
    killed = subprocess.Popen([*argv, str(tmp_path / "a" / "seed")], cwd=ROOT, stderr=subprocess.PIPE)
    termed = subprocess.Popen([*argv, str(tmp_path / "b" / "seed")], cwd=ROOT, stderr=subprocess.PIPE)
    left = wait_for_build_folder(tmp_path / "a", "seed", killed)
    wait_for_build_folder(tmp_path / "b", "seed", termed)
    killed.send_signal(signal.SIGKILL)
    termed.send_signal(signal.SIGTERM)
    killed.communicate(timeout=60)
    _, err = termed.communicate(timeout=60)
    assert termed.returncode == 128 + signal.SIGTERM, err
    assert b"Traceback" not in err, err
    assert os.listdir(tmp_path / "b") == [], "SIGTERM: the build must remove its own folder"
    assert left.is_dir() and os.listdir(tmp_path / "a") == [left.name]
    Stub(monkeypatch)
    quiet_build(tmp_path / "a" / "seed", "md")
    assert os.listdir(tmp_path / "a") == ["seed"]


def test_failed_build_leaves_previous_output_untouched(tmp_path, monkeypatch, capsys):
    Stub(monkeypatch)
    out = tmp_path / "seed"
    (out / "figures").mkdir(parents=True)
    (out / "handout.md").write_text(OLD_MARKER)
    (out / "handout.pdf").write_bytes(b"%PDF-1.5 previous")
    (out / "figures" / "old.png").write_bytes(b"old")
    before = stamps(out)
    seen = {}

    def failing_compile(tex: Path) -> Path:
        # Called at the very end, after the Markdown, LaTeX and figures are written.
        seen["tex"] = tex
        seen["files"] = sorted(files(tex.parent))
        raise RenderError("pdf: latexmk failed on handout.tex: ! simulated failure")

    monkeypatch.setattr(render.pdf, "tex_available", lambda: True)
    monkeypatch.setattr(render.pdf, "compile_pdf", failing_compile)
    assert main(["build", "--out", str(out), "--format", "md,tex,pdf", "--quiet"]) == 2
    stdout, stderr = capsys.readouterr()

    assert "tex" in seen, "the build failed before it reached the PDF stage"
    assert seen["tex"].parent != out and seen["tex"].parent.parent == out.parent, "must build in a temp folder"
    assert seen["tex"].parent.name.startswith(f".seed.build-{os.getpid()}-"), seen["tex"]
    assert {"handout.md", "handout.tex"} <= set(seen["files"]), seen["files"]
    assert stdout == ""
    assert stderr.splitlines() == [f"{PREFIX}pdf: latexmk failed on handout.tex: ! simulated failure"], stderr
    assert stamps(out) == before, "a failed build must leave the previous output exactly as it was"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed"], "temporary folders left behind"


def test_bad_sizes_write_nothing(builds):
    run = builds["bad_sizes"]
    message = one_error_line(run)
    assert re.match(r"(build: )?(argument )?(--)?[nk]\b", message), message
    assert list(run.out.parent.parent.iterdir()) == [], "a rejected build must not create anything"


# --------------------------------------------------------------------------------------------
# without TeX
# --------------------------------------------------------------------------------------------
def test_without_tex_default_build_writes_all_but_pdf(builds):
    run = builds["no_tex"]
    out = ok(run)
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(PREFIX) and "latexmk" in lines[0] and "install" in lines[0], lines[0]
    names = set(files(out))
    assert {"handout.md", "handout.tex", "handout.html"} <= names
    assert any(n.startswith("figures/") for n in names)
    assert "handout.pdf" not in names


def test_without_tex_the_orchestrator_writes_every_other_format(tmp_path, monkeypatch, capsys):
    Stub(monkeypatch)
    fake_html(monkeypatch)
    monkeypatch.setattr(render.pdf, "tex_available", lambda: False)
    out = build_handout(load_spec(), out=tmp_path / "seed", quiet=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, "figures", "handout.html", "handout.md", "handout.tex"])
    assert "stub.png" in (out / "handout.html").read_text(encoding="utf-8"), "the HTML is rendered after the figures are drawn"
    _, stderr = capsys.readouterr()
    assert stderr.splitlines() == [f"{PREFIX}writing md,tex,html but no PDF: {render.pdf.HOW_TO_GET_TEX}"], stderr
    with pytest.raises(RenderError, match="latexmk"):
        build_handout(load_spec(), out=tmp_path / "other", formats="pdf", quiet=True)
    assert not (tmp_path / "other").exists()
    # A PDF of another build cannot be rebuilt here: the refusal is the only line (no note before it).
    (out / "handout.pdf").write_bytes(b"%PDF-1.5 of unknown origin")
    before = stamps(out)
    assert main(["build", "--out", str(out), "--quiet"]) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == "" and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"{PREFIX}--format: handout.pdf in {out} shows another version"), stderr
    assert stamps(out) == before


def test_without_tex_explicit_pdf_is_an_error(builds):
    run = builds["no_tex_pdf"]
    message = one_error_line(run)
    assert "latexmk" in message, message
    assert list(run.out.parent.parent.iterdir()) == [], "a rejected build must not create anything"


# --------------------------------------------------------------------------------------------
# --case: the worked example from the user's numbers
# --------------------------------------------------------------------------------------------
def test_case_file_reaches_the_document_as_written(tmp_path, monkeypatch):
    stub = Stub(monkeypatch)
    monkeypatch.chdir(tmp_path)
    case = json.loads(SEED_CASE.read_text(encoding="utf-8"))
    case["W1"][0][0] = -3  # the user's own numbers
    (tmp_path / "mine.json").write_text(json.dumps(case), encoding="utf-8")
    assert main(["build", "--case", "mine.json", "--format", "md", "--quiet"]) == 0
    assert (tmp_path / "output" / "seed-case-mine" / "handout.md").is_file(), "a case build gets a folder of its own"
    assert not (tmp_path / "output" / "seed").exists()
    given = stub.calls[-1]["case"]
    assert given == json.loads(json.dumps(case), parse_int=float), "the case as eval's format writes it, numbers as floats"
    assert stub.calls[-1]["training"] is None


def test_case_from_stdin(tmp_path, monkeypatch):
    stub = Stub(monkeypatch)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO(SEED_CASE.read_text(encoding="utf-8")))
    assert main(["build", "--case", "-", "--format", "md", "--quiet"]) == 0
    assert (tmp_path / "output" / "seed-case" / "handout.md").is_file()
    assert stub.calls[-1]["case"]["W2"] == [1.0, -2.0, 1.0, -1.0]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c: c.update(W2=[1, 2, 3]), "W2"),
        (lambda c: c.pop("Y"), "Y"),
        (lambda c: c.update(B1="zero"), "B1"),
        (lambda c: c.update(Q=1), "Q"),
    ],
)
def test_bad_case_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys, edit, field):
    no_derivation(monkeypatch)
    monkeypatch.chdir(tmp_path)
    case = json.loads(SEED_CASE.read_text(encoding="utf-8"))
    edit(case)
    (tmp_path / "bad.json").write_text(json.dumps(case), encoding="utf-8")
    assert main(["build", "--case", "bad.json", "--quiet"]) == 2
    stdout, stderr = capsys.readouterr()
    assert stdout == "" and len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith(f"{PREFIX}{field}: "), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]


def test_case_of_another_network_is_refused(tmp_path, monkeypatch):
    no_derivation(monkeypatch)
    with pytest.raises(CaseError, match=r"^X: "):
        build_handout(load_spec("part3"), out=tmp_path / "p", case=SEED_CASE, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_case_as_values(tmp_path, monkeypatch):
    stub = Stub(monkeypatch)
    case = json.loads(SEED_CASE.read_text(encoding="utf-8"))
    build_handout(load_spec(), out=tmp_path / "s", formats="md", quiet=True, case=case)
    assert stub.calls[-1]["case"]["X"][1] == [2.0, 0.0, 2.0, 1.0, 3.0, 0.0]


# --------------------------------------------------------------------------------------------
# progress: stderr only, never with --quiet
# --------------------------------------------------------------------------------------------
def test_progress_in_process(tmp_path, monkeypatch, capsys):
    Stub(monkeypatch)
    build_handout(load_spec(), out=tmp_path / "loud", formats="md,tex")
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    assert "the stub's own long step" in stderr, "the document's own progress callable must reach stderr"
    assert "drawing figures" in stderr and f"wrote {tmp_path / 'loud'}/" in stderr.replace("\n", "")
    build_handout(load_spec(), out=tmp_path / "loud", formats="md")
    assert "kept handout.tex" in capsys.readouterr().err
    build_handout(load_spec(), out=tmp_path / "quiet", formats="md,tex", quiet=True)
    assert capsys.readouterr() == ("", "")


def test_on_a_terminal_a_spinner_names_the_step_under_way(tmp_path, monkeypatch, capsys):
    """A step of minutes must visibly live: on a terminal the current stage spins (on stderr), and the spinner stops for training's own bar."""
    Stub(monkeypatch)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats stderr as a terminal
    monkeypatch.setenv("TERM", "xterm")
    seen = {}

    def fake_train(**kw):
        seen["live"] = render.build._Stages.live_now
        return None

    monkeypatch.setattr("symbolic.train.train", fake_train)
    build_handout(load_spec(), out=tmp_path / "s", formats="md", train=True)
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    assert "the stub's own long step …" in stderr, stderr[-500:]
    assert seen["live"] is False, "the spinner must stop while training shows its own progress bar"
    build_handout(load_spec(), out=tmp_path / "q", formats="md", quiet=True)
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------------------------
# --train
# --------------------------------------------------------------------------------------------
def test_train_goes_to_a_folder_of_its_own(tmp_path, monkeypatch):
    stub = Stub(monkeypatch)
    runs = []
    sentinel = object()

    def fake_train(**kw):
        runs.append(kw)
        return sentinel

    monkeypatch.setattr("symbolic.train.train", fake_train)
    monkeypatch.chdir(tmp_path)
    out = build_handout(load_spec(), formats="md", quiet=True, train=True, train_steps=7)
    assert out == Path("output/seed-train")
    assert not (tmp_path / "output" / "seed").exists(), "a trained build must not replace the plain handout"
    assert stub.calls[-1]["training"] is sentinel
    assert runs == [{"steps": 7, "quiet": True, "save": False, "out": None}]
    with pytest.raises(RenderError, match=r"^--train-steps: "):
        build_handout(load_spec(), formats="md", quiet=True, train_steps=7)


# --------------------------------------------------------------------------------------------
# the orchestrator, called directly
# --------------------------------------------------------------------------------------------
def test_api_takes_keywords_only():
    with pytest.raises(TypeError):
        build_handout(load_spec(), "output/x")  # type: ignore[misc]


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
        assert Path("/proc/self").is_dir(), "this test expects Linux's /proc"
        out, reason = Path("/proc/cnn-derive-test/seed"), ""
    with pytest.raises(RenderError) as err:
        build_handout(load_spec(), out=out, formats="md", quiet=True)
    message = str(err.value)
    assert message.startswith(f"--out: cannot create {out}: ") and reason in message, message
    assert "\n" not in message
    if where == "under-a-file":
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_api_default_folders():
    assert default_out(load_spec()) == default_out(seed_spec()) == Path("output/seed")
    assert default_out(seed_spec(5, 2)) == Path("output/n5-k2")
    assert default_out(load_spec("part3")) == Path("output/part3")
    assert default_out(load_spec(), train=True) == Path("output/seed-train")
    assert default_out(load_spec("part3"), case="my case", train=True) == Path("output/part3-case-my-case-train")
    assert default_out(load_spec(), case="") == Path("output/seed-case")


def test_api_formats_are_a_string_or_a_sequence():
    assert parse_formats("tex, md") == parse_formats(["md", "tex"]) == ("md", "tex")
    assert parse_formats(None) == ("md", "tex", "pdf", "html"), "html is one of the default formats"
    with pytest.raises(RenderError, match=r"^--format: "):
        parse_formats(["md", "docx"])
    with pytest.raises(RenderError, match=r"^--format: "):
        parse_formats("")


def test_api_builds_into_the_default_folder(tmp_path, monkeypatch):
    Stub(monkeypatch)
    monkeypatch.chdir(tmp_path)
    out = build_handout(seed_spec(5, 2), formats=("md",), quiet=True)
    assert out == Path("output/n5-k2")
    assert sorted(p.name for p in (tmp_path / out).iterdir()) == sorted([MANIFEST, "figures", "handout.md"])
    assert leftovers(tmp_path / "output", "n5-k2") == []


# --------------------------------------------------------------------------------------------
# --train with the real training: the section "The gradients at work"
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(builds):
    """The two builds with --train, and the training run they show."""
    from symbolic.train import train

    return [ok(builds[name]) for name in ("trained_a", "trained_b")], train(steps=TRAIN_STEPS, quiet=True)


def test_train_adds_the_section_and_its_figure(trained):
    (out, _), result = trained
    md, tex = (out / "handout.md").read_text(encoding="utf-8"), (out / "handout.tex").read_text(encoding="utf-8")
    for text in (md, tex):
        assert "The gradients at work" in text
        section = text[text.index("The gradients at work") :]
        assert "figures/training.png" in section
        assert "handwritten digits" in section and "scikit-learn" in section
        assert f"{TRAIN_STEPS} steps" in section
        held = len(result.heldout_idx)
        assert f"{round(result.accuracy * held)} of the {held} held-out images" in section
        assert not any(d in section for d in JINJA_DELIMITERS)
        assert "seconds" not in section
    png = out / "figures" / "training.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_builds_are_byte_identical(trained):
    (a, b), _ = trained
    fa, fb = files(a), files(b)
    assert "figures/training.png" in fa
    assert fa == fb


def test_without_train_there_is_no_such_section(builds):
    out = ok(builds["quiet"])
    for name in ("handout.md", "handout.tex"):
        assert "gradients at work" not in (out / name).read_text(encoding="utf-8")
    assert not (out / "figures" / "training.png").exists()
