"""`cnn-derive build`: derive, draw, render and compile the handout, then put it in place atomically.

``build_handout_files(spec, out=..., formats=..., quiet=..., train=...)`` is the whole job; the command line
only turns its arguments into that call. Everything is written to a temporary folder next to the
destination; only when every requested file exists is the old output replaced, so a failed build
leaves it untouched. Every refusal is a ``RenderError`` (or the ``SpecError`` of a bad spec): one
line that names the field.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from symbolic.errors import RenderError
from symbolic.files import prepare_output, replace_folder
from symbolic.spec import NetworkSpec

FORMATS = ("md", "tex", "pdf", "html")
OUTPUT = Path("output")


def parse_formats(text: str | Iterable[str] | None) -> tuple:
    """The requested formats, in canonical order: a comma-separated string or a sequence of names.

    >>> parse_formats("pdf,md"), parse_formats(None), parse_formats(("tex", "md"))
    (('md', 'pdf'), ('md', 'tex', 'pdf', 'html'), ('md', 'tex'))
    >>> parse_formats("md,docx")
    Traceback (most recent call last):
    ...
    symbolic.errors.RenderError: --format: expected a comma-separated subset of md,tex,pdf,html; got 'md,docx'
    """
    if text is None:
        return FORMATS
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else [str(t).strip() for t in text]
    items = [t for t in items if t]
    bad = [t for t in items if t not in FORMATS]
    if bad or not items:
        shown = text if isinstance(text, str) else ",".join(map(str, text))
        raise RenderError(f"--format: expected a comma-separated subset of {','.join(FORMATS)}; got {shown!r}")
    return tuple(f for f in FORMATS if f in items)


def default_out(spec: NetworkSpec) -> Path:
    """output/seed for the lecture's network, output/n<N>-k<K> for it at other sizes, else output/<spec name>.

    >>> from symbolic.spec import load_spec, seed_spec
    >>> str(default_out(load_spec())), str(default_out(seed_spec(5, 2))), str(default_out(load_spec("part3")))
    ('output/seed', 'output/n5-k2', 'output/part3')
    """
    from render.document import seed_sizes

    sizes = seed_sizes(spec)
    if sizes is not None:
        if (sizes.n, sizes.k, sizes.pool) == (6, 3, 2):
            return OUTPUT / "seed"
        return OUTPUT / (f"n{sizes.n}-k{sizes.k}" + (f"-p{sizes.pool}" if sizes.pool != 2 else ""))
    # A folder name from the spec's own name: letters, digits, '.', '_' and '-' only.
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", spec.name).strip("-.")
    return OUTPUT / (slug or "network")


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
    from render.blocks import Document

    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(doc, Document):
        for fig in doc.figures:
            fig.draw(folder / fig.file, **fig.data)
        return
    for fig in doc.figures.values():
        path = folder / fig.file
        d = fig.data
        if fig.kind == "architecture":
            fg.architecture(d["shapes"], path)
        elif fig.kind == "panel":
            fg.matrix_panel(d["mats"], d["titles"], path, marks=d["marks"])
        elif fig.kind == "pool":
            fg.pool_routing(d["a1"], d["mask"], d["grad_p1"], d["grad_a1"], d["pool"], path)
        elif fig.kind == "training":
            fg.training(d["history"], path, title=d["title"])
        else:
            raise RenderError(f"figure {fig.file}: unknown kind {fig.kind!r}")


def build_handout_files(
    spec: NetworkSpec,
    out: str | Path | None = None,
    formats: str | Iterable[str] | None = None,
    quiet: bool = False,
    train: bool = False,
    train_steps: int | None = None,
) -> Path:
    """Write the handout for ``spec`` into the folder ``out`` (default: ``default_out(spec)``); return that folder.

    ``formats`` is a comma-separated subset of md,tex,pdf (or a sequence of those names); None
    means all three, and then a machine without TeX gets Markdown and LaTeX with a one-line
    note on stderr, while an explicit ``pdf`` without TeX is an error. ``quiet`` silences the
    progress lines on stderr. ``train`` adds the section "The gradients at work": the lecture's
    network at n = 8, k = 3 trained with the derived gradients on the digits 3 vs 8
    (``symbolic.train.train`` with its defaults, ``train_steps`` steps if given, nothing of its own
    written), its loss/accuracy plot as ``figures/training.png``. Raises RenderError (bad formats, no TeX, a folder that is not
    an earlier handout, an unwritable destination, a spec the handout does not explain yet).
    """
    from render import pdf
    from render.handout import make_document
    from render.templates import render

    wanted = parse_formats(formats)
    explicit_pdf = formats is not None and "pdf" in wanted
    if "pdf" in wanted and not pdf.tex_available():
        if explicit_pdf:
            raise RenderError(pdf.HOW_TO_GET_TEX)
        wanted = tuple(f for f in wanted if f != "pdf")
        print(f"cnn-derive: writing Markdown and LaTeX only: {pdf.HOW_TO_GET_TEX}", file=sys.stderr)
    out = Path(out) if out is not None and str(out) != "" else default_out(spec)
    tmp = prepare_output(out, OWN_FILES, RenderError, "an earlier cnn-derive output")
    try:
        with _stages(quiet) as stage:
            training = None
            if train:
                from symbolic.train import DEFAULT_STEPS
                from symbolic.train import train as run_training

                steps = DEFAULT_STEPS if train_steps is None else train_steps
                stage(f"training the network at n=8, k=3 on the digits ({steps} steps)")
                training = run_training(steps=steps, quiet=quiet, save=False, out=None)
            stage(f"deriving and proving ({spec.name})")
            doc = make_document(spec, training=training, progress=stage)
            stage("drawing figures")
            write_figures(doc, tmp / "figures")
            if "md" in wanted:
                stage("rendering Markdown")
                (tmp / "handout.md").write_text(render("md", doc), encoding="utf-8")
            if "tex" in wanted or "pdf" in wanted:
                stage("rendering LaTeX")
                (tmp / "handout.tex").write_text(render("tex", doc), encoding="utf-8")
            if "html" in wanted:
                stage("rendering HTML")
                (tmp / "handout.html").write_text(render("html", doc, base=tmp), encoding="utf-8")
            if "pdf" in wanted:
                stage("compiling PDF (latexmk)")
                pdf.compile_pdf(tmp / "handout.tex")
                if "tex" not in wanted:
                    (tmp / "handout.tex").unlink()
            try:
                replace_folder(tmp, out)
            except OSError as err:
                raise RenderError(f"--out: cannot write {out}: {_reason(err)}") from None
            stage(f"wrote {out}/")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _reason(err: OSError) -> str:
    """An OSError in a few words: 'Permission denied', 'Not a directory', ..."""
    return err.strerror or str(err)


OWN_FILES = {"handout.md", "handout.tex", "handout.pdf", "handout.html", "figures"}
