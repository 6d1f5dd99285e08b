"""Shared helpers for the extraction unit tests: the shipped rules and a text-level extractor."""

from __future__ import annotations

from functools import cache

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
