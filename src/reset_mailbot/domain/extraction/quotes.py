"""Keeping only the sender's own new text (issue #3, item 2; policy "Required items").

Everything from the first quote or forward header on is history and never counts, nor does any
text after a first ">"-quoted line (answers typed inside a quoted message do not count). The one
exception is a bottom-posted reply: nothing above the quote, one block of ">" lines, then the
sender's text with nothing quoted after it. Of what remains, a signature (from a short sign-off
line such as "Met vriendelijke groet", or the sender's own name or contact line) and a legal
disclaimer are split off: their addresses are never account candidates and their words never
confirm anything (a "PS" paragraph below the sign-off is the sender's text again).

mail-parser-reply and talon were evaluated for this and both missed a wrapped "Op ... schreef"
header (leaving a quoted "Identiteit gecontroleerd: ja" in the reply); mail-parser-reply also
kept "-----Oorspronkelijk bericht-----" history. So the markers are rules in
rules/extraction.yaml, matched here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reset_mailbot.domain.extraction.rules import CompiledRules, fold

# Lines longer than this are split before matching: no rule needs more, and it bounds the work
# a hostile one-line body can cause.
MAX_LINE = 2000
_WORD = re.compile(r"[^\W\d_]+")
_PS = re.compile(r"p\.?\s?s\.?(\s|:|$)")
_CONTACT_LINE_MAX = 100
_CONTACT_LINE_WORDS = 12


@dataclass(frozen=True)
class Segments:
    body: list[str]  # the sender's own new text, line by line
    signature: list[str]  # sign-off, signature block and disclaimer
    cut: str | None  # the line where quoted history started, if any


def _chunks(line: str) -> list[str]:
    """An over-long line in pieces of at most MAX_LINE, cut at a blank where there is one in
    the second half of the piece, so that a word read for its meaning is not cut in two."""
    out: list[str] = []
    start = 0
    while len(line) - start > MAX_LINE:
        limit = start + MAX_LINE
        half = start + MAX_LINE // 2
        cut = max(line.rfind(" ", half, limit), line.rfind("\t", half, limit))
        if cut <= start:
            cut = limit
        out.append(line[start:cut])
        start = cut
    out.append(line[start:])
    return out


def split_lines(text: str) -> list[str]:
    """Lines, with over-long lines chunked."""
    lines: list[str] = []
    for line in text.split("\n"):
        if len(line) <= MAX_LINE:
            lines.append(line.rstrip())
        else:
            lines += _chunks(line)
    return lines


def _is_wrote_header(folded: list[str], i: int, rules: CompiledRules) -> bool:
    """'Op <datum> schreef <naam> <adres>:' on one line or wrapped over up to three."""
    first = folded[i]
    if rules.wrote_start is None or rules.wrote_end is None or not rules.wrote_start.match(first):
        return False
    joined = first
    for extra in range(3):
        if extra:
            if i + extra >= len(folded) or not folded[i + extra]:
                return False
            joined = f"{joined} {folded[i + extra]}"
        if len(joined) <= 600 and rules.wrote_end.search(joined):
            return True
    return False


def _is_header_block(folded: list[str], i: int, rules: CompiledRules) -> bool:
    if rules.block_first is None or rules.block_next is None:
        return False
    if not rules.block_first.match(folded[i]):
        return False
    window = folded[i + 1 : i + 1 + rules.block_window]
    return any(rules.block_next.match(line) for line in window)


def _bottom_posted(folded: list[str], cut: int, rules: CompiledRules) -> tuple[int, int] | None:
    """(start, end) of a bottom-posted reply: no text above the quote, one block of ">" lines
    (after its "Op ... schreef" header), then the sender's text with nothing quoted after it.
    Text between quoted lines (answers typed inside the quote) never qualifies."""
    if any(folded[:cut]):
        return None
    i = cut
    if not folded[i].startswith(">"):
        i += 1  # the header line(s) of the quote
        while i < len(folded) and folded[i] and not folded[i].startswith(">"):
            i += 1
    while i < len(folded) and (not folded[i] or folded[i].startswith(">")):
        i += 1
    if i >= len(folded) or not any(line.startswith(">") for line in folded[cut:i]):
        return None
    start = i
    rest = quote_start(folded[start:], rules)
    end = len(folded) if rest is None else start + rest
    if any(line.startswith(">") for line in folded[end:]):
        return None  # more quoted text follows: interleaved answers, which never count
    return start, end


def quote_start(folded: list[str], rules: CompiledRules) -> int | None:
    """Index of the first line of quoted or forwarded history."""
    for i, line in enumerate(folded):
        if not line:
            continue
        if rules.quote_header is not None and rules.quote_header.match(line):
            return i
        if _is_header_block(folded, i, rules) or _is_wrote_header(folded, i, rules):
            return i
    return None


@dataclass(frozen=True)
class Sender:
    """What we know of the sender, to find a signature that has no sign-off line."""

    address: str = ""  # normalised
    name: str = ""  # display name

    @property
    def name_words(self) -> frozenset[str]:
        return frozenset(_WORD.findall(fold(self.name)))


def _is_sender_line(
    line: str, sender: Sender, name_words: frozenset[str], rules: CompiledRules
) -> bool:
    """The sender's own name on a line of its own, or a short contact line with their address
    ("T 14 030 | j.devries@utrecht.nl"), but not a labelled item ("E-mailadres: <sender>")."""
    if len(name_words) >= 2 and frozenset(_WORD.findall(line)) == name_words:
        return True
    at = line.find(sender.address) if sender.address else -1
    if at < 0 or len(line) > _CONTACT_LINE_MAX or len(line.split()) > _CONTACT_LINE_WORDS:
        return False
    before = line[:at]
    return not (rules.account_label is not None and rules.account_label.search(before))


def signature_start(
    folded: list[str], rules: CompiledRules, sender: Sender | None = None
) -> int | None:
    """Index of the sign-off line, sender name/contact line or disclaimer that begins the
    signature."""
    name_words = sender.name_words if sender else frozenset()
    for i, line in enumerate(folded):
        if not line:
            continue
        if sender is not None and i > 0 and _is_sender_line(line, sender, name_words, rules):
            return i
        if (
            rules.signature is not None
            and len(line) <= rules.signature_max_line
            and rules.signature.match(line)
        ):
            return i
        if rules.disclaimer is not None and rules.disclaimer.search(line):
            return i
    return None


def new_text_span(folded: list[str], rules: CompiledRules) -> tuple[int, int, int | None]:
    """(start, end) of the sender's new text among the folded lines, and the index where quoted
    history starts (None: nothing quoted). Everything outside [start, end) is history."""
    cut = quote_start(folded, rules)
    if cut is None:
        return 0, len(folded), None
    below = _bottom_posted(folded, cut, rules)
    if below is not None:  # nothing above the quote: the reply is below it
        return below[0], below[1], cut
    return 0, cut, cut


def segments(text: str, rules: CompiledRules, sender: Sender | None = None) -> Segments:
    """Split a body into the sender's new text and the signature; drop quoted history."""
    lines = split_lines(text)
    folded = [fold(line.strip()) for line in lines]
    start, end, cut = new_text_span(folded, rules)
    cut_line = lines[cut] if cut is not None else None
    lines, folded = lines[start:end], folded[start:end]
    sig = signature_start(folded, rules, sender)
    if sig is None:
        return Segments(lines, [], cut_line)
    body, signature = lines[:sig], lines[sig:]
    postscript = _postscript(folded[sig:])
    if postscript is not None:  # "PS: ..." under the sign-off is the sender's own text again
        start, end = postscript
        body = [*body, "", *signature[start:end]]
        signature = signature[:start] + signature[end:]
    return Segments(body, signature, cut_line)


def _postscript(folded: list[str]) -> tuple[int, int] | None:
    """(start, end) of a paragraph starting with "PS" / "P.S." below the sign-off."""
    for i, line in enumerate(folded):
        if _PS.match(line):
            end = i + 1
            while end < len(folded) and folded[end]:
                end += 1
            return i, end
    return None
