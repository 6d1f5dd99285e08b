"""CPU time and peak memory of one decision on hostile inputs, each in a fresh process.

    .venv/bin/python bench/hostile_inputs.py [--only NAME] [--list] [--jobs N]
                                             [--cpu-limit S] [--mem-limit-mb MB]

The target (issue 11, "Cheap before expensive, and bounded"): no message under the daemon's
`max_message_bytes` costs more than 1 s CPU or more than 10x its size in memory. Every input is
built in memory here (nothing on disk), most of them from a municipal sender of the packaged
rules (j.devries@utrecht.nl) and DKIM-signed with a 2048-bit key served by an in-memory key
lookup, so the decision goes as far as it can: the worst case, not the cheap early exit.

Each input is decided in its own child process (multiprocessing, 'spawn'). The child builds the
decision context as `reset-mailbot check` does without a config file (bootstrap with the default
configuration; only the key lookup is replaced), decides one small realistic request to warm up
(imports, the Public Suffix List, compiled patterns), then measures only
`decide(raw, context, now)`:

  CPU     time.process_time() around the call (user + system CPU of the child);
  memory  the peak RSS growth during the call: VmHWM is reset through /proc/self/clear_refs
          (Linux) and read from /proc/self/status, minus VmRSS at the reset; where that is not
          available, resource.getrusage(RUSAGE_SELF).ru_maxrss before and after (which misses
          a peak lower than an earlier one). The output says which one was used.

A call gets --cpu-limit seconds of CPU (a wall-clock timer, SIGALRM, looks at process_time()
and re-arms itself until the call has used them, then ends it) and --mem-limit-mb of address
space (RLIMIT_AS), so one runaway input cannot take the machine or the run's time; the parent
kills a child that has not answered long after that. (Not RLIMIT_CPU: on Linux it arms a
process CPU timer, and while one is armed process_time() only advances at scheduler ticks.)
The table gives per input: size, CPU seconds, peak MB, memory/size ratio, PASS/FAIL against the
target, and the outcome with its reasons; then the worst CPU and worst memory ratio next to two
baselines measured in the same run: a realistic ~5 KB signed request, and a benign signed
request padded with an attachment to the size of the largest hostile input.
A benchmark reports; it never fails the process on the target (exit 0 unless it breaks).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import multiprocessing
import os
import platform
import random
import re
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from multiprocessing.connection import Connection, wait
from typing import Any

import dkim

from reset_mailbot.config import Config

# the same realistic request and disclaimer the tests sign (reset_mailbot_testing/dkim_signing.py)
from reset_mailbot_testing.dkim_signing import DISCLAIMER
from reset_mailbot_testing.dkim_signing import DUTCH_REQUEST as REQUEST

TARGET_CPU_SECONDS = 1.0
TARGET_MEMORY_RATIO = 10.0
DOMAIN = "utrecht.nl"
SELECTOR = "selector1"
SENDER = "Jan de Vries <j.devries@utrecht.nl>"
EVIL_DOMAIN = "evil.example"  # a domain whose DNS the attacker controls
SIGNED = ("from", "to", "subject", "date", "message-id", "mime-version", "content-type",
          "content-transfer-encoding")
CRLF = b"\r\n"
FIELD_NAMES = {"from_": "From", "to": "To", "subject": "Subject", "content_type": "Content-Type",
               "content_transfer_encoding": "Content-Transfer-Encoding"}
KB = 1024
MB = 1024 * 1024


# ------------------------------------------------------------------------------------ keys


def rsa_txt(modulus: int, exponent: int) -> str:
    """The DNS TXT record of an RSA public key (X.509 SubjectPublicKeyInfo in p=)."""

    def der(tag: int, content: bytes) -> bytes:
        n = len(content)
        length = bytes([n]) if n < 0x80 else (
            bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8,
                                                                       "big"))
        return bytes([tag]) + length + content

    def integer(value: int) -> bytes:
        return der(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))

    rsa_public = der(0x30, integer(modulus) + integer(exponent))
    algorithm = der(0x30, bytes.fromhex("06092a864886f70d010101") + b"\x05\x00")
    spki = der(0x30, algorithm + der(0x03, b"\x00" + rsa_public))
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()


def huge_exponent_key(bits: int, rng: random.Random) -> str:
    """A published 'key' whose modulus and public exponent both have `bits` bits. Not a key
    pair (no primes are searched: instant to make); verifying against it costs what a real
    one costs, since that is pow(signature, e, n), and the verdict is a failure."""
    modulus = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
    exponent = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
    return rsa_txt(modulus, exponent)


def signing_key() -> tuple[bytes, str]:
    """(PEM private key, TXT record) of a 2048-bit RSA key.

    The `cryptography` package is not installed in the project's venv, so the key comes from
    the test helper's small pure-Python generator (about 2 s) rather than from a new dependency.
    """
    from reset_mailbot_testing.dkim_signing import generate_rsa_key

    key = generate_rsa_key(2048)
    return key.private_pem, key.txt()


# -------------------------------------------------------------------------------- messages


def fold(words: Iterable[str], sep: str = " ", width: int = 76) -> str:
    """Words joined by `sep`, folded (CRLF + space) so that no line exceeds `width`."""
    lines: list[str] = []
    current = ""
    for word in words:
        if current and len(current) + len(sep) + len(word) > width:
            lines.append(current.rstrip())
            current = word
        else:
            current = current + sep + word if current else word
    lines.append(current)
    return "\r\n ".join(lines)


def words_until(size: int, make: Callable[[int], str]) -> list[str]:
    out: list[str] = []
    total = 0
    i = 0
    while total < size:
        word = make(i)
        out.append(word)
        total += len(word) + 1
        i += 1
    return out


def paragraphs(text: str) -> str:
    return "".join(f"<p class=\"MsoNormal\">{line or '&nbsp;'}</p>\r\n"
                   for line in text.split("\r\n"))


def html_of(text: str, before: str = "") -> str:
    return ("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; "
            "charset=utf-8\"></head>\r\n<body lang=\"NL\"><div class=\"WordSection1\">\r\n"
            + before + paragraphs(text) + "</div></body></html>\r\n")


class Factory:
    """Builds signed messages from one sender and domain, with the keys the lookup serves."""

    def __init__(self, support: str, now: float) -> None:
        self.support = support
        self.now = now
        self.pem, txt = signing_key()
        self.zone: dict[str, str] = {f"{SELECTOR}._domainkey.{DOMAIN}": txt}
        self.counter = 0

    def headers(self, **override: str | None) -> list[tuple[str, str]]:
        """The usual header fields; `override` (keys of FIELD_NAMES) replaces a value, None
        drops the field."""
        self.counter += 1
        base = {
            "From": SENDER,
            "To": f"Forus Support <{self.support}>",
            "Subject": "Verzoek reset 2FA",
            "Date": format_datetime(datetime.fromtimestamp(self.now, UTC)),
            "Message-ID": f"<AM9PR09MB{self.counter:08d}BENCH@AM9PR09MB4882.eurprd09.prod."
                          f"{DOMAIN}>",
            "MIME-Version": "1.0",
            "Content-Type": 'text/plain; charset="utf-8"',
            "Content-Transfer-Encoding": "8bit",
        }
        for key, value in override.items():
            name = FIELD_NAMES[key]
            if value is None:
                base.pop(name, None)
            else:
                base[name] = value
        return list(base.items())

    def assemble(self, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
        head = b"".join(f"{k}: {v}".encode() + CRLF for k, v in headers)
        return head + CRLF + body

    def sign(self, raw: bytes, extra: Iterable[str] = ()) -> bytes:
        names = [n.encode() for n in (*SIGNED, *extra)]
        signature = dkim.sign(raw, SELECTOR.encode(), DOMAIN.encode(), self.pem,
                              canonicalize=(b"relaxed", b"relaxed"), include_headers=names)
        return signature + raw

    def message(self, body: bytes | str, *, signed: bool = True, extra_signed: Iterable[str] = (),
                extra_headers: Iterable[tuple[str, str]] = (), **override: str | None) -> bytes:
        if isinstance(body, str):
            body = body.encode()
        headers = self.headers(**override)
        # extra fields go above MIME-Version, as mail clients place them
        at = next(i for i, (k, _) in enumerate(headers) if k == "MIME-Version")
        headers[at:at] = list(extra_headers)
        raw = self.assemble(headers, body)
        return self.sign(raw, extra_signed) if signed else raw

    def outlook(self, text: str = REQUEST, *, filler: int = 0,
                attachment: bytes | None = None) -> bytes:
        """A signed Outlook-style request: multipart/alternative (text + html) with signature
        and disclaimer; with an attachment, wrapped in multipart/mixed."""
        plain = text + "\r\n" + "".join(
            f"Alinea {i}: aanvullende toelichting bij het verzoek, zonder nieuwe gegevens.\r\n"
            "\r\n" for i in range(filler)) + "________________________________\r\n" + DISCLAIMER
        alt = "_000_AM9PR09MB4882BENCH_"
        alternative = (
            f"--{alt}\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            f"{plain}\r\n"
            f"--{alt}\r\nContent-Type: text/html; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            f"{html_of(plain)}\r\n"
            f"--{alt}--\r\n"
        )
        if attachment is None:
            return self.message(alternative, content_type=f'multipart/alternative; '
                                f'boundary="{alt}"', content_transfer_encoding=None)
        mixed = "_004_AM9PR09MB4882BENCH_"
        encoded = base64.encodebytes(attachment).decode("ascii").replace("\n", "\r\n")
        body = (
            f"--{mixed}\r\nContent-Type: multipart/alternative; boundary=\"{alt}\"\r\n\r\n"
            f"{alternative}\r\n"
            f"--{mixed}\r\nContent-Type: application/pdf; name=\"verzoek.pdf\"\r\n"
            "Content-Disposition: attachment; filename=\"verzoek.pdf\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
            f"{encoded}\r\n"
            f"--{mixed}--\r\n"
        )
        return self.message(body, content_type=f'multipart/mixed; boundary="{mixed}"',
                            content_transfer_encoding=None)

    def body_hash(self, raw: bytes) -> str:
        """bh= of `raw` (relaxed), taken from a real signature: a forged signature with the
        right body hash gets past any body-hash check, up to the key lookup and the RSA step."""
        tags = self.sign(raw).split(CRLF + CRLF)[0]
        match = re.search(rb"bh=([A-Za-z0-9+/=\s]+);", tags)
        assert match is not None
        return re.sub(rb"\s+", b"", match.group(1)).decode()


def forged_signature(domain: str, selector: str, bh: str, sig_bytes: int,
                     rng: random.Random) -> bytes:
    """A DKIM-Signature with a correct body hash and a random b= of `sig_bytes` bytes."""
    b = base64.b64encode(rng.randbytes(sig_bytes)).decode()
    b = " ".join(b[i:i + 64] for i in range(0, len(b), 64))  # FWS inside b=, as signers fold
    value = (f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s={selector}; "
             f"h={':'.join(SIGNED)}; bh={bh}; b={b}")
    return b"DKIM-Signature: " + fold(value.split(" ")).encode() + CRLF


# ----------------------------------------------------------------------------------- cases


@dataclass
class Case:
    name: str
    raw: bytes
    note: str
    baseline: bool = False


def build_cases(f: Factory, max_bytes: int, rng: random.Random) -> tuple[list[Case], list[str]]:
    """Every hostile input, then the baselines. Also returns notes to print."""
    notes: list[str] = []
    cases: list[Case] = [Case("baseline_request_5k", f.outlook(filler=12),
                              "realistic signed Outlook request (text + html)", baseline=True)]
    add = cases.append

    # headers: address parsing, encoded words, patterns on header values
    name = fold(words_until(200 * KB, lambda i: "=?utf-8?q?Forus?="))
    add(Case("to_encoded_words_200k", f.message(REQUEST, to=f"{name} <{f.support}>"),
             "To: a display name of encoded words, folded"))
    add(Case("to_quotes_64k", f.message(REQUEST, to='"' * (64 * KB)), 'To: 64 KB of `"`'))
    display = fold(words_until(1 * MB, lambda i: ("Jan", "de", "Vries", "van")[i % 4]))
    add(Case("from_1mb_display_name", f.message(REQUEST, from_=f"{display} <j.devries@utrecht.nl>"),
             "From: 1 MB display name, folded"))
    to_list = fold(words_until(1 * MB, lambda i: f"n{i}@example.nl,"))
    add(Case("to_1mb_address_list", f.message(REQUEST, to=to_list.rstrip(",")),
             "To: 1 MB of bare addresses, folded"))
    cc_list = fold(words_until(1 * MB, lambda i: f'"Naam, {i}" <n{i}@example.nl>,'))
    add(Case("cc_1mb_named_addresses", f.message(REQUEST, extra_signed=("cc",),
                                                 extra_headers=[("Cc", cc_list.rstrip(","))]),
             "Cc: 1 MB of quoted names and addresses, folded"))
    subject = fold(["=?utf-8?q?Verzoek?="] * 70_000)
    add(Case("subject_70000_encoded_words", f.message(REQUEST, subject=subject),
             "Subject: 70,000 encoded words"))
    blanks = "no" + ("\r\n" + " " * 78) * (64 * KB // 80) + " x"
    add(Case("auto_submitted_64k_folded_blanks",
             f.message(REQUEST, extra_signed=("auto-submitted",),
                       extra_headers=[("Auto-Submitted", blanks)]),
             "Auto-Submitted: no + 64 KB of folded blanks"))
    filler = [(f"X-Filler-{i}", f"waarde {i}") for i in range(10_000)]
    add(Case("headers_10000", f.message(REQUEST, extra_headers=filler), "10,000 header fields"))
    line = " ".join(words_until(900 * KB, lambda i: "Verzoek"))
    add(Case("header_line_900k", f.message(REQUEST, subject=line),
             "Subject: one 900 KB line, not folded"))

    # DKIM: signatures that cost before they are trusted
    body = (REQUEST + " " * (32 * KB)).encode()  # 32 KB of blanks no CRLF follows
    unsigned = f.message(body, signed=False)
    bh = f.body_hash(unsigned)
    bogus = b"".join(forged_signature(DOMAIN, SELECTOR, bh, 256, rng) for _ in range(10))
    add(Case("ten_bogus_signatures_32k_blanks", bogus + unsigned,
             "10 aligned signatures, right bh, wrong b=, body ends in 32 KB of blanks"))
    plain = f.message(REQUEST, signed=False)
    bh = f.body_hash(plain)
    f.zone[f"big._domainkey.{EVIL_DOMAIN}"] = huge_exponent_key(16384, rng)
    add(Case("dkim_16384_bit_key", forged_signature(EVIL_DOMAIN, "big", bh, 2048, rng) + plain,
             "unaligned d=evil.example: 16384-bit modulus and exponent (fake key, see notes)"))
    forged = []
    for i in range(10):
        f.zone[f"k{i}._domainkey.{EVIL_DOMAIN}"] = huge_exponent_key(4096, rng)
        forged.append(forged_signature(EVIL_DOMAIN, f"k{i}", bh, 512, rng))
    add(Case("ten_sigs_4096_bit_huge_exponent", b"".join(forged) + plain,
             "10 unaligned signatures, 4096-bit keys with 4096-bit exponents (beyond the brief)"))
    notes.append("dkim_16384_bit_key and ten_sigs_4096_bit_huge_exponent: the keys are a random "
                 "odd modulus and a random odd public exponent of that size, not key pairs "
                 "(instant to make; a real 16384-bit key takes minutes in pure Python). "
                 "Verifying costs pow(b, e, n) either way: about 9 s for 16384 bits in dkimpy.")

    # bodies: extraction patterns, HTML, size, MIME structure, transfer encodings
    # no other case reference in the text, and a digit on the line (lines without one are not
    # searched for a label): the label pattern has to go through the blanks
    no_reference = REQUEST.replace("Dossiernummer: 88123\r\n", "")
    dossier = no_reference + "Dossier" + " " * 1500 + "1\r\n"
    add(Case("dossier_1500_spaces", f.message(dossier), '"Dossier" + 1,500 spaces in the body'))
    dossier = no_reference + "Dossier" + " \t" * ((2 * KB - 8) // 2) + "1\r\n"
    add(Case("dossier_2k_blank_line", f.message(dossier),
             'one 2 KB line: "Dossier" + spaces and tabs'))
    html = html_of(REQUEST, before="<table><tr><td>" + "<p>" * (100 * KB) + "</td></tr></table>")
    add(Case("html_td_300k_p", f.message(html, content_type='text/html; charset="utf-8"'),
             "text/html: 300 KB of <p> inside a <td>"))
    size = min(25 * MB, max_bytes) - 4 * KB  # just under the limit, headers included
    text_line = "Regel met gewone tekst uit een lang doorgestuurd bericht, niets bijzonders.\r\n"
    text = REQUEST + text_line * ((size - len(REQUEST) - 2 * KB) // len(text_line))
    add(Case("text_body_25mb", f.message(text), f"text/plain body, {size / MB:.1f} MB"))
    notes.append(f"max_message_bytes (config default) = {max_bytes:,} bytes; text_body_25mb is "
                 f"built just under min(25 MB, max_message_bytes)")
    nested = "Content-Type: text/plain; charset=\"utf-8\"\r\n\r\n" + REQUEST
    for level in range(1000):
        nested = (f"Content-Type: multipart/mixed; boundary=\"b{level}\"\r\n\r\n"
                  f"--b{level}\r\n{nested}\r\n--b{level}--\r\n")
    head, _, body_part = nested.partition("\r\n\r\n")
    add(Case("nested_multipart_1000", f.message(body_part, content_type=head.split(": ", 1)[1]),
             "1,000 levels of multipart/mixed, the request innermost"))
    parts = "".join(f"--p\r\nContent-Type: text/plain\r\n\r\nDeel {i}\r\n" for i in range(10_000))
    parts = f"--p\r\nContent-Type: text/plain\r\n\r\n{REQUEST}\r\n" + parts + "--p--\r\n"
    add(Case("mime_parts_10000", f.message(parts, content_type='multipart/mixed; boundary="p"'),
             "10,000 MIME parts"))
    good = base64.encodebytes(REQUEST.encode()).decode().replace("\n", "\r\n")
    junk = "".join(
        rng.choice((
            base64.b64encode(rng.randbytes(57)).decode() + "\r\n",  # valid lines of noise
            "".join(rng.choice("!#$%&*()<>?~`^{}|") for _ in range(76)) + "\r\n",
            "====" * 19 + "\r\n",
            "QUJD" * 7 + "=" + "QUJD" * 12 + "\r\n",  # padding in the middle
            "\u00e9\u00e8\u00ff" * 25 + "\r\n",
        ))
        for _ in range(512 * KB // 78)
    )
    add(Case("base64_garbage", f.message(good + junk, content_transfer_encoding="base64"),
             "Content-Transfer-Encoding: base64, 512 KB of invalid base64 after the request"))

    largest = max(len(c.raw) for c in cases if not c.baseline)
    padded = f.outlook(filler=12, attachment=b"")
    # base64 lines: 57 bytes -> 76 characters + CRLF
    attachment = rng.randbytes(max(0, (largest - len(padded)) * 57 // 78 - 57))
    padded = f.outlook(filler=12, attachment=attachment)
    cases.append(Case(f"baseline_padded_{largest / MB:.0f}mb", padded,
                      "the realistic request + a base64 attachment, padded to the size of the "
                      "largest hostile input", baseline=True))
    return cases, notes


# ------------------------------------------------------------------------ the child process


class CpuLimit(BaseException):  # BaseException: no `except Exception` in decide swallows it
    """The call used up its --cpu-limit."""


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _reset_peak() -> tuple[str, int]:
    """(method, baseline bytes) for measuring the peak RSS from here on."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
        return "VmHWM", _status_kib("VmRSS") * KB
    except OSError:
        return "ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KB


