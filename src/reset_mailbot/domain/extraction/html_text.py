"""HTML to plain text that keeps what extraction needs (issue #3, item 1).

Paragraphs stay lines, a table row stays one line with its cells separated by a tab (so a Word
template's label cell and value cell read as one "label<TAB>value" line), and a mailto: target
that the link text does not show is kept as "<mailto:address>". Quoted history is cut here, where
the structure still shows it: at the first blockquote, Gmail/Yahoo/Thunderbird quote container,
Outlook's `div#appendonsend`/`divRplyFwdMsg` or border-top divider block, a QUOTE_MARK line is
written and the walk stops. Signature containers get a SIGNATURE_MARK line.

lxml (libxml2's HTML parser) parses; the walk is iterative, so deep nesting cannot exhaust
the stack.
"""

from __future__ import annotations

import re

from lxml import etree

QUOTE_MARK = "\x1equote\x1e"
SIGNATURE_MARK = "\x1esig\x1e"

_SKIP = frozenset({"head", "style", "script", "title", "meta", "xml", "template", "noscript"})
_BLOCK = frozenset(
    {
        "p", "div", "tr", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "table",
        "pre", "address", "section", "article", "header", "footer", "dd", "dt", "dl", "hr",
        "center", "form", "fieldset", "tbody", "thead", "tfoot", "caption", "body",
    }
)
_CELL = frozenset({"td", "th"})
_QUOTE_CLASSES = (
    "gmail_quote", "yahoo_quoted", "moz-cite-prefix", "protonmail_quote",
    "ms-outlook-mobile-reference-message", "outlookmessageheader",
)
_QUOTE_IDS = (  # prefixes: Outlook numbers and prefixes them ("x_divRplyFwdMsg", "...-container")
    "appendonsend", "divrplyfwdmsg", "x_divrplyfwdmsg", "x_appendonsend",
    "mail-editor-reference-message", "ms-outlook",
)
_SIGNATURE_CLASSES = ("gmail_signature", "moz-signature")
_SIGNATURE_IDS = ("signature", "x_signature", "appendsignature")
_BORDER_TOP = re.compile(r"border-top\s*:\s*solid", re.IGNORECASE)
_SPACE = re.compile(r"[ \t\r\n\f\v\u00a0\u200b]+")
_TAG = re.compile(r"<[^<>]*>")
# a run of blanks that holds a cell tab; the lookbehind starts a match only where a run starts
# (" *\t[ \t]*" tried every position of a long run of spaces: quadratic, 23 s on 300 KB)
_CELL_GAP = re.compile(r"(?<![ \t])[ \t]*\t[ \t]*")
_MAILTO = re.compile(r"^\s*mailto:([^?\s]+)", re.IGNORECASE)


def _is_quote(attrs: dict[str, str], tag: str) -> bool:
    if tag == "blockquote":
        return True
    cls = attrs.get("class", "").lower()
    if cls and any(c in cls for c in _QUOTE_CLASSES):
        return True
    ident = attrs.get("id", "").lower()
    if ident.startswith(_QUOTE_IDS):
        return True
    if tag == "div":
        style = attrs.get("style", "")
        # Outlook desktop: the reply header sits in a div with only a top border
        if _BORDER_TOP.search(style) and "border:none" in style.replace(" ", "").lower():
            return True
    return False


_HIDDEN_STYLE = re.compile(
    r"display:none|visibility:hidden|mso-hide:all|opacity:0(?:\.0+)?(?:;|$)"
    r"|(?:^|;)font-size:0(?:\.0+)?(?:px|pt|em|rem|%)?(?:;|$)"
    r"|(?:^|;)(?:max-)?height:0(?:px)?(?:;|$)[^<>]{0,200}overflow:hidden"
)
_WHITE = re.compile(r"(?:^|;)color:(?:#fff(?:fff)?|white|rgb\(255,255,255\))(?:;|$)")
_BACKGROUND = re.compile(r"background(?:-color)?:")


def _is_hidden(attrs: dict[str, str]) -> bool:
    """Text a reader does not see (issue #12: "what is read is what is shown"): the hidden
    attribute, display:none, visibility:hidden, Outlook's mso-hide:all, zero font size or
    opacity, a collapsed box, and white text on the default white background."""
    if "hidden" in attrs:
        return True
    style = attrs.get("style", "").replace(" ", "").replace("\t", "").lower()
    if style:
        if _HIDDEN_STYLE.search(style):
            return True
        if _WHITE.search(style) and not _BACKGROUND.search(style):
            return True
    color = attrs.get("color", "").replace(" ", "").lower()  # <font color=...>
    return color in {"#fff", "#ffffff", "white"}


