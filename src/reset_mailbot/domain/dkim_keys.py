"""DKIM public keys: parsed once per published record, checked by OpenSSL (issue #14).

dkimpy parses the key record and its ASN.1 in pure Python for every signature, and verifies
RSA with Python integers and a pure-Python byte encoding: about half of the time of verifying a
small message. Here the record is parsed by dkimpy's own `evaluate_pk` (so what a record means
is exactly what dkimpy says), once per distinct record (a bounded cache keyed by the record's
bytes: the same bytes always mean the same key, so no TTL is involved; the DNS adapter's cache
decides how long a record is believed), and the signature is checked by OpenSSL through
`cryptography`.

Where OpenSSL and dkimpy's `RSASSA_PKCS1_v1_5_verify` differ, this module follows RFC 8017
8.2.2 and is the stricter one: a signature that is not exactly as long as the modulus, or whose
value is not below the modulus (dkimpy accepts s + n for a valid s), is invalid. Equivalence on
everything else is tested over many passing and failing signatures
(tests/unit/test_dkim_keys.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import dkim
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

__all__ = ["KeyRecordError", "PublicKey", "public_key"]

#: distinct key records kept parsed; a deployment sees a few per municipality
KEY_CACHE_SIZE = 512


class KeyRecordError(Exception):
    """The record is not a usable DKIM key (dkimpy's reason, or OpenSSL's)."""


@dataclass(frozen=True)
class PublicKey:
    """One parsed key record: its type, size, service type and the OpenSSL key."""

    ktag: bytes  # b"rsa" or b"ed25519"
    bits: int
    exponent: int  # RSA public exponent (0 for ed25519)
    tlsrpt: bool  # s=tlsrpt: a key for TLS reports only (RFC 8460)
    _key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey
    _length: int  # bytes of the modulus: the only signature length RFC 8017 accepts

    def verify(self, signature: bytes, digest: bytes) -> bool:
        """Whether `signature` signs `digest` (SHA-256) under this key."""
        try:
            if isinstance(self._key, ed25519.Ed25519PublicKey):
                self._key.verify(signature, digest)  # dkimpy: nacl VerifyKey.verify(digest)
                return True
            if len(signature) != self._length:
                return False  # RFC 8017 8.2.2 step 1
            self._key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
            return True
        except InvalidSignature:
            return False


def public_key(name: bytes, record: bytes) -> PublicKey:
    """The key a TXT record publishes, parsed once per distinct record; KeyRecordError when
    dkimpy or OpenSSL refuses it (no record, p= empty i.e. revoked, bad ASN.1, k= unknown)."""
    parsed = _parsed(record)
    if isinstance(parsed, str):
        raise KeyRecordError(parsed.replace("{name}", name.decode("ascii", "replace")))
    return parsed


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _parsed(record: bytes) -> PublicKey | str:
    """A PublicKey, or why there is none (a string, so refusals are cached too)."""
    try:
        pk, bits, ktag, tlsrpt = dkim.evaluate_pk(b"{name}", record)
    except Exception as exc:  # dkimpy raises KeyFormatError and assorted errors on bad records
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    try:
        if ktag == b"ed25519":
            key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey = (
                ed25519.Ed25519PublicKey.from_public_bytes(bytes(pk.encode())))
            return PublicKey(ktag, 256, 0, bool(tlsrpt), key, 32)
        modulus, exponent = pk["modulus"], pk["publicExponent"]
        key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except (ValueError, TypeError) as exc:  # OpenSSL refuses even moduli, e < 3, ...
        return f"unusable public key in {{name}}: {exc}"
    return PublicKey(ktag, bits, exponent, bool(tlsrpt), key, (modulus.bit_length() + 7) // 8)
