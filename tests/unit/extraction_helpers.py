"""Shared helpers for the extraction unit tests: the shipped rules and a text-level extractor."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from reset_mailbot.domain.extraction import ExtractionRules, extract_text
from reset_mailbot.domain.models import ResetRequest
from reset_mailbot.rules_loader import load_extraction_rules, packaged_rules_dir

SENDER = "j.devries@utrecht.nl"
SUPPORT = "support@forus.test"


@cache
def shipped_rules() -> ExtractionRules:
    return load_extraction_rules(packaged_rules_dir())


def extract(text: str, excluded: frozenset[str] = frozenset({SENDER, SUPPORT})) -> ResetRequest:
    return extract_text(text, shipped_rules(), excluded)


# Sentences a person reads as a confirmation but the allowlist grammar (rules/grammar.yaml,
# issue #12) does not explain word for word: known recall misses, kept in one visible list
# (tests/unit/known_recall_misses.txt: "<item><TAB><text>" per line, "\n" written as "\\n").
# A test that expects a confirmation of that item expects "missing" instead, so a grammar change
# that covers it fails its test until the line is taken off the list: the list can only shrink.
_MISSES = Path(__file__).with_name("known_recall_misses.txt")
KNOWN_RECALL_MISSES = frozenset(
    tuple(line.replace("\\n", "\n").split("\t", 1))
    for line in _MISSES.read_text(encoding="utf-8").splitlines()
    if line and not line.startswith("#")
)


def expected(text: str, confirmed: bool, item: str) -> bool:
    """What a test should expect for `item` in `text` now: a known recall miss is missing."""
    return confirmed and (item, text) not in KNOWN_RECALL_MISSES
