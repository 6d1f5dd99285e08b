"""The optional case reference (issue #3, item 5): dossier-, zaak-, klant-, kenmerknummer.

Kept exactly as written. "n.v.t." and other non-values have no digits and never match; a number
labelled as a BSN is never a reference (policy clarification).
"""

from __future__ import annotations

import re

from reset_mailbot.domain.extraction.rules import CompiledRules, fold

_BEFORE_LABEL = 6  # "BSN / klantnummer: ..."
_AFTER_VALUE = 12  # "klantnummer: 123456782 (BSN)"
_BARE_LABEL_MAX = 40
_DIGIT = re.compile(r"\d")


def _joined(lines: list[str]) -> list[str]:
    """Lines, with a value on the next line appended to a bare label line ("Dossiernummer" /
    "4412-88": a Word table copied to plain text puts each cell on its own line)."""
    out: list[str] = []
    for i, raw in enumerate(lines):
        line = raw.strip()
        if line and len(line) <= _BARE_LABEL_MAX and not any(ch.isdigit() for ch in line):
            nxt = next((n.strip() for n in lines[i + 1 : i + 3] if n.strip()), "")
            if nxt and len(nxt) <= _BARE_LABEL_MAX and " " not in nxt:
                line = f"{line.rstrip(':')}: {nxt}"
        out.append(line)
    return out


def case_reference(lines: list[str], rules: CompiledRules) -> tuple[str, str] | None:
    """(reference as written, the line it is on), or None."""
    if rules.ref_label is None:
        return None
    for line in _joined(lines):
        if not line or not _DIGIT.search(line):
            continue  # a reference has digits: most lines need no label search at all
        folded = fold(line)
        for match in rules.ref_label.finditer(folded):
            value = match.group("value")
            if sum(ch.isdigit() for ch in value) < rules.ref_min_digits:
                continue
            context = folded[max(0, match.start() - _BEFORE_LABEL) : match.end() + _AFTER_VALUE]
            if rules.ref_forbidden is not None and rules.ref_forbidden.search(context):
                continue
            if len(folded) == len(line):
                value = line[match.start("value") : match.end("value")]
            return value, line
    return None
