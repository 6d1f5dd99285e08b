"""DKIM verification and alignment (policy, "Authentication" 2 and its clarifications).

dkimpy verifies one signature at a time and swallows DNS failures, so this module drives it:
* it verifies the header fields and body of the gate's `WireMessage` (wire.py) - the very list
  the decision reads - by handing them to dkimpy instead of letting dkimpy split the bytes again;
* signatures aligned with the From domain are tried first, unaligned ones only when no aligned
  one passes (they can only explain `dkim_not_aligned`), at most MAX_SIGNATURES in all;
* the stricter rules of our policy (no rsa-sha1, From signed, l= covering the whole body, RSA
  between 1024 and 4096 bits, x= not expired) are checked around dkimpy's verdict;
* cost before trust: each canonical body is computed once per message in linear time (dkimpy's
  relaxed canonicalisation is quadratic on long runs of blanks) and the body hash compared
  before any DNS lookup, so ten bogus signatures cost one canonicalisation and no DNS; dkimpy
  never touches the body;
* dkimpy parses and validates the tags and canonicalises and hashes the signed header fields;
  the key record is parsed once per distinct record and the signature checked by OpenSSL
  (dkim_keys.py: half the time of a small message was dkimpy's pure-Python RSA and ASN.1);
* the key lookup is injected, and a `TemporaryKeyLookupError` from it becomes a `temperror` for
  that signature instead of a failure.
The aligned passing signature also says what is trustworthy: the header names in its h= (the
decision reads unsigned headers only where they cannot move it toward `complete`), its t=, and
the b= values that make a replay of the same signed message recognisable.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable
from functools import lru_cache

import dkim
from dkim.canonicalization import (
    CanonicalizationPolicy,
    InvalidCanonicalizationPolicyError,
    correct_empty_body,
    strip_trailing_lines,
)
from dkim.util import InvalidTagValueList, parse_tag_value
from publicsuffixlist import PublicSuffixList

from reset_mailbot.domain.addresses import InvalidAddress, normalise_domain
from reset_mailbot.domain.dkim_keys import KeyRecordError, PublicKey, public_key
from reset_mailbot.domain.models import (
    AuthenticationResult,
    DkimStatus,
    SignatureResult,
    SignatureVerdict,
)
from reset_mailbot.domain.wire import WireMessage

__all__ = [
    "MAX_RSA_BITS", "MAX_RSA_EXPONENT", "MAX_SIGNATURES", "MIN_RSA_BITS", "KeyLookup",
    "TemporaryKeyLookupError", "aligned", "authenticate", "organizational_domain",
    "relaxed_body", "simple_body",
]

MIN_RSA_BITS = 1024
#: RSA verification is a modular exponentiation: a published 16384-bit key costs ~9 s of CPU
#: per signature. No mail platform uses more than 4096 bits (policy clarification v2).
MAX_RSA_BITS = 4096
#: RSA verification costs as much as the public exponent is long: a published key with a
#: 4096-bit exponent costs ~150 ms per signature. Real keys use 65537 (RFC 8017 allows larger;
#: no DKIM signer does), so anything above 2**32 is not verified.
MAX_RSA_EXPONENT = 2**32
#: RFC 6376 6.1 lets verifiers limit the signatures they try. Each try may cost a DNS timeout,
#: so an unbounded count lets one hostile message block the worker for minutes to hours.
MAX_SIGNATURES = 10

#: name (e.g. ``"selector1._domainkey.utrecht.nl."``) -> TXT record bytes, or None when the name
#: does not exist / has no TXT record. Raises TemporaryKeyLookupError for timeouts and SERVFAIL.
KeyLookup = Callable[[str], bytes | None]


class TemporaryKeyLookupError(Exception):
    """The key could not be fetched for a reason that may pass (timeout, SERVFAIL)."""


class _KeyRefused(Exception):
    """The published key is outside what we verify (RSA above MAX_RSA_BITS)."""


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
    """Relaxed alignment: same organizational domain. One domain is aligned with itself
    whatever the list says, which spares loading the Public Suffix List (~0.15 s at start-up)
    for the usual d= equal to the From domain."""
    if signing_domain == from_domain:
        return True
    return organizational_domain(signing_domain) == organizational_domain(from_domain)


_WSP_RUN = re.compile(rb"\t[\t ]*| [\t ]+")  # runs that change: a lone space stays
_BLANKS = re.compile(rb"\s+")


def simple_body(body: bytes) -> bytes:
    """RFC 6376 3.4.3, as dkimpy computes it."""
    return strip_trailing_lines(body)


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4, byte for byte what dkimpy's `Relaxed.canonicalize_body` returns, in
    linear time: dkimpy strips blanks before CRLF first (`[\\t ]+\\r\\n`, quadratic on a
    long run of blanks that no CRLF follows: 32 KB of them cost over a second per signature),
    then compresses runs. Compressing first leaves runs of one space, which the strip then
    removes in one step; the result is the same (equivalence is property-tested)."""
    # a run to compress holds a tab or two blanks in a row; most bodies (base64 above all) have
    # neither, and the scan for them is a C search instead of a regular expression over it all
    compressed = _WSP_RUN.sub(b" ", body) if b"\t" in body or b"  " in body else body
    return correct_empty_body(strip_trailing_lines(compressed.replace(b" \r\n", b"\r\n")))


