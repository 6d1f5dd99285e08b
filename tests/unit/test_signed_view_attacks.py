"""Issue #11's attack classes, each on a genuinely signed message (keys from memory).

The same cases run over the real DNS test server in tests/integration/test_signed_view_dns.py.
On the code before issue #11 the repeated-header, bare-CR, unsigned-Cc, folded-From and
null-sender cases got `complete`, a wrong sender, `malformed_from` or a wrong account.
"""

from __future__ import annotations

import time

import pytest

from reset_mailbot.domain.decision import DecisionContext, decide
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Outcome, ReasonCode
from reset_mailbot.rules_loader import RuleSet, load_rules, packaged_rules_dir
from reset_mailbot_testing.dkim_signing import dict_lookup, rsa_key, signature_header
from tests.attack_mail import Case, cases, replay_pair

SUPPORT = "support@forus.test"
CASES = cases()


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    path = tmp_path_factory.mktemp("rules") / "municipalities.yaml"
    path.write_text(
        "municipalities:\n  - name: Utrecht\n    domains: [utrecht.nl]\n"
        "  - name: Eindhoven\n    domains: [eindhoven.nl]\n"
        "    contacts: [A.deVries@eindhoven.nl]\n",
        encoding="utf-8",
    )
    return load_rules(packaged_rules_dir(), path)


def assert_expected(case: Case, decision: Decision) -> None:
    expect = case.expect
    assert decision.outcome is expect.outcome, (case.name, decision.reasons, decision.detail)
    for reason in expect.reasons:
        assert reason in decision.reasons, (case.name, decision.reasons)
    if expect.reply is not None:
        assert decision.reply is expect.reply, case.name
    if expect.account is not None:
        assert decision.request.account_email == expect.account, case.name
    if expect.outcome is not Outcome.COMPLETE:
        assert decision.request.account_email not in {"victim.account@hotmail.com",
                                                      "anna.collega@partner-org.nl"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attack_class(rules: RuleSet, case: Case) -> None:
    decision = decide(case.raw, DecisionContext(rules, dict_lookup(case.zone), SUPPORT),
        time.time())
    assert_expected(case, decision)


def test_nothing_counts_in_a_distrusted_message(rules: RuleSet) -> None:
    by_name = {c.name: c for c in CASES}
    for name in ("added_content_type_unsigned", "replayed_old_request"):
        case = by_name[name]
        decision = decide(case.raw, DecisionContext(rules, dict_lookup(case.zone), SUPPORT),
            time.time())
        assert decision.request.account_email is None
        assert not decision.request.identity_verified
        assert not decision.request.reset_instructed
        assert set(decision.missing) == {"account_email", "identity_verified",
                                         "reset_instructed"}
        assert decision.detail


def test_max_request_age_is_configurable(rules: RuleSet) -> None:
    case = next(c for c in CASES if c.name == "replayed_old_request")
    context = DecisionContext(rules, dict_lookup(case.zone), SUPPORT, max_request_age_days=30)
    assert decide(case.raw, context, time.time()).outcome is Outcome.COMPLETE


def test_unsigned_message_id_does_not_identify_a_replay(rules: RuleSet) -> None:
    first, second, zone = replay_pair()
    context = DecisionContext(rules, dict_lookup(zone), SUPPORT)
    one, two = decide(first, context, time.time()), decide(second, context, time.time())
    assert one.outcome is two.outcome is Outcome.COMPLETE
    assert one.message_id != two.message_id
    assert one.message_key.startswith("sha256:") and one.message_key != two.message_key
    assert one.replay_keys and one.replay_keys == two.replay_keys


def test_signed_message_id_is_the_key(rules: RuleSet) -> None:
    case = next(c for c in CASES if c.name == "fresh_request_control")
    decision = decide(case.raw, DecisionContext(rules, dict_lookup(case.zone), SUPPORT),
        time.time())
    assert decision.message_key == decision.message_id


def test_unsigned_threading_fields_do_not_attach_to_a_request(rules: RuleSet) -> None:
    case = next(c for c in CASES if c.name == "fresh_request_control")
    raw = b"In-Reply-To: <victim-request@utrecht.nl>\r\nReferences: <a@b> <c@d>\r\n" + case.raw
    decision = decide(raw, DecisionContext(rules, dict_lookup(case.zone), SUPPORT), time.time())
    assert decision.in_reply_to is None and decision.references == []


def test_rsa_key_over_4096_bits_is_not_verified(rules: RuleSet) -> None:
    from reset_mailbot_testing.dkim_signing import _der, _der_int, _der_seq
    from tests.attack_mail import COMPLETE, _message

    raw = _message(COMPLETE)
    key = rsa_key(2048)
    signed = signature_header(raw, key, "utrecht.nl") + raw
    modulus = (1 << 8191) | 1
    rsa = _der(0x03, b"\x00" + _der_seq(_der_int(modulus), _der_int(65537)))
    spki = _der_seq(_der_seq(_der(0x06, bytes.fromhex("2a864886f70d010101")), b"\x05\x00"), rsa)
    import base64

    txt = "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()
    start = time.process_time()
    decision = decide(signed, DecisionContext(
        rules, dict_lookup({"selector1._domainkey.utrecht.nl": txt}), SUPPORT), time.time())
    assert time.process_time() - start < 1.0
    assert ReasonCode.DKIM_INVALID in decision.reasons
    assert "8192 bits" in decision.authentication.signatures[0].detail


def test_bogus_signatures_over_trailing_blanks_are_cheap(rules: RuleSet) -> None:
    from tests.attack_mail import COMPLETE, _message

    raw = _message(COMPLETE + " " * 32_000)
    key = rsa_key(2048)
    junk = signature_header(_message("other"), key, "utrecht.nl")  # body hash of another body
    calls: list[str] = []
    start = time.process_time()
    decision = decide(junk * 10 + raw, DecisionContext(
        rules, dict_lookup({"selector1._domainkey.utrecht.nl": key.txt()}, calls=calls), SUPPORT),
        time.time())
    assert time.process_time() - start < 1.0
    assert decision.outcome is Outcome.REJECTED
    assert calls == []  # a body hash that does not match needs no key
    assert all(s.detail == "body hash mismatch" for s in decision.authentication.signatures)
