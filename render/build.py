"""`cnn-derive build`: derive, draw, render and compile the handout, then put it in place atomically.

``build_handout(spec, out=..., formats=..., quiet=..., train=..., case=...)`` is the whole job; the
command line only turns its arguments into that call. Everything is written to a hidden temporary
folder next to the destination (named after this process, so the next build removes it if this
one is killed); only when every requested file exists is the old output replaced, so a failed
build leaves it untouched.

A build replaces only the formats it writes, and ``figures/``, which every format shares: the
other handout files of the folder are kept, provided they show the same document (see
``render.manifest``); otherwise the build refuses and names them. Every refusal is a
``RenderError`` (or the ``SpecError``/``CaseError`` of a bad spec or case): one line that names
the field.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

from render.manifest import FILES, MANIFEST
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


def _slug(text: str) -> str:
    """A folder name from free text: letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")


def default_out(spec: NetworkSpec, *, train: bool = False, case: str | None = None) -> Path:
    """output/seed for the lecture's network, output/n<N>-k<K> for it at other sizes, else output/<spec name>.

    A handout with the user's own case (``case``: its name, "" when it has none) or with the
    training section goes to a folder of its own, so that it never replaces the plain handout.

    >>> from symbolic.spec import load_spec, seed_spec
    >>> str(default_out(load_spec())), str(default_out(seed_spec(5, 2))), str(default_out(load_spec("part3")))
    ('output/seed', 'output/n5-k2', 'output/part3')
    >>> str(default_out(load_spec(), train=True)), str(default_out(load_spec(), case="my case", train=True))
    ('output/seed-train', 'output/seed-case-my-case-train')
    """
    from render.document import seed_sizes

    sizes = seed_sizes(spec)
    if sizes is not None:
        if (sizes.n, sizes.k, sizes.pool) == (6, 3, 2):
            name = "seed"
        else:
            name = f"n{sizes.n}-k{sizes.k}" + (f"-p{sizes.pool}" if sizes.pool != 2 else "")
    else:
        name = _slug(spec.name) or "network"
    if case is not None:
        name += "-case" + (f"-{_slug(case)}" if _slug(case) else "")
    if train:
        name += "-train"
    return OUTPUT / name


class _Stages:
    """A progress reporter on stderr: one line per stage with the seconds since the start.

    On a terminal a spinner also names the stage under way, so that a step of minutes visibly
    lives. Nothing ever goes to stdout; ``quiet`` prints nothing at all.
    """

    live_now = False  # whether a spinner is running, for the tests

    def __init__(self, quiet: bool) -> None:
        self.console = self.status = None
        self.t0 = time.perf_counter()
        if not quiet:
            from rich.console import Console

            self.console = Console(stderr=True, highlight=False)
            if self.console.is_terminal:
                self.status = self.console.status("", spinner="dots")

    def __call__(self, name: str) -> None:
        if self.console is None:
            return
        from rich.text import Text

        self.console.print(Text.assemble((f"{time.perf_counter() - self.t0:6.2f} s", "dim"), "  ", str(name)))
        if self.status is not None:
            self.status.update(Text(f"{name} …"))

    @contextmanager
    def paused(self):
        """No spinner inside: a step that shows its own progress bar (training) has the terminal to itself."""
        self._spin(False)
        try:
            yield
        finally:
            self._spin(True)

    def _spin(self, on: bool) -> None:
        if self.status is None:
            return
        if on:
            self.status.start()
        else:
            self.status.stop()
        _Stages.live_now = on


@contextmanager
def _stages(quiet: bool):
    """The progress reporter of one build (see ``_Stages``), its spinner stopped at the end."""
    stages = _Stages(quiet)
    stages._spin(True)
    try:
        yield stages
    finally:
        stages._spin(False)


def write_figures(doc, folder: Path) -> None:
    """Draw every figure of the document into ``folder``: each figure block knows its drawing function
    (``render.figure_cache`` copies a figure drawn before from the same code and data)."""
    from render import figure_cache

    folder.mkdir(parents=True, exist_ok=True)
    for fig in doc.figures:
        figure_cache.draw(fig, folder / fig.file)


