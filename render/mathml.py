"""LaTeX from our printer (``render.printer.latex``) to MathML Core, for the HTML handout.

The conversion is latex2mathml's, with corrections around it. Before: the few environments our
printer uses that latex2mathml does not know are rewritten into ones it does (``aligned`` into
``split``, ``gathered`` into a one-column ``array``, ``\\xrightarrow`` into ``\\overset``, row gaps
``\\\\[6pt]`` dropped). After: what is MathML 3 but not MathML Core, which Chromium and Firefox
draw natively, is rewritten into Core: ``mathvariant`` fonts become the Unicode mathematical
letters (𝟙 for ``\\mathbb{1}``), ``menclose`` becomes an ``mrow`` with a CSS border, table
alignments become CSS. Then the typesetting is brought closer to TeX's where browsers differ:
bars sit on the letter, fences grow only around tall content, unary signs and function names get
TeX's spacing, a display's sums take their limits below. ``core_problems`` says what in a MathML
string is still not Core; the tests run it on every formula of the handouts.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import xml.etree.ElementTree as ET

from latex2mathml.converter import convert

from symbolic.errors import RenderError

# MathML Core: its elements, the attributes every element takes, and those of single elements.
CORE_ELEMENTS = frozenset(
    "math annotation annotation-xml maction merror mfrac mi mmultiscripts mn mo mover mpadded mphantom mprescripts "
    "mroot mrow ms mspace msqrt mstyle msub msubsup msup mtable mtd mtext mtr munder munderover none semantics".split()
)
_GLOBAL_ATTRIBUTES = frozenset("class dir displaystyle id mathbackground mathcolor mathsize scriptlevel style tabindex".split())
_ELEMENT_ATTRIBUTES = {
    "math": {"display", "alttext"},
    "mi": {"mathvariant"},
    "mfrac": {"linethickness"},
    "mo": {"form", "fence", "separator", "lspace", "rspace", "stretchy", "symmetric", "maxsize", "minsize", "largeop", "movablelimits"},
    "mover": {"accent"},
    "munder": {"accentunder"},
    "munderover": {"accent", "accentunder"},
    "mpadded": {"width", "height", "depth", "lspace", "voffset"},
    "mspace": {"width", "height", "depth"},
    "mtd": {"columnspan", "rowspan"},
}
# Whatever TeX source looks like: a control word, or an alignment tab left in a token.
_RAW_TEX = re.compile(r"\\[A-Za-z]+|\\[,:;!]|^&$")

_VARIANT_NAMES = {
    "bold": "BOLD",
    "italic": "ITALIC",
    "bold-italic": "BOLD ITALIC",
    "double-struck": "DOUBLE-STRUCK",
    "script": "SCRIPT",
    "bold-script": "BOLD SCRIPT",
    "fraktur": "FRAKTUR",
    "bold-fraktur": "BOLD FRAKTUR",
    "sans-serif": "SANS-SERIF",
    "bold-sans-serif": "SANS-SERIF BOLD",
    "monospace": "MONOSPACE",
}
_ACCENTS = {"\u00af", "^", "~", "\u02d9", "\u00a8", "\u02c7", "\u2192", "\u02dc", "\u02c6"}
_ROWS = {"math", "mrow", "mtd", "mstyle", "mpadded", "msqrt", "mphantom"}
_CLOSERS = {")", "]", "}", "|", "\u2016", "\u27e9"}
_BIG_OPERATORS = {"\u2211", "\u220f"}
_SCRIPTS = {"msub", "msup", "msubsup"}
_TALL = {"mfrac", "mtable", "munder", "munderover", "msqrt", "mroot"}
_TEXT_STYLES = {"bold": "font-weight: bold", "italic": "font-style: italic", "bold-italic": "font-weight: bold; font-style: italic"}


def _math_letter(ch: str, variant: str) -> str:
    """``ch`` in a mathvariant as its Unicode mathematical letter (ℝ, 𝟙, 𝐱), or ``ch`` itself if there is none."""
    style = _VARIANT_NAMES.get(variant)
    if style is None or not ch.isalnum():
        return ch
    name = unicodedata.name(ch, "")
    short = name.replace("LATIN ", "").replace("GREEK ", "").replace("LETTER ", "")
    # Letters that Unicode had before its mathematical block (ℝ, ℬ) keep their old names.
    for candidate in (f"MATHEMATICAL {style} {short}", f"{style} {short}", f"BLACK-LETTER {short}" if "FRAKTUR" in style else ""):
        try:
            return unicodedata.lookup(candidate) if candidate else ch
        except KeyError:
            continue
    return ch


def _balanced(tex: str, start: int) -> int:
    """The index just past the brace group that opens at ``tex[start]``."""
    depth = 0
    for i in range(start, len(tex)):
        if tex[i] == "{" and (i == 0 or tex[i - 1] != "\\"):
            depth += 1
        elif tex[i] == "}" and tex[i - 1] != "\\":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced braces in {tex!r}")


def _prepare(tex: str) -> str:
    r"""Rewrite what latex2mathml does not know into what it does; the meaning stays the same.

    >>> _prepare(r"\begin{gathered} a \\[6pt] X \xrightarrow{\text{conv}} Z \end{gathered}")
    '\\begin{array}{c} a \\\\ X \\overset{\\;\\text{conv}\\;}{\\rightarrow} Z \\end{array}'
    """
    tex = tex.replace(r"\begin{aligned}", r"\begin{split}").replace(r"\end{aligned}", r"\end{split}")
    tex = tex.replace(r"\begin{gathered}", r"\begin{array}{c}").replace(r"\end{gathered}", r"\end{array}")
    tex = re.sub(r"\\\\\[[^\]]*\]", r"\\\\", tex)
    while (at := tex.find(r"\xrightarrow{")) >= 0:
        open_ = at + len(r"\xrightarrow")
        close = _balanced(tex, open_)
        tex = tex[:at] + r"\overset{\;" + tex[open_ + 1 : close - 1] + r"\;}{\rightarrow}" + tex[close:]
    return tex


def _flat_fences(el: ET.Element) -> None:
    """``\\left( \\right)`` around something one line high keeps the ordinary parentheses, as TeX does.

    Chromium stretches a fence to cover a subscript's depth too and picks a larger, looser glyph
    (``σ( Z₂ )``); only a fraction, a table, a sum's limits or a root need the fences to grow.
    """
    for row in el.iter("mrow"):
        if len(row) >= 2 and all(c.tag == "mo" and c.get("fence") == "true" and c.get("stretchy") == "true" for c in (row[0], row[-1])):
            if not any(d.tag in _TALL for d in row.iter()):
                row[0].set("stretchy", "false")
                row[-1].set("stretchy", "false")


def _single(el: ET.Element) -> ET.Element:
    """``el`` without the one-child mrows around it."""
    while el.tag == "mrow" and len(el) == 1:
        el = el[0]
    return el


def _accent_on_letter(mover: ET.Element) -> None:
    """\\bar{z_{11}} means z̄ with its indices: the bar goes over the letter, not over letter and scripts.

    In place: an accented msub/msup/msubsup whose nucleus is one letter becomes that script
    element with the accent moved onto its nucleus. TeX would centre a short bar over the whole.
    """
    scripted = _single(mover[0])
    if scripted.tag not in _SCRIPTS:
        return
    holder = scripted
    while (nucleus := _single(holder[0])).tag in _SCRIPTS:
        holder = nucleus
    if nucleus.tag != "mi" or len(nucleus.text or "") != 1:
        return
    accented = ET.Element("mover", accent="true")
    accented.extend([nucleus, mover[1]])
    holder[0] = accented
    mover.tag, mover.attrib = scripted.tag, dict(scripted.attrib)
    mover[:] = list(scripted)


def _to_core(el: ET.Element) -> None:
    """Rewrite one converted tree, in place, into MathML Core."""
    _flat_fences(el)
    for node in list(el.iter()):
        variant = node.attrib.pop("mathvariant", None)
        if variant is not None:
            if node.tag == "mtext":
                if variant in _TEXT_STYLES:
                    node.set("style", _TEXT_STYLES[variant])
            elif variant == "normal":
                # Core keeps "normal" for a one-letter mi, which is otherwise italic.
                if node.tag == "mi" and node.text and len(node.text) == 1:
                    node.set("mathvariant", "normal")
            elif node.text:
                node.text = "".join(_math_letter(ch, variant) for ch in node.text)
        if node.tag == "menclose":
            node.attrib.pop("notation", None)
            node.tag = "mrow"
            node.set("class", "boxed")
        elif node.tag == "mtable":
            # aligned (now split) joins its two columns with no gap; gathered (now a one-column
            # array, the only table whose cells say "center") spaces its rows. Both are displays.
            cells = [cell for row in node for cell in row]
            if node.attrib.pop("columnspacing", None) == "0em":
                node.set("class", "aligned")
                node.set("displaystyle", "true")
            elif cells and all(len(row) == 1 for row in node) and all(c.get("columnalign") == "center" for c in cells):
                node.set("class", "gathered")
                node.set("displaystyle", "true")
            for name in ("rowspacing", "columnalign", "rowalign", "columnlines", "rowlines", "frame"):
                node.attrib.pop(name, None)
        elif node.tag == "mtd":
            align = node.attrib.pop("columnalign", None)
            if align in ("left", "right"):
                node.set("style", f"text-align: {align}")
        elif node.tag == "mover" and len(node) == 2 and node[1].tag == "mo" and (node[1].text or "") in _ACCENTS:
            # \bar, \hat: an accent sits close over its base, as in TeX, not raised like a superscript.
            node.set("accent", "true")
            if node[1].text == "\u00af":
                # The macron barely shows at text size and does not stretch; the overline does both.
                node[1].text = "\u203e"
                node[1].set("stretchy", "true")
            _accent_on_letter(node)
        elif node.tag == "mo" and node.text and len(node.text) > 1 and node.text.isalpha():
            # \operatorname{conv} arrives as an operator; TeX sets it upright with ordinary spacing.
            node.tag = "mi"


def _spacing(el: ET.Element) -> None:
    """TeX's spacing where MathML's operator rules differ: a sign after an operator is unary
    (``= −1``, not ``= − 1``), and a function name after a factor gets a thin space (``Y log``)."""
    for parent in list(el.iter()):
        if parent.tag not in _ROWS:
            continue
        for i, kid in reversed(list(enumerate(parent))):
            prev = parent[i - 1] if i else None
            if prev is None:
                continue
            if kid.tag == "mo" and kid.text in ("\u2212", "+") and prev.tag == "mo" and prev.text not in _CLOSERS:
                kid.set("form", "prefix")
            elif kid.tag == "mi" and len(kid.text or "") > 1 and prev.tag not in ("mo", "mspace"):
                parent.insert(i, ET.Element("mspace", width="0.1667em"))


def _display_limits(node: ET.Element, display: bool) -> None:
    """In a display, a sum's limits go under and over it, as TeX sets them, except inside a matrix or a fraction."""
    for child in node:
        if display and child.tag in ("msub", "msubsup") and (_single(child[0]).text or "") in _BIG_OPERATORS:
            child.tag = "munder" if child.tag == "msub" else "munderover"
        keeps = child.tag in _ROWS or child.tag == "mtr" or (child.tag == "mtable" and child.get("class") in ("aligned", "gathered"))
        _display_limits(child, display and keeps)


