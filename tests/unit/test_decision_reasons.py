"""Every reason code of the authentication half, and the attacks a sceptical reviewer tries first.

Pure unit tests: messages are signed in the test session (reset_mailbot_testing.dkim_signing); keys
are answered from an in-memory key lookup. The same lookups over a real DNS server are exercised in
tests/integration/test_dkim_dns.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reset_mailbot.domain.authentication import MAX_SIGNATURES
from reset_mailbot.domain.decision import DecisionContext, decide
from reset_mailbot.domain.models import Decision, DkimStatus, SignatureVerdict
from reset_mailbot.domain.reasons import Outcome, ReasonCode
from reset_mailbot.rules_loader import RuleSet, load_rules, packaged_rules_dir
from reset_mailbot_testing.dkim_signing import (
    CRLF,
    REVOKED_TXT,
    Signer,
    dict_lookup,
    ed25519_key,
    key_name,
    outlook_message,
    plain_message,
    replace_header,
    rsa_key,
    signature_header,
)

SUPPORT = "support@forus.test"

MUNICIPALITIES = """\
municipalities:
  - name: Utrecht
    domains: [utrecht.nl]
    contacts: []
  - name: Eindhoven
    domains: [eindhoven.nl]
    contacts: [A.deVries@eindhoven.nl, m.bakker@eindhoven.nl]
  - name: Zoetermeer
    domains: [zoetermeer.nl]
  - name: Súdwest-Fryslân
    domains: [súdwest-fryslân.nl]
