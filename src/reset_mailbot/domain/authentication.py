"""DKIM verification and alignment (policy, "Authentication" 2 and its clarifications).

dkimpy verifies one signature at a time and swallows DNS failures, so this module drives it:
every DKIM-Signature is tried; the stricter rules of our policy (no rsa-sha1, From signed, l= must
cover the whole body, RSA >= 1024 bits, x= not expired) are checked around dkimpy's verdict; the
key lookup is injected, and a `TemporaryKeyLookupError` from it becomes a `temperror` for that
signature instead of a failure. Nothing here does I/O except through the injected lookup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache

import dkim
from dkim.canonicalization import CanonicalizationPolicy
from dkim.util import InvalidTagValueList, parse_tag_value
from publicsuffixlist import PublicSuffixList

from reset_mailbot.domain.addresses import InvalidAddress, normalise_domain
from reset_mailbot.domain.models import (
    AuthenticationResult,
    DkimStatus,
    SignatureResult,
    SignatureVerdict,
)

MIN_RSA_BITS = 1024
#: RFC 6376 6.1 lets verifiers limit the signatures they try. Each try re-canonicalises the whole
#: message and may cost a DNS timeout, so an unbounded count lets one hostile message (hundreds of
#: DKIM-Signature headers, keys behind a slow nameserver) block the worker for minutes to hours.
MAX_SIGNATURES = 10

#: name (e.g. ``"selector1._domainkey.utrecht.nl."``) -> TXT record bytes, or None when the name
#: does not exist / has no TXT record. Raises TemporaryKeyLookupError for timeouts and SERVFAIL.
KeyLookup = Callable[[str], bytes | None]


class TemporaryKeyLookupError(Exception):
    """The key could not be fetched for a reason that may pass (timeout, SERVFAIL)."""


# dkimpy logs every failure at ERROR level; those are expected verdicts here, not errors.
_dkim_logger = logging.getLogger("reset_mailbot.dkimpy")
_dkim_logger.addHandler(logging.NullHandler())
_dkim_logger.propagate = False


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    """The Public Suffix List bundled with publicsuffixlist (no network)."""
    return PublicSuffixList()


@lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """RFC 7489 organizational domain: the public suffix plus one label."""
    return _psl().privatesuffix(domain) or domain


def aligned(signing_domain: str, from_domain: str) -> bool:
    """Relaxed alignment: same organizational domain."""
    return organizational_domain(signing_domain) == organizational_domain(from_domain)


class _Verifier:
    """One dkimpy DKIM object per message, shared across its signatures."""

    def __init__(self, raw: bytes, lookup: KeyLookup) -> None:
        self.dkim = dkim.DKIM(raw, logger=_dkim_logger, minkey=MIN_RSA_BITS)
        self.lookup = lookup
        self.signatures = [v for k, v in self.dkim.headers if k.lower() == b"dkim-signature"]

    def _dnsfunc(self, name: bytes, timeout: float = 5) -> bytes | None:
        return self.lookup(name.decode("ascii", "replace"))

    def body_length(self, canonicalization: bytes) -> int:
        policy = CanonicalizationPolicy.from_c_value(canonicalization)
        return len(policy.canonicalize_body(self.dkim.body))

    def check(self, index: int, from_domain: str | None, now: float) -> SignatureResult:
        raw_value = self.signatures[index]
        try:
            tags = parse_tag_value(raw_value.replace(b"\r\n", b"").replace(b"\n", b""))
        except (InvalidTagValueList, ValueError) as exc:
            return SignatureResult(
                index=index, domain=None, selector=None, algorithm=None,
                verdict=SignatureVerdict.FAIL, aligned=False, detail=f"unparseable: {exc}",
            )
        d_tag = tags.get(b"d", b"").decode("ascii", "replace").strip()
        try:
            domain = normalise_domain(d_tag) if d_tag else None
        except InvalidAddress:
            domain = None
        selector = tags.get(b"s", b"").decode("ascii", "replace").strip() or None
        algorithm = tags.get(b"a", b"").decode("ascii", "replace").strip().lower() or None
        is_aligned = bool(domain and from_domain and aligned(domain, from_domain))

        def result(verdict: SignatureVerdict, detail: str = "") -> SignatureResult:
            return SignatureResult(
                index=index, domain=domain, selector=selector, algorithm=algorithm,
                verdict=verdict, aligned=is_aligned, detail=detail,
            )

        if domain is None or selector is None:
            return result(SignatureVerdict.FAIL, "missing or invalid d= or s=")
        if algorithm == "rsa-sha1":
            return result(SignatureVerdict.FAIL, "rsa-sha1 is refused (RFC 8301)")
        signed = [h.strip().lower() for h in tags.get(b"h", b"").split(b":")]
        if b"from" not in signed:
            return result(SignatureVerdict.FAIL, "From header not signed")
        expiry = tags.get(b"x")
        if expiry is not None:
            if not expiry.strip().isdigit():
                return result(SignatureVerdict.FAIL, "x= is not a number")
            if int(expiry) < now:
                return result(SignatureVerdict.FAIL, "signature expired (x=)")
        try:
            ok = self.dkim.verify(idx=index, dnsfunc=self._dnsfunc)
        except TemporaryKeyLookupError as exc:
            return result(SignatureVerdict.TEMPERROR, f"key lookup failed temporarily: {exc}")
        except dkim.DKIMException as exc:
            return result(SignatureVerdict.FAIL, str(exc)[:200])
        except Exception as exc:  # dkimpy raises assorted errors on hostile input
            return result(SignatureVerdict.FAIL, f"{type(exc).__name__}: {str(exc)[:200]}")
        if not ok:
            return result(SignatureVerdict.FAIL, "signature does not verify")
        if self.dkim.ktag == b"rsa" and (self.dkim.keysize or 0) < MIN_RSA_BITS:
            return result(SignatureVerdict.FAIL, f"RSA key too small: {self.dkim.keysize} bits")
        length = tags.get(b"l")
        if length is not None:
            full = self.body_length(tags.get(b"c", b"simple/simple"))
            if int(length) != full:
                return result(
                    SignatureVerdict.FAIL, f"l={int(length)} does not cover the body ({full})"
                )
        return result(SignatureVerdict.PASS, "verified")


def authenticate(
    raw: bytes, from_domain: str | None, lookup: KeyLookup, now: float
) -> AuthenticationResult:
    """Verify every DKIM signature; summarise as pass/fail/none/temperror for the From domain.

    The summary is `pass` when a signature passes aligned with the From domain; otherwise
    `temperror` when an aligned signature could not be checked for a temporary reason (it might
    have been the aligned pass); otherwise `fail` (signatures present) or `none`. Signatures
    are checked in order, stopping at the first aligned pass: later ones cannot change it.
    Only the first MAX_SIGNATURES are tried.
    """
    try:
        verifier = _Verifier(raw, lookup)
    except Exception as exc:
        return AuthenticationResult(
            dkim=DkimStatus.FAIL,
            signatures=[
                SignatureResult(
                    index=0, domain=None, selector=None, algorithm=None,
                    verdict=SignatureVerdict.FAIL, aligned=False,
                    detail=f"message unreadable for DKIM: {type(exc).__name__}",
                )
            ],
        )
    if not verifier.signatures:
        return AuthenticationResult(dkim=DkimStatus.NONE)
    results: list[SignatureResult] = []
    for index in range(min(len(verifier.signatures), MAX_SIGNATURES)):
        outcome = verifier.check(index, from_domain, now)
        results.append(outcome)
        if outcome.verdict is SignatureVerdict.PASS and outcome.aligned:
            return AuthenticationResult(
                dkim=DkimStatus.PASS, signing_domain=outcome.domain, aligned=True,
                signatures=results,
            )
    # a temporary failure only matters where it could have been the aligned pass
    if any(r.verdict is SignatureVerdict.TEMPERROR and r.aligned for r in results):
        return AuthenticationResult(dkim=DkimStatus.TEMPERROR, signatures=results)
    passed = next((r for r in results if r.verdict is SignatureVerdict.PASS), None)
    if passed is not None:
        return AuthenticationResult(
            dkim=DkimStatus.PASS, signing_domain=passed.domain, aligned=False, signatures=results
        )
    return AuthenticationResult(dkim=DkimStatus.FAIL, signatures=results)
