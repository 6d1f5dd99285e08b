"""Reading a labelled corpus (tests/corpus/, tests/corpus_blind/) and extracting one case.

Shared by tests/test_corpus.py, tests/test_blind_corpus.py and bench/extraction_report.py (a
dev tool, so it lives here and not in tests/) so that the tests and the report
measure the same thing: parse_message + extract_request, with the sender, the To/Cc recipients
and the support address excluded, exactly as the decision calls it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from reset_mailbot.domain.extraction import ExtractionRules, extract_request
from reset_mailbot.domain.message import parse_message
from reset_mailbot.domain.models import ResetRequest
from reset_mailbot.rules_loader import load_extraction_rules, packaged_rules_dir

# the checkout's corpus (src/reset_mailbot_testing -> tests/corpus), or $RESET_MAILBOT_CORPUS
CHECKOUT_CORPUS = Path(__file__).resolve().parents[2] / "tests" / "corpus"
CORPUS = Path(os.environ.get("RESET_MAILBOT_CORPUS") or CHECKOUT_CORPUS)
DEFAULT_SUPPORT = "support@forus.test"
BOOL_ITEMS = ("identity_verified", "reset_instructed")
VALUE_ITEMS = ("account_email", "case_reference")


@dataclass(frozen=True)
class Case:
    file: str
    expected: dict[str, Any]
    xfail_reason: str | None = None
    description: str = ""
    folder: Path = CORPUS


@dataclass
class Outcome:
    case: Case
    request: ResetRequest
    seconds: float
    false_positives: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def _entries(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict) and isinstance(data.get("cases"), list):
        return data["cases"]
    if isinstance(data, list):
        return data
    if isinstance(data, dict):  # {"file.eml": {...}}
        return [
            {"file": name, **entry} for name, entry in data.items() if name.endswith(".eml")
        ]
    raise ValueError("tests/corpus/expected.json: no cases found")


@cache
def corpus_meta(folder: Path = CORPUS) -> dict[str, Any]:
    data = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def load_cases(folder: Path = CORPUS) -> list[Case]:
    path = folder / "expected.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    cases = []
    for entry in _entries(data):
        expected = entry.get("expected", entry)
        cases.append(
            Case(
                file=entry["file"],
                expected=expected,
                xfail_reason=entry.get("xfail_reason") or expected.get("xfail_reason"),
                description=entry.get("description", ""),
                folder=folder,
            )
        )
    return sorted(cases, key=lambda c: c.file)


@cache
def rules() -> ExtractionRules:
    """The shipped rules, or RESET_MAILBOT_RULES_DIR's (to measure a rules change first)."""
    folder = os.environ.get("RESET_MAILBOT_RULES_DIR")
    return load_extraction_rules(Path(folder) if folder else packaged_rules_dir())


def run_case(case: Case, repeat: int = 1) -> Outcome:
    raw = (case.folder / case.file).read_bytes()
    message = parse_message(raw)
    support = str(corpus_meta(case.folder).get("support_address", DEFAULT_SUPPORT))
    excluded = {support, *message.recipients}
    if message.from_mailbox is not None:
        excluded.add(message.from_mailbox.address)
    seconds = float("inf")
    for _ in range(max(1, repeat)):  # best of `repeat`: the figure for a warm service
        start = time.perf_counter()
        request = extract_request(message, rules(), frozenset(excluded))
        seconds = min(seconds, time.perf_counter() - start)
    outcome = Outcome(case, request, seconds)
    exp = case.expected
    for item in BOOL_ITEMS:
        if item not in exp:
            continue
        got = bool(getattr(request, item))
        if got and not exp[item]:
            outcome.false_positives.append(f"{item}: expected false, got true")
        elif got != bool(exp[item]):
            outcome.mismatches.append(f"{item}: expected {exp[item]}, got {got}")
    if request.account_email is not None and exp.get("account_email", request.account_email) \
            != request.account_email:  # another resident's account: as bad as a false "yes"
        outcome.false_positives.append(
            f"account_email: expected {exp['account_email']!r}, got {request.account_email!r}")
    for item in VALUE_ITEMS:
        if item in exp and getattr(request, item) != exp[item]:
            outcome.mismatches.append(
                f"{item}: expected {exp[item]!r}, got {getattr(request, item)!r}"
            )
    if "missing" in exp:
        got_missing = sorted(m.value for m in request.missing)
        if got_missing != sorted(exp["missing"]):
            want = sorted(exp["missing"])
            outcome.mismatches.append(f"missing: expected {want}, got {got_missing}")
    for item, detail in (exp.get("missing_details") or {}).items():
        got_detail = {k.value: v.value for k, v in request.missing_details.items()}.get(item)
        if got_detail != detail:
            outcome.mismatches.append(
                f"missing_details.{item}: expected {detail!r}, got {got_detail!r}"
            )
    return outcome
