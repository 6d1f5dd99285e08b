"""The parsed, normalised inbound message: the single view of raw bytes the rest of the core uses.

The bytes go through the gate in `wire.py` first: one list of header fields and one body, split
without ambiguity, which DKIM verification reads too. The body's MIME tree is then parsed once by
the standard library (compat32: ~8x faster than policy.default, and the extraction only walks
parts) from the gate's canonical bytes, and the header list that parser saw is compared with the
gate's: if they differ in any field, the message is `malformed_message`, so the decision never
reads a header DKIM did not see. Header values are read from the gate's fields, unfolded
(RFC 5322 2.2.3) before address parsing.

Nothing in here raises for hostile or broken input: `parse_message` returns a ParsedMessage with
`parse_error` (and `problem`, the reason code) set when the bytes cannot be read as one message.
"""

from __future__ import annotations

import email.header
import email.message
import hashlib
import re
from dataclasses import dataclass
from email.errors import ObsoleteHeaderDefect
from email.headerregistry import Address
from email.parser import BytesParser
from email.policy import compat32
from email.policy import default as _default_policy
from functools import lru_cache
from typing import Any

from reset_mailbot.domain.addresses import InvalidAddress, normalise_address
from reset_mailbot.domain.reasons import ReasonCode
from reset_mailbot.domain.wire import DEFAULT_LIMITS, WireError, WireLimits, WireMessage, read_wire

_MSGID_RE = re.compile(r"<[^<>\s]+>")
# To/Cc are split into tokens at characters no addr-spec outside quotes contains; a token with
# one "@" is a recipient. Linear in the value (the strict address parser is quadratic).
_RECIPIENT_SEPARATORS = re.compile(r"[\s<>(),;:\"\[\]]+")
_MAX_RECIPIENTS = 500
_PARSER = BytesParser(policy=compat32)


@dataclass(frozen=True)
class FromMailbox:
    """The single mailbox in the single From header, if the header is well formed."""

    address: str  # normalised: lower-case local part, A-label domain
    display_name: str
    local_part: str
    domain: str  # A-label, lower case


@dataclass(frozen=True)
class ParsedMessage:
    """What the core needs to know of one message, computed once."""

    raw: bytes
    sha256: str
    message: email.message.Message | None
    message_id: str | None
    from_values: tuple[str, ...]
    from_mailbox: FromMailbox | None
    from_problem: str | None
    recipients: frozenset[str]  # normalised To/Cc addresses
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    parse_error: str | None = None
    problem: ReasonCode | None = None  # why parse_error: malformed_message, repeated_header ...
    wire: WireMessage | None = None

    @property
    def key(self) -> str:
        """The identity used for at-most-once processing: Message-ID, else a hash of the bytes.

        The decision narrows this to a Message-ID the aligned signature covers (an unsigned
        Message-ID never identifies a message); see decision.message_key."""
        return self.message_id or f"sha256:{self.sha256}"

    @property
    def hash_key(self) -> str:
        return f"sha256:{self.sha256}"

    def header(self, name: str) -> str | None:
        """The unfolded text of field `name` (the first; singleton fields occur at most once)."""
        if self.wire is None:
            return None
        field = self.wire.get(name)
        return None if field is None else field.text

    def header_all(self, name: str) -> list[str]:
        if self.wire is None:
            return []
        return [field.text for field in self.wire.get_all(name)]

    def recipient_fields(self) -> dict[str, frozenset[str]]:
        """Normalised addresses per recipient field ("to", "cc")."""
        return {name: _addresses(self.header_all(name)) for name in ("to", "cc")}


def _first_message_id(value: str | None) -> str | None:
    if not value:
        return None
    match = _MSGID_RE.search(value)
    return match.group(0) if match else None


_CACHED_HEADER_MAX = 998  # RFC 5322 line limit; longer (hostile) values are parsed uncached


@lru_cache(maxsize=1024)
def _cached_address_header(name: str, value: str) -> Any:
    return _default_policy.header_factory(name, value)


def _address_header(name: str, value: str) -> Any:
    """policy.default's strict address header parse (~0.2 ms, as much as mail-parser's whole
    parse of a small message). The same values recur (To: our support address; staff who write
    often), and the parsed header objects are immutable, so they are cached."""
    if len(value) > _CACHED_HEADER_MAX:
        return _default_policy.header_factory(name, value)
    return _cached_address_header(name, value)