def _peak(method: str) -> int:
    if method == "VmHWM":
        return _status_kib("VmHWM") * KB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KB


_LIMIT: dict[str, Any] = {"armed": False, "deadline": 0.0}  # deadline: a process_time()


def _on_alarm(_signum: int, _frame: object) -> None:
    if not _LIMIT["armed"]:  # the call has returned: a late alarm changes nothing
        return
    left = _LIMIT["deadline"] - time.process_time()
    if left <= 0:
        raise CpuLimit
    signal.setitimer(signal.ITIMER_REAL, max(left, 0.05))  # waited, not computed: look again


def child(conn: Connection, raw: bytes, warmup: bytes, zone: dict[str, str], now: float,
          cpu_limit: float, mem_limit: int) -> None:
    """Decide `raw` once after a warm-up; send what it cost."""
    import dataclasses
    import gc

    result: dict[str, Any] = {}
    try:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
        from reset_mailbot import bootstrap
        from reset_mailbot.domain.decision import decide

        records = {k.lower(): v.encode() for k, v in zone.items()}

        def lookup(name: str) -> bytes | None:
            return records.get(name.lower().rstrip("."))

        context = dataclasses.replace(bootstrap.build_decision_context(Config({}, None)),
                                      key_lookup=lookup)
        decide(warmup, context, now)
        gc.collect()
        signal.signal(signal.SIGALRM, _on_alarm)
        method, base = _reset_peak()
        start = time.process_time()
        _LIMIT.update(armed=True, deadline=start + cpu_limit)
        signal.setitimer(signal.ITIMER_REAL, cpu_limit)
        try:
            try:
                decision = decide(raw, context, now)
            finally:
                result["cpu"] = time.process_time() - start
                _LIMIT["armed"] = False
                signal.setitimer(signal.ITIMER_REAL, 0)
        except CpuLimit:
            result["error"] = f"stopped at the CPU limit ({cpu_limit:g} s)"
        except BaseException as exc:  # a bug in decide: report it, with its cost
            result["error"] = f"{type(exc).__name__}: {str(exc)[:80]}"
        else:
            result["outcome"] = decision.outcome.value
            result["reasons"] = [r.value for r in decision.reasons]
        result["peak"] = max(0, _peak(method) - base)
        result["method"] = method
    except BaseException as exc:
        result["error"] = f"setup: {type(exc).__name__}: {str(exc)[:120]}"
    conn.send(result)
    conn.close()


