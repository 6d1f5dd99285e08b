"""Typed extraction rules (rules/phrases.*.yaml, rules/extraction.yaml) and their compiled form.

The rules are data that support staff can extend; every pattern is a Python regular expression
that must compile and be written in lower case, checked at load time. Patterns are matched on
*folded* text (lower case, diacritics removed, typographic quotes made plain), so rules are
written in that form; diacritics in a rule are removed too, so "geïdentificeerd" still works.
Regexes are compiled once per rule set (`ExtractionRules.compiled`), never per message.

Python's `re` backtracks, so every pattern (the rules and the wrappers built around them here) is
written to run in linear time: no two repetitions that can match the same character next to each
other, and line patterns anchored with \\A so that even a search tries one position.
tests/unit/test_regex_linear_time.py runs each compiled pattern on hostile 100 KB inputs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from reset_mailbot.domain.extraction.grammar import Grammar, GrammarRules

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})


def fold(text: str) -> str:
    """Lower-case, strip diacritics and typographic quotes: the form every rule is matched on."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKD", text.translate(_QUOTES))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower()


def fold_pattern(pattern: str) -> str:
    """Diacritics removed like `fold`, but case kept: "\\W" and "\\w" differ in a regex."""
    if pattern.isascii():
        return pattern
    pattern = unicodedata.normalize("NFKD", pattern.translate(_QUOTES))
    return "".join(ch for ch in pattern if not unicodedata.combining(ch))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_ESCAPE = re.compile(r"\\.")


def _check_patterns(value: list[str]) -> list[str]:
    for pattern in value:
        if not pattern.strip():
            raise ValueError("empty pattern")
        if any(ch.isupper() for ch in _ESCAPE.sub("", pattern)):
            # text is lower-cased before matching, so an upper-case letter could never match
            raise ValueError(f"pattern {pattern!r} must be written in lower case")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from exc
    return value


def _no_yaml_booleans(value: object) -> object:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, bool):
                raise ValueError(
                    f"YAML read a bare word as the boolean {item}: quote it (e.g. 'no', 'false')"
                )
    return value


Patterns = Annotated[
    list[str], BeforeValidator(_no_yaml_booleans), AfterValidator(_check_patterns)
]


class IdentityPhrases(_Strict):
    """An identity check is a *subject* (identiteit, paspoort) near a *verb* (gecontroleerd)."""

    subjects: Patterns = Field(min_length=1)
    verbs: Patterns = Field(min_length=1)
    phrases: Patterns = Field(default_factory=list)
    # a subject with one of these, or a mention phrase, is talk *about* the check: it never
    # confirms, but a refusal in it says why the item is missing ("zullen ... controleren")
    mention_verbs: Patterns = Field(default_factory=list)
    mentions: Patterns = Field(default_factory=list)



class InstructionPhrases(_Strict):
    """An instruction is a *request* marker with a reset *object*, or a stand-alone phrase."""

    requests: Patterns = Field(min_length=1)
    objects: Patterns = Field(min_length=1)
    weak_objects: Patterns = Field(default_factory=list)
    phrases: Patterns = Field(default_factory=list)
    polite_questions: Patterns = Field(default_factory=list)
    third_party: Patterns = Field(default_factory=list)
    other_requests: Patterns = Field(default_factory=list)
    other_targets: Patterns = Field(default_factory=list)
    own_targets: Patterns = Field(default_factory=list)



class Refusals(_Strict):
    """Markers that make a matching sentence *not* a confirmation (policy: negated, conditional)."""

    negation: Patterns = Field(min_length=1)
    conditional: Patterns = Field(min_length=1)
    indirect_questions: Patterns = Field(default_factory=list)
    future: Patterns = Field(default_factory=list)
    identity_modal: Patterns = Field(default_factory=list)
    identity_only: Patterns = Field(default_factory=list)
    label_only: Patterns = Field(default_factory=list)
    neutral: Patterns = Field(default_factory=list)



class PhraseRules(_Strict):
    """One language's phrase file."""

    language: str = Field(min_length=2)
    identity: IdentityPhrases
    instruction: InstructionPhrases
    refuse: Refusals
    clause_breaks: Patterns = Field(default_factory=list)