def _harmless_defect(defect: Exception) -> bool:
    """An unquoted period in the display name ("J. de Vries <j@x.nl>") is obsolete RFC 5322
    syntax (obs-phrase) that real mail systems still write; it cannot change the address.
    Every other defect, including this one next to an invalid address, stays fatal."""
    return isinstance(defect, ObsoleteHeaderDefect) and "period in 'phrase'" in str(defect)


_MAX_DISPLAY_NAME = 200


def display_name(mailbox: FromMailbox | None) -> str | None:
    """The From display name made safe to store and pass on: printable, one line, bounded."""
    if mailbox is None:
        return None
    text = "".join(ch if ch.isprintable() else " " for ch in mailbox.display_name)
    text = " ".join(text.split())[:_MAX_DISPLAY_NAME]
    return text or None


def parse_from_header(values: list[str]) -> tuple[FromMailbox | None, str | None]:
    """Exactly one From header holding exactly one mailbox (policy, Authentication 1).

    Any parse defect counts as malformed: lenient address parsers are how a crafted From gets
    read as a different domain (CVE-2023-27043).
    """
    if not values:
        return None, "no From header"
    if len(values) > 1:
        return None, f"{len(values)} From headers"
    try:
        header = _address_header("From", values[0])
    except Exception as exc:  # the header parser has raised on hostile input before
        return None, f"unparseable From: {type(exc).__name__}"
    defects = [d for d in header.defects if not _harmless_defect(d)]
    if defects:
        return None, "From has defects: " + ", ".join(type(d).__name__ for d in defects)
    addresses: tuple[Address, ...] = header.addresses
    if len(addresses) != 1:
        return None, f"From holds {len(addresses)} mailboxes"
    mailbox = addresses[0]
    if not mailbox.username or not mailbox.domain:
        return None, "From mailbox has no local part or domain"
    try:
        address = normalise_address(mailbox.addr_spec)
    except InvalidAddress as exc:
        return None, str(exc)
    local, _, domain = address.rpartition("@")
    return FromMailbox(address, mailbox.display_name or "", local, domain), None



def _addresses(values: list[str]) -> frozenset[str]:
    """Every addr-spec in To/Cc values, found by splitting at separators (never parsed by the
    quadratic header parser). Reading more than the strict parser would only excludes more
    account candidates, which can only make a request less complete."""
    found: set[str] = set()
    for value in values:
        text = decoded_words(value)
        for token in _RECIPIENT_SEPARATORS.split(text):
            if token.count("@") != 1 or len(found) >= _MAX_RECIPIENTS:
                continue
            try:
                found.add(normalise_address(token.strip(".")))
            except InvalidAddress:
                continue
    return frozenset(found)


def decoded_words(value: str) -> str:
    """RFC 2047 encoded words decoded (the gate bounds their number); the raw text if broken."""
    if "=?" not in value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


def _failed(raw: bytes, digest: str, reason: ReasonCode, detail: str) -> ParsedMessage:
    return ParsedMessage(
        raw=raw, sha256=digest, message=None, message_id=None, from_values=(),
        from_mailbox=None, from_problem="message could not be parsed", recipients=frozenset(),
        in_reply_to=None, references=(), subject="", parse_error=detail, problem=reason,
    )


# 76 base64 characters and CRLF: the line every MIME encoder writes. Long runs are attachments.
_BASE64_RUN = re.compile(rb"^(?:[A-Za-z0-9+/]{76}\r\n)+", re.MULTILINE)
_KEEP_BASE64_LINES = 10_000  # 760 KB encoded: more than the extraction ever reads of a part
_SHORTEN_ABOVE = 2 * 1024 * 1024
#: runs longer than this are cut to their first line for the first parse (5 KB of base64)
_CUT_RUNS_ABOVE = 64 * 78
#: the parts whose bodies nothing reads: the decision reads text/* parts (body.py) and every
#: part's content type (automatic.py), never the bytes of these
_UNREAD_TYPES = frozenset({"application", "image", "audio", "video", "font", "model"})