@functools.lru_cache(maxsize=4096)
def to_mathml(tex: str, display: bool = False) -> str:
    r"""One formula's LaTeX as a MathML Core ``<math>`` element (``display="block"`` for a display).

    >>> to_mathml(r"\mathbb{1}[z_{12} > 0]")
    '<math><mrow><mrow><mn>𝟙</mn></mrow><mo stretchy="false">[</mo><msub><mi>z</mi><mrow><mn>12</mn></mrow></msub><mo>&gt;</mo><mn>0</mn><mo stretchy="false">]</mo></mrow></math>'
    >>> core_problems(to_mathml(r"\begin{aligned} a &= \boxed{b} \\ &\quad + \operatorname{conv}\left(X, W\right) \end{aligned}", display=True))
    []
    """
    try:
        converted = convert(_prepare(tex), display="block" if display else "inline")
    except Exception as err:  # latex2mathml raises its own and plain Python errors alike
        raise RenderError(f"--format html: cannot convert the formula {tex[:80]!r} to MathML: {str(err) or type(err).__name__}") from None
    root = ET.fromstring(converted.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "", 1))
    _to_core(root)
    _spacing(root)
    _display_limits(root, display)
    if not display:
        root.attrib.pop("display", None)
    return ET.tostring(root, encoding="unicode")


def core_problems(mathml: str) -> list[str]:
    r"""What in a MathML string is not MathML Core or still reads as TeX: an empty list when all is well.

    >>> core_problems('<math><menclose notation="box"><mi>x</mi></menclose><mtext>\\frac</mtext></math>')
    ['element menclose', 'attribute notation on menclose', 'raw TeX in mtext: \\frac']
    """
    problems = []
    for node in ET.fromstring(mathml).iter():
        tag = node.tag.rpartition("}")[2]
        if tag not in CORE_ELEMENTS:
            problems.append(f"element {tag}")
        for name, value in node.attrib.items():
            if name not in _GLOBAL_ATTRIBUTES and name not in _ELEMENT_ATTRIBUTES.get(tag, ()):
                problems.append(f"attribute {name} on {tag}")
            elif name == "mathvariant" and (value != "normal" or len(node.text or "") != 1):
                problems.append(f"mathvariant={value} on {tag} {node.text!r}")
        text = (node.text or "").strip()
        if text and _RAW_TEX.search(text):
            problems.append(f"raw TeX in {tag}: {text}")
    return problems
