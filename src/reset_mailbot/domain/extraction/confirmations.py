"""The two confirmations: identity verified, and reset instructed (issue #3, item 3).

A sentence confirms only when it matches an affirmative rule and carries no refusal marker:
negation (in its own clause), condition (anywhere in the sentence), future; for the identity
check also modal/hedged/hearsay forms and any question. For the instruction a polite request in
question form counts ("Kunnen jullie de 2FA resetten?"); a question for information, a request
for feedback or someone else's wish does not. A negated statement or a "nee" in a template
vetoes the item even when another sentence affirms it: contradictions are for a human.

Talk *about* an item that could never confirm it ("we zullen de identiteit controleren", a reset
named without a request) only explains why the item is missing (question / conditional /
negated); it never confirms and never vetoes. A question the sender answers at once
("Is de identiteit gecontroleerd? Ja.") is read as one statement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reset_mailbot.domain.extraction.rules import CompiledRules
from reset_mailbot.domain.extraction.sentences import Sentence
from reset_mailbot.domain.extraction.templates import TemplateAnswer
from reset_mailbot.domain.reasons import Item, MissingDetail

_CLAUSE = re.compile(r"[,;()]|\s[-\u2013]\s|(?<!\w)(?:en|and|maar|but|terwijl|while)(?!\w)")
# an instruction's request and object may sit on both sides of "en"/"and": "Kunnen jullie de
# identiteit controleren en daarna de 2FA resetten?", "Please go ahead and reset the 2FA."
_REQUEST_CLAUSE = re.compile(r"[,;()]|\s[-\u2013]\s|(?<!\w)(?:maar|but|terwijl|while)(?!\w)")
_HARD_BREAK = re.compile(r";")
_CONTRAST = re.compile(r"(?<!\w)(?:maar|but)(?!\w)")
_ANSWER_YES = re.compile(r"(ja|yes|jazeker|klopt|correct)\b")
_ANSWER_NO = re.compile(r"(nee|neen|no)\b")
_SHORT_ANSWER = 3


@dataclass(frozen=True)
class Finding:
    """The verdict on one item: confirmed (with evidence) or missing (with a reason if any)."""

    confirmed: bool
    evidence: str | None = None
    kind: str = "sentence"
    detail: MissingDetail | None = None
    mention: bool = False  # talk about the item that could never confirm it
    stopped_at: str | None = None  # the word that stopped a confirmation (allowlist.py)
    rule: str | None = None  # the grammar form that matched (allowlist.py)


def _clauses(text: str, splitter: re.Pattern[str] = _CLAUSE) -> Iterator[tuple[int, str]]:
    start = 0
    for match in splitter.finditer(text):
        yield start, text[start : match.start()]
        start = match.end()
    yield start, text[start:]


def _clause_at(
    text: str, pos: int, splitter: re.Pattern[str] = _CLAUSE
) -> tuple[int, str]:
    """(start, clause): the clause (between commas, "en", "maar"...) that contains `pos`."""
    for start, clause in _clauses(text, splitter):
        if start <= pos <= start + len(clause):
            return start, clause
    return 0, text


def _neutralised(text: str, rules: CompiledRules) -> str:
    if rules.neutral is None:
        return text
    return rules.neutral.sub(lambda m: " " * len(m.group()), text)


def _scope(text: str, pos: int, rules: CompiledRules) -> str:
    """The part of the sentence between clause breaks ("omdat", "because", ";") around `pos`."""
    cuts = [m.start() for m in _HARD_BREAK.finditer(text)]
    if rules.clause_break is not None:
        cuts += [m.start() for m in rules.clause_break.finditer(text)]
    before = [c for c in cuts if c <= pos]
    after = [c for c in cuts if c > pos]
    return text[max(before, default=0) : min(after, default=len(text))]


def _common_refusal(
    text: str,
    clause: str,
    scope: str,
    future_scope: str,
    rules: CompiledRules,
    question: bool,
) -> MissingDetail | None:
    """Why a matching sentence does not confirm, most telling reason first: a label-only line,
    a negation in the statement's own clause ("do not reset"), a condition anywhere in the
    sentence, a question, a negation elsewhere in `scope`, a future in `future_scope`."""
    if rules.label_only is not None and rules.label_only.match(text):
        return MissingDetail.NOT_FOUND
    if rules.negation is not None and rules.negation.search(clause):
        return MissingDetail.NEGATED
    if rules.conditional is not None and rules.conditional.search(text):
        return MissingDetail.CONDITIONAL
    if question or (rules.indirect_question and rules.indirect_question.search(text)):
        return MissingDetail.QUESTION
    if rules.negation is not None and rules.negation.search(scope):
        return MissingDetail.NEGATED
    if rules.future is not None and rules.future.search(future_scope):
        return MissingDetail.CONDITIONAL
    return None


def _identity_position(folded: str, rules: CompiledRules) -> int | None:
    if rules.id_phrase is not None and (m := rules.id_phrase.search(folded)):
        return m.start()
    if rules.id_subject is None or rules.id_verb is None:
        return None
    if not (rules.id_subject.search(folded) and rules.id_verb.search(folded)):
        return None  # cheap test on the whole sentence before the per-clause one
    for start, clause in _clauses(folded):
        subject = rules.id_subject.search(clause)
        if subject and rules.id_verb.search(clause):
            return start + subject.start()
    return None


def _identity_mention(folded: str, rules: CompiledRules) -> int | None:
    if rules.id_mention is not None and (m := rules.id_mention.search(folded)):
        return m.start()
    if rules.id_subject is None or rules.id_mention_verb is None:
        return None
    for start, clause in _clauses(folded):
        subject = rules.id_subject.search(clause)
        if subject and rules.id_mention_verb.search(clause):
            return start + subject.start()
    return None


def _other_topic_cut(text: str, pos: int, scope: str, rules: CompiledRules) -> str:
    """Cut the identity scope at "maar"/"but" when what follows is about the reset itself:
    "De identiteit is gecontroleerd, maar wij willen niet dat de 2FA al wordt gereset"."""
    offset = text.find(scope)
    # Searching the rest after every "maar" anew is quadratic in a sentence full of them; the
    # next hit of each pattern is remembered instead: a hit at or after a later "maar" is still
    # the next one, and no hit from an earlier point means none from a later one. A "maar" is
    # never followed by a word character, so searching scope from its end finds what searching
    # the cut-off rest would (the rule patterns start with a word character).
    patterns = [p for p in (rules.in_object, rules.in_own_target) if p is not None]
    next_hit: list[int | None] = [-1] * len(patterns)  # -1: not searched yet
    for match in _CONTRAST.finditer(scope):
        if offset + match.start() <= pos:
            continue
        end = match.end()
        for n, pattern in enumerate(patterns):
            hit = next_hit[n]
            if hit is not None and hit < end:
                found = pattern.search(scope, end)
                hit = next_hit[n] = found.start() if found else None
            if hit is not None:
                return scope[: match.start()]
    return scope


def _identity_sentence(s: Sentence, rules: CompiledRules, mentions: bool) -> Finding | None:
    pos = _identity_position(s.folded, rules)
    mention = pos is None
    if pos is None:
        pos = _identity_mention(s.folded, rules) if mentions else None
        if pos is None:
            return None
    text = _neutralised(s.folded, rules)
    scope = _other_topic_cut(text, pos, _scope(text, pos, rules), rules)
    start, clause = _clause_at(text, pos)
    own = _scope(clause, pos - start, rules)  # "omdat"/"because" ends the clause too
    refusal = _common_refusal(text, own, scope, scope, rules, question="?" in s.text)
    if refusal is None and rules.identity_only is not None and rules.identity_only.search(text):
        refusal = MissingDetail.CONDITIONAL  # hedged or hearsay, anywhere in the sentence
    modal = rules.identity_modal
    if refusal is None and modal is not None and modal.search(clause):
        refusal = MissingDetail.CONDITIONAL  # "moet nog gecontroleerd worden"
    if refusal is not None:
        return Finding(False, s.text, detail=refusal, mention=mention)
    return None if mention else Finding(True, s.text)


def _instruction_position(folded: str, rules: CompiledRules) -> int | None:
    if (
        rules.in_other_target is not None
        and rules.in_other_target.search(folded)
        and not (rules.in_own_target and rules.in_own_target.search(folded))
    ):
        return None  # a password or PIN reset is not a 2FA reset
    if rules.in_phrase is not None and (m := rules.in_phrase.search(folded)):
        return m.start()
    if rules.in_request is None or rules.in_object is None:
        return None
    names_2fa = bool(rules.in_own_target and rules.in_own_target.search(folded))
    has_object = rules.in_object.search(folded) or (
        names_2fa and rules.in_weak_object is not None and rules.in_weak_object.search(folded)
    )
    if not has_object or not rules.in_request.search(folded):
        return None  # cheap test on the whole sentence before the per-clause one
    for start, clause in _clauses(folded, _REQUEST_CLAUSE):
        request = rules.in_request.search(clause)
        if request is None:
            continue
        if rules.in_object.search(clause) or (
            names_2fa and rules.in_weak_object is not None and rules.in_weak_object.search(clause)
        ):
            return start + request.start()
    return None


def _instruction_mention(folded: str, rules: CompiledRules) -> int | None:
    """A reset named without a request: never an instruction, but may say why it is missing."""
    if rules.in_object is None:
        return None
    if (
        rules.in_other_target is not None
        and rules.in_other_target.search(folded)
        and not (rules.in_own_target and rules.in_own_target.search(folded))
    ):
        return None
    if m := rules.in_object.search(folded):
        return m.start()
    names_2fa = bool(rules.in_own_target and rules.in_own_target.search(folded))
    weak = rules.in_weak_object
    if names_2fa and weak is not None and (m := weak.search(folded)):
        return m.start()
    return None


def _instruction_sentence(s: Sentence, rules: CompiledRules, mentions: bool) -> Finding | None:
    pos = _instruction_position(s.folded, rules)
    mention = pos is None
    if pos is None:
        pos = _instruction_mention(s.folded, rules) if mentions else None
        if pos is None:
            return None
    text = _neutralised(s.folded, rules)
    scope = _scope(text, pos, rules)
    start, clause = _clause_at(text, pos, _REQUEST_CLAUSE)
    # a future in a later clause ("..., ze komt morgen langs") does not defer the order; one
    # in its own or an earlier clause does ("De ID wordt morgen gecontroleerd, graag dan ...")
    question = "?" in s.text and not (rules.in_polite and rules.in_polite.search(text))
    own = _scope(clause, pos - start, rules)  # "omdat"/"because" ends the clause too
    refusal = _common_refusal(
        text, own, scope, text[: start + len(clause)], rules, question=question
    )
    for pattern in (rules.in_third_party, rules.in_other_request):
        if refusal is None and pattern is not None and pattern.search(own):
            # someone else's wish, a request for feedback or for information
            refusal = MissingDetail.QUESTION if "?" in s.text else MissingDetail.NOT_FOUND
    if refusal is not None:
        return Finding(False, s.text, detail=refusal, mention=mention)
    return None if mention else Finding(True, s.text)


def _combine(findings: list[Finding], answers: list[TemplateAnswer], item: Item) -> Finding:
    templates = [a for a in answers if a.item is item]
    if any(a.value is False for a in templates):  # "Identiteit gecontroleerd: nee"
        return Finding(False, detail=MissingDetail.NEGATED)
    if any(f.detail is MissingDetail.NEGATED and not f.mention for f in findings):
        return Finding(False, detail=MissingDetail.NEGATED)  # a contradiction is for a human
    yes = next((a for a in templates if a.value is True), None)
    if yes is not None:
        return Finding(True, yes.line, kind="template")
    confirmed = next((f for f in findings if f.confirmed), None)
    if confirmed is not None:
        return confirmed
    details = [f.detail for f in findings if f.detail not in (None, MissingDetail.NOT_FOUND)]
    if MissingDetail.NEGATED in details:  # "said not to be so" outweighs "asked" or "later"
        return Finding(False, detail=MissingDetail.NEGATED)
    return Finding(False, detail=details[0] if details else None)


def _answered(sentences: list[Sentence]) -> list[Sentence]:
    """A question the sender answers at once ("Is de identiteit gecontroleerd? Nee, nog niet.",
    "Mogen jullie resetten? Ja.") is read as one statement: a short yes, or any no."""
    out: list[Sentence] = []
    skip = False
    for i, s in enumerate(sentences):
        if skip:
            skip = False
            continue
        nxt = sentences[i + 1] if i + 1 < len(sentences) else None
        if nxt is not None and s.text.rstrip().endswith("?"):
            yes = _ANSWER_YES.match(nxt.folded) and len(nxt.folded.split()) <= _SHORT_ANSWER
            if yes or _ANSWER_NO.match(nxt.folded):
                text = f"{s.text.rstrip()[:-1]}: {nxt.text}"
                out.append(Sentence(text, f"{s.folded.rstrip()[:-1]}: {nxt.folded}", s.line))
                skip = True
                continue
        out.append(s)
    return out


def _judge(
    sentences: list[Sentence],
    answers: list[TemplateAnswer],
    rules: CompiledRules,
    item: Item,
    judge: Callable[[Sentence, CompiledRules, bool], Finding | None],
) -> Finding:
    """Confirmations first; only when the item is missing, look for mentions that explain why
    (most requests are complete, so the hot path skips that second pass)."""
    units = _answered(sentences)
    found = [f for s in units if (f := judge(s, rules, False)) is not None]
    verdict = _combine(found, answers, item)
    if verdict.confirmed or verdict.detail is MissingDetail.NEGATED:
        return verdict
    found = [f for s in units if (f := judge(s, rules, True)) is not None]
    return _combine(found, answers, item)


def identity_verified(
    sentences: list[Sentence], answers: list[TemplateAnswer], rules: CompiledRules
) -> Finding:
    return _judge(sentences, answers, rules, Item.IDENTITY_VERIFIED, _identity_sentence)


def reset_instructed(
    sentences: list[Sentence], answers: list[TemplateAnswer], rules: CompiledRules
) -> Finding:
    return _judge(sentences, answers, rules, Item.RESET_INSTRUCTED, _instruction_sentence)