# ------------------------------------------------------------------------------ the parent


@dataclass
class Row:
    case: Case
    result: dict[str, Any]

    @property
    def size(self) -> int:
        return len(self.case.raw)

    @property
    def cpu(self) -> float | None:
        return self.result.get("cpu")

    @property
    def ratio(self) -> float | None:
        peak = self.result.get("peak")
        return None if peak is None else peak / self.size

    def verdict(self, max_bytes: int) -> str:
        if self.size >= max_bytes:
            return "n/a"
        if self.cpu is None or self.ratio is None or "error" in self.result:
            return "FAIL"
        ok = self.cpu <= TARGET_CPU_SECONDS and self.ratio <= TARGET_MEMORY_RATIO
        return "PASS" if ok else "FAIL"


def run_all(cases: list[Case], zone: dict[str, str], now: float, warmup: bytes, jobs: int,
            cpu_limit: float, mem_limit: int) -> list[Row]:
    ctx = multiprocessing.get_context("spawn")
    pending = list(cases)
    running: dict[Connection, tuple[Case, Any, float]] = {}
    done: dict[str, dict[str, Any]] = {}
    wall_limit = cpu_limit * 4 + 60  # start-up, warm-up and a busy machine included
    while pending or running:
        while pending and len(running) < jobs:
            case = pending.pop(0)
            parent_end, child_end = ctx.Pipe(duplex=False)
            process = ctx.Process(target=child, args=(child_end, case.raw, warmup, zone, now,
                                                      cpu_limit, mem_limit), daemon=True)
            process.start()
            child_end.close()
            running[parent_end] = (case, process, time.monotonic())
        for conn in wait(list(running), timeout=1.0):
            case, process, _ = running.pop(conn)  # type: ignore[index]
            try:
                result = conn.recv()
            except EOFError:
                process.join(5)
                code = process.exitcode
                result = {"error": f"child died, exit code {code}"}
            process.join(5)
            done[case.name] = result
            print(f"  {case.name}: {describe(result)}", file=sys.stderr, flush=True)
        for conn, (case, process, started) in list(running.items()):
            if time.monotonic() - started > wall_limit:
                process.kill()
                process.join(5)
                running.pop(conn)
                conn.close()
                done[case.name] = {"error": f"killed after {wall_limit:g} s wall time"}
    return [Row(c, done[c.name]) for c in cases]


