"""Every shared example that reaches extraction gives exactly its expected items (issue #3).

parse_message + extract_request directly, excluded = sender + recipients + support address, as
the decision does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reset_mailbot.domain.extraction import extract_request
from reset_mailbot.domain.message import parse_message
from reset_mailbot.rules_loader import load_extraction_rules, packaged_rules_dir
from tests.examples import EXAMPLES, EXPECTED

CASES = [c for c in EXPECTED["cases"] if c["expected"]["outcome"] in {"complete", "incomplete"}]
RULES = load_extraction_rules(packaged_rules_dir())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_example_items(case: dict) -> None:
    message = parse_message((EXAMPLES / case["file"]).read_bytes())
    assert message.from_mailbox is not None
    excluded = frozenset({message.from_mailbox.address, EXPECTED["support_address"],
                          *message.recipients})
    request = extract_request(message, RULES, excluded)
    expected = case["expected"]
    assert sorted(m.value for m in request.missing) == sorted(expected["missing"])
    assert request.account_email == expected["account_email"]
    assert request.case_reference == expected["case_reference"]
    satisfied = {e.item.value for e in request.evidence}
    assert satisfied >= {"account_email", "identity_verified", "reset_instructed"} - set(
        expected["missing"]
    )


def test_examples_are_the_shared_ones() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "examples"
    if not shared.is_dir():
        pytest.skip("shared examples not beside the checkout")
    for case in CASES:
        ours = (EXAMPLES / case["file"]).read_bytes()
        assert ours == (shared / case["file"]).read_bytes(), case["file"]
