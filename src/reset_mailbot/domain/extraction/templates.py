"""Filled-in template lines: "Identiteit gecontroleerd: ja" counts as its value says.

A template line is a label at the start of a line followed by a separator (":", a table-cell
tab, "|", "=", " - ") or the value itself; a Word table copied to plain text may put the value
on the next line. Only an unambiguous yes counts: "ja/nee" (our own unfilled template) and
anything else is no answer. Checkbox forms ("[x] Identiteit gecontroleerd") are read too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reset_mailbot.domain.extraction.rules import CompiledRules, fold
from reset_mailbot.domain.reasons import Item

_BULLET = re.compile(r"^[-*\u2022\u00b7>\s]*")
_CHECKED = re.compile(r"^(\[\s*[x\u2714\u2713v]\s*\]|\u2612|\u2611|\u2714|\u2713)\s*")
_UNCHECKED = re.compile(r"^(\[\s*\]|\u2610)\s*")
_SEPARATOR = re.compile(r"^\s*(\([^()]{0,40}\))?\s*([:=|\t]|\s[-\u2013]\s|\?\s*:?)?\s*")
_MAX_NEXT_LINE_VALUE = 40
_YES_NO_HINT = re.compile(r"\b(ja|yes)\s*(/|of|or)\s*(nee|no)\b")
_TICK = r"(\u2612|\u2611|\u2714|\u2713|\[\s*[x\u2714\u2713v]\s*\])\s*"
_TICKED_YES = re.compile(_TICK + r"(ja|yes)\b")
_TICKED_NO = re.compile(_TICK + r"(nee|no)\b")


@dataclass(frozen=True)
class TemplateAnswer:
    item: Item
    value: bool | None  # True yes, False no, None unfilled or not a yes/no
    line: str
    answer: str = ""  # what stands after the label, folded ("ja", "ja, hopelijk"); "" for a box


def _judge(value: str, rules: CompiledRules) -> bool | None:
    value = value.strip()
    if not value:
        return None
    ticked_yes, ticked_no = bool(_TICKED_YES.search(value)), bool(_TICKED_NO.search(value))
    if ticked_yes != ticked_no:  # "☒ ja ☐ nee": the one ticked box is the answer
        return ticked_yes
    if ticked_yes:  # both ticked: no answer
        return None
    if rules.tpl_no is not None and rules.tpl_no.match(value):
        return False
    if rules.tpl_yes is not None and rules.tpl_yes.match(value):
        rest = value[2:]
        if rules.negation is not None and rules.negation.search(rest):
            return None
        if rules.conditional is not None and rules.conditional.search(rest):
            return None
        if rules.future is not None and rules.future.search(rest):
            return None
        return True
    return None


def _next_value_line(folded: list[str], i: int) -> int | None:
    for j in range(i + 1, min(i + 3, len(folded))):
        if folded[j]:
            return j if len(folded[j]) <= _MAX_NEXT_LINE_VALUE else None
    return None


def template_answers(
    lines: list[str], rules: CompiledRules
) -> tuple[list[TemplateAnswer], frozenset[int]]:
    """Template answers found in `lines`, and the line indices they use (not sentences)."""
    labels = [
        (Item.IDENTITY_VERIFIED, rules.tpl_identity),
        (Item.RESET_INSTRUCTED, rules.tpl_instruction),
    ]
    folded = [fold(line.strip()) for line in lines]
    answers: list[TemplateAnswer] = []
    used: set[int] = set()
    for i, line in enumerate(folded):
        if not line or i in used:
            continue
        rest = _BULLET.sub("", line, count=1)
        box: bool | None = None
        if match := _CHECKED.match(rest):
            box, rest = True, rest[match.end() :]
        elif match := _UNCHECKED.match(rest):
            box, rest = False, rest[match.end() :]
        for item, pattern in labels:
            if pattern is None:
                continue
            label = pattern.match(rest)
            if label is None:
                continue
            after = rest[label.end() :]
            if after[:1].isalnum():
                continue  # the label is the start of a longer word
            sep = _SEPARATOR.match(after)
            value = (after[sep.end() :] if sep else after).strip(" .")
            # a parenthesis alone ("Legitimatie gezien (paspoort).") is no separator
            has_separator = bool(sep and sep.group(2))
            written = value
            if box is not None and not value:
                answer: bool | None = box
            elif value:
                answer = _judge(value, rules)
                if answer is None and not has_separator:
                    continue  # an ordinary sentence that starts like a label
            else:
                nxt = _next_value_line(folded, i)
                answer = _judge(folded[nxt], rules) if nxt is not None else None
                if nxt is not None and answer is not None:
                    used.add(nxt)
                    written = folded[nxt].strip(" .")
                elif not has_separator and not (sep and _YES_NO_HINT.search(sep.group(1) or "")):
                    continue  # "Legitimatie gezien (paspoort)." is a sentence
            used.add(i)
            answers.append(TemplateAnswer(item, answer, lines[i].strip(), written))
            break
    return answers, frozenset(used)
