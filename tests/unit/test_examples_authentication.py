"""The shared example messages get their expected outcome, reasons and reply (pure core).

The same messages are decided again over a real DNS server in tests/integration; here the key
lookup answers from the example zone file so the decision core is tested on its own.
"""

from __future__ import annotations

import json
import time

import pytest

from reset_mailbot.demo import zone_lookup
from reset_mailbot.domain.decision import DecisionContext, decide
from reset_mailbot.rules_loader import load_rules, packaged_rules_dir
from tests.examples import EXAMPLES, EXPECTED


@pytest.fixture(scope="module")
def context() -> DecisionContext:
    zone = json.loads((EXAMPLES / "zone.json").read_text())
    faults = json.loads((EXAMPLES / "dns_faults.json").read_text())
    rules = load_rules(packaged_rules_dir(), EXAMPLES / "municipalities.yaml")
    return DecisionContext(rules, zone_lookup(zone, faults), EXPECTED["support_address"])


@pytest.mark.parametrize("case", EXPECTED["cases"], ids=lambda c: c["id"])
def test_example_outcome_reasons_and_reply(case: dict, context: DecisionContext) -> None:
    decision = decide((EXAMPLES / case["file"]).read_bytes(), context, time.time())
    expected = case["expected"]
    reasons = {r.value for r in decision.reasons}
    if expected["outcome"] in {"complete", "incomplete"}:
        # the authentication half: authentic, authorised, so it reaches extraction
        assert decision.outcome.value in {"complete", "incomplete"}
        assert decision.authentication.dkim.value == "pass"
        assert decision.authentication.aligned
    else:
        assert decision.outcome.value == expected["outcome"]
    assert set(expected["reasons"]) <= reasons
    if "reasons_any" in expected:
        assert reasons & set(expected["reasons_any"])
    assert decision.reply is expected["reply"]