_BODY_CANONICALISATION = {b"simple": simple_body, b"relaxed": relaxed_body}
_HASHES = {b"rsa-sha256": hashlib.sha256, b"ed25519-sha256": hashlib.sha256}


class _Signature:
    """One DKIM-Signature field, its tags parsed once."""

    def __init__(self, index: int, value: bytes, from_domain: str | None) -> None:
        self.index = index
        self.problem: str | None = None
        try:
            self.tags = parse_tag_value(value.replace(b"\r\n", b""))
        except (InvalidTagValueList, ValueError) as exc:
            self.tags = {}
            self.problem = f"unparseable: {exc}"
        d_tag = self.tags.get(b"d", b"").decode("ascii", "replace").strip()
        try:
            self.domain = normalise_domain(d_tag) if d_tag else None
        except InvalidAddress:
            self.domain = None
        self.selector = self.tags.get(b"s", b"").decode("ascii", "replace").strip() or None
        self.algorithm = self.tags.get(b"a", b"").decode("ascii", "replace").strip().lower() or None
        self.aligned = bool(self.domain and from_domain and aligned(self.domain, from_domain))
        self.signed_names = [
            name.strip().lower().decode("ascii", "replace")
            for name in self.tags.get(b"h", b"").split(b":")
        ]

    def result(self, verdict: SignatureVerdict, detail: str = "") -> SignatureResult:
        return SignatureResult(
            index=self.index, domain=self.domain, selector=self.selector,
            algorithm=self.algorithm, verdict=verdict, aligned=self.aligned, detail=detail,
        )

    def replay_key(self) -> str | None:
        """sha256 of the b= value: the same signature seen again is the same signed message."""
        value = self.tags.get(b"b")
        if not value:
            return None
        return "dkim:" + hashlib.sha256(_BLANKS.sub(b"", value)).hexdigest()

    def timestamp(self) -> int | None:
        value = self.tags.get(b"t", b"").strip()
        return int(value) if value.isdigit() and len(value) <= 12 else None