def describe(result: dict[str, Any]) -> str:
    if "outcome" in result:
        reasons = ", ".join(result["reasons"]) or "-"
        return f"{result['outcome']} [{reasons}]"
    return result.get("error", "?")


def human(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB else f"{size / KB:.1f} KB"


def print_table(rows: list[Row], max_bytes: int) -> None:
    print(f"{'input':<34} {'size':>9} {'CPU s':>8} {'peak MB':>9} {'mem/size':>9} "
          f"{'target':>6}  outcome [reasons]")
    for row in rows:
        cpu = "-" if row.cpu is None else f"{row.cpu:.4f}"
        peak = row.result.get("peak")
        peak_mb = "-" if peak is None else f"{peak / MB:.1f}"
        ratio = "-" if row.ratio is None else f"{row.ratio:.1f}x"
        print(f"{row.case.name:<34} {human(row.size):>9} {cpu:>8} {peak_mb:>9} {ratio:>9} "
              f"{row.verdict(max_bytes):>6}  {describe(row.result)}")


def print_summary(rows: list[Row], max_bytes: int) -> None:
    hostile = [r for r in rows if not r.case.baseline]
    baselines = [r for r in rows if r.case.baseline]

    def fmt_cpu(row: Row) -> str:
        return f"{row.case.name} {'-' if row.cpu is None else f'{row.cpu:.3f} s'}"

    def fmt_ratio(row: Row) -> str:
        return f"{row.case.name} {'-' if row.ratio is None else f'{row.ratio:.1f}x'}"

    def against(fmt: Callable[[Row], str]) -> str:
        if not baselines:
            return "no baseline in this run (--only)"
        return "baseline: " + ", ".join(fmt(b) for b in baselines)

    measured = [r for r in hostile if r.cpu is not None]
    if measured:
        worst = max(measured, key=lambda r: (r.cpu or 0.0, "error" in r.result))
        stopped = " (stopped at the limit)" if "error" in worst.result else ""
        print(f"worst CPU:          {fmt_cpu(worst)}{stopped}   "
              f"(target <= {TARGET_CPU_SECONDS:g} s; {against(fmt_cpu)})")
    with_ratio = [r for r in hostile if r.ratio is not None]
    if with_ratio:
        worst = max(with_ratio, key=lambda r: r.ratio or 0.0)
        print(f"worst memory/size:  {fmt_ratio(worst)} ({(worst.result['peak']) / MB:.1f} MB "
              f"for {human(worst.size)})   (target <= {TARGET_MEMORY_RATIO:g}x; "
              f"{against(fmt_ratio)})")
    unmeasured = [r.case.name for r in hostile if r.cpu is None]
    if unmeasured:
        print("not measured (child died): " + ", ".join(unmeasured))
    verdicts = [r.verdict(max_bytes) for r in hostile]
    print(f"hostile inputs against the target: {verdicts.count('PASS')} PASS, "
          f"{verdicts.count('FAIL')} FAIL (of {len(hostile)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", metavar="NAME", action="append",
                        help="run only this input (repeatable; see --list)")
    parser.add_argument("--list", action="store_true", help="list the inputs and exit")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="children at a time (default: 2, or 1 on one core)")
    parser.add_argument("--cpu-limit", type=float, default=10.0,
                        help="CPU seconds one decide() call may use (default 10)")
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MB
    parser.add_argument("--mem-limit-mb", type=int, default=None,
                        help="address space per child (default: min(8192, RAM / (jobs + 1)))")
    parser.add_argument("--seed", type=int, default=20261207)
    args = parser.parse_args(argv)
    mem_limit_mb = args.mem_limit_mb or min(8192, physical // (args.jobs + 1))

    t0 = time.perf_counter()
    settings = Config({}, None).mailbox
    now = time.time()
    rng = random.Random(args.seed)
    factory = Factory(settings.address, now)
    cases, notes = build_cases(factory, settings.max_message_bytes, rng)
    if args.list:
        for case in cases:
            print(f"{case.name:<34} {human(len(case.raw)):>9}  {case.note}")
        return 0
    if args.only:
        known = {c.name for c in cases}
        unknown = [n for n in args.only if n not in known]
        if unknown:
            parser.error(f"unknown input(s) {unknown}; --list shows them")
        cases = [c for c in cases if c.name in args.only]
    warmup = factory.outlook()
    print(f"built {len(cases)} inputs in {time.perf_counter() - t0:.1f} s "
          f"(total {sum(len(c.raw) for c in cases) / MB:.1f} MB); python "
          f"{platform.python_version()}, {os.cpu_count()} cores, start method 'spawn', "
          f"{args.jobs} at a time, CPU limit {args.cpu_limit:g} s, address space limit "
          f"{mem_limit_mb} MB per child")
    for note in notes:
        print("note: " + note)
    print("running (results as they come, on stderr):", flush=True)
    t1 = time.perf_counter()
    rows = run_all(cases, factory.zone, now, warmup, args.jobs, args.cpu_limit,
                   mem_limit_mb * MB)
    methods = sorted({r.result["method"] for r in rows if "method" in r.result})
    method_text = {
        "VmHWM": "peak RSS growth during decide(): VmHWM reset via /proc/self/clear_refs, "
                 "minus VmRSS at the reset",
        "ru_maxrss": "peak RSS growth during decide(): ru_maxrss after minus before "
                     "(misses peaks lower than an earlier one)",
    }
    print(f"\nran in {time.perf_counter() - t1:.1f} s; memory = "
          + "; ".join(method_text.get(m, m) for m in methods or ["-"]))
    print(f"target: under max_message_bytes ({human(settings.max_message_bytes)}), "
          f"<= {TARGET_CPU_SECONDS:g} s CPU and <= {TARGET_MEMORY_RATIO:g}x size in memory\n")
    print_table(rows, settings.max_message_bytes)
    print()
    print_summary(rows, settings.max_message_bytes)
    digest = hashlib.sha256(b"".join(c.raw for c in cases)).hexdigest()[:12]
    print(f"(inputs digest {digest}, seed {args.seed}; dates and Message-IDs vary per run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
