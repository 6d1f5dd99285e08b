"""Evidence sentences marked in the text a person reads (pure).

The decision stored each item's evidence as the sentence it read; the console shows the
sender's text with those sentences highlighted and labelled with the item and the grammar
rule that matched. A sentence is found whitespace-insensitively (the reader joined soft line
breaks); one that cannot be found is listed under the text instead, never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ITEM_LABELS = {
    "account_email": "account e-mail",
    "identity_verified": "identity checked",
    "reset_instructed": "reset instructed",
    "case_reference": "case reference",
}


@dataclass(frozen=True)
class Segment:
    text: str
    label: str | None = None  # "identity checked (nl:passive)" for a highlighted sentence


def evidence_label(evidence: dict[str, Any]) -> str:
    item = str(evidence.get("item") or "")
    label = ITEM_LABELS.get(item, item)
    rule = evidence.get("rule")
    return f"{label} ({rule})" if rule else label


def _pattern(sentence: str) -> re.Pattern[str] | None:
    words = sentence.split()
    if not words:
        return None
    return re.compile(r"\s+".join(re.escape(w) for w in words[:200]), re.IGNORECASE)


def highlight(text: str, evidence: list[dict[str, Any]]) -> tuple[list[Segment], list[dict]]:
    """The text cut into plain and highlighted segments, and the evidence not found in it."""
    spans: list[tuple[int, int, str]] = []
    unplaced: list[dict[str, Any]] = []
    for item in evidence:
        pattern = _pattern(str(item.get("text") or ""))
        match = pattern.search(text) if pattern else None
        if match is None or any(s < match.end() and match.start() < e for s, e, _ in spans):
            unplaced.append(item)
            continue
        spans.append((match.start(), match.end(), evidence_label(item)))
    segments: list[Segment] = []
    at = 0
    for start, end, label in sorted(spans):
        if start > at:
            segments.append(Segment(text[at:start]))
        segments.append(Segment(text[start:end], label))
        at = end
    if at < len(text):
        segments.append(Segment(text[at:]))
    return segments, unplaced