class _Verifier:
    """One dkimpy DKIM object per message, fed the gate's fields and body."""

    def __init__(self, wire: WireMessage, lookup: KeyLookup) -> None:
        self.dkim = dkim.DKIM(None, logger=_dkim_logger, minkey=MIN_RSA_BITS)
        self.dkim.headers = [[field.name, field.value] for field in wire.fields]
        self.body = wire.body
        self.lookup = lookup
        self._canonical: dict[bytes, bytes] = {}
        self._hashes: dict[tuple[bytes, bytes], bytes] = {}

    def canonical(self, algorithm: bytes) -> bytes:
        if algorithm not in self._canonical:
            self._canonical[algorithm] = _BODY_CANONICALISATION[algorithm](self.body)
        return self._canonical[algorithm]

    def body_hash(self, canonicalisation: bytes, algorithm: bytes, length: int | None) -> bytes:
        key = (canonicalisation + b"/" + str(length).encode(), algorithm)
        if key not in self._hashes:
            body = self.canonical(canonicalisation)
            if length is not None:
                body = body[:length]
            self._hashes[key] = _HASHES[algorithm](body).digest()
        return self._hashes[key]

    def _key(self, tags: dict[bytes, bytes]) -> PublicKey:
        """The signer's published key: looked up (TemporaryKeyLookupError passes through),
        parsed once per distinct record, refused when its size or exponent is out of bounds."""
        name = tags[b"s"] + b"._domainkey." + tags[b"d"] + b"."  # as dkimpy builds it
        record = self.lookup(name.decode("ascii", "replace"))
        if not record:
            raise KeyRecordError(f"no key published at {name.decode('ascii', 'replace')}")
        key = public_key(name, record)
        if key.ktag == b"rsa" and key.bits > MAX_RSA_BITS:
            raise _KeyRefused(f"RSA key of {key.bits} bits (at most {MAX_RSA_BITS} verified)")
        if key.ktag == b"rsa" and key.exponent > MAX_RSA_EXPONENT:
            raise _KeyRefused("RSA public exponent above 2**32 (not verified)")
        if key.tlsrpt:  # dkimpy: "Message is not tlsrpt and Service Type is tlsrpt"
            raise _KeyRefused("the key is for TLS reports only (s=tlsrpt)")
        return key

    def _headers_signed(self, sig: _Signature) -> tuple[bool, PublicKey]:
        """dkimpy's `verify` without its body pass (`_precheck` compared the body hash) and
        with the RSA step done by OpenSSL: dkimpy parses and validates the tags, canonicalises
        and hashes the signed header fields; `dkim_keys` checks the signature."""
        prep = self.dkim.verify_headerprep(sig.index)
        if not prep:
            raise dkim.ValidationError("no such signature")
        tags, include_headers, sig_fields = prep
        key = self._key(tags)
        try:
            policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
        except InvalidCanonicalizationPolicyError as exc:
            raise dkim.MessageFormatError(f"invalid c= value: {exc.args[0]}") from exc
        if b"from" in include_headers:  # as dkimpy (its bug#644046): an extra From is hashed
            include_headers.append(b"from")
        hasher = _HASHES[tags[b"a"]]()
        headers = policy.canonicalize_headers(self.dkim.headers)
        dkim.hash_headers(hasher, policy, headers, include_headers, sig_fields[sig.index], tags)
        signature = base64.b64decode(_BLANKS.sub(b"", tags[b"b"]))
        return key.verify(signature, hasher.digest()), key

    def _precheck(self, sig: _Signature, now: float) -> str | None:
        """What refuses the signature before any DNS lookup, or None."""
        if sig.problem is not None:
            return sig.problem
        tags = sig.tags
        if sig.domain is None or sig.selector is None:
            return "missing or invalid d= or s="
        if tags.get(b"v", b"").strip() != b"1":
            return "v= is missing or not 1 (RFC 6376 3.5)"
        if sig.algorithm == "rsa-sha1":
            return "rsa-sha1 is refused (RFC 8301)"
        if sig.algorithm is None or sig.algorithm.encode() not in _HASHES:
            return f"unknown algorithm a={sig.algorithm}"
        if "from" not in sig.signed_names:
            return "From header not signed"
        expiry = tags.get(b"x")
        if expiry is not None:
            if not expiry.strip().isdigit():
                return "x= is not a number"
            if int(expiry) < now:
                return "signature expired (x=)"
        c_value = tags.get(b"c", b"simple/simple").strip()
        body_c = c_value.split(b"/")[1] if b"/" in c_value else b"simple"
        if body_c not in _BODY_CANONICALISATION:
            return f"unknown body canonicalisation in c={c_value.decode('ascii', 'replace')}"
        length = tags.get(b"l")
        full = len(self.canonical(body_c))
        if length is not None and (not length.strip().isdigit() or int(length) != full):
            return f"l={length.decode('ascii', 'replace')} does not cover the body ({full})"
        try:
            expected = base64.b64decode(_BLANKS.sub(b"", tags.get(b"bh", b"")), validate=True)
        except ValueError:
            return "bh= is not base64"
        if expected != self.body_hash(body_c, sig.algorithm.encode(), None):
            return "body hash mismatch"
        return None

    def check(self, sig: _Signature, now: float) -> SignatureResult:
        refused = self._precheck(sig, now)
        if refused is not None:
            return sig.result(SignatureVerdict.FAIL, refused)
        try:
            ok, key = self._headers_signed(sig)
        except TemporaryKeyLookupError as exc:
            return sig.result(SignatureVerdict.TEMPERROR, f"key lookup failed temporarily: {exc}")
        except (_KeyRefused, KeyRecordError) as exc:
            return sig.result(SignatureVerdict.FAIL, str(exc))
        except dkim.DKIMException as exc:
            return sig.result(SignatureVerdict.FAIL, str(exc)[:200])
        except Exception as exc:  # dkimpy raises assorted errors on hostile input
            return sig.result(SignatureVerdict.FAIL, f"{type(exc).__name__}: {str(exc)[:200]}")
        if not ok:
            return sig.result(SignatureVerdict.FAIL, "signature does not verify")
        if key.ktag == b"rsa" and key.bits < MIN_RSA_BITS:
            return sig.result(SignatureVerdict.FAIL, f"RSA key too small: {key.bits} bits")
        return sig.result(SignatureVerdict.PASS, "verified")