"""
SUDWEST_ALABEL = "xn--sdwest-frysln-teb26a.nl"

AUTHORISED_REASONS = {ReasonCode.AMBIGUOUS_ACCOUNT_EMAIL}  # what extraction may add


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    path: Path = tmp_path_factory.mktemp("rules") / "municipalities.yaml"
    path.write_text(MUNICIPALITIES, encoding="utf-8")
    return load_rules(packaged_rules_dir(), path)


@pytest.fixture
def signer() -> Signer:
    return Signer()


def run(
    rules: RuleSet,
    raw: bytes,
    zone: dict[str, str] | None = None,
    temporary: tuple[str, ...] = (),
    now: float | None = None,
) -> Decision:
    context = DecisionContext(rules, dict_lookup(zone or {}, temporary), SUPPORT)
    return decide(raw, context, now=time.time() if now is None else now)


def assert_authorised(decision: Decision) -> None:
    """Authentic and authorised: reaches the required items (extraction decides the rest)."""
    assert decision.outcome in {Outcome.COMPLETE, Outcome.INCOMPLETE}, decision
    assert set(decision.reasons) <= AUTHORISED_REASONS, decision.reasons
    assert decision.authentication.dkim is DkimStatus.PASS
    assert decision.authentication.aligned
    assert decision.reply is True


def assert_rejected(decision: Decision, reason: ReasonCode, reply: bool) -> None:
    assert decision.outcome is Outcome.REJECTED, decision
    assert reason in decision.reasons, decision.reasons
    assert decision.reply is reply


def detail(decision: Decision, index: int = 0) -> str:
    return decision.authentication.signatures[index].detail


def assert_ignored(decision: Decision, reason: ReasonCode) -> None:
    assert decision.outcome is Outcome.IGNORED, decision
    assert reason in decision.reasons, decision.reasons
    assert decision.reply is False


K2048 = "selector1"


def signed(signer: Signer, raw: bytes, domain: str = "utrecht.nl", **kw: object) -> bytes:
    return signer.sign(raw, rsa_key(2048), domain, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# the baseline: an authentic, authorised message passes (so every rejection below is meaningful)


def test_authentic_individual_from_allowlisted_domain_passes(rules, signer) -> None:
    decision = run(rules, signed(signer, plain_message()), signer.zone)
    assert_authorised(decision)
    assert decision.sender.address == "j.devries@utrecht.nl"
    assert decision.sender.municipality == "Utrecht"
    assert decision.authentication.signing_domain == "utrecht.nl"


def test_outlook_multipart_with_attachment_passes(rules, signer) -> None:
    raw = outlook_message(attachment=b"%PDF-1.4 " + bytes(range(256)) * 200)
    assert_authorised(run(rules, signed(signer, raw), signer.zone))


# ---------------------------------------------------------------------------------------------
# malformed_message / malformed_from (never a reply)


@pytest.mark.parametrize("raw", [b"", b"no header here at all\r\n", b"\r\n\r\nbody only\r\n"])
def test_unreadable_bytes_are_malformed_message(rules, raw: bytes) -> None:
    decision = run(rules, raw)
    assert decision.outcome is Outcome.REJECTED
    assert decision.reasons == [ReasonCode.MALFORMED_MESSAGE]
    assert decision.reply is False
    assert decision.message_key.startswith("sha256:")


def _without_header(raw: bytes, name: str) -> bytes:
    head, _, body = raw.partition(CRLF + CRLF)
    prefix = name.lower().encode() + b":"
    lines = [ln for ln in head.split(CRLF) if not ln.lower().startswith(prefix)]
    return CRLF.join(lines) + CRLF + CRLF + body


MALFORMED_FROMS = {
    "two_mailboxes": "j.devries@utrecht.nl, evil@gmail.com",
    "two_named_mailboxes": "Jan <j.devries@utrecht.nl>, Eve <evil@gmail.com>",
    "empty_group": "undisclosed-recipients:;",
    "garbage": "<<<@@@>>> ,,;;",
    "no_domain": "j.devries",
    "no_local_part": "<@utrecht.nl>",
}


@pytest.mark.parametrize("value", MALFORMED_FROMS.values(), ids=MALFORMED_FROMS.keys())
def test_malformed_from_header_is_rejected_without_reply(rules, signer, value: str) -> None:
    raw = replace_header(plain_message(), "From", value)
    decision = run(rules, signed(signer, raw), signer.zone)
    assert decision.outcome is Outcome.REJECTED
    assert decision.reasons == [ReasonCode.MALFORMED_FROM]
    assert decision.reply is False


def test_no_from_header_is_malformed_from(rules, signer) -> None:
    raw = _without_header(plain_message(), "From")
    decision = run(rules, raw, signer.zone)
    assert decision.reasons == [ReasonCode.MALFORMED_FROM]
    assert decision.outcome is Outcome.REJECTED
    assert decision.reply is False


def test_second_from_header_is_malformed_even_when_signed(rules, signer) -> None:
    # an attacker prepends a From to a genuinely signed message
    genuine = signed(signer, plain_message())
    raw = b"From: Jan de Vries <j.devries@utrecht.nl>\r\n" + genuine.replace(
        b"From: Jan de Vries <j.devries@utrecht.nl>", b"From: evil@gmail.com"
    )
    decision = run(rules, raw, signer.zone)
    assert decision.reasons == [ReasonCode.MALFORMED_FROM]
    assert decision.reply is False
    # and the plain duplicate (same address twice) is malformed too
    twice = b"From: j.devries@utrecht.nl\r\n" + genuine
    assert run(rules, twice, signer.zone).reasons == [ReasonCode.MALFORMED_FROM]


# ---------------------------------------------------------------------------------------------
# DKIM: missing, invalid, not aligned, temporary failure


def test_unsigned_message_is_dkim_missing(rules) -> None:
    decision = run(rules, plain_message())
    assert_rejected(decision, ReasonCode.DKIM_MISSING, reply=False)
    assert decision.authentication.dkim is DkimStatus.NONE


def test_forged_authentication_results_on_unsigned_message_is_ignored(rules) -> None:
    forged = [
        ("Authentication-Results", "mx.forus.test; dkim=pass header.d=utrecht.nl; spf=pass "
         "smtp.mailfrom=utrecht.nl; dmarc=pass header.from=utrecht.nl"),
        ("ARC-Authentication-Results", "i=1; mx.microsoft.com 1; dkim=pass header.d=utrecht.nl"),
    ]
    decision = run(rules, plain_message(extra_headers=forged))
    assert_rejected(decision, ReasonCode.DKIM_MISSING, reply=False)


def test_tampered_body_is_dkim_invalid(rules, signer) -> None:
    raw = signed(signer, plain_message())
    tampered = raw.replace(b"piet.jansen@hotmail.com", b"evil.attacker@gmail.com")
    assert tampered != raw
    decision = run(rules, tampered, signer.zone)
    assert_rejected(decision, ReasonCode.DKIM_INVALID, reply=False)
    assert decision.authentication.signatures[0].verdict is SignatureVerdict.FAIL
    assert "body hash" in detail(decision)


def test_tampered_signed_subject_is_dkim_invalid(rules, signer) -> None:
    raw = signed(signer, plain_message(subject="Verzoek reset 2FA"))
    tampered = replace_header(raw, "Subject", "Verzoek reset 2FA (spoed)")
    assert_rejected(run(rules, tampered, signer.zone), ReasonCode.DKIM_INVALID, reply=False)


def test_unsigned_header_may_change(rules, signer) -> None:
    # control for the test above: a header outside h= does not break the signature
    raw = signed(signer, plain_message(extra_headers=[("X-Mailer", "Outlook 16.0")]))
    changed = replace_header(raw, "X-Mailer", "something else")
    assert_authorised(run(rules, changed, signer.zone))


def test_from_not_among_signed_headers_is_dkim_invalid(rules, signer) -> None:
    raw = signed(signer, plain_message(), include_headers=("to", "subject", "date", "message-id"))
    decision = run(rules, raw, signer.zone)
    assert_rejected(decision, ReasonCode.DKIM_INVALID, reply=False)
    assert "From" in decision.authentication.signatures[0].detail


def test_rsa_sha1_is_dkim_invalid(rules, signer) -> None:
    raw = signed(signer, plain_message(), algorithm=b"rsa-sha1")
    assert b"a=rsa-sha1" in raw
    decision = run(rules, raw, signer.zone)
    assert_rejected(decision, ReasonCode.DKIM_INVALID, reply=False)
    assert "rsa-sha1" in detail(decision)


def test_expired_signature_is_dkim_invalid(rules, signer) -> None:
    now = int(time.time())
    raw = signed(signer, plain_message(), timestamp=now - 7200, expires=now - 3600)
    assert b"x=" in raw
    decision = run(rules, raw, signer.zone)
    assert_rejected(decision, ReasonCode.DKIM_INVALID, reply=False)
    assert "expired" in detail(decision)


def test_signature_with_future_expiry_passes(rules, signer) -> None:
    now = int(time.time())
    raw = signed(signer, plain_message(), timestamp=now - 60, expires=now + 3600)
    assert_authorised(run(rules, raw, signer.zone))


def test_revoked_or_absent_key_is_dkim_invalid(rules, signer) -> None:
    raw = signed(signer, plain_message())
    revoked = dict(signer.zone)
    revoked[key_name(K2048, "utrecht.nl")] = REVOKED_TXT
    assert_rejected(run(rules, raw, revoked), ReasonCode.DKIM_INVALID, reply=False)
    assert_rejected(run(rules, raw, {}), ReasonCode.DKIM_INVALID, reply=False)


def test_key_of_another_signer_is_dkim_invalid(rules, signer) -> None:
    raw = signed(signer, plain_message())
    other = {key_name(K2048, "utrecht.nl"): rsa_key(2048, "other").txt()}
    assert_rejected(run(rules, raw, other), ReasonCode.DKIM_INVALID, reply=False)


def test_unaligned_signature_is_dkim_not_aligned(rules, signer) -> None:
    raw = signer.sign(plain_message(), rsa_key(2048), "mailchimp-mail.com")
    decision = run(rules, raw, signer.zone)
    assert_rejected(decision, ReasonCode.DKIM_NOT_ALIGNED, reply=False)
    assert decision.authentication.dkim is DkimStatus.PASS
    assert decision.authentication.aligned is False


def test_subdomain_signature_aligns_relaxed(rules, signer) -> None:
    # d=mail.utrecht.nl and From @utrecht.nl share the organisational domain
    raw = signer.sign(plain_message(), rsa_key(2048), "mail.utrecht.nl")
    decision = run(rules, raw, signer.zone)
    assert_authorised(decision)
    assert decision.authentication.signing_domain == "mail.utrecht.nl"


def test_public_suffix_is_not_an_organisational_domain(rules, signer) -> None:
    # d=nl would "align" with every .nl domain if the PSL were not consulted
    raw = signer.sign(plain_message(), rsa_key(2048), "nl")
    assert_rejected(run(rules, raw, signer.zone), ReasonCode.DKIM_NOT_ALIGNED, reply=False)


def test_temporary_key_failure_is_deferred_without_reply(rules, signer) -> None:
    raw = signed(signer, plain_message())
    decision = run(rules, raw, signer.zone, temporary=(key_name(K2048, "utrecht.nl"),))
    assert decision.outcome is Outcome.DEFERRED
    assert ReasonCode.DNS_TEMPORARY_FAILURE in decision.reasons
    assert decision.reply is False
    assert decision.authentication.dkim is DkimStatus.TEMPERROR


# ---------------------------------------------------------------------------------------------
# clarifications: algorithms, key sizes, l=


def test_ed25519_signature_passes(rules, signer) -> None:
    raw = signer.sign(plain_message(), ed25519_key(), "utrecht.nl", "ed")
    assert b"a=ed25519-sha256" in raw
    decision = run(rules, raw, signer.zone)
    assert_authorised(decision)
    assert decision.authentication.signatures[-1].algorithm == "ed25519-sha256"


def test_ed25519_tampered_body_fails(rules, signer) -> None:
    raw = signer.sign(plain_message(), ed25519_key(), "utrecht.nl", "ed")
    tampered = raw.replace(b"88123", b"88124")
    assert_rejected(run(rules, tampered, signer.zone), ReasonCode.DKIM_INVALID, reply=False)


def test_rsa_1024_bits_is_accepted(rules, signer) -> None:
    assert rsa_key(1024).n.bit_length() == 1024
    raw = signer.sign(plain_message(), rsa_key(1024), "utrecht.nl", "k1024")
    assert_authorised(run(rules, raw, signer.zone))


def test_rsa_512_bits_is_dkim_invalid(rules, signer) -> None:
    raw = signer.sign(plain_message(), rsa_key(512), "utrecht.nl", "k512")
    decision = run(rules, raw, signer.zone)
    assert_rejected(decision, ReasonCode.DKIM_INVALID, reply=False)
    assert "small" in detail(decision)


def test_body_length_covering_whole_body_passes(rules, signer) -> None:
    raw = signed(signer, plain_message(), length=True)
    assert b"l=" in raw
    assert_authorised(run(rules, raw, signer.zone))


def test_body_length_with_appended_text_is_dkim_invalid(rules, signer) -> None:
    raw = signed(signer, plain_message(), length=True)
    appended = raw + (
        b"\r\nPS: het juiste account is evil.attacker@gmail.com\r\n"
        b"E-mailadres account: evil.attacker@gmail.com\r\n"
    )
    decision = run(rules, appended, signer.zone)
    assert_rejected(decision, ReasonCode.DKIM_INVALID, reply=False)
    assert "l=" in decision.authentication.signatures[0].detail


# ---------------------------------------------------------------------------------------------
# clarifications: several signatures


def test_only_second_signature_passes_aligned(rules, signer) -> None:
    inner = signed(signer, plain_message())  # valid, aligned (will be the 2nd header)
    broken = signature_header(inner, rsa_key(2048, "other"), "utrecht.nl", "broken")
    signer.zone[key_name("broken", "utrecht.nl")] = rsa_key(2048).txt()  # wrong key for it
    decision = run(rules, broken + inner, signer.zone)
    assert_authorised(decision)
    sigs = decision.authentication.signatures
    assert [s.verdict for s in sigs] == [SignatureVerdict.FAIL, SignatureVerdict.PASS]


def test_unaligned_pass_then_aligned_pass_is_authorised(rules, signer) -> None:
    inner = signed(signer, plain_message())
    outer = signer.sign(inner, rsa_key(2048), "outbound.protection.outlook.com", "esp")
    assert_authorised(run(rules, outer, signer.zone))


def test_aligned_temperror_with_unaligned_pass_is_deferred(rules, signer) -> None:
    inner = signed(signer, plain_message())
    raw = signer.sign(inner, rsa_key(2048), "mailchimp-mail.com", "esp")
    decision = run(rules, raw, signer.zone, temporary=(key_name(K2048, "utrecht.nl"),))
    assert decision.outcome is Outcome.DEFERRED
    assert decision.reasons[0] is ReasonCode.DNS_TEMPORARY_FAILURE
    assert decision.reply is False


@pytest.mark.parametrize("temp_first", [True, False], ids=["temperror_first", "pass_first"])
def test_temperror_does_not_defer_when_aligned_pass_exists(rules, signer, temp_first) -> None:
    base = plain_message()
    good = signature_header(base, rsa_key(2048), "utrecht.nl", "good")
    flaky = signature_header(base, rsa_key(2048, "other"), "utrecht.nl", "flaky")
    signer.publish(rsa_key(2048), "utrecht.nl", "good")
    signer.publish(rsa_key(2048, "other"), "utrecht.nl", "flaky")
    raw = (flaky + good if temp_first else good + flaky) + base
    decision = run(rules, raw, signer.zone, temporary=(key_name("flaky", "utrecht.nl"),))
    assert_authorised(decision)


def test_unaligned_pass_with_aligned_failure_is_not_aligned(rules, signer) -> None:
    inner = signed(signer, plain_message())
    raw = signer.sign(inner, rsa_key(2048), "mailchimp-mail.com", "esp")
    # the aligned key is revoked: only the unaligned signature verifies
    signer.zone[key_name(K2048, "utrecht.nl")] = REVOKED_TXT
    decision = run(rules, raw, signer.zone)
    assert_rejected(decision, ReasonCode.DKIM_NOT_ALIGNED, reply=False)
    assert ReasonCode.DKIM_INVALID not in decision.reasons


def test_hundreds_of_signatures_are_bounded(rules, signer) -> None:
    # DoS guard: every try may wait for a DNS timeout. The junk signatures carry a correct
    # body hash, so each one gets as far as the key lookup.
    base = plain_message()
    junk = signature_header(base, rsa_key(2048), "utrecht.nl", "sel")
    signer.publish(rsa_key(2048, "other"), "utrecht.nl", "sel")  # so every one fails
    calls: list[str] = []
    context = DecisionContext(rules, dict_lookup(signer.zone, calls=calls), SUPPORT)
    start = time.monotonic()
    decision = decide(junk * 400 + base, context, time.time())
    assert time.monotonic() - start < 30  # hang guard; the call count below is the real check
    assert_rejected(decision, ReasonCode.DKIM_INVALID, reply=False)
    assert len(calls) == MAX_SIGNATURES
    assert len(decision.authentication.signatures) == MAX_SIGNATURES


def test_aligned_pass_after_several_failing_signatures_counts(rules, signer) -> None:
    base = plain_message()
    junk = signature_header(base, rsa_key(2048), "lists.example.org", "list")
    signer.publish(rsa_key(2048, "other"), "lists.example.org", "list")
    raw = junk * (MAX_SIGNATURES - 1) + signature_header(base, rsa_key(2048), "utrecht.nl") + base
    signer.publish(rsa_key(2048), "utrecht.nl")
    assert_authorised(run(rules, raw, signer.zone))


# ---------------------------------------------------------------------------------------------
# identity: the From address only; allowlist exact, IDN-normalised


def test_display_name_spoof_is_not_allowlisted(rules, signer) -> None:
    raw = signer.sign(
        plain_message(from_='"j.devries@utrecht.nl" <evil@gmail.com>'), rsa_key(2048), "gmail.com"
    )
    calls: list[str] = []
    decision = decide(raw, DecisionContext(rules, dict_lookup(signer.zone, calls=calls), SUPPORT),
        time.time())
    assert_rejected(decision, ReasonCode.DOMAIN_NOT_ALLOWLISTED, reply=False)
    assert decision.sender.address == "evil@gmail.com"
    assert calls == []  # cost before trust: no DNS for a sender we would never act on


def test_reply_to_sender_return_path_never_identify(rules, signer) -> None:
    headers = [
        ("Reply-To", "Jan de Vries <j.devries@utrecht.nl>"),
        ("Sender", "j.devries@utrecht.nl"),
        ("Return-Path", "<j.devries@utrecht.nl>"),
    ]
    raw = signer.sign(
        plain_message(from_="Jan de Vries <jan.devries1970@gmail.com>", extra_headers=headers),
        rsa_key(2048),
        "gmail.com",
    )
    decision = run(rules, raw, signer.zone)
    assert_rejected(decision, ReasonCode.DOMAIN_NOT_ALLOWLISTED, reply=False)
    assert decision.sender.address == "jan.devries1970@gmail.com"


def test_utrecht_signature_does_not_authorise_foreign_from(rules, signer) -> None:
    # signed by utrecht.nl, but From is elsewhere: not allowlisted, whatever the signature
    raw = signed(signer, plain_message(from_="evil@gmail.com"))
    assert_rejected(run(rules, raw, signer.zone), ReasonCode.DOMAIN_NOT_ALLOWLISTED, reply=False)


def test_foreign_signature_on_allowlisted_from_is_not_aligned(rules, signer) -> None:
    raw = signer.sign(plain_message(), rsa_key(2048), "gmail.com")
    assert_rejected(run(rules, raw, signer.zone), ReasonCode.DKIM_NOT_ALIGNED, reply=False)


LOOKALIKES = {
    "hyphen": ("j.devries@utrecht-nl.com", "utrecht-nl.com"),
    "suffix": ("j.devries@utrecht.nl.evil.com", "evil.com"),
    "diaeresis": ("j.devries@utrëcht.nl", "xn--utrcht-rva.nl"),
    "diaeresis_alabel": ("j.devries@xn--utrcht-rva.nl", "xn--utrcht-rva.nl"),
    "cyrillic_ie": ("j.devries@utr\u0435cht.nl", "xn--utrcht-5of.nl"),
    "cyrillic_o": ("p.bakker@z\u043eetermeer.nl", "xn--zetermeer-02h.nl"),
    "trailing_dot": ("j.devries@utrecht.nl.", None),
}


@pytest.mark.parametrize(("address", "d"), LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_lookalike_domains_are_not_allowlisted(rules, signer, address: str, d: str | None) -> None:
    raw = plain_message(from_=f"Jan de Vries <{address}>")
    if d is not None:  # the attacker owns the lookalike and signs it properly
        raw = signer.sign(raw, rsa_key(2048), d)
    decision = run(rules, raw, signer.zone)
    assert decision.outcome is Outcome.REJECTED
    assert decision.reply is False
    assert decision.sender.municipality is None
    if d is not None:
        assert decision.reasons == [ReasonCode.DOMAIN_NOT_ALLOWLISTED]


def test_unlisted_subdomain_is_not_allowlisted_even_when_aligned(rules, signer) -> None:
    for d in ("utrecht.nl", "bz.utrecht.nl"):
        raw = signer.sign(plain_message(from_="j.devries@bz.utrecht.nl"), rsa_key(2048), d)
        calls: list[str] = []
        context = DecisionContext(rules, dict_lookup(signer.zone, calls=calls), SUPPORT)
        decision = decide(raw, context, time.time())
        assert calls == []  # not allowlisted: decided before any DNS lookup
        assert_rejected(decision, ReasonCode.DOMAIN_NOT_ALLOWLISTED, reply=False)


def test_uppercase_from_domain_is_normalised(rules, signer) -> None:
    raw = signed(signer, plain_message(from_="Jan de Vries <J.DeVries@UTRECHT.NL>"))
    decision = run(rules, raw, signer.zone)
    assert_authorised(decision)
    assert decision.sender.address == "j.devries@utrecht.nl"


@pytest.mark.parametrize(
    "from_domain", [SUDWEST_ALABEL, "súdwest-fryslân.nl", "SÚDWEST-FRYSLÂN.NL"]
)
def test_idn_allowlist_entry_matches_its_a_label(rules, signer, from_domain: str) -> None:
    raw = signer.sign(
        plain_message(from_=f"Sietske Zijlstra <s.zijlstra@{from_domain}>"),
        rsa_key(2048),
        SUDWEST_ALABEL,
    )
    decision = run(rules, raw, signer.zone)
    assert_authorised(decision)
    assert decision.sender.municipality == "Súdwest-Fryslân"
    assert decision.sender.address == f"s.zijlstra@{SUDWEST_ALABEL}"


# ---------------------------------------------------------------------------------------------
# individual and registered senders (authentic + allowlisted: these get a reply)


@pytest.mark.parametrize(
    "local", ["info", "Info", "klantcontact", "noreply", "team-inkomen", "wmo.loket", "postbus"]
)
def test_group_mailbox_is_rejected_with_reply(rules, signer, local: str) -> None:
    raw = signed(signer, plain_message(from_=f"Gemeente Utrecht <{local}@utrecht.nl>"))
    decision = run(rules, raw, signer.zone)
    assert_rejected(decision, ReasonCode.GROUP_MAILBOX, reply=True)
    assert decision.reasons == [ReasonCode.GROUP_MAILBOX]
    assert decision.sender.municipality == "Utrecht"


def test_group_mailbox_with_invalid_dkim_gets_no_reply(rules, signer) -> None:
    raw = signed(signer, plain_message(from_="info@utrecht.nl")).replace(b"88123", b"1")
    decision = run(rules, raw, signer.zone)
    assert decision.outcome is Outcome.REJECTED
    assert ReasonCode.DKIM_INVALID in decision.reasons
    assert decision.reply is False


def test_surname_post_is_an_individual(rules, signer) -> None:
    raw = signed(signer, plain_message(from_="Anna Post <a.post@utrecht.nl>"))
    assert_authorised(run(rules, raw, signer.zone))


def test_unregistered_sender_is_rejected_with_reply(rules, signer) -> None:
    raw = signer.sign(plain_message(from_="p.jansen@eindhoven.nl"), rsa_key(2048), "eindhoven.nl")
    decision = run(rules, raw, signer.zone)
    assert_rejected(decision, ReasonCode.SENDER_NOT_REGISTERED, reply=True)
    assert decision.reasons == [ReasonCode.SENDER_NOT_REGISTERED]
    assert decision.sender.municipality == "Eindhoven"


@pytest.mark.parametrize("address", ["a.devries@eindhoven.nl", "A.DEVRIES@Eindhoven.NL"])
def test_registered_contact_matches_case_insensitively(rules, signer, address: str) -> None:
    raw = signer.sign(plain_message(from_=address), rsa_key(2048), "eindhoven.nl")
    assert_authorised(run(rules, raw, signer.zone))


# ---------------------------------------------------------------------------------------------
# automatic mail: ignored, never a reply (checked before authentication)

OOO_EXCHANGE = [
    ("Auto-Submitted", "auto-replied"),
    ("X-Auto-Response-Suppress", "All"),
    ("X-MS-Exchange-Inbox-Rules-Loop", "j.devries@utrecht.nl"),
]
OOO_BODY = (
    "Ik ben afwezig tot en met maandag 7 december en heb beperkt toegang tot mijn e-mail.\r\n"
    "Voor dringende zaken kunt u contact opnemen met het KCC via 14 030.\r\n"
)


@pytest.mark.parametrize(
    "headers",
    [
        OOO_EXCHANGE,
        [("Auto-Submitted", "auto-generated")],
        [("X-Autoreply", "yes")],
        [("X-Autorespond", "Afwezigheidsbericht")],
        [("Precedence", "bulk")],
        [("Auto-Submitted", "auto-replied (vacation)")],
    ],
    ids=["exchange_ooo", "auto_generated", "x_autoreply", "x_autorespond", "bulk", "vacation"],
)
def test_auto_replies_are_ignored(rules, signer, headers) -> None:
    raw = signed(
        signer,
        plain_message(subject="Automatisch antwoord: Verzoek reset 2FA", body=OOO_BODY,
                      extra_headers=headers),
    )
    decision = run(rules, raw, signer.zone)
    assert_ignored(decision, ReasonCode.AUTO_SUBMITTED)


def test_unsigned_auto_reply_is_still_just_ignored(rules) -> None:
    decision = run(rules, plain_message(body=OOO_BODY, extra_headers=OOO_EXCHANGE))
    assert_ignored(decision, ReasonCode.AUTO_SUBMITTED)
    assert ReasonCode.DKIM_MISSING not in decision.reasons


@pytest.mark.parametrize("value", ["no", "No", "no (human)"])
def test_auto_submitted_no_is_a_human(rules, signer, value: str) -> None:
    raw = signed(signer, plain_message(extra_headers=[("Auto-Submitted", value)]))
    assert_authorised(run(rules, raw, signer.zone))


def postfix_bounce(returned: bytes) -> bytes:
    boundary = "4Kq7dT0vG1z5xMailerDaemon"
    head = (
        "Return-Path: <>\r\n"
        "Date: Thu, 26 Nov 2026 08:00:00 +0100 (CET)\r\n"
        "From: MAILER-DAEMON@mx1.utrecht.nl (Mail Delivery System)\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "To: j.devries@utrecht.nl\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "Message-Id: <20261126070000.1A2B3C4D5E@mx1.utrecht.nl>\r\n"
        "\r\n"
        "This is a MIME-encapsulated message.\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "This is the mail system at host mx1.utrecht.nl.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        "<support@forus.test>: host mx.forus.test[127.0.0.1] said: 550 5.1.1 unknown user\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx1.utrecht.nl\r\n"
        "Arrival-Date: Thu, 26 Nov 2026 07:59:58 +0100 (CET)\r\n\r\n"
        "Final-Recipient: rfc822; support@forus.test\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Undelivered Message\r\n"
        "Content-Type: message/rfc822\r\n\r\n"
    ).encode()
    return head + returned + f"\r\n--{boundary}--\r\n".encode()


def test_postfix_bounce_is_ignored(rules, signer) -> None:
    raw = postfix_bounce(signed(signer, plain_message()))
    decision = run(rules, raw, signer.zone)
    assert_ignored(decision, ReasonCode.BOUNCE)


def test_bounce_without_auto_submitted_is_still_a_bounce(rules, signer) -> None:
    raw = postfix_bounce(signed(signer, plain_message())).replace(
        b"Auto-Submitted: auto-replied\r\n", b""
    )
    decision = run(rules, raw, signer.zone)
    assert_ignored(decision, ReasonCode.BOUNCE)
    assert ReasonCode.AUTO_SUBMITTED not in decision.reasons


def test_mailer_daemon_sender_is_a_bounce(rules, signer) -> None:
    raw = signed(signer, plain_message(from_="Mail Delivery System <MAILER-DAEMON@utrecht.nl>"))
    assert_ignored(run(rules, raw, signer.zone), ReasonCode.BOUNCE)


@pytest.mark.parametrize(
    "headers",
    [
        [("List-Id", "Gemeentelijke ICT <ict-nieuws.lists.vng.nl>")],
        [("List-Unsubscribe", "<mailto:leave-ict@lists.vng.nl>")],
        [("Precedence", "list")],
    ],
    ids=["list_id", "list_unsubscribe", "precedence_list"],
)
def test_mailing_list_is_ignored(rules, signer, headers) -> None:
    raw = signed(signer, plain_message(extra_headers=headers))
    assert_ignored(run(rules, raw, signer.zone), ReasonCode.MAILING_LIST)


@pytest.mark.parametrize("address", [SUPPORT, "Forus Support <SUPPORT@Forus.Test>"])
def test_our_own_address_is_ignored(rules, address: str) -> None:
    decision = run(rules, plain_message(from_=address, to="j.devries@utrecht.nl"))
    assert_ignored(decision, ReasonCode.OWN_MESSAGE)


def test_our_reply_marker_header_is_ignored(rules, signer) -> None:
    raw = signed(signer, plain_message(extra_headers=[("X-Reset-Mailbot", "reply; case=123")]))
    assert_ignored(run(rules, raw, signer.zone), ReasonCode.OWN_MESSAGE)


# ---------------------------------------------------------------------------------------------
# robustness: decide() never raises, always returns a Decision


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_decide_never_raises_on_arbitrary_bytes(rules, raw: bytes) -> None:
    decision = run(rules, raw)
    assert isinstance(decision, Decision)
    assert decision.outcome in set(Outcome)
    if decision.outcome is not Outcome.IGNORED:
        assert decision.reply is False  # nothing here is authentic


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=2000))
def test_decide_never_raises_on_arbitrary_text(rules, text: str) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    decision = run(rules, raw)
    assert isinstance(decision, Decision)
    assert decision.reply is False or decision.outcome is Outcome.IGNORED


_SIGNER = Signer()
_REAL = [
    _SIGNER.sign(plain_message(), rsa_key(2048), "utrecht.nl"),
    _SIGNER.sign(outlook_message(attachment=bytes(range(256)) * 20), rsa_key(2048), "utrecht.nl"),
    _SIGNER.sign(plain_message(from_="info@utrecht.nl"), ed25519_key(), "utrecht.nl", "ed"),
]


def _mutations() -> st.SearchStrategy[bytes]:
    real = st.sampled_from(_REAL)
    junk = st.binary(min_size=1, max_size=200)
    header_name = st.sampled_from(
        [b"From", b"DKIM-Signature", b"Content-Type", b"Subject", b"To", b"Auto-Submitted",
         b"Message-ID", b"Content-Transfer-Encoding", b"Return-Path", b"List-Id"]
    )
    header_value = st.one_of(
        junk,
        st.sampled_from([
            b"=?utf-8?b?////?=", b"=?x-unknown?q?=FF=FE?=", b"multipart/mixed; boundary=",
            b'multipart/mixed; boundary="', b"text/plain; charset=x-does-not-exist",
            b"v=1; a=rsa-sha256; d=utrecht.nl; s=selector1; h=from; bh=; b=",
            b"v=1; a=rsa-sha256; d=; s=; h=; bh=!!; b=!!; l=; x=abc", b"<>", b"\x00\x00",
            b"a@b, c@d, \"x\" <y@z>", b"\xff\xfe\xfd utrecht.nl", b"undisclosed:;",
        ]),
    )

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        raw = draw(real)
        kind = draw(st.integers(0, 7))
        head, _, body = raw.partition(b"\r\n\r\n")
        if kind == 0:  # header injection at a random point
            line = draw(header_name) + b": " + draw(header_value) + b"\r\n"
            pos = draw(st.integers(0, len(raw)))
            return raw[:pos] + line + raw[pos:]
        if kind == 1:  # huge header counts
            count = draw(st.integers(900, 3000))
            return draw(header_name) + b": x\r\n" * 1 + b"X-Spam: 1\r\n" * count + raw
        if kind == 2:  # broken MIME boundaries
            return raw.replace(b"--_000_", b"--_0X0_", draw(st.integers(1, 3))).replace(
                b"boundary=", b"boundary=\x00"
            )
        if kind == 3:  # bad charsets
            return raw.replace(b'charset="utf-8"', b"charset=\"x-nope\x00\"").replace(
                b"8bit", b"x-unknown-cte"
            ) + b"\xff\xfe\x80\x81"
        if kind == 4:  # NUL bytes in random places
            for _ in range(draw(st.integers(1, 10))):
                pos = draw(st.integers(0, len(raw)))
                raw = raw[:pos] + b"\x00" + raw[pos:]
            return raw
        if kind == 5:  # 8-bit headers (latin-1 and raw UTF-8, unencoded)
            head = head.replace(b"Jan de Vries", "Jän dé Vrïes".encode("latin-1"))
            head = head.replace(b"Subject: ", "Subject: Verzoek – spoed ✓ ".encode())
            return head + b"\r\n\r\n" + body
        if kind == 6:  # truncation
            return raw[: draw(st.integers(0, len(raw)))]
        # byte flips
        data = bytearray(raw)
        for _ in range(draw(st.integers(1, 20))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)

    return mutate()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_decide_never_raises_on_mutated_real_messages(rules, raw: bytes) -> None:
    decision = run(rules, raw, _SIGNER.zone)
    assert isinstance(decision, Decision)
    assert decision.outcome in set(Outcome)
    assert decision.message_key