def _shortened_base64(body: bytes, keep: int = 78 * _KEEP_BASE64_LINES
                      ) -> tuple[bytes, list[str]]:
    """The body with every run of more than `keep` bytes of full base64 lines cut to its first
    `keep` bytes, and the first line of every run cut. The stdlib parser splits every line of a
    multipart body into an object (a 25 MB attachment: ~0.7 s and ~9x its size; a 1 MB one
    ~15 ms). Only lines of exactly 76 base64 characters go: boundary lines ("--..."), part
    headers and text with spaces or "=" never match, and no such line can end a part, so the
    MIME structure stays as it is and every cut run stays inside the one part it was in. What
    is parsed is a prefix-preserving shortening of exactly the body DKIM verified."""
    pieces: list[bytes] = []
    cut: list[str] = []
    start = 0
    for run in _BASE64_RUN.finditer(body):
        if run.end() - run.start() > keep:
            pieces.append(body[start : run.start() + keep])
            cut.append(body[run.start() : run.start() + 76].decode("ascii"))
            start = run.end()
    if not pieces:
        return body, []
    pieces.append(body[start:])
    return b"".join(pieces), cut


def _cut_where_read(tree: email.message.Message, cut: list[str]) -> bool:
    """Whether a cut run landed in a part whose body the decision may read (anything but an
    application/image/audio/video/font/model leaf): then that part must be parsed whole."""
    for part in tree.walk():
        if part.is_multipart():
            continue
        try:
            unread = part.get_content_maintype().lower() in _UNREAD_TYPES
        except Exception:
            unread = False
        payload = part.get_payload()
        if not unread and isinstance(payload, str) and any(line in payload for line in cut):
            return True
    return False


def _mime_tree(wire: WireMessage) -> email.message.Message:
    """The stdlib's MIME tree of the gate's canonical bytes; ValueError if that parser split
    the header section differently from the gate (the differential check, at run time).

    A multipart body is parsed with its long base64 runs cut to 64 lines, first: attachments
    cost nothing then. When a cut run turns out to sit in a part that may be read (a base64
    text part), it is parsed again with runs kept up to 760 KB (above 2 MB) or whole."""
    content_type = wire.get("content-type")
    main_type = content_type.text.split("/", 1)[0].strip().lower() if content_type else "text"
    head = b"".join(field.name + b":" + field.value for field in wire.fields) + b"\r\n"
    if main_type != "text":  # multipart, message/*, and whatever else: the parser's own tree
        body, cut = _shortened_base64(wire.body, _CUT_RUNS_ABOVE)
        message = _PARSER.parsebytes(head + body)
        if cut and _cut_where_read(message, cut):
            body = (_shortened_base64(wire.body)[0] if len(wire.body) > _SHORTEN_ABOVE
                    else wire.body)
            message = _PARSER.parsebytes(head + body)
    else:
        # a single part: compat32's payload is the body as it is (its parser only splits the
        # body into lines and joins them again); setting it directly saves ~4x the body size
        message = _PARSER.parsebytes(head, headersonly=True)
        message.set_payload(wire.body.decode("ascii", "surrogateescape"))
    seen = [name.lower() for name in message]
    expected = [field.key for field in wire.fields]
    if seen != expected:
        raise ValueError("the MIME parser read other header fields than the gate")
    return message


def parse_message(raw: bytes, limits: WireLimits = DEFAULT_LIMITS) -> ParsedMessage:
    """Parse raw RFC 5322 bytes. Never raises."""
    digest = hashlib.sha256(raw).hexdigest()
    try:
        wire = read_wire(raw, limits)
    except WireError as exc:
        return _failed(raw, digest, exc.reason, exc.detail)
    try:
        tree = _mime_tree(wire)
    except Exception as exc:
        return _failed(raw, digest, ReasonCode.MALFORMED_MESSAGE, f"{type(exc).__name__}: {exc}")

    def texts(name: str) -> list[str]:
        return [field.text for field in wire.get_all(name)]

    from_values = texts("From")
    mailbox, problem = parse_from_header(from_values)
    references = tuple(_MSGID_RE.findall(" ".join(texts("References"))))
    subject = texts("Subject")
    return ParsedMessage(
        raw=raw,
        sha256=digest,
        message=tree,
        message_id=_first_message_id((texts("Message-ID") or [None])[0]),
        from_values=tuple(from_values),
        from_mailbox=mailbox,
        from_problem=problem,
        recipients=_addresses(texts("To") + texts("Cc")),
        in_reply_to=_first_message_id((texts("In-Reply-To") or [None])[0]),
        references=references,
        subject=subject[0] if subject else "",  # as written: replies quote it back
        wire=wire,
    )
