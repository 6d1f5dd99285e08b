"""The blind corpus (tests/corpus_blind/, issue #12 item 8): 203 requests written by someone who
had not read rules/ or the extraction code. Its expectations are the writer's, not ours.

Precision is absolute: not one false "identity verified" / "reset instructed" and not one
account address that is not the resident's. Recall is what the allowlist costs: a floor per
item, raised when the reader improves, so that a change that loses recall is seen (the
figures are printed by `RESET_MAILBOT_CORPUS=tests/corpus_blind bench/extraction_report.py`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reset_mailbot_testing.corpus import BOOL_ITEMS, Outcome, load_cases, run_case

BLIND = Path(__file__).resolve().parent / "corpus_blind"
CASES = load_cases(BLIND)
# measured at the commit that set them; a floor, never a target
RECALL_FLOOR = {"identity_verified": 0.76, "reset_instructed": 0.84, "account_email": 0.92}


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return [run_case(case) for case in CASES]


def test_the_blind_corpus_is_there() -> None:
    assert len(CASES) >= 150


def test_no_false_confirmation_and_no_wrong_account(outcomes: list[Outcome]) -> None:
    wrong = [f"{o.case.file}: {fp}" for o in outcomes for fp in o.false_positives]
    assert wrong == []


@pytest.mark.parametrize("item", [*BOOL_ITEMS, "account_email"])
def test_recall_does_not_fall_below_its_floor(outcomes: list[Outcome], item: str) -> None:
    def found(o: Outcome) -> bool:
        got = getattr(o.request, item)
        return bool(got) if item in BOOL_ITEMS else got == o.case.expected[item]

    def wanted(o: Outcome) -> bool:
        return bool(o.case.expected.get(item))

    relevant = [o for o in outcomes if wanted(o)]
    recall = sum(found(o) for o in relevant) / len(relevant)
    assert recall >= RECALL_FLOOR[item], f"{item}: recall {recall:.3f} < {RECALL_FLOOR[item]}"
