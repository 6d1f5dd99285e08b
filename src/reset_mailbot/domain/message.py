"""The parsed, normalised inbound message: the single view of raw bytes the rest of the core uses.

Parsing happens once, with mail-parser (which wraps the stdlib parser and collects defects).
Nothing in here raises for hostile or broken input: `parse_message` returns a ParsedMessage with
`parse_error` set when the bytes cannot be read as a message at all, and the decision turns that
into the `malformed_message` reason.
"""

from __future__ import annotations

import email
import email.header
import email.message
import hashlib
import re
from dataclasses import dataclass, field
from email.errors import ObsoleteHeaderDefect
from email.headerregistry import Address
from email.policy import default as _default_policy
from functools import lru_cache
from typing import Any

import mailparser

from reset_mailbot.domain.addresses import InvalidAddress, normalise_address

_MSGID_RE = re.compile(r"<[^<>\s]+>")
# RFC 5322 does not limit header count, but nothing legitimate carries this many.
MAX_HEADERS = 1000


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
    defects: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        """The identity used for at-most-once processing: Message-ID, else a hash of the bytes."""
        return self.message_id or f"sha256:{self.sha256}"

    def header(self, name: str) -> str | None:
        if self.message is None:
            return None
        value = self.message.get(name)
        return None if value is None else _header_text(value)

    def header_all(self, name: str) -> list[str]:
        if self.message is None:
            return []
        return [_header_text(v) for v in (self.message.get_all(name) or [])]


def _header_text(value: object) -> str:
    """Header values from compat32 may be str or Header objects, possibly with surrogates."""
    if isinstance(value, email.header.Header):
        # raw 8-bit header (RFC 6532, UTF-8): str(Header) would turn each byte into U+FFFD
        return "".join(
            chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
            for chunk, _charset in email.header.decode_header(value)
        )
    text = str(value)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


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
    found: set[str] = set()
    for value in values:
        try:
            header = _address_header("To", value)
        except Exception:
            continue
        for addr in header.addresses:
            try:
                found.add(normalise_address(addr.addr_spec))
            except InvalidAddress:
                continue
    return frozenset(found)


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse raw RFC 5322 bytes. Never raises."""
    digest = hashlib.sha256(raw).hexdigest()
    try:
        parser = mailparser.parse_from_bytes(raw)
        msg = parser.message
        if msg is None or len(msg.keys()) == 0:
            raise ValueError("no headers")
        if len(msg.keys()) > MAX_HEADERS:
            raise ValueError(f"more than {MAX_HEADERS} headers")
        defects = tuple(sorted(parser.defects_categories or ()))
    except Exception as exc:
        try:  # the stdlib parser is more forgiving than mail-parser's post-processing
            msg = email.message_from_bytes(raw)
            if len(msg.keys()) == 0 or len(msg.keys()) > MAX_HEADERS:
                raise ValueError("no usable headers") from exc
            defects = tuple(type(d).__name__ for d in msg.defects)
        except Exception as exc2:
            return ParsedMessage(
                raw=raw,
                sha256=digest,
                message=None,
                message_id=None,
                from_values=(),
                from_mailbox=None,
                from_problem="message could not be parsed",
                recipients=frozenset(),
                in_reply_to=None,
                references=(),
                subject="",
                parse_error=f"{type(exc2).__name__}: {exc2}",
            )

    def texts(name: str) -> list[str]:
        return [_header_text(v) for v in (msg.get_all(name) or [])]

    from_values = texts("From")
    mailbox, problem = parse_from_header(from_values)
    references = tuple(_MSGID_RE.findall(" ".join(texts("References"))))
    return ParsedMessage(
        raw=raw,
        sha256=digest,
        message=msg,
        message_id=_first_message_id((texts("Message-ID") or [None])[0]),
        from_values=tuple(from_values),
        from_mailbox=mailbox,
        from_problem=problem,
        recipients=_addresses(texts("To") + texts("Cc")),
        in_reply_to=_first_message_id((texts("In-Reply-To") or [None])[0]),
        references=references,
        subject=(texts("Subject") or [""])[0],
        defects=defects,
    )