def _trusted(sig: _Signature, signatures: list[_Signature]) -> dict[str, object]:
    names = sorted({name for name in sig.signed_names if name})
    keys = [key for s in signatures if s.aligned and (key := s.replay_key())]
    return {"signed_headers": names, "signed_at": sig.timestamp(),
            "replay_keys": sorted(set(keys))}


def authenticate(
    wire: WireMessage, from_domain: str | None, lookup: KeyLookup, now: float
) -> AuthenticationResult:
    """Verify the DKIM signatures; summarise as pass/fail/none/temperror for the From domain.

    The summary is `pass` (aligned) when a signature aligned with the From domain passes;
    otherwise `temperror` when an aligned signature could not be checked for a temporary reason
    (it might have been the aligned pass); otherwise `pass` (not aligned) when an unaligned one
    passes, `fail` when signatures are present, `none` when there are none.
    """
    values = [field.value for field in wire.fields if field.key == "dkim-signature"]
    if not values:
        return AuthenticationResult(dkim=DkimStatus.NONE)
    signatures = [_Signature(i, v, from_domain) for i, v in enumerate(values)]
    ordered = ([s for s in signatures if s.aligned] + [s for s in signatures if not s.aligned])
    verifier = _Verifier(wire, lookup)
    results: list[SignatureResult] = []
    for sig in ordered[:MAX_SIGNATURES]:
        if not sig.aligned and any(r.verdict is SignatureVerdict.TEMPERROR for r in results):
            break  # the outcome is temperror whatever an unaligned signature says
        outcome = verifier.check(sig, now)
        results.append(outcome)
        if outcome.verdict is SignatureVerdict.PASS:
            if sig.aligned:
                return AuthenticationResult(
                    dkim=DkimStatus.PASS, signing_domain=sig.domain, aligned=True,
                    signatures=results, **_trusted(sig, signatures),
                )
            return AuthenticationResult(dkim=DkimStatus.PASS, signing_domain=sig.domain,
                                        aligned=False, signatures=results)
    if any(r.verdict is SignatureVerdict.TEMPERROR and r.aligned for r in results):
        return AuthenticationResult(dkim=DkimStatus.TEMPERROR, signatures=results)
    return AuthenticationResult(dkim=DkimStatus.FAIL, signatures=results)