class QuoteRules(_Strict):
    """Where the sender's own text ends: quoted history, signatures and disclaimers."""

    headers: Patterns = Field(min_length=1)
    wrote_start: Patterns = Field(min_length=1)
    wrote_end: Patterns = Field(min_length=1)
    header_block_first: Patterns = Field(min_length=1)
    header_block_next: Patterns = Field(min_length=1)
    header_block_window: int = Field(default=4, ge=1, le=10)
    signatures: Patterns = Field(min_length=1)
    signature_max_line: int = Field(default=80, ge=10)
    disclaimers: Patterns = Field(default_factory=list)
    plain_stubs: Patterns = Field(default_factory=list)



class TemplateRules(_Strict):
    """Filled-in template lines ("Identiteit gecontroleerd: ja")."""

    identity_verified: Patterns = Field(min_length=1)
    reset_instructed: Patterns = Field(min_length=1)
    yes_values: Patterns = Field(min_length=1)
    no_values: Patterns = Field(min_length=1)



class ReferenceRules(_Strict):
    """Case reference labels and values that are not references."""

    labels: Patterns = Field(min_length=1)
    value: str = Field(min_length=1)
    min_digits: int = Field(default=3, ge=1, le=20)
    none_values: Patterns = Field(default_factory=list)
    forbidden: Patterns = Field(default_factory=list)


    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        _check_patterns([v])
        return v


class LayoutRules(_Strict):
    """rules/extraction.yaml: everything that is not a phrase."""

    quotes: QuoteRules
    account_labels: Patterns = Field(min_length=1)
    templates: TemplateRules
    reference: ReferenceRules



def _alternation(patterns: list[str]) -> str:
    return "|".join(f"(?:{fold_pattern(p)})" for p in patterns)


def _words(patterns: list[str]) -> re.Pattern[str] | None:
    """One alternation of whole-word patterns (on folded text), or None when there are none."""
    if not patterns:
        return None
    body = _alternation(patterns)
    return re.compile(rf"(?<![\w-])(?:{body})(?!\w)")


def _anchored(patterns: list[str]) -> re.Pattern[str] | None:
    """One alternation matched at the start of a (folded, stripped) line.

    Anchored with \\A: the code calls .match(), and a .search() then also tries one position
    only, instead of scanning e.g. a pattern that starts with a repetition from every position.
    """
    if not patterns:
        return None
    return re.compile(rf"\A(?:{_alternation(patterns)})")


@dataclass(frozen=True)
class CompiledRules:
    """All patterns of a rule set, compiled once."""

    id_subject: re.Pattern[str] | None
    id_verb: re.Pattern[str] | None
    id_phrase: re.Pattern[str] | None
    id_mention_verb: re.Pattern[str] | None
    id_mention: re.Pattern[str] | None
    in_request: re.Pattern[str] | None
    in_object: re.Pattern[str] | None
    in_weak_object: re.Pattern[str] | None
    in_phrase: re.Pattern[str] | None
    in_polite: re.Pattern[str] | None
    in_third_party: re.Pattern[str] | None
    in_other_request: re.Pattern[str] | None
    in_other_target: re.Pattern[str] | None
    in_own_target: re.Pattern[str] | None
    negation: re.Pattern[str] | None
    conditional: re.Pattern[str] | None
    indirect_question: re.Pattern[str] | None
    future: re.Pattern[str] | None
    identity_modal: re.Pattern[str] | None
    identity_only: re.Pattern[str] | None
    label_only: re.Pattern[str] | None
    neutral: re.Pattern[str] | None
    clause_break: re.Pattern[str] | None
    quote_header: re.Pattern[str] | None
    wrote_start: re.Pattern[str] | None
    wrote_end: re.Pattern[str] | None
    block_first: re.Pattern[str] | None
    block_next: re.Pattern[str] | None
    block_window: int
    signature: re.Pattern[str] | None
    signature_max_line: int
    disclaimer: re.Pattern[str] | None
    plain_stub: re.Pattern[str] | None
    account_label: re.Pattern[str] | None
    tpl_identity: re.Pattern[str] | None
    tpl_instruction: re.Pattern[str] | None
    tpl_yes: re.Pattern[str] | None
    tpl_no: re.Pattern[str] | None
    ref_label: re.Pattern[str] | None
    ref_none: re.Pattern[str] | None
    ref_forbidden: re.Pattern[str] | None
    ref_min_digits: int


