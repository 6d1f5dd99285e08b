"""Test helper (not a test module): DKIM keys, their DNS records, realistic messages, signing.

Keys are generated in-process: RSA with a small pure-Python generator (the `cryptography` package
is not a dependency; dkimpy's own key tool shells out to openssl), ed25519 with PyNaCl. Keys are
cached per process, because a 4096-bit RSA key takes a few seconds to find.

Signing uses dkimpy. `sign()` goes through `dkim.sign` when it can; dkimpy's signer cannot set
`x=` (expiry) or `t=`, nor sign without From, so those cases go through `DKIM.gen_header` with the
tag list built here, which is exactly what dkimpy's `sign` does internally.

Why one module of ~500 lines: keys, records, messages and signing are used together by every
DKIM test, the benchmarks and the demo; it is test infrastructure, not product code.
"""

from __future__ import annotations

import base64
import secrets
import textwrap
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import cache

import dkim
import nacl.encoding
import nacl.signing
from dkim.canonicalization import CanonicalizationPolicy

from reset_mailbot.domain.authentication import KeyLookup, TemporaryKeyLookupError

CRLF = b"\r\n"

# Headers an Outlook/Exchange or Postfix+OpenDKIM signer typically covers.
DEFAULT_SIGNED_HEADERS = ("from", "to", "subject", "date", "message-id", "mime-version",
                          "content-type")

# ---------------------------------------------------------------------------------------------
# keys

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % q for q in range(2, int(p**0.5) + 1))]


def _is_probable_prime(n: int, rounds: int = 16) -> bool:
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        a = secrets.randbelow(n - 3) + 2
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _random_prime(bits: int, e: int) -> int:
    while True:
        # top two bits set, so that p*q has exactly 2*bits bits; odd
        candidate = secrets.randbits(bits) | (3 << (bits - 2)) | 1
        if candidate % e == 1:  # gcd(e, p-1) must be 1 (e is prime)
            continue
        if _is_probable_prime(candidate):
            return candidate


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def _der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")  # leading 0 keeps it positive
    return _der(0x02, body)


def _der_seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


_RSA_ENCRYPTION_OID = bytes.fromhex("06092a864886f70d010101")  # 1.2.840.113549.1.1.1


@dataclass(frozen=True)
class RsaKey:
    bits: int
    n: int
    e: int
    d: int
    p: int
    q: int

    @property
    def private_pem(self) -> bytes:
        """PKCS#1 RSAPrivateKey in PEM, as dkimpy's signer wants it."""
        der = _der_seq(
            _der_int(0), _der_int(self.n), _der_int(self.e), _der_int(self.d),
            _der_int(self.p), _der_int(self.q), _der_int(self.d % (self.p - 1)),
            _der_int(self.d % (self.q - 1)), _der_int(pow(self.q, -1, self.p)),
        )
        b64 = base64.b64encode(der).decode()
        lines = "\n".join(textwrap.wrap(b64, 64))
        return f"-----BEGIN RSA PRIVATE KEY-----\n{lines}\n-----END RSA PRIVATE KEY-----\n".encode()

    @property
    def public_der(self) -> bytes:
        """X.509 SubjectPublicKeyInfo, the usual content of p=."""
        rsa_public = _der_seq(_der_int(self.n), _der_int(self.e))
        algorithm = _der_seq(_RSA_ENCRYPTION_OID, b"\x05\x00")
        return _der_seq(algorithm, _der(0x03, b"\x00" + rsa_public))

    @property
    def private(self) -> bytes:
        return self.private_pem

    @property
    def algorithm(self) -> bytes:
        return b"rsa-sha256"

    def txt(self) -> str:
        return "v=DKIM1; k=rsa; p=" + base64.b64encode(self.public_der).decode()


@dataclass(frozen=True)
class Ed25519Key:
    seed_b64: bytes
    public_b64: bytes

    bits = 256

    @property
    def private(self) -> bytes:
        return self.seed_b64

    @property
    def algorithm(self) -> bytes:
        return b"ed25519-sha256"

    def txt(self) -> str:
        return "v=DKIM1; k=ed25519; p=" + self.public_b64.decode()


DkimKey = RsaKey | Ed25519Key