def _is_signature(attrs: dict[str, str]) -> bool:
    cls = attrs.get("class", "").lower()
    ident = attrs.get("id", "").lower()
    return any(c in cls for c in _SIGNATURE_CLASSES) or ident in _SIGNATURE_IDS


_NO_ATTRIBUTES: dict[str, str] = {}

#: A document tree costs ~150 bytes per element whatever the markup: 300 KB of bare "<p>"
#: (100,000 elements) took 15 MB, 50x its size. Outlook's markup has ~30 bytes per opening tag.
_MANY_TAGS = 2000
_MIN_BYTES_PER_TAG = 10


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body; never raises (returns "" for unparseable input, and for
    markup so dense in tags that building its tree would cost many times its size)."""
    if not markup or not markup.strip():
        return ""
    tags = markup.count("<") - markup.count("</")
    if tags > _MANY_TAGS and len(markup) < tags * _MIN_BYTES_PER_TAG:
        return ""
    try:
        # plain etree elements: lxml.html's per-element class lookup doubled the walk's cost
        root = etree.fromstring(markup, etree.HTMLParser())
    except (etree.ParserError, etree.XMLSyntaxError, ValueError, TypeError):
        return _stripped(markup)
    if root is None:  # libxml2 found no document in it
        return _stripped(markup)
    out: list[str] = []
    in_cell = 0
    pending_mailto: list[str | None] = []
    hidden: set[etree._Element] = set()
    walker = etree.iterwalk(root, events=("start", "end"))
    for event, el in walker:
        tag = el.tag if isinstance(el.tag, str) else ""
        tag = tag.rpartition("}")[2].lower()  # o:p and namespaced tags
        if event == "start":
            if not tag:  # comment or processing instruction: its text is not content
                walker.skip_subtree()
                if el.tail:
                    out.append(_SPACE.sub(" ", el.tail))
                continue
            if tag in _SKIP:
                walker.skip_subtree()
                continue
            items = el.items()
            attrs = dict(items) if items else _NO_ATTRIBUTES  # each attribute read once
            if attrs and _is_hidden(attrs):
                walker.skip_subtree()  # its end event still comes: the tail is written there
                hidden.add(el)
                continue
            if _is_quote(attrs, tag):
                out.append("\n" + QUOTE_MARK + "\n")
                break
            if attrs and _is_signature(attrs):
                out.append("\n" + SIGNATURE_MARK + "\n")
            if tag in _CELL:
                in_cell += 1
            elif tag == "br":
                out.append(" " if in_cell else "\n")
            elif tag in _BLOCK:
                out.append(" " if in_cell and tag != "tr" else "\n")
            elif tag == "a":
                match = _MAILTO.match(attrs.get("href", ""))
                pending_mailto.append(match.group(1) if match else None)
            if el.text:
                out.append(_SPACE.sub(" ", el.text))
        else:
            if el in hidden:
                hidden.discard(el)
                if tag in _BLOCK:
                    out.append(" " if in_cell else "\n")
                if el.tail:
                    out.append(_SPACE.sub(" ", el.tail))
                continue
            if not tag or tag in _SKIP:
                continue
            if tag in _CELL:
                in_cell = max(0, in_cell - 1)
                out.append("\t")
            elif tag in _BLOCK:
                out.append(" " if in_cell and tag != "tr" else "\n")
            elif tag == "a" and pending_mailto:
                target = pending_mailto.pop()
                if target and target.lower() not in "".join(el.itertext()).lower():
                    out.append(f" <mailto:{target}>")
            if el.tail:
                out.append(_SPACE.sub(" ", el.tail))
    text = _tidy("".join(out))
    return text if text else _stripped(markup)


def _stripped(markup: str) -> str:
    """Last resort for markup libxml2 gives up on (e.g. nesting deeper than it allows)."""
    if "<" not in markup:
        return _tidy(markup)
    return _tidy(_SPACE.sub(" ", _TAG.sub(" ", markup)))


def _tidy(text: str) -> str:
    """Strip each line, squeeze the spaces around cell tabs, drop runs of blank lines."""
    lines: list[str] = []
    for raw in text.split("\n"):
        line = _CELL_GAP.sub("\t", raw.strip(" \t"))
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip("\n")
