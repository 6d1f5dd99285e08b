"""E-mail address normalisation and masking.

Every comparison the policy makes (allowlisted domain, registered contact, own support address,
account candidates) goes through `normalise_address`, so that case, Unicode domains and their
A-label form compare equal, and a lookalike never does.
"""

from __future__ import annotations

import idna

_MASK_KEEP = 1


class InvalidAddress(ValueError):
    """The text is not a single plain addr-spec we are willing to compare."""


def normalise_domain(domain: str) -> str:
    """Lower-case A-label form of a domain (IDNA 2008 with UTS #46 mapping).

    Raises InvalidAddress for anything that is not a valid host name, so that a
    malformed domain can never accidentally equal an allowlisted one.
    """
    domain = domain.strip().rstrip(".")
    if not domain or any(ch.isspace() for ch in domain):
        raise InvalidAddress(f"empty or spaced domain {domain!r}")
    try:
        if domain.isascii():
            ascii_domain = domain.lower()
            # validate the labels (and any xn-- label) without changing them
            idna.decode(ascii_domain, uts46=False)
            labels = ascii_domain.split(".")
            if any(not lbl or len(lbl) > 63 for lbl in labels):
                raise InvalidAddress(f"bad label in {domain!r}")
            return ascii_domain
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
