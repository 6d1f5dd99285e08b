"""Sentences of the sender's new text, the unit confirmations are judged in.

Lines are joined where plain text was hard-wrapped mid-sentence (a long line without a final
punctuation mark followed by a line starting in lower case); then split at sentence ends. A
"?" always ends a sentence, so a question never hides in a longer one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reset_mailbot.domain.extraction.rules import fold

# a period after a title or an initial ("Mr. Jansen", "mw. De Vries", "R. Koster") ends no
# sentence: the allowlist reads a sentence as a whole, so a cut there loses the confirmation
_TITLES = "".join(rf"(?<!\b{t}\.)" for t in ("Mr", "Ms", "Dr", "Mw", "mw", "Dhr", "dhr", "Mrs",
                                              "Mevr", "mevr", "St", "Nr", "nr"))
_SENTENCE_END = re.compile(
    r"(?<=[!?])\s+|(?<=\.)" + _TITLES + r"(?<!\b[A-Z]\.)\s+(?=[A-Z0-9\"'(\[\u00c0-\u00de])"
)
_WRAP_MIN = 50
MAX_SENTENCES = 400


@dataclass(frozen=True)
class Sentence:
    text: str  # as written (for evidence)
    folded: str  # what rules are matched on
    line: int  # index of the first line it comes from


def _units(lines: list[str], skip: frozenset[int]) -> list[tuple[str, int]]:
    """Paragraph pieces: lines, re-joined where a sentence was hard-wrapped."""
    units: list[tuple[str, int]] = []
    buf, start = "", 0
    for i, raw in enumerate(lines):
        line = raw.strip().replace("\t", " ")
        if not line or i in skip:
            if buf:
                units.append((buf, start))
            buf = ""
            continue
        if buf and len(buf) >= _WRAP_MIN and buf[-1] not in ".!?:;" and line[0].islower():
            buf = f"{buf} {line}"
            continue
        if buf:
            units.append((buf, start))
        buf, start = line, i
    if buf:
        units.append((buf, start))
    return units


def sentences(lines: list[str], skip: frozenset[int] = frozenset()) -> list[Sentence]:
    """Sentences of `lines`, leaving out the line indices in `skip` (template lines)."""
    out: list[Sentence] = []
    for unit, start in _units(lines, skip):
        for piece in _SENTENCE_END.split(unit):
            piece = piece.strip()
            if piece:
                out.append(Sentence(piece, fold(piece), start))
                if len(out) >= MAX_SENTENCES:
                    return out
    return out
