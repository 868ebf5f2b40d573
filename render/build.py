"""`cnn-derive build`: derive, draw, render and compile the handout, then put it in place atomically.

Everything is written to a temporary folder next to the destination; only when every
requested file exists is the old output replaced, so a failed build leaves it untouched.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from symbolic.errors import RenderError

FORMATS = ("md", "tex", "pdf")


def parse_formats(text: str | None) -> tuple:
    """The requested formats, in canonical order.

    >>> parse_formats("pdf,md"), parse_formats(None)
    (('md', 'pdf'), ('md', 'tex', 'pdf'))
    """
    if text is None:
        return FORMATS
    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in FORMATS]
    if bad or not items:
        raise RenderError(f"--format: expected a comma-separated subset of md,tex,pdf; got {text!r}")
    return tuple(f for f in FORMATS if f in items)


def default_out(spec) -> Path:
    """output/seed for the lecture's sizes, output/n<N>-k<K> otherwise."""
    from symbolic.spec import NetworkSpec

    return Path("output") / ("seed" if spec == NetworkSpec() else f"n{spec.n}-k{spec.k}")


@contextmanager
def _stages(quiet: bool):
    """A progress reporter on stderr: one line per stage with its seconds."""
    t0 = time.perf_counter()
    console = None
    if not quiet:
        from rich.console import Console

        console = Console(stderr=True, highlight=False)

    def stage(name: str):
        if console is not None:
            console.print(f"[dim]{time.perf_counter() - t0:6.2f} s[/dim]  {name}")

    yield stage


def write_figures(doc, folder: Path) -> None:
    """Draw every figure of the document into ``folder``."""
    from render import figures as fg

    folder.mkdir(parents=True, exist_ok=True)
    for fig in doc.figures.values():
        path = folder / fig.file
        d = fig.data
        if fig.kind == "architecture":
            fg.architecture(d["shapes"], path)
        elif fig.kind == "panel":
            fg.matrix_panel(d["mats"], d["titles"], path, marks=d["marks"])
        elif fig.kind == "pool":
            fg.pool_routing(d["a1"], d["mask"], d["grad_p1"], d["grad_a1"], d["pool"], path)
        else:
            raise RenderError(f"figure {fig.file}: unknown kind {fig.kind!r}")


def run_build(args) -> int:
    """Build the handout for ``args`` (n, k, out, format, quiet); return the exit code."""
    from render import pdf
    from render.document import build_handout
    from render.templates import render
    from symbolic.spec import NetworkSpec

    spec = NetworkSpec(n=args.n, k=args.k)
    formats = parse_formats(args.format)
    explicit_pdf = args.format is not None and "pdf" in formats
    if "pdf" in formats and not pdf.tex_available():
        if explicit_pdf:
            raise RenderError(pdf.HOW_TO_GET_TEX)
        formats = tuple(f for f in formats if f != "pdf")
        print(f"cnn-derive: writing Markdown and LaTeX only: {pdf.HOW_TO_GET_TEX}", file=sys.stderr)
    out = Path(args.out) if args.out else default_out(spec)
    _check_destination(out)
    out.parent.mkdir(parents=True, exist_ok=True)

    with _stages(args.quiet) as stage:
        stage(f"deriving and proving (n={spec.n}, k={spec.k})")
        doc = build_handout(spec)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            stage("drawing figures")
            write_figures(doc, tmp / "figures")
            if "md" in formats:
                stage("rendering Markdown")
                (tmp / "handout.md").write_text(render("md", doc), encoding="utf-8")
            if "tex" in formats or "pdf" in formats:
                stage("rendering LaTeX")
                (tmp / "handout.tex").write_text(render("tex", doc), encoding="utf-8")
            if "pdf" in formats:
                stage("compiling PDF (latexmk)")
                pdf.compile_pdf(tmp / "handout.tex")
                if "tex" not in formats:
                    (tmp / "handout.tex").unlink()
            _replace(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        stage(f"wrote {out}/")
    return 0


OWN_FILES = {"handout.md", "handout.tex", "handout.pdf", "figures"}


def _check_destination(out: Path) -> None:
    """Refuse to replace anything but an earlier handout: the swap removes the old folder whole."""
    if out.exists() and not out.is_dir():
        raise RenderError(f"--out: expected a folder, but {out} is a file")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in OWN_FILES)
        if foreign or out.resolve() == Path.cwd().resolve():
            raise RenderError(
                f"--out: {out} holds other files ({', '.join(foreign[:3]) or 'the current folder'}); "
                "expected a new folder or an earlier cnn-derive output"
            )


def _replace(new: Path, dest: Path) -> None:
    """Put ``new`` where ``dest`` is, swapping the old one out only at the last moment."""
    os.chmod(new, 0o755)
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old.{os.getpid()}")
        dest.rename(old)
    new.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
