"""E-mail address normalisation and masking.

Every comparison the policy makes (allowlisted domain, registered contact, own support address,
account candidates) goes through `normalise_address`, so that case, Unicode domains and their
A-label form compare equal, and a lookalike never does.
"""

from __future__ import annotations

import ipaddress

import idna

_MASK_KEEP = 1
# DNS allows any octet in a label, and real municipal domains use more than LDH (the example
# allowlist has 's-hertogenbosch.nl); refuse only what can never be part of a mail domain.
_FORBIDDEN_IN_DOMAIN = frozenset(" \t@<>()[]\\,;:\"/")


class InvalidAddress(ValueError):
    """The text is not a single plain addr-spec we are willing to compare."""


def normalise_domain(domain: str) -> str:
    """Lower-case A-label form of a domain (IDNA 2008 with UTS #46 mapping).

    Raises InvalidAddress for anything that cannot be a mail domain, so that a malformed
    domain can never accidentally equal an allowlisted one.
    """
    domain = domain.strip().rstrip(".")
    if not domain or any(ch.isspace() for ch in domain):
        raise InvalidAddress(f"empty or spaced domain {domain!r}")
    if domain.isascii():
        ascii_domain = domain.lower()
        labels = ascii_domain.split(".")
        if any(not lbl or len(lbl) > 63 for lbl in labels) or len(ascii_domain) > 253:
            raise InvalidAddress(f"bad label in {domain!r}")
        if any(ch in _FORBIDDEN_IN_DOMAIN or not ch.isprintable() for ch in ascii_domain):
            raise InvalidAddress(f"forbidden character in {domain!r}")
        for label in labels:
            if label.startswith("xn--"):
                try:  # an A-label must be valid punycode, or lookalikes could hide in it
                    idna.decode(label)
                except idna.IDNAError as exc:
                    raise InvalidAddress(f"invalid A-label in {domain!r}: {exc}") from exc
        return ascii_domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise InvalidAddress(f"invalid domain {domain!r}: {exc}") from exc


def split_address(address: str) -> tuple[str, str]:
    """Split into (local part, domain) on the last '@'."""
    local, sep, domain = address.strip().rpartition("@")
    if not sep or not local or not domain:
        raise InvalidAddress(f"not an address: {address!r}")
    return local, domain


def normalise_address(address: str) -> str:
    """Case-folded local part and A-label domain.

    Local parts are case-sensitive in theory, but every real mail system here treats them as
    case-insensitive and the policy compares them so ("Registered contacts are compared
    case-insensitively").
    """
    local, domain = split_address(address)
    if any(ch.isspace() or ch in "<>()[]\\,;:\"" for ch in local):
        raise InvalidAddress(f"unsafe local part in {address!r}")
    return f"{local.lower()}@{normalise_domain(domain)}"


def mask_address(address: str | None) -> str | None:
    """Mask personal data for logs: ``j.devries@utrecht.nl`` -> ``j***@utrecht.nl``."""
    if not address:
        return address
    local, sep, domain = address.rpartition("@")
    if not sep:
        return "***"
    return f"{local[:_MASK_KEEP]}***@{domain}"


def is_loopback(host: str) -> bool:
    """Is `host` this machine (localhost, 127.0.0.0/8, ::1)? The only place plain-text IMAP,
    SMTP or HTTP is allowed: credentials never cross a network unencrypted."""
    if host in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