class ExtractionRules(_Strict):
    """Phrase, label and quote-cutting rules. Empty rules extract nothing (every item missing)."""

    phrases: list[PhraseRules] = Field(default_factory=list)
    layout: LayoutRules | None = None
    # rules/grammar.yaml: the affirmative forms confirmations are read by (issue #12)
    grammar: GrammarRules | None = None
    sources: tuple[str, ...] = ()

    @cached_property
    def compiled_grammar(self) -> Grammar | None:
        return self.grammar.compile() if self.grammar is not None else None

    def summary(self) -> list[str]:
        """Lines for `rules check`."""
        langs = ", ".join(p.language for p in self.phrases) or "none"
        lines = [f"extraction phrases: {langs}"]
        lines += [f"ok: {s}" for s in self.sources]
        return lines

    @cached_property
    def compiled(self) -> CompiledRules:
        def union(get: object) -> list[str]:
            out: list[str] = []
            for p in self.phrases:
                out += get(p)  # type: ignore[operator]
            return out

        lay = self.layout
        q = lay.quotes if lay else None
        tpl = lay.templates if lay else None
        ref = lay.reference if lay else None
        ref_label = None
        if ref is not None:
            # label, blanks, an optional separator with blanks after it, the value: one run of
            # blanks is matched by one repetition only ("[ \t]*[:#=\t]?[ \t]*" is cubic on
            # blanks; a tab separator is a blank like any other)
            ref_label = re.compile(
                rf"(?<![\w-])(?P<label>{_alternation(ref.labels)})"
                rf"[ \t]*(?:(?:[:#=]|nr\.?|no\.?)[ \t]*)?(?P<value>{fold_pattern(ref.value)})",
            )
        return CompiledRules(
            id_subject=_words(union(lambda p: p.identity.subjects)),
            id_verb=_words(union(lambda p: p.identity.verbs)),
            id_phrase=_words(union(lambda p: p.identity.phrases)),
            id_mention_verb=_words(union(lambda p: p.identity.mention_verbs)),
            id_mention=_words(union(lambda p: p.identity.mentions)),
            in_request=_words(union(lambda p: p.instruction.requests)),
            in_object=_words(union(lambda p: p.instruction.objects)),
            in_weak_object=_words(union(lambda p: p.instruction.weak_objects)),
            in_phrase=_words(union(lambda p: p.instruction.phrases)),
            in_polite=_words(union(lambda p: p.instruction.polite_questions)),
            in_third_party=_words(union(lambda p: p.instruction.third_party)),
            in_other_request=_words(union(lambda p: p.instruction.other_requests)),
            in_other_target=_words(union(lambda p: p.instruction.other_targets)),
            in_own_target=_words(union(lambda p: p.instruction.own_targets)),
            negation=_words(union(lambda p: p.refuse.negation)),
            conditional=_words(union(lambda p: p.refuse.conditional)),
            indirect_question=_words(union(lambda p: p.refuse.indirect_questions)),
            future=_words(union(lambda p: p.refuse.future)),
            identity_modal=_words(union(lambda p: p.refuse.identity_modal)),
            identity_only=_words(union(lambda p: p.refuse.identity_only)),
            label_only=_anchored(union(lambda p: p.refuse.label_only)),
            neutral=_words(union(lambda p: p.refuse.neutral)),
            clause_break=_words(union(lambda p: p.clause_breaks)),
            quote_header=_anchored(q.headers) if q else None,
            wrote_start=_anchored(q.wrote_start) if q else None,
            wrote_end=re.compile(_alternation(q.wrote_end)) if q else None,
            block_first=_anchored(q.header_block_first) if q else None,
            block_next=_anchored(q.header_block_next) if q else None,
            block_window=q.header_block_window if q else 4,
            signature=_anchored(q.signatures) if q else None,
            signature_max_line=q.signature_max_line if q else 80,
            disclaimer=_words(q.disclaimers) if q else None,
            plain_stub=_words(q.plain_stubs) if q else None,
            account_label=(
                re.compile(
                    rf"(?<![\w-])(?:{_alternation(lay.account_labels)})"
                    r"[ \t]*(?:\([^()]{0,40}\)[ \t]*)?(?:[:=][ \t]*)?[<(\[]?(?:mailto:)?$",
                )
                if lay
                else None
            ),
            tpl_identity=_anchored(tpl.identity_verified) if tpl else None,
            tpl_instruction=_anchored(tpl.reset_instructed) if tpl else None,
            tpl_yes=_anchored(tpl.yes_values) if tpl else None,
            tpl_no=_anchored(tpl.no_values) if tpl else None,
            ref_label=ref_label,
            ref_none=_anchored(ref.none_values) if ref else None,
            ref_forbidden=_words(ref.forbidden) if ref else None,
            ref_min_digits=ref.min_digits if ref else 3,
        )