def read_case(spec: NetworkSpec, case) -> tuple[dict | None, str | None]:
    """The user's case for the worked example, checked against ``spec``, and a name for its folder.

    ``case`` is a case file in ``eval``'s format (a path, or "-" for stdin), the values of one (a
    dict) or a ``symbolic.case.Case``. The values come back as ``eval``'s case format has them:
    name -> nested lists or a number, in the layout the case was written in. A case that does not
    fit is a ``CaseError`` naming the field.

    >>> from symbolic.spec import load_spec
    >>> values, name = read_case(load_spec(), {"X": [[0.0] * 6] * 6, "W1": [[1, 0, 0]] * 3, "B1": 0, "W2": [1, 2, 3, 4], "B2": 0, "Y": 1})
    >>> values["B1"], values["W2"], name
    (0.0, [1.0, 2.0, 3.0, 4.0], '')
    >>> read_case(load_spec(), {"X": [[0.0] * 6] * 6, "W1": [[1, 0, 0]] * 3, "B1": 0, "W2": [1, 2, 3], "B2": 0, "Y": 1})
    Traceback (most recent call last):
    ...
    symbolic.errors.CaseError: W2: expected 1×4 (or a list of 4), got a list of 3
    """
    import numpy as np

    from symbolic.case import Case, load_case, make_case

    if case is None:
        return None, None
    if isinstance(case, (str, Path)):
        checked, name = load_case(str(case), spec), ("" if str(case) == "-" else Path(case).stem)
    else:
        checked, name = make_case(dict(case.arrays if isinstance(case, Case) else case), spec), ""
    values = {key: np.asarray(checked.arrays[key]).reshape(checked.given[key]).tolist() for key in checked.arrays}
    return values, name


def build_handout(
    spec: NetworkSpec,
    *,
    out: str | Path | None = None,
    formats: str | Iterable[str] | None = None,
    quiet: bool = False,
    train: bool = False,
    train_steps: int | None = None,
    case=None,
) -> Path:
    """Write the handout for ``spec`` into the folder ``out`` (default: ``default_out(spec, ...)``); return that folder.

    ``formats`` is a comma-separated subset of md,tex,pdf,html (or a sequence of those names);
    None means all four, and then a machine without TeX gets every format but the PDF, with a
    one-line note on stderr, while an explicit ``pdf`` without TeX is an error. Only the formats
    written and ``figures/`` are replaced: the folder's other handout files are kept if they show
    the same document, and the build refuses (naming them) if they do not. ``quiet`` silences the
    progress on stderr. ``train`` adds the section "The gradients at work": the lecture's network
    at n = 8, k = 3 trained with the derived gradients on the digits 3 vs 8 (``symbolic.train.train``
    with its defaults, ``train_steps`` steps if given, nothing of its own written), its loss/accuracy
    plot as ``figures/training.png``. ``case`` (a case file in ``eval``'s format, "-" for stdin, or
    its values; see ``read_case``) makes the worked example from the user's numbers. Without
    ``out``, a build with ``train`` or ``case`` goes to a folder of its own (``default_out``).
    Raises RenderError (bad formats, no TeX, a folder that is not an earlier handout, a file a
    user added under ``figures/``, kept files of another document, an unwritable destination),
    CaseError (a case that does not fit). Nothing is written before the inputs are checked.

    >>> import tempfile
    >>> from symbolic.spec import load_spec
    >>> build_handout(load_spec(), out=Path(tempfile.mkdtemp()) / "seed", formats="md,docx")
    Traceback (most recent call last):
    ...
    symbolic.errors.RenderError: --format: expected a comma-separated subset of md,tex,pdf,html; got 'md,docx'
    """
    from render import pdf
    from render.handout import make_document
    from render.manifest import fingerprint, foreign_figures, read_earlier, record_text, stale_formats

    wanted = parse_formats(formats)
    if train_steps is not None and not train:
        raise RenderError("--train-steps: only with --train (it sets the steps of the training the handout shows)")
    case_values, case_name = read_case(spec, case)
    note = None
    if "pdf" in wanted and not pdf.tex_available():
        if formats is not None:
            raise RenderError(pdf.HOW_TO_GET_TEX)
        wanted = tuple(f for f in wanted if f != "pdf")
        note = f"cnn-derive: writing {','.join(wanted)} but no PDF: {pdf.HOW_TO_GET_TEX}"
    out = Path(out) if out is not None and str(out) != "" else default_out(spec, train=train, case=case_name)
    tmp = prepare_output(out, OWN_FILES, RenderError, "an earlier cnn-derive output")
    try:
        earlier = read_earlier(out)
        foreign = foreign_figures(earlier)
        if foreign:
            raise RenderError(
                f"--out: {out / foreign[0]} is not a figure cnn-derive drew, and a build replaces figures/ whole; move it out of {out}"
            )
        kept = [f for f in earlier.present if f not in wanted] if earlier is not None else []
        with _stages(quiet) as stage:
            training = None
            if train:
                from symbolic.train import DEFAULT_STEPS
                from symbolic.train import train as run_training

                steps = DEFAULT_STEPS if train_steps is None else train_steps
                stage(f"training the network at n=8, k=3 on the digits ({steps} steps)")
                with stage.paused():
                    training = run_training(steps=steps, quiet=quiet, save=False, out=None)
            stage(f"deriving and proving ({spec.name})")
            doc = make_document(spec, training=training, case=case_values, progress=stage)
            stage("rendering LaTeX")
            texts = _Texts(doc)
            source = fingerprint(texts("tex"))
            # Checked before the long steps: a refusal should come as early as it can.
            stale = stale_formats(earlier, kept, source, texts)
            if stale:
                raise RenderError(_stale_message(out, stale, wanted, [FILES[f] for f in stale]))
            if note is not None:
                print(note, file=sys.stderr)
            _write(doc, texts, tmp, wanted, stage)
            for fmt in kept:
                shutil.copy2(out / FILES[fmt], tmp / FILES[fmt])
            drawn = [p.name for p in (tmp / "figures").iterdir()] if (tmp / "figures").is_dir() else []
            (tmp / MANIFEST).write_text(record_text(source, [*wanted, *kept], drawn), encoding="utf-8")
            try:
                replace_folder(tmp, out)
            except OSError as err:
                raise RenderError(f"--out: cannot write {out}: {_reason(err)}") from None
            if kept:
                stage(f"kept {', '.join(FILES[f] for f in kept)}: the same document")
            stage(f"wrote {out}/")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


