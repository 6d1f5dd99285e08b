"""What a municipality actually wrote in one message, for people to read (issue #17).

`reset-mailbot messages show ID --body` and the web console show a stored message's own new
text with the quoted history folded away ("[... 12 quoted lines hidden]"). Pure: the bytes go
through the product's one parser (`message.parse_message`: the wire gate, then the stdlib MIME
tree), the body is chosen as the extraction chooses it (`extraction.body.body_text`: text/plain,
else the HTML rendered to text) and the quote is found by the extraction's own rules
(`extraction.quotes.new_text_span`, rules/extraction.yaml), so what people read is cut where
the decision cut it. The signature stays in the new text: it is what the sender wrote.

Bounded: each text is capped at MAX_CHARS (`truncated` says so); the parser's own limits
(`WireLimits`, `MAX_BODY_CHARS`) apply before that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from reset_mailbot.domain.extraction.body import MAX_BODY_CHARS, body_text
from reset_mailbot.domain.extraction.quotes import new_text_span, split_lines
from reset_mailbot.domain.extraction.rules import fold
from reset_mailbot.domain.message import decoded_words, parse_message

if TYPE_CHECKING:
    from reset_mailbot.domain.extraction.rules import ExtractionRules

#: at most this many characters of the new text, and of the quoted text, are returned
MAX_CHARS = 20_000


@dataclass(frozen=True)
class ReadableText:
    """One message as a person reads it."""

    new_text: str  # the sender's own text (signature included), without quoted history
    quoted: str  # what was folded away: the quoted or forwarded history
    subject: str  # decoded (RFC 2047)
    truncated: bool  # a text was cut at MAX_CHARS (or the body at the parser's limit)

    @property
    def quoted_lines(self) -> int:
        """How many non-empty lines were folded away, for "[... N quoted lines hidden]"."""
        return sum(1 for line in self.quoted.splitlines() if line.strip())


def readable_text(raw: bytes, rules: ExtractionRules | None = None) -> ReadableText:
    """The new text, the folded quote and the subject of the raw message `raw`. Never raises.

    `rules`: the loaded extraction rules (`RuleSet.extraction`), whose quote markers ("Op ...
    schreef", "-----Oorspronkelijk bericht-----", Outlook's "Van:/Verzonden:" block, ">")
    find where the history starts. Without them only ">"-quoted lines are folded.
    """
    parsed = parse_message(raw)
    subject = _clean(decoded_words(parsed.subject)) if parsed.subject else ""
    if parsed.message is None:
        return ReadableText("", "", subject, False)
    compiled = rules.compiled if rules is not None else None
    body = body_text(parsed.message, compiled.plain_stub if compiled is not None else None)
    lines = split_lines(body.text)
    folded = [fold(line.strip()) for line in lines]
    if compiled is not None:
        start, end, _ = new_text_span(folded, compiled)
    else:
        start, end = 0, next((i for i, f in enumerate(folded) if f.startswith(">")), len(lines))
    new_text, cut_new = _capped("\n".join(lines[start:end]))
    quoted, cut_quoted = _capped("\n".join([*lines[:start], *lines[end:]]))
    truncated = cut_new or cut_quoted or len(body.text) >= MAX_BODY_CHARS
    return ReadableText(new_text, quoted, subject, truncated)


def _clean(text: str) -> str:
    return " ".join(text.split())[:1000]


def _capped(text: str) -> tuple[str, bool]:
    text = text.strip("\n")
    if len(text) <= MAX_CHARS:
        return text, False
    return text[:MAX_CHARS], True
