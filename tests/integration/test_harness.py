"""Proof that the real-services harness behaves like the real thing.

Other tests rely on these fixtures answering, failing and truncating the way production
services do; if one of these tests fails, every integration test built on it is suspect.
"""

from __future__ import annotations

import base64
import secrets
import smtplib
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.resolver
import pytest
import sqlalchemy
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from reset_mailbot_testing.dovecot import Dovecot, DovecotError
from reset_mailbot_testing.smtp_sink import SmtpSink
from tests.harness.dns_fixtures import DnsServer
from tests.harness.mail_fixtures import Mailbox

pytestmark = pytest.mark.services


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def rsa_public_key_record(bits: int) -> str:
    """A DKIM TXT value with a `bits`-bit RSA SubjectPublicKeyInfo of the real size.

    The modulus is random (not a product of primes): only the record's size matters here.
    """
    modulus = int.from_bytes(secrets.token_bytes(bits // 8), "big") | (1 << (bits - 1)) | 1
    n = _der(0x02, b"\x00" + modulus.to_bytes(bits // 8, "big"))
    e = _der(0x02, (65537).to_bytes(3, "big"))
    rsa_key = _der(0x30, n + e)
    algorithm = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    spki = _der(0x30, algorithm + _der(0x03, b"\x00" + rsa_key))
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()


def txt_value(answer: dns.resolver.Answer) -> str:
    return b"".join(answer[0].strings).decode()


# -- DNS -------------------------------------------------------------------------------


def test_dns_txt_answer_case_insensitive_and_split(clean_dns: DnsServer) -> None:
    value = rsa_public_key_record(2048)
    clean_dns.set_records({"Sel1._domainkey.Utrecht.nl.": value})
    res = clean_dns.resolver()

    answer = res.resolve("sel1._domainkey.utrecht.nl", "TXT")
    assert txt_value(answer) == value
    assert [len(s) for s in answer[0].strings][:1] == [255]  # split into 255-byte strings
    assert txt_value(res.resolve("SEL1._DOMAINKEY.UTRECHT.NL.", "TXT")) == value


def test_dns_nested_record_format_and_other_type(clean_dns: DnsServer) -> None:
    clean_dns.set_records({"mixed.test": {"TXT": "hello", "A": "192.0.2.7"}, "txt.test": "x"})
    res = clean_dns.resolver()

    assert txt_value(res.resolve("mixed.test", "TXT")) == "hello"
    assert res.resolve("mixed.test", "A")[0].address == "192.0.2.7"
    with pytest.raises(dns.resolver.NoAnswer):  # known name, no record of that type
        res.resolve("txt.test", "A")


def test_dns_unknown_name_is_nxdomain(clean_dns: DnsServer) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        clean_dns.resolver().resolve("nobody._domainkey.example.nl", "TXT")


def test_dns_servfail(clean_dns: DnsServer) -> None:
    clean_dns.set_records({"sel._domainkey.broken.nl": "v=DKIM1; p="})
    clean_dns.set_faults(servfail=["sel._domainkey.broken.nl"])

    with pytest.raises(dns.resolver.NoNameservers, match="SERVFAIL"):
        clean_dns.resolver().resolve("sel._domainkey.broken.nl", "TXT")


def test_dns_timeout(clean_dns: DnsServer) -> None:
    clean_dns.set_faults(timeout=["slow._domainkey.example.nl"])

    started = time.monotonic()
    with pytest.raises(dns.resolver.LifetimeTimeout):
        clean_dns.resolver(lifetime=0.5).resolve("slow._domainkey.example.nl", "TXT")
    assert time.monotonic() - started < 3


def test_dns_4096_bit_key_is_truncated_over_udp_and_resolved_over_tcp(
    clean_dns: DnsServer,
) -> None:
    name = "big._domainkey.example.nl."
    value = rsa_public_key_record(4096)
    clean_dns.set_records({name: value})

    query = dns.message.make_query(name, "TXT")  # no EDNS: 512-byte limit
    udp_reply = dns.query.udp(query, clean_dns.host, port=clean_dns.port, timeout=2)
    assert udp_reply.flags & dns.flags.TC
    assert udp_reply.question == query.question
    assert not udp_reply.answer

    edns_query = dns.message.make_query(name, "TXT", use_edns=0, payload=1232)
    edns_reply = dns.query.udp(edns_query, clean_dns.host, port=clean_dns.port, timeout=2)
    assert not edns_reply.flags & dns.flags.TC  # fits in the client's 1232 bytes
    assert b"".join(edns_reply.answer[0][0].strings).decode() == value

    tcp_reply = dns.query.tcp(query, clean_dns.host, port=clean_dns.port, timeout=2)
    assert b"".join(tcp_reply.answer[0][0].strings).decode() == value

    res = clean_dns.resolver()
    res.use_edns(-1)  # plain DNS: the resolver has to fall back to TCP itself
    assert txt_value(res.resolve(name, "TXT")) == value


def test_dns_record_change_visible_immediately(clean_dns: DnsServer) -> None:
    res = clean_dns.resolver()
    name = "rotating._domainkey.example.nl"
    for i in range(20):  # many writes within one second, same file size
        clean_dns.set_records({name: f"v=DKIM1; p=key{i:02d}"})
        assert txt_value(res.resolve(name, "TXT")) == f"v=DKIM1; p=key{i:02d}"
    clean_dns.remove_records(name)
    with pytest.raises(dns.resolver.NXDOMAIN):
        res.resolve(name, "TXT")
    clean_dns.set_faults(servfail=[name])
    clean_dns.set_records({name: "v=DKIM1; p=back"})
    with pytest.raises(dns.resolver.NoNameservers):
        res.resolve(name, "TXT")
    clean_dns.set_faults()
    assert txt_value(res.resolve(name, "TXT")) == "v=DKIM1; p=back"


def test_dns_serves_the_example_zone(clean_dns: DnsServer) -> None:
    from tests.examples import EXAMPLES as examples
    clean_dns.load_zone_file(examples / "zone.json")
    answer = clean_dns.resolver().resolve("selector1._domainkey.utrecht.nl", "TXT")
    assert txt_value(answer).startswith("v=DKIM1; k=rsa; p=MIIBIjAN")


# -- Dovecot -----------------------------------------------------------------------------

RAW = (
    b"From: Anna de Vries <a.devries@utrecht.nl>\r\n"
    b"To: support@forus.test\r\n"
    b"Subject: 2FA reset\r\n"
    b"Message-ID: <harness-1@utrecht.nl>\r\n"
    b"Date: Thu, 26 Nov 2026 09:00:00 +0100\r\n"
    b"\r\n"
    b"Graag 2FA resetten voor j.jansen@utrecht.nl.\r\n"
)


def test_dovecot_support_user_login_and_lmtp_delivery(dovecot: Dovecot) -> None:
    dovecot.reset_user("support@forus.test")
    dovecot.deliver(RAW, rcpt="support@forus.test", mail_from="a.devries@utrecht.nl")

    imap = IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False, timeout=10)
    try:
        imap.login("support@forus.test", "secret")
        imap.select_folder("INBOX")
        uids = imap.search("UNSEEN")
        assert len(uids) == 1
        body = imap.fetch(uids, ["BODY.PEEK[]"])[uids[0]][b"BODY[]"]
    finally:
        imap.logout()
    assert body.endswith(RAW)
    assert b"Delivered-To: support@forus.test" in body
    assert {"INBOX", "Sent", "Trash", "Junk", "Drafts"} <= set(dovecot.folders())
    dovecot.reset_user("support@forus.test")
    assert dovecot.list_folder("INBOX") == []


def test_dovecot_wrong_password_is_refused(dovecot: Dovecot) -> None:
    imap = IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False, timeout=10)
    try:
        with pytest.raises(LoginError):
            imap.login("support@forus.test", "wrong")
    finally:
        imap.shutdown()


def test_mailbox_is_fresh_and_supports_append_and_idle(mailbox: Mailbox) -> None:
    assert mailbox.list_folder("INBOX") == []
    uid = mailbox.append("Archive/2026", RAW, flags=[r"\Seen"])
    assert uid == 1
    assert mailbox.list_folder("Archive/2026") == [RAW]

    imap = mailbox.client()
    try:
        imap.select_folder("INBOX")
        imap.idle()
        started = time.monotonic()
        mailbox.deliver(RAW)
        responses = imap.idle_check(timeout=5)
        imap.idle_done()
    finally:
        imap.logout()
    assert (1, b"EXISTS") in responses
    assert time.monotonic() - started < 5
    [delivered] = mailbox.list_folder("INBOX")
    assert delivered.endswith(RAW)


def test_lmtp_refuses_unknown_recipient(dovecot: Dovecot) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        dovecot.deliver(RAW, rcpt="nobody@forus.test")


# -- SMTP sink ---------------------------------------------------------------------------


def test_smtp_sink_stores_message_and_envelope(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.sendmail("support@forus.test", ["a.devries@utrecht.nl", "b@utrecht.nl"], RAW)

    [(envelope, raw)] = smtp_sink.messages()
    assert raw == RAW
    assert envelope["mail_from"] == "support@forus.test"
    assert envelope["rcpt_tos"] == ["a.devries@utrecht.nl", "b@utrecht.nl"]
    assert envelope["auth_user"] is None
    smtp_sink.clear()
    assert smtp_sink.messages() == []


@pytest.mark.parametrize(("code", "stage"), [(451, "RCPT"), (550, "RCPT"), (451, "DATA"),
                                             (550, "DATA"), (451, "MAIL")])
def test_smtp_sink_refuses_when_told(smtp_sink: SmtpSink, code: int, stage: str) -> None:
    smtp_sink.refuse, smtp_sink.refuse_at = code, stage

    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp, pytest.raises(
        smtplib.SMTPException
    ) as excinfo:
        smtp.sendmail("support@forus.test", ["a.devries@utrecht.nl"], RAW)
    exc = excinfo.value
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [c for c, _msg in exc.recipients.values()]
    else:
        assert isinstance(exc, smtplib.SMTPResponseException)
        codes = [exc.smtp_code]
    assert codes == [code]
    assert smtp_sink.messages() == []

    smtp_sink.refuse = None
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.sendmail("support@forus.test", ["a.devries@utrecht.nl"], RAW)
    assert len(smtp_sink.messages()) == 1


def test_smtp_sink_auth(smtp_sink: SmtpSink) -> None:
    smtp_sink.require_auth("bot@forus.test", "s3cret")

    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as excinfo:
            smtp.sendmail("support@forus.test", ["a@utrecht.nl"], RAW)
        assert excinfo.value.smtp_code == 530
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp, pytest.raises(
        smtplib.SMTPAuthenticationError
    ):
        smtp.login("bot@forus.test", "wrong")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.login("bot@forus.test", "s3cret")
        smtp.sendmail("support@forus.test", ["a@utrecht.nl"], RAW)

    [(envelope, raw)] = smtp_sink.messages()
    assert envelope["auth_user"] == "bot@forus.test"
    assert raw == RAW


# -- PostgreSQL / database_url ---------------------------------------------------------


def test_postgres_url_connects(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select 1")).scalar_one() == 1
            version = conn.execute(sqlalchemy.text("show server_version")).scalar_one()
    finally:
        engine.dispose()
    assert int(version.split(".")[0]) >= 13


def test_database_url_is_fresh_and_writable(database_url: str) -> None:
    engine = sqlalchemy.create_engine(database_url)
    try:
        assert sqlalchemy.inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("create table t (id integer primary key, v text)"))
            conn.execute(sqlalchemy.text("insert into t (id, v) values (1, 'x')"))
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("select v from t")).scalar_one() == "x"
    finally:
        engine.dispose()


def test_dovecot_missing_is_a_clear_error(tmp_path: Path) -> None:
    server = Dovecot(tmp_path / "dovecot")
    server.binary = None  # as on a machine without the dovecot-imapd package
    with pytest.raises(DovecotError, match="dovecot is not installed; run `make test-deps`"):
        server.start()
