"""The one Jinja environment factory: LaTeX-safe delimiters, StrictUndefined, and the printing filters.

Delimiters are ``<< expr >>``, ``<% statement %>`` and ``<# comment #>``: braces and ``%`` belong
to LaTeX. Filters only print: ``tex`` (a SymPy object through ``CnnLatexPrinter``), ``num`` and
``nummat`` (numbers as SymPy numbers, then printed), ``esc`` (plain text made safe for LaTeX).
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from render.blocks import Document, Link, Strong
from render.printer import latex, number, numbers

TEMPLATES = Path(__file__).with_name("templates")

# What each output format needs from the printer and the text escaper.
FORMATS = {
    "md": {"one": r"\mathbb{1}", "macros": "md.j2"},
    "tex": {"one": r"\mathbf{1}", "macros": "tex.j2"},
}

_TEX_SPECIALS = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def _escape_tex(text: str) -> str:
    return "".join(_TEX_SPECIALS.get(ch, ch) for ch in str(text))


def environment(fmt: str) -> jinja2.Environment:
    """The Jinja environment for one output format ("md" or "tex").

    >>> env = environment("tex"); env.from_string("<< 'a_b' | esc >> and $<< x | tex >>$").render(x=__import__("sympy").Symbol("x_11"))
    'a\\\\_b and $x_{11}$'
    """
    settings = FORMATS[fmt]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        block_start_string="<%",
        block_end_string="%>",
        variable_start_string="<<",
        variable_end_string=">>",
        comment_start_string="<#",
        comment_end_string="#>",
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    one = settings["one"]
    env.filters["tex"] = lambda expr: latex(expr, one=one)
    env.filters["num"] = lambda value, digits=4: latex(number(value, digits), one=one)
    env.filters["nummat"] = lambda arr, boxed=None, digits=4: latex(numbers(arr, digits, boxed), one=one)
    env.filters["esc"] = _escape_tex if fmt == "tex" else (lambda text: str(text))
    # Words parts are told apart by their types (render.blocks), never by what they say.
    env.tests["strong"] = lambda part: isinstance(part, Strong)
    env.tests["link"] = lambda part: isinstance(part, Link)
    env.globals["fmt"] = fmt
    env.globals["macros"] = settings["macros"]
    return env


def render(fmt: str, doc, base=None) -> str:
    """The handout in one format, as text (``base``: the folder whose ``figures/`` the HTML embeds).

    >>> from render.blocks import Document, Heading, Para, words
    >>> import sympy as sp
    >>> d = Document("T", words("sub"), (Heading("One", anchor="one"), Para(words("see ", sp.Symbol("w_11")))))
    >>> print(render("md", d))
    # T
    <BLANKLINE>
    *sub*
    <BLANKLINE>
    <a id="one"></a>
    <BLANKLINE>
    ## One
    <BLANKLINE>
    see $w_{11}$
    <BLANKLINE>
    <BLANKLINE>
    """
    name = f"document.{fmt}.j2" if isinstance(doc, Document) else f"handout.{fmt}.j2"
    return environment(fmt).get_template(name).render(doc=doc)