def generate_rsa_key(bits: int) -> RsaKey:
    e = 65537
    while True:
        p = _random_prime(bits // 2, e)
        q = _random_prime(bits - bits // 2, e)
        if p == q:
            continue
        n = p * q
        if n.bit_length() != bits:
            continue
        d = pow(e, -1, (p - 1) * (q - 1))
        return RsaKey(bits=bits, n=n, e=e, d=d, p=p, q=q)


@cache
def rsa_key(bits: int = 2048, name: str = "default") -> RsaKey:
    """A cached RSA key; `name` gives independent keys of the same size."""
    return generate_rsa_key(bits)


@cache
def ed25519_key(name: str = "default") -> Ed25519Key:
    signing = nacl.signing.SigningKey.generate()
    return Ed25519Key(
        seed_b64=signing.encode(encoder=nacl.encoding.Base64Encoder),
        public_b64=signing.verify_key.encode(encoder=nacl.encoding.Base64Encoder),
    )


def key_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


REVOKED_TXT = "v=DKIM1; k=rsa; p="

# ---------------------------------------------------------------------------------------------
# in-memory key lookups (unit tests and the benchmark)


def dict_lookup(
    records: Mapping[str, str | bytes | None],
    temporary: Iterable[str] = (),
    calls: list[str] | None = None,
) -> KeyLookup:
    """A KeyLookup over {name: TXT}; names in `temporary` raise TemporaryKeyLookupError."""
    table = {k.lower().rstrip("."): v for k, v in records.items()}
    broken = {n.lower().rstrip(".") for n in temporary}

    def lookup(name: str) -> bytes | None:
        key = name.lower().rstrip(".")
        if calls is not None:
            calls.append(key)
        if key in broken:
            raise TemporaryKeyLookupError(f"SERVFAIL for {key} (test)")
        value = table.get(key)
        return value.encode() if isinstance(value, str) else value

    return lookup


# ---------------------------------------------------------------------------------------------
# messages

_counter = iter(range(1, 10**9))


def message_id(domain: str = "utrecht.nl") -> str:
    """A realistic, long Exchange-style Message-ID."""
    token = secrets.token_hex(16).upper()
    return f"<AM9PR09MB{token}{next(_counter)}@AM9PR09MB4882.eurprd09.prod.{domain}>"


def _date(when: float | None = None) -> str:
    return format_datetime(datetime.fromtimestamp(when or time.time(), UTC))


DUTCH_REQUEST = (
    "Beste Forus support,\r\n"
    "\r\n"
    "Wilt u de tweefactorauthenticatie (2FA) resetten van het account van onze inwoner?\r\n"
    "\r\n"
    "E-mailadres account: piet.jansen@hotmail.com\r\n"
    "De identiteit van de inwoner is aan de balie gecontroleerd met zijn paspoort.\r\n"
    "Wij geven hierbij opdracht om de 2FA te resetten.\r\n"
    "Dossiernummer: 88123\r\n"
    "\r\n"
    "Met vriendelijke groet,\r\n"
    "\r\n"
    "Jan de Vries\r\n"
    "Consulent Werk en Inkomen\r\n"
    "Gemeente Utrecht\r\n"
)

DISCLAIMER = (
    "Dit bericht is uitsluitend bestemd voor de geadresseerde. Als dit bericht niet voor u\r\n"
    "bestemd is, wordt u vriendelijk verzocht dit aan de afzender te melden. De gemeente\r\n"
    "aanvaardt geen aansprakelijkheid voor schade die voortvloeit uit het gebruik van e-mail.\r\n"
)


def plain_message(
    from_: str = "Jan de Vries <j.devries@utrecht.nl>",
    to: str = "Forus Support <support@forus.test>",
    subject: str = "Verzoek reset 2FA",
    body: str = DUTCH_REQUEST,
    extra_headers: Iterable[tuple[str, str]] = (),
    msgid: str | None = None,
    date: float | None = None,
) -> bytes:
    """A plain text/plain message with CRLF line ends (what arrives over IMAP)."""
    domain = from_.rpartition("@")[2].rstrip(">") or "example.nl"
    headers = [
        ("From", from_),
        ("To", to),
        ("Subject", subject),
        ("Date", _date(date)),
        ("Message-ID", msgid or message_id(domain)),
        *extra_headers,
        ("MIME-Version", "1.0"),
        ("Content-Type", 'text/plain; charset="utf-8"'),
        ("Content-Transfer-Encoding", "8bit"),
    ]
    return _assemble(headers, body.replace("\r\n", "\n").replace("\n", "\r\n").encode())


def _assemble(headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    head = b"".join(f"{k}: {v}".encode() + CRLF for k, v in headers)
    return head + CRLF + body


def _qp(text: str) -> str:
    import quopri

    text = text.replace("\r\n", "\n")  # CRLF in, CRLF out (never CR CR LF)
    encoded = quopri.encodestring(text.encode("utf-8")).decode("ascii")
    return encoded.replace("\r\n", "\n").replace("\n", "\r\n")


def outlook_message(
    from_: str = "Jan de Vries <j.devries@utrecht.nl>",
    to: str = "Forus Support <support@forus.test>",
    subject: str = "Verzoek reset 2FA",
    text: str = DUTCH_REQUEST,
    extra_headers: Iterable[tuple[str, str]] = (),
    attachment: bytes | None = None,
    attachment_name: str = "bijlage.pdf",
    filler_paragraphs: int = 0,
    msgid: str | None = None,
) -> bytes:
    """An Outlook/Exchange-style multipart/alternative (text + html), signature and disclaimer,
    optionally wrapped in multipart/mixed with a base64 attachment."""
    domain = from_.rpartition("@")[2].rstrip(">") or "example.nl"
    filler = "".join(
        f"Alinea {i}: aanvullende toelichting bij het verzoek, zonder nieuwe gegevens.\r\n\r\n"
        for i in range(filler_paragraphs)
    )
    plain = text + "\r\n" + filler + "________________________________\r\n" + DISCLAIMER
    html_lines = "".join(
        f"<p class=\"MsoNormal\">{line or '&nbsp;'}<o:p></o:p></p>\r\n"
        for line in plain.split("\r\n")
    )
    html = (
        "<html xmlns:o=\"urn:schemas-microsoft-com:office:office\">\r\n<head>\r\n"
        "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n"
        "<style><!-- p.MsoNormal {margin:0cm; font-size:11.0pt; font-family:\"Calibri\"} -->"
        "</style>\r\n</head>\r\n<body lang=\"NL\">\r\n<div class=\"WordSection1\">\r\n"
        + html_lines
        + "</div>\r\n</body>\r\n</html>\r\n"
    )
    alt = "_000_AM9PR09MB4882" + secrets.token_hex(8) + "_"
    alternative = (
        f"--{alt}\r\n"
        "Content-Type: text/plain; charset=\"utf-8\"\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        f"{_qp(plain)}\r\n"
        f"--{alt}\r\n"
        "Content-Type: text/html; charset=\"utf-8\"\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        f"{_qp(html)}\r\n"
        f"--{alt}--\r\n"
    )
    headers = [
        ("From", from_),
        ("To", to),
        ("Subject", subject),
        ("Thread-Topic", subject),
        ("Thread-Index", "AQHa" + secrets.token_hex(12)),
        ("Date", _date()),
        ("Message-ID", msgid or message_id(domain)),
        ("Accept-Language", "nl-NL, en-US"),
        ("Content-Language", "nl-NL"),
        ("X-MS-Has-Attach", "yes" if attachment else ""),
        ("X-MS-TNEF-Correlator", ""),
        *extra_headers,
        ("MIME-Version", "1.0"),
    ]
    if attachment is None:
        headers.append(("Content-Type", f'multipart/alternative; boundary="{alt}"'))
        return _assemble(headers, alternative.encode("ascii"))
    mixed = "_004_AM9PR09MB4882" + secrets.token_hex(8) + "_"
    encoded = base64.encodebytes(attachment).decode("ascii").replace("\n", "\r\n")
    body = (
        f"--{mixed}\r\n"
        f"Content-Type: multipart/alternative; boundary=\"{alt}\"\r\n\r\n"
        f"{alternative}\r\n"
        f"--{mixed}\r\n"
        f"Content-Type: application/pdf; name=\"{attachment_name}\"\r\n"
        f"Content-Description: {attachment_name}\r\n"
        f"Content-Disposition: attachment; filename=\"{attachment_name}\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{encoded}\r\n"
        f"--{mixed}--\r\n"
    )
    headers.append(("Content-Type", f'multipart/mixed; boundary="{mixed}"'))
    return _assemble(headers, body.encode("ascii"))


# ---------------------------------------------------------------------------------------------
# signing


def _header_list(names: Iterable[str]) -> list[bytes]:
    return [n.encode() if isinstance(n, str) else n for n in names]


def signature_header(
    message: bytes,
    key: DkimKey,
    domain: str,
    selector: str = "selector1",
    *,
    algorithm: bytes | None = None,
    include_headers: Iterable[str] = DEFAULT_SIGNED_HEADERS,
    length: bool = False,
    canonicalize: tuple[bytes, bytes] = (b"relaxed", b"relaxed"),
    timestamp: int | None = None,
    expires: int | None = None,
    identity: str | None = None,
) -> bytes:
    """The DKIM-Signature header line (CRLF-terminated) for `message`.

    `algorithm` defaults to the key's own (rsa-sha256 / ed25519-sha256); pass b"rsa-sha1" to
    produce a (cryptographically valid) SHA-1 signature. `expires` sets x=, `timestamp` t=.
    """
    algorithm = algorithm or key.algorithm
    headers = _header_list(include_headers)
    if timestamp is None and expires is None and b"from" in [h.lower() for h in headers]:
        return dkim.sign(
            message,
            selector.encode(),
            domain.encode(),
            key.private,
            identity=identity.encode() if identity else None,
            canonicalize=canonicalize,
            signature_algorithm=algorithm,
            include_headers=headers,
            length=length,
        )
    return _sign_with_tags(
        message, key, domain, selector, algorithm=algorithm, include_headers=headers,
        length=length, canonicalize=canonicalize, timestamp=timestamp, expires=expires,
    )


def _sign_with_tags(
    message: bytes,
    key: DkimKey,
    domain: str,
    selector: str,
    *,
    algorithm: bytes,
    include_headers: list[bytes],
    length: bool,
    canonicalize: tuple[bytes, bytes],
    timestamp: int | None,
    expires: int | None,
) -> bytes:
    """dkimpy's DKIM.sign, with t=/x= under our control and no "From must be signed" guard."""
    signer = dkim.DKIM(message, signature_algorithm=algorithm)
    if algorithm == b"ed25519-sha256":
        pk = nacl.signing.SigningKey(key.private, encoder=nacl.encoding.Base64Encoder)
    else:
        pk = dkim.crypto.parse_pem_private_key(key.private)
    policy = CanonicalizationPolicy.from_c_value(b"/".join(canonicalize))
    include = tuple(h.lower() for h in include_headers)
    body = policy.canonicalize_body(signer.body)
    signer.hasher = dkim.HASH_ALGORITHMS[algorithm]
    bodyhash = base64.b64encode(signer.hasher(body).digest())
    now = int(time.time()) if timestamp is None else timestamp
    fields = [
        x
        for x in [
            (b"v", b"1"),
            (b"a", algorithm),
            (b"c", policy.to_c_value()),
            (b"d", domain.encode()),
            (b"i", b"@" + domain.encode()),
            length and (b"l", str(len(body)).encode()),
            (b"q", b"dns/txt"),
            (b"s", selector.encode()),
            (b"t", str(now).encode()),
            expires is not None and (b"x", str(expires).encode()),
            (b"h", b" : ".join(include)),
            (b"bh", bodyhash),
            (b"b", b"0" * 60),
        ]
        if x
    ]
    value = signer.gen_header(fields, include, policy, b"DKIM-Signature", pk)
    return b"DKIM-Signature: " + value


def sign(
    message: bytes, key: DkimKey, domain: str, selector: str = "selector1", **kw: object
) -> bytes:
    """`message` with a DKIM-Signature prepended (as a signing MTA adds it)."""
    return signature_header(message, key, domain, selector, **kw) + message  # type: ignore[arg-type]


class Signer:
    """Keys per (selector, domain) and the zone they make: sign and publish in one place."""

    def __init__(self) -> None:
        self.zone: dict[str, str] = {}

    def publish(self, key: DkimKey, domain: str, selector: str = "selector1") -> None:
        self.zone[key_name(selector, domain)] = key.txt()

    def sign(
        self, message: bytes, key: DkimKey, domain: str, selector: str = "selector1", **kw: object
    ) -> bytes:
        self.publish(key, domain, selector)
        return sign(message, key, domain, selector, **kw)

    def lookup(self, temporary: Iterable[str] = ()) -> KeyLookup:
        return dict_lookup(self.zone, temporary)


def replace_header(message: bytes, name: str, value: str) -> bytes:
    """Rewrite the first `name:` header line (unfolded headers only)."""
    head, sep, body = message.partition(CRLF + CRLF)
    lines = head.split(CRLF)
    prefix = name.lower().encode() + b":"
    for i, line in enumerate(lines):
        if line.lower().startswith(prefix):
            lines[i] = f"{name}: {value}".encode()
            break
    else:
        raise KeyError(name)
    return CRLF.join(lines) + sep + body

