"""The gate (domain/wire.py): one unambiguous split of the bytes, or a rejection.

The differential property: for any message the gate accepts, dkimpy's own parser and Python's
email parser, each run on the raw bytes independently, read exactly the gate's header fields
(names, order, values) - so what DKIM verified is what the decision reads. Messages are
generated with mixed line endings, bare CR/LF, repeated and folded fields and junk lines.
"""

from __future__ import annotations

import email
import re
from email.policy import compat32

import dkim
import pytest
from dkim.canonicalization import Relaxed, Simple
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reset_mailbot.domain.authentication import relaxed_body, simple_body
from reset_mailbot.domain.message import parse_message
from reset_mailbot.domain.reasons import ReasonCode
from reset_mailbot.domain.wire import SINGLETON_FIELDS, WireError, WireLimits, read_wire

NAMES = ["From", "To", "Cc", "Subject", "Content-Type", "Received", "X-Note", "DKIM-Signature",
         "Auto-Submitted", "Message-ID", "Content-Transfer-Encoding", "X-Spam"]
ENDINGS = [b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\r"]


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A header section of fields, continuations and odd lines, each line with a line end
    drawn mostly from CRLF, sometimes LF, bare CR and other mixtures; then a body."""
    mostly_crlf = draw(st.booleans())
    pieces: list[bytes] = []

    def end() -> bytes:
        if mostly_crlf:
            return draw(st.sampled_from([b"\r\n"] * 12 + ENDINGS))
        return draw(st.sampled_from([b"\n"] * 12 + ENDINGS))

    value = st.text(alphabet=st.sampled_from(list("ab <>@.,:;=?\"\t")), max_size=12)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["field", "field", "field", "fold", "junk", "spaced"]))
        text = draw(value).encode()
        if kind == "field":
            pieces.append(draw(st.sampled_from(NAMES)).encode() + b": " + text + end())
        elif kind == "fold":
            pieces.append(draw(st.sampled_from([b" ", b"\t"])) + text + end())
        elif kind == "spaced":  # blank before the colon (obsolete syntax)
            pieces.append(draw(st.sampled_from(NAMES)).encode() + b" : " + text + end())
        else:
            pieces.append(text.replace(b":", b"") + end())
    body = draw(st.text(alphabet=st.sampled_from(list("ab \t>")), max_size=20)).encode()
    return b"".join(pieces) + end() + body + end() + body


def _python_fields(raw: bytes) -> list[tuple[str, str]]:
    message = email.message_from_bytes(raw, policy=compat32)
    return [(k.lower(), v.replace("\r\n", "\n").strip(" \t\n")) for k, v in message._headers]


def _dkim_fields(raw: bytes) -> list[tuple[str, str]]:
    headers, _body = dkim.rfc822_parse(raw)
    return [(k.decode("ascii").lower(),
             v.decode("utf-8", "surrogateescape").replace("\r\n", "\n").strip(" \t\n"))
            for k, v in headers]


def _gate_fields(raw: bytes) -> list[tuple[str, str]]:
    wire = read_wire(raw)
    return [(f.key, f.value.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
             .strip(" \t\n")) for f in wire.fields]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
@example(b"From : \r\r\nFrom: \n\n\n")  # a bare CR hidden in an mbox separator line
@example(b"From x\nFrom: a@b.nl\r\n\r\nbody")
@example(b"From: a@b.nl\nTo: c@d.nl\n")  # header only, LF line ends
@example(b"From: a@b.nl\r\nTo: c@d.nl\r\n")
def test_accepted_means_every_parser_reads_the_same_fields(raw: bytes) -> None:
    try:
        gate = _gate_fields(raw)
    except WireError as exc:
        assert exc.reason in {ReasonCode.MALFORMED_MESSAGE, ReasonCode.REPEATED_HEADER,
                              ReasonCode.MALFORMED_FROM}
        return
    assert gate == _dkim_fields(raw)
    assert gate == _python_fields(raw)
    keys = [name for name, _ in gate]
    assert all(keys.count(k) == 1 for k in SINGLETON_FIELDS if k in keys)
    parsed = parse_message(raw)
    # what the decision reads: the gate's fields, and a MIME tree over exactly those names
    assert parsed.parse_error is None, parsed.parse_error
    assert parsed.message is not None
    assert [k.lower() for k in parsed.message] == keys


def test_differential_generator_reaches_both_sides() -> None:
    """The property above is only worth something if the generator makes messages that are
    accepted and messages that are rejected for each reason; count them on a fixed sample."""
    from hypothesis import find

    find(messages(), lambda raw: _accepted(raw) and len(_gate_fields(raw)) >= 3)
    for reason in (ReasonCode.MALFORMED_MESSAGE, ReasonCode.REPEATED_HEADER):
        find(messages(), lambda raw, reason=reason: _rejected_for(raw) is reason)


def _accepted(raw: bytes) -> bool:
    try:
        read_wire(raw)
    except WireError:
        return False
    return True


def _rejected_for(raw: bytes) -> ReasonCode | None:
    try:
        read_wire(raw)
    except WireError as exc:
        return exc.reason
    return None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"From: a@b.nl\r\nX: y\rTo: c@d.nl\r\n\r\nbody", ReasonCode.MALFORMED_MESSAGE),
        (b"From: a@b.nl\r\nX: y\nTo: c@d.nl\r\n\r\nbody", ReasonCode.MALFORMED_MESSAGE),
        (b"From: a@b.nl\r\n\r\nbo\rdy\r\n", ReasonCode.MALFORMED_MESSAGE),
        (b"From: a@b.nl\r\n\r\nbo\x00dy\r\n", ReasonCode.MALFORMED_MESSAGE),
        (b"From: a@b.nl\r\nnot a header\r\n\r\nbody", ReasonCode.MALFORMED_MESSAGE),
        (b"From: a@b.nl\r\nSubject : x\r\n\r\nbody", ReasonCode.MALFORMED_MESSAGE),
        (b" folded: first\r\nFrom: a@b.nl\r\n\r\nbody", ReasonCode.MALFORMED_MESSAGE),
        (b"From: a@b.nl\r\nContent-Type: text/html\r\ncontent-type: text/plain\r\n\r\nx",
         ReasonCode.REPEATED_HEADER),
        (b"From: a@b.nl\r\nAuto-Submitted: no\r\nAuto-Submitted: auto-replied\r\n\r\nx",
         ReasonCode.REPEATED_HEADER),
        (b"From: a@b.nl\r\nFrom: c@b.nl\r\n\r\nx", ReasonCode.MALFORMED_FROM),
    ],
)
def test_ambiguous_bytes_are_rejected(raw: bytes, reason: ReasonCode) -> None:
    parsed = parse_message(raw)
    assert parsed.problem is reason
    assert parsed.parse_error


def test_lf_only_and_bare_lf_in_body_are_made_canonical() -> None:
    wire = read_wire(b"From: a@b.nl\nSubject: x\n folded\n\nline 1\nline 2\n")
    assert [f.text for f in wire.fields] == ["a@b.nl", "x folded"]
    assert wire.body == b"line 1\r\nline 2\r\n"
    mixed = read_wire(b"From: a@b.nl\r\n\r\nline 1\nline 2\r\n")
    assert mixed.body == b"line 1\r\nline 2\r\n"


def test_mbox_separator_line_is_skipped() -> None:
    wire = read_wire(b"From someone@x Mon Dec  7 10:00:00 2026\r\nFrom: a@b.nl\r\n\r\nx")
    assert [f.key for f in wire.fields] == ["from"]


def test_folded_fields_are_unfolded_before_reading() -> None:
    raw = (b"From: =?utf-8?q?Jan_de_Vries_=E2=80=93_Afdeling_Werk_en_Inkomen_Gemeente?=\r\n"
           b"\t=?utf-8?q?_Utrecht?= <j.devries@utrecht.nl>\r\n"
           b"To: support@forus.test\r\nCc: a.colleague@utrecht.nl,\r\n\tpiet.jansen@hotmail.com\r\n"
           b"\r\nbody\r\n")
    parsed = parse_message(raw)
    assert parsed.from_mailbox is not None, parsed.from_problem
    assert parsed.from_mailbox.address == "j.devries@utrecht.nl"
    assert "Utrecht" in parsed.from_mailbox.display_name
    assert parsed.recipients == {"support@forus.test", "a.colleague@utrecht.nl",
                                 "piet.jansen@hotmail.com"}


@pytest.mark.parametrize(
    ("field", "value", "limits"),
    [
        ("To", "=?utf-8?q?a?= <a@b.nl>, " * 300, WireLimits()),
        ("Subject", "=?utf-8?q?x?= " * 300, WireLimits()),
        ("From", '"' * 5000 + " <a@b.nl>", WireLimits()),
        ("X-Long", "x" * 70_000, WireLimits()),
    ],
)
def test_limits_are_applied_before_any_parser(field: str, value: str, limits: WireLimits) -> None:
    raw = f"From: a@b.nl\r\n{field}: {value}\r\n\r\nbody".encode()
    if field == "From":
        raw = f"From: {value}\r\n\r\nbody".encode()
    parsed = parse_message(raw, limits)
    assert parsed.problem is ReasonCode.LIMIT_EXCEEDED, parsed.parse_error


def test_size_limit_is_oversize() -> None:
    parsed = parse_message(b"From: a@b.nl\r\n\r\n" + b"x\r\n" * 600, WireLimits(
        max_message_bytes=1000))
    assert parsed.problem is ReasonCode.OVERSIZE


def test_header_count_and_line_limits() -> None:
    many = b"".join(b"X-%d: y\r\n" % i for i in range(1001))
    assert parse_message(b"From: a@b.nl\r\n" + many + b"\r\nx").problem is (
        ReasonCode.LIMIT_EXCEEDED)
    long_line = b"From: a@b.nl\r\n\r\n" + b"y" * 2_000_000
    assert parse_message(long_line).problem is ReasonCode.LIMIT_EXCEEDED


# --- DKIM body canonicalisation: the linear version is dkimpy's, byte for byte ---------------

BODY_BYTES = st.lists(st.sampled_from([b"a", b" ", b"\t", b"\r\n", b"\r", b"\n", b"  ", b"b c"]),
                      max_size=40).map(b"".join)


@settings(max_examples=3000, deadline=None)
@given(BODY_BYTES)
def test_relaxed_body_equals_dkimpy(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@settings(max_examples=1000, deadline=None)
@given(BODY_BYTES)
def test_simple_body_equals_dkimpy(body: bytes) -> None:
    assert simple_body(body) == Simple.canonicalize_body(body)


def test_relaxed_body_is_linear_on_trailing_blanks() -> None:
    import time

    body = b"text\r\n" + b" " * 2_000_000
    start = time.process_time()
    assert relaxed_body(body) == b"text\r\n \r\n"
    assert time.process_time() - start < 0.5


def test_field_text_unfolds_only_crlf_before_blank() -> None:
    wire = read_wire(b"From: a@b.nl\r\nSubject: one\r\n two\r\n\tthree\r\n\r\n")
    assert wire.get("subject") is not None
    assert wire.get("subject").text == "one two\tthree"  # type: ignore[union-attr]
    assert re.fullmatch(r"[^\r\n]*", wire.get("subject").text)  # type: ignore[union-attr]


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([None, "text/plain; charset=utf-8", "TEXT/HTML", "text/plain; format=flowed",
                        "multipart/mixed; boundary=b", "message/rfc822"]),
       st.text(alphabet=st.sampled_from(list("ab \t>-\r\n\u00e9")), max_size=60))
def test_single_part_payload_is_what_the_parser_would_give(ctype: str | None, text: str) -> None:
    """message.py sets a text part's payload directly instead of letting the parser split and
    join its lines (a 25 MB body cost ~4x its size in line objects); it must be the same."""
    head = "From: a@b.nl\r\n" + (f"Content-Type: {ctype}\r\n" if ctype else "")
    raw = (head + "\r\n" + text.replace("\r", "")).encode()
    parsed = parse_message(raw)
    assert parsed.message is not None and parsed.wire is not None
    reference = email.message_from_bytes(parsed.wire.to_bytes(), policy=compat32)
    assert parsed.message.is_multipart() == reference.is_multipart()
    if not reference.is_multipart():
        assert parsed.message.get_payload() == reference.get_payload()


def test_long_base64_runs_are_shortened_without_touching_structure_or_text() -> None:
    import random

    from reset_mailbot_testing.dkim_signing import outlook_message

    raw = outlook_message(attachment=random.Random(7).randbytes(3 * 1024 * 1024))
    parsed = parse_message(raw)
    assert parsed.message is not None and parsed.wire is not None
    full = email.message_from_bytes(parsed.wire.to_bytes(), policy=compat32)
    ours = list(parsed.message.walk())
    theirs = list(full.walk())
    assert [p.get_content_type() for p in ours] == [p.get_content_type() for p in theirs]
    for mine, reference in zip(ours, theirs, strict=True):
        if mine.get_content_maintype() == "text":
            assert mine.get_payload() == reference.get_payload()
    attachment = ours[-1]
    assert attachment.get_content_type() == "application/pdf"
    assert len(attachment.get_payload()) == 64 * 78 + len("ecsVNxZBoIo+lhwc\r\n")  # 64 lines


def _base64_part(content_type: str, data: bytes) -> bytes:
    import base64

    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (b"--b\r\nContent-Type: " + content_type.encode()
            + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + encoded)


@pytest.mark.parametrize("size", [100_000, 3 * 1024 * 1024])
def test_a_long_base64_text_part_is_read_whole(size: int) -> None:
    """A base64 text/html part as long as an attachment: the first parse cuts it, sees that the
    cut landed in a part that is read, and parses the body again whole (above 2 MB: with runs
    cut to their first 760 KB)."""
    import random

    html = b"<p>De identiteit is gecontroleerd.</p>" + random.Random(size).randbytes(size).hex(
        ).encode()[:size] + b"<p>Niet resetten.</p>"
    raw = (b"From: a@utrecht.nl\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           + _base64_part("text/html; charset=utf-8", html)
           + _base64_part("application/pdf", bytes(200_000)) + b"--b--\r\n")
    parsed = parse_message(raw)
    assert parsed.message is not None
    text_part, pdf = [p for p in parsed.message.walk() if not p.is_multipart()]
    decoded = text_part.get_payload(decode=True)
    if size < 2 * 1024 * 1024:
        assert decoded == html  # whole: the tail's "Niet resetten." is read
        assert len(pdf.get_payload()) > 200_000
    else:
        assert decoded[:570_000] == html[:570_000]  # 10,000 lines kept
        assert len(pdf.get_payload()) > 200_000


def test_mime_bombs_are_limited() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(1001))
    head = b"From: a@b.nl\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    raw = head + parts + b"--b--\r\n"
    assert parse_message(raw).problem is ReasonCode.LIMIT_EXCEEDED
    nested = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
                      for i in range(101))
    raw = b"From: a@b.nl\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + nested
    assert parse_message(raw).problem is ReasonCode.LIMIT_EXCEEDED
