"""The one Jinja environment factory: LaTeX-safe delimiters, StrictUndefined, and the printing filters.

Delimiters are ``<< expr >>``, ``<% statement %>`` and ``<# comment #>``: braces and ``%`` belong
to LaTeX. Filters only print: ``tex`` (a SymPy object through ``CnnLatexPrinter``), ``num`` and
``nummat`` (numbers as SymPy numbers, then printed), ``esc`` (plain text made safe for LaTeX or
HTML), and for HTML ``mathml`` (that LaTeX as MathML Core, ``render.mathml``) and ``plain`` (through
``CnnTextPrinter``). The HTML environment autoescapes.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import jinja2
import markupsafe

from render.blocks import Document, Link, Strong
from render.printer import latex, number, numbers, text
from symbolic.errors import RenderError

TEMPLATES = Path(__file__).with_name("templates")

# What each output format needs from the printer and the text escaper.
FORMATS = {
    "md": {"one": r"\mathbb{1}"},
    "tex": {"one": r"\mathbf{1}"},
    "html": {"one": r"\mathbb{1}"},
}
_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

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
    r"""Plain text made safe for LaTeX, as typed: ``--latex`` stays two hyphens, never an en dash.

    >>> _escape_tex("100% of --latex & x_1")
    '100\\% of -{}-latex \\& x\\_1'
    """
    out = "".join(_TEX_SPECIALS.get(ch, ch) for ch in str(text))
    return out.replace("--", "-{}-").replace("--", "-{}-")


def environment(fmt: str) -> jinja2.Environment:
    """The Jinja environment for one output format ("md", "tex" or "html").

    >>> env = environment("tex"); env.from_string("<< 'a_b' | esc >> and $<< x | tex >>$").render(x=__import__("sympy").Symbol("x_11"))
    'a\\\\_b and $x_{11}$'
    >>> environment("html").from_string("<< 'a<b' >> << x | mathml >>").render(x=__import__("sympy").Symbol("x_11"))
    'a&lt;b <math><mrow><msub><mi>x</mi><mrow><mn>11</mn></mrow></msub></mrow></math>'
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
        autoescape=fmt == "html",
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    one = settings["one"]
    env.filters["tex"] = lambda expr: latex(expr, one=one)
    env.filters["num"] = lambda value, digits=4: latex(number(value, digits), one=one)
    env.filters["nummat"] = lambda arr, boxed=None, digits=4: latex(numbers(arr, digits, boxed), one=one)
    env.filters["esc"] = {"tex": _escape_tex, "html": markupsafe.escape}.get(fmt, str)
    if fmt == "html":
        # latex2mathml (and the xml modules it pulls in) only for the HTML handout: about 0.5 s of imports.
        from render.mathml import to_mathml

        env.filters["mathml"] = lambda expr, display=False: markupsafe.Markup(to_mathml(latex(expr, one=one), display))
        env.filters["plain"] = text
    # Words parts are told apart by their types (render.blocks), never by what they say.
    env.tests["strong"] = lambda part: isinstance(part, Strong)
    env.tests["link"] = lambda part: isinstance(part, Link)
    env.globals["fmt"] = fmt
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
    template = environment(fmt).get_template(f"document.{fmt}.j2")
    if fmt == "html":
        return _glue(template.render(doc=doc, images=_embedded(doc, base)))
    return template.render(doc=doc)


# An inline formula and the punctuation after it: a browser may break the line between them.
_MATH_THEN_PUNCTUATION = re.compile(r"(<math>(?:(?!</math>).)*</math>)([,.;:!?)\]’”]+)", re.S)


def _glue(page: str) -> str:
    """Keep each inline formula on one line with the punctuation that follows it (no line starting with ", ").

    >>> _glue("see <math><mi>x</mi></math>, then")
    'see <span class="nobr"><math><mi>x</mi></math>,</span> then'
    """
    return _MATH_THEN_PUNCTUATION.sub(r'<span class="nobr">\1\2</span>', page)


def _embedded(doc: Document, base) -> dict:
    """Each figure's file as a data URI read from ``base/figures``: the page must open offline, alone."""
    images = {}
    for fig in doc.figures:
        path = Path(base if base is not None else ".") / "figures" / fig.file
        if base is None or not path.is_file():
            raise RenderError(f"--format html: figure {fig.file} was not drawn into {path.parent}")
        mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
        images[fig.file] = f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return images
