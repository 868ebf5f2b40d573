"""Compiling the LaTeX handout with latexmk, reproducibly, in the folder that holds it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from symbolic.errors import RenderError

HOW_TO_GET_TEX = (
    "no TeX engine found (latexmk and pdflatex); install them with "
    "`apt-get install latexmk texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended lmodern` "
    "or run `bash .ci/setup`"
)


def tex_available() -> bool:
    """Whether latexmk and pdflatex are on PATH. >>> isinstance(tex_available(), bool)
    True
    """
    return shutil.which("latexmk") is not None and shutil.which("pdflatex") is not None


def compile_pdf(tex: Path) -> Path:
    """Run ``latexmk -pdf -halt-on-error`` on ``tex`` in its own folder; return the PDF's path.

    SOURCE_DATE_EPOCH pins the dates pdfTeX writes, so the same source gives the same PDF.
    Auxiliary files are removed afterwards. Raises RenderError with the first TeX error line.
    """
    if not tex_available():
        raise RenderError(HOW_TO_GET_TEX)
    env = dict(os.environ, SOURCE_DATE_EPOCH="0", FORCE_SOURCE_DATE="1")
    cmd = ["latexmk", "-pdf", "-halt-on-error", "-interaction=nonstopmode", "-quiet", tex.name]
    proc = subprocess.run(cmd, cwd=tex.parent, env=env, capture_output=True, text=True)
    log = tex.with_suffix(".log")
    if proc.returncode != 0:
        first = ""
        if log.exists():
            first = next((ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.startswith("!")), "")
        raise RenderError(f"pdf: latexmk failed on {tex.name}: {first or proc.stdout.strip().splitlines()[-1:]}")
    subprocess.run(["latexmk", "-c", tex.name], cwd=tex.parent, env=env, capture_output=True)
    return tex.with_suffix(".pdf")