class _Texts:
    """The document's text in each format, rendered once, when first asked for."""

    def __init__(self, doc) -> None:
        self.doc, self.done = doc, {}

    def __call__(self, fmt: str) -> str:
        from render.templates import render

        if fmt not in self.done:
            self.done[fmt] = render(fmt, self.doc)
        return self.done[fmt]


def _write(doc, texts: _Texts, tmp: Path, wanted: tuple, stage) -> None:
    """Draw the figures, then write every wanted format into ``tmp`` (the HTML embeds the figures; the PDF is compiled last)."""
    from render import pdf
    from render.templates import render

    stage("drawing figures")
    write_figures(doc, tmp / "figures")
    if "md" in wanted:
        stage("rendering Markdown")
        (tmp / FILES["md"]).write_text(texts("md"), encoding="utf-8")
    if "tex" in wanted or "pdf" in wanted:
        (tmp / FILES["tex"]).write_text(texts("tex"), encoding="utf-8")
    if "html" in wanted:
        stage("rendering HTML")
        (tmp / FILES["html"]).write_text(render("html", doc, base=tmp), encoding="utf-8")
    if "pdf" in wanted:
        stage("compiling PDF (latexmk)")
        pdf.compile_pdf(tmp / FILES["tex"])
        if "tex" not in wanted:
            (tmp / FILES["tex"]).unlink()


def _stale_message(out: Path, stale: list, wanted: tuple, names: list) -> str:
    """The refusal for kept files that show another document than the one being built."""
    them = "it" if len(names) == 1 else "them"
    both = ",".join(f for f in FORMATS if f in wanted or f in stale)
    return (
        f"--format: {', '.join(names)} in {out} {'shows' if len(names) == 1 else 'show'} another version of the handout "
        f"and would not match the new figures/; write {them} too (--format {both}) or remove {them}"
    )


def _reason(err: OSError) -> str:
    """An OSError in a few words: 'Permission denied', 'Not a directory', ..."""
    return err.strerror or str(err)


OWN_FILES = {*FILES.values(), "figures", MANIFEST}
