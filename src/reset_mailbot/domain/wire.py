"""One view of the bytes: the gate every message passes before anything reads it (issue #11).

DKIM verifies header fields and a body split out of the raw bytes by one parser; the decision
reads them through another. Where the two could split the same bytes differently (a bare CR that
Python's parser takes as a line end and dkimpy does not, a second Content-Type of which one
parser reads the first and the verifier the last, a line that is neither a field nor a
continuation), an attacker holding one genuine signed message can make the bot read something
the signature never covered. So the bytes are split here, once, by rules that leave no choice:

* line endings are made canonical (CRLF) only where that is unambiguous: a message with no CR at
  all, or bare LFs in the body (both DKIM and MIME read LF as a line end there). A bare CR
  anywhere, a bare LF in the header section of a CRLF message, or a NUL byte is
  `malformed_message`;
* every header line is `name: value` (RFC 5322 2.2: printable ASCII name, no blank before the
  colon) or a continuation (starts with space or tab); anything else is `malformed_message`;
* a field RFC 5322 3.6 / RFC 2045 allow once (and Auto-Submitted) appearing twice is
  `repeated_header` - never "first wins";
* size limits are applied to the raw bytes before any parser sees them (`limit_exceeded`,
  `oversize`), because the stdlib parsers are quadratic on some inputs.

The result, `WireMessage`, is the one list of header fields and the one body that DKIM
verification (authentication.py) and reading (message.py) both use. Pure; never raises except
`WireError`, which carries the reason code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from reset_mailbot.domain.reasons import ReasonCode

#: RFC 5322 3.6 fields with max=1, RFC 2045's MIME fields, and RFC 3834 Auto-Submitted.
SINGLETON_FIELDS: frozenset[str] = frozenset({
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id", "in-reply-to",
    "references", "mime-version", "content-type", "content-transfer-encoding", "auto-submitted",
})
#: The fields that decide how the body is framed and decoded (issue #11, "what to build" 2).
BODY_STRUCTURE_FIELDS: tuple[str, ...] = ("content-type", "content-transfer-encoding",
                                          "mime-version")
ADDRESS_FIELDS: frozenset[str] = frozenset({"from", "sender", "reply-to", "to", "cc"})

_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_ENCODED_WORD = re.compile(rb"=\?")
_CRLF_BLANK = re.compile(rb"\r\n(?=[ \t])")
_LF = re.compile(rb"\r?\n")
_BOUNDARY_LINE = re.compile(rb"^--\S", re.MULTILINE)


@dataclass(frozen=True)
class WireLimits:
    """Bounds on the raw bytes. Generous for real mail (Outlook headers are 10-30 KB, a request
    names a handful of recipients); each keeps the parsers behind it far from their quadratic
    corners (issue #11 items 6 and 7)."""

    max_message_bytes: int = 25 * 1024 * 1024
    max_header_bytes: int = 256 * 1024
    max_fields: int = 1000
    max_field_bytes: int = 64 * 1024  # one field, all its lines
    max_from_bytes: int = 2048  # From/Sender/Reply-To: parsed by the strict (quadratic) parser
    max_recipient_field_bytes: int = 32 * 1024  # To, Cc
    max_encoded_words: int = 200  # per field
    max_body_line_bytes: int = 1024 * 1024
    # MIME bombs: every part costs the parser ~1 KB of objects however small it is
    max_boundary_lines: int = 1000  # lines starting "--" and a non-blank: delimiters
    max_multipart_types: int = 100  # "multipart/" in the body: nested containers


DEFAULT_LIMITS = WireLimits()


class WireError(Exception):
    """The bytes cannot be given one unambiguous reading; `reason` says why."""

    def __init__(self, reason: ReasonCode, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class HeaderField:
    """One header field exactly as DKIM sees it: the name and the raw value after the colon,
    continuation lines included, each line ending in CRLF (dkimpy's own representation)."""

    name: bytes
    value: bytes

    @cached_property
    def key(self) -> str:
        """Lower-case name, for lookups."""
        return self.name.decode("ascii").lower()

    @cached_property
    def text(self) -> str:
        """The value unfolded (RFC 5322 2.2.3: CRLF before a blank removed), trimmed, as text.

        Raw 8-bit bytes are read as UTF-8 (RFC 6532); encoded words are left as they are."""
        unfolded = _CRLF_BLANK.sub(b"", self.value).rstrip(b"\r\n").strip(b" \t")
        return unfolded.decode("utf-8", "replace")


@dataclass(frozen=True)
class WireMessage:
    """The header fields and the body, split once; the only view anything else reads."""

    fields: tuple[HeaderField, ...]
    body: bytes  # CRLF line ends

    def get(self, name: str) -> HeaderField | None:
        """The field `name` (for singleton fields: the only one), else None."""
        key = name.lower()
        return next((f for f in self.fields if f.key == key), None)

    def get_all(self, name: str) -> list[HeaderField]:
        key = name.lower()
        return [f for f in self.fields if f.key == key]

    def to_bytes(self) -> bytes:
        """The canonical bytes: what every later parser is given."""
        head = b"".join(f.name + b":" + f.value for f in self.fields)
        return head + b"\r\n" + self.body


def _split_lines(raw: bytes) -> tuple[list[bytes], bytes]:
    """Header lines and the body (CRLF), refusing every ambiguous line ending."""
    if b"\r" not in raw:  # LF-only (a file saved on Unix): unambiguous
        head, sep, body = raw.partition(b"\n\n")
        if not sep and raw.startswith(b"\n"):
            head, body = b"", raw[1:]
        lines = head.split(b"\n") if head else []
        if lines and lines[-1] == b"":  # a header section ended by the file's last LF
            lines.pop()
        return lines, body.replace(b"\n", b"\r\n")
    # read_wire refused a bare CR before calling this
    end = raw.find(b"\r\n\r\n")
    if raw.startswith(b"\r\n"):
        head, body = b"", raw[2:]
    elif end < 0:
        head, body = raw, b""
    else:
        head, body = raw[:end], raw[end + 4 :]
    lines = head.split(b"\r\n") if head else []
    if any(b"\n" in line for line in lines):
        raise WireError(ReasonCode.MALFORMED_MESSAGE, "bare LF in the header section")
    if lines and lines[-1] == b"":  # header section ended by the raw's last CRLF
        lines.pop()
    bare_lf = b"\n" in body and body.count(b"\n") != body.count(b"\r\n")
    return lines, _LF.sub(b"\r\n", body) if bare_lf else body


def _fields(lines: list[bytes], limits: WireLimits) -> list[HeaderField]:
    fields: list[tuple[bytes, list[bytes]]] = []
    for number, line in enumerate(lines, start=1):
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise WireError(ReasonCode.MALFORMED_MESSAGE,
                                "the header section starts with a continuation line")
            fields[-1][1].append(line)
            continue
        match = _FIELD_NAME.match(line)
        if match is None:
            raise WireError(ReasonCode.MALFORMED_MESSAGE,
                            f"header line {number} is neither 'name: value' nor a continuation")
        fields.append((line[: match.end() - 1], [line[match.end() :]]))
        if len(fields) > limits.max_fields:
            raise WireError(ReasonCode.LIMIT_EXCEEDED,
                            f"more than {limits.max_fields} header fields")
    return [HeaderField(name, b"".join(part + b"\r\n" for part in parts))
            for name, parts in fields]


def _check_fields(fields: list[HeaderField], limits: WireLimits) -> None:
    seen: set[str] = set()
    for field in fields:
        key = field.key
        if key in SINGLETON_FIELDS:
            if key in seen:
                reason = (ReasonCode.MALFORMED_FROM if key == "from"
                          else ReasonCode.REPEATED_HEADER)
                raise WireError(reason, f"{field.name.decode('ascii')} appears more than once")
            seen.add(key)
        size = len(field.value)
        bound = limits.max_field_bytes
        if key in ("from", "sender", "reply-to"):
            bound = limits.max_from_bytes
        elif key in ("to", "cc"):
            bound = limits.max_recipient_field_bytes
        if size > bound:
            raise WireError(ReasonCode.LIMIT_EXCEEDED,
                            f"{field.name.decode('ascii')} is {size} bytes (limit {bound})")
        words = len(_ENCODED_WORD.findall(field.value))
        if words > limits.max_encoded_words:
            raise WireError(
                ReasonCode.LIMIT_EXCEEDED,
                f"{field.name.decode('ascii')} holds {words} encoded words "
                f"(limit {limits.max_encoded_words})",
            )


def _check_body_lines(body: bytes, limit: int) -> None:
    """No body line longer than `limit`, in a handful of steps: a longer line covers a whole
    aligned window of limit/2 bytes, so only windows without a line end are looked at."""
    step = max(1, limit // 2)
    for start in range(0, len(body), step):
        if body.find(b"\n", start, start + step) >= 0:
            continue
        begin = body.rfind(b"\n", 0, start) + 1
        end = body.find(b"\r\n", start)
        end = len(body) if end < 0 else end
        if end - begin > limit:
            raise WireError(ReasonCode.LIMIT_EXCEEDED, f"a body line exceeds {limit} bytes")


def _check_mime_size(body: bytes, limits: WireLimits) -> None:
    # cheap upper bounds first (one C-level count each): a delimiter line starts after a line
    # end or at the start; the regular expression runs only when the bound could be exceeded.
    # A case-insensitive regular expression over a 1 MB attachment cost ~6 ms.
    if body.count(b"\n--") + 1 > limits.max_boundary_lines:
        _count_at_most(_BOUNDARY_LINE, body, limits.max_boundary_lines, "MIME delimiter lines")
    bound = limits.max_multipart_types
    if body.count(b"/") > bound and body.lower().count(b"multipart/") > bound:  # as re.I on bytes
        raise WireError(ReasonCode.LIMIT_EXCEEDED, f"more than {bound} multipart containers")


def _count_at_most(pattern: re.Pattern[bytes], body: bytes, bound: int, what: str) -> None:
    for count, _match in enumerate(pattern.finditer(body), start=1):
        if count > bound:
            raise WireError(ReasonCode.LIMIT_EXCEEDED, f"more than {bound} {what}")


def read_wire(raw: bytes, limits: WireLimits = DEFAULT_LIMITS) -> WireMessage:
    """Split `raw` into one unambiguous header list and body, or raise WireError."""
    if len(raw) > limits.max_message_bytes:
        raise WireError(ReasonCode.OVERSIZE,
                        f"{len(raw)} bytes > max_message_bytes {limits.max_message_bytes}")
    if b"\x00" in raw:
        raise WireError(ReasonCode.MALFORMED_MESSAGE, "NUL byte")
    if raw.count(b"\r") != raw.count(b"\r\n"):  # before anything is cut off the bytes
        raise WireError(ReasonCode.MALFORMED_MESSAGE, "bare CR (a CR not followed by LF)")
    if raw.startswith(b"From "):  # an mbox separator line: both parsers skip it
        newline = raw.find(b"\n")
        raw = raw[newline + 1 :] if newline >= 0 else b""
    head_end = raw.find(b"\n\n")
    crlf_end = raw.find(b"\r\n\r\n")
    head_size = min(x for x in (head_end, crlf_end, len(raw)) if x >= 0)
    if head_size > limits.max_header_bytes:
        raise WireError(ReasonCode.LIMIT_EXCEEDED,
                        f"header section over {limits.max_header_bytes} bytes")
    lines, body = _split_lines(raw)
    fields = _fields(lines, limits)
    if not fields:
        raise WireError(ReasonCode.MALFORMED_MESSAGE, "no header fields")
    _check_fields(fields, limits)
    _check_body_lines(body, limits.max_body_line_bytes)
    _check_mime_size(body, limits)
    return WireMessage(tuple(fields), body)
