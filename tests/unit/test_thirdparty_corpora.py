"""Third-party test mail (tests/fixtures/thirdparty/: CPython's email tests, mailgun/flanker,
SpamScope/mail-parser; provenance in PROVENANCE.md) as robustness input.

Each message is decided twice: as it is (unsigned, from whoever it says), and re-signed as if a
municipal employee had sent it (From replaced by an allowlisted individual, DKIM-signed with a
published key), which takes it through every step up to the extraction. Either way: no
exception, exactly one outcome, never `complete` - none of them is a 2FA request.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reset_mailbot.domain.decision import DecisionContext, decide
from reset_mailbot.domain.reasons import Outcome
from reset_mailbot.domain.wire import WireError, read_wire
from reset_mailbot.rules_loader import RuleSet, load_rules, packaged_rules_dir
from reset_mailbot_testing.dkim_signing import Signer, rsa_key

ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "thirdparty"
FILES = sorted(p for p in ROOT.rglob("*") if p.is_file() and p.name != "PROVENANCE.md")
SUPPORT = "support@forus.test"
EMPLOYEE = b"Jan de Vries <j.devries@utrecht.nl>"


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    path = tmp_path_factory.mktemp("rules") / "municipalities.yaml"
    path.write_text("municipalities:\n  - name: Utrecht\n    domains: [utrecht.nl]\n",
                    encoding="utf-8")
    return load_rules(packaged_rules_dir(), path)


def test_the_corpora_are_there() -> None:
    sources = {p.relative_to(ROOT).parts[0] for p in FILES}
    assert sources == {"cpython", "flanker", "mailparser"}
    assert len(FILES) >= 100


def _as_employee(raw: bytes, signer: Signer) -> bytes | None:
    """The message with its From replaced by a municipal employee's, signed now (Date left
    unsigned, so the age comes from t= and the old samples reach the extraction); None when the
    gate refuses the bytes (then the as-is decision already covers it)."""
    try:
        wire = read_wire(raw)
    except WireError:
        return None
    head = b"".join(f.name + b":" + f.value for f in wire.fields if f.key != "from")
    rebuilt = b"From: " + EMPLOYEE + b"\r\n" + head + b"\r\n" + wire.body
    try:
        return signer.sign(rebuilt, rsa_key(2048), "utrecht.nl",
                           include_headers=["from", "subject", "message-id",
                                            "content-type", "mime-version",
                                            "content-transfer-encoding"])
    except Exception:  # dkimpy refuses some of these bytes as input to sign
        return None


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_never_complete_never_raises(rules: RuleSet, path: Path) -> None:
    raw = path.read_bytes()
    signer = Signer()
    context = DecisionContext(rules, signer.lookup(), SUPPORT)
    decision = decide(raw, context, time.time())
    assert decision.outcome in set(Outcome)
    assert decision.outcome is not Outcome.COMPLETE
    signed = _as_employee(raw, signer)
    if signed is not None:
        again = decide(signed, DecisionContext(rules, signer.lookup(), SUPPORT), time.time())
        assert again.outcome is not Outcome.COMPLETE, (again.reasons, again.request)
