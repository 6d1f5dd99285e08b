"""A small authoritative DNS server for the tests, built on dnslib.

It runs as its own process so that the code under test talks to a real resolver
path (UDP, then TCP on truncation), exactly like against a production DNS server:

    python -m reset_mailbot_testing.dns_server --zone ZONE.json --faults FAULTS.json --port N

Zone file: ``{"name": "txt string"}`` or ``{"name": {"TXT": "..." | [...], "A": "..." | [...]}}``.
A list gives several records of that type. TXT values longer than 255 bytes are split
into 255-byte character strings (one record), as DKIM publishers do.

Faults file: ``{"servfail": [names], "timeout": [names]}``; ``timeout`` names never get
an answer. Both files are re-read when their (mtime_ns, size, inode) changes, so writers
must replace them atomically (tmp file + ``os.replace``). A missing file counts as empty.

Unknown names get NXDOMAIN, a known name without the asked type an empty NOERROR.
UDP answers larger than 512 bytes (or the client's EDNS payload size) get a TC=1 reply
that keeps the question section, and the same port serves TCP so clients can retry.
With ``--port 0`` a port free for both UDP and TCP is chosen. When the sockets are bound
the server prints ``READY <address> <port>`` on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import struct
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnslib import EDNS0, QTYPE, RCODE, RR, TXT, A, DNSError, DNSHeader, DNSRecord

CLASSIC_UDP_LIMIT = 512
MAX_UDP_PAYLOAD = 4096
TTL = 60


def normalise_name(name: str) -> str:
    """Names compare case-insensitively and with or without the trailing dot."""
    return name.strip().rstrip(".").lower()


def split_txt(value: str) -> list[bytes]:
    """Split one TXT value into <=255-byte character strings (dnslib refuses longer ones)."""
    raw = value.encode("utf-8")
    if not raw:
        return [b""]
    return [raw[i : i + 255] for i in range(0, len(raw), 255)]


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError(f"record value must be a string or a list of strings, not {value!r}")


def parse_zone(data: Any) -> dict[str, dict[str, list[str]]]:
    """Turn the zone JSON into {name: {TYPE: [values]}}."""
    if not isinstance(data, dict):
        raise ValueError("zone must be a JSON object")
    zone: dict[str, dict[str, list[str]]] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            records = {str(rtype).upper(): _as_list(v) for rtype, v in value.items()}
        else:
            records = {"TXT": _as_list(value)}
        for rtype in records:
            if rtype not in ("TXT", "A"):
                raise ValueError(f"unsupported record type {rtype} for {name}")
        zone.setdefault(normalise_name(name), {}).update(records)
    return zone


def parse_faults(data: Any) -> tuple[frozenset[str], frozenset[str]]:
    """Return (servfail names, timeout names)."""
    if not isinstance(data, dict):
        raise ValueError("faults must be a JSON object")
    servfail = frozenset(normalise_name(n) for n in data.get("servfail", []) or [])
    timeout = frozenset(normalise_name(n) for n in data.get("timeout", []) or [])
    return servfail, timeout


def _file_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class ReloadingJson:
    """A JSON file re-read whenever its stat key changes; keeps the last good content."""

    path: Path | None
    empty: Any
    _key: tuple[int, int, int] | None = None
    _value: Any = None
    _loaded: bool = False

    def get(self) -> Any:
        if self.path is None:
            return self.empty
        key = _file_key(self.path)
        if self._loaded and key == self._key:
            return self._value
        if key is None:
            value: Any = self.empty
        else:
            try:
                value = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                print(f"dns_server: cannot read {self.path}: {exc}", file=sys.stderr, flush=True)
                if self._loaded:
                    return self._value
                value = self.empty
        self._key, self._value, self._loaded = key, value, True
        return value


@dataclass
class Authority:
    """Answers queries from the zone and faults files (thread-safe)."""

    zone_file: ReloadingJson
    faults_file: ReloadingJson
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> tuple[dict[str, dict[str, list[str]]], frozenset[str], frozenset[str]]:
        with self._lock:
            try:
                zone = parse_zone(self.zone_file.get())
            except ValueError as exc:
                print(f"dns_server: bad zone: {exc}", file=sys.stderr, flush=True)
                zone = {}
            try:
                servfail, timeout = parse_faults(self.faults_file.get())
            except ValueError as exc:
                print(f"dns_server: bad faults: {exc}", file=sys.stderr, flush=True)
                servfail, timeout = frozenset(), frozenset()
        return zone, servfail, timeout

    def answer(self, request: DNSRecord) -> DNSRecord | None:
        """Build the full (untruncated) reply, or None to stay silent (timeout fault)."""
        reply = DNSRecord(
            DNSHeader(id=request.header.id, qr=1, aa=1, ra=0, rd=request.header.rd),
            q=request.q,
        )
        if _client_payload(request) is not None:
            reply.add_ar(EDNS0(udp_len=MAX_UDP_PAYLOAD))
        if request.header.opcode != 0 or len(request.questions) != 1:
            reply.header.rcode = RCODE.NOTIMP if request.header.opcode != 0 else RCODE.FORMERR
            return reply
        question = request.q
        name = normalise_name(str(question.qname))
        zone, servfail, timeout = self.snapshot()
        if name in timeout:
            return None
        if name in servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        records = zone.get(name)
        if records is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        qtype = QTYPE[question.qtype]
        for rtype in ("TXT", "A"):
            if qtype not in (rtype, "ANY"):
                continue
            for value in records.get(rtype, []):
                rdata = TXT(split_txt(value)) if rtype == "TXT" else A(value)
                reply.add_answer(
                    RR(question.qname, getattr(QTYPE, rtype), rdata=rdata, ttl=TTL)
                )
        return reply


def _client_payload(request: DNSRecord) -> int | None:
    """The EDNS UDP payload size the client advertised, or None without EDNS."""
    for rr in request.ar:
        if rr.rtype == QTYPE.OPT:
            return int(rr.rclass)
    return None


def udp_limit(request: DNSRecord) -> int:
    """Largest UDP reply the client accepts: 512, or its EDNS size (at least 512)."""
    payload = _client_payload(request)
    if payload is None:
        return CLASSIC_UDP_LIMIT
    return max(CLASSIC_UDP_LIMIT, min(payload, MAX_UDP_PAYLOAD))


def truncated_reply(request: DNSRecord, reply: DNSRecord) -> bytes:
    """A TC=1 reply that keeps the question.

    dnslib's truncate() drops the question and dnspython then rejects the reply.
    """
    header = DNSHeader(
        id=reply.header.id, qr=1, aa=reply.header.aa, tc=1, rd=reply.header.rd,
        rcode=reply.header.rcode,
    )
    short = DNSRecord(header, q=request.q)
    if _client_payload(request) is not None:
        short.add_ar(EDNS0(udp_len=MAX_UDP_PAYLOAD))
    return short.pack()


def _formerr(data: bytes) -> bytes | None:
    """FORMERR for a packet with a readable header but unparsable body; None if hopeless."""
    if len(data) < 12:
        return None
    (qid,) = struct.unpack("!H", data[:2])
    return DNSRecord(DNSHeader(id=qid, qr=1, rcode=RCODE.FORMERR)).pack()


def handle(authority: Authority, data: bytes, *, udp: bool) -> bytes | None:
    """Wire query in, wire reply out (None: do not answer)."""
    try:
        request = DNSRecord.parse(data)
    except (DNSError, struct.error, IndexError, ValueError):
        return _formerr(data)
    if request.header.qr:
        return None
    reply = authority.answer(request)
    if reply is None:
        return None
    packed = reply.pack()
    if udp and len(packed) > udp_limit(request):
        return truncated_reply(request, reply)
    return packed


def serve_udp(sock: socket.socket, authority: Authority) -> None:
    while True:
        try:
            data, peer = sock.recvfrom(65535)
        except OSError:
            return
        out = handle(authority, data, udp=True)
        if out is not None:
            with contextlib.suppress(OSError):
                sock.sendto(out, peer)


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve_tcp_connection(conn: socket.socket, authority: Authority) -> None:
    with conn:
        conn.settimeout(30)
        try:
            while True:
                head = _recv_exact(conn, 2)
                if head is None:
                    return
                (length,) = struct.unpack("!H", head)
                data = _recv_exact(conn, length)
                if data is None:
                    return
                out = handle(authority, data, udp=False)
                if out is None:
                    continue  # timeout fault: stay silent, the client gives up
                conn.sendall(struct.pack("!H", len(out)) + out)
        except OSError:
            return


def serve_tcp(sock: socket.socket, authority: Authority) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=serve_tcp_connection, args=(conn, authority), daemon=True).start()


def bind_sockets(address: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Bind UDP and TCP on the same port; with port 0 find one that is free for both."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind((address, port))
            chosen = tcp.getsockname()[1]
            udp.bind((address, chosen))
        except OSError:
            tcp.close()
            udp.close()
            if port != 0:
                raise
            continue
        tcp.listen(64)
        return udp, tcp
    raise OSError("no port free for both UDP and TCP")


def _watch_stdin(stop: threading.Event) -> None:
    while sys.stdin.buffer.read(4096):
        pass
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zone", type=Path, required=True)
    parser.add_argument("--faults", type=Path, default=None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument(
        "--exit-on-stdin-eof", action="store_true",
        help="stop when stdin closes (the parent test process died without stopping us)",
    )
    args = parser.parse_args(argv)

    authority = Authority(ReloadingJson(args.zone, {}), ReloadingJson(args.faults, {}))
    udp, tcp = bind_sockets(args.address, args.port)
    port = udp.getsockname()[1]

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if args.exit_on_stdin_eof:
        threading.Thread(target=_watch_stdin, args=(stop,), daemon=True).start()
    threading.Thread(target=serve_udp, args=(udp, authority), daemon=True).start()
    threading.Thread(target=serve_tcp, args=(tcp, authority), daemon=True).start()
    authority.snapshot()  # read the files once so a bad zone shows up at start
    print(f"READY {args.address} {port}", flush=True)
    while not stop.wait(0.5):
        pass
    udp.close()
    tcp.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
