"""Pytest fixtures for the real DNS server (src/reset_mailbot_testing/dns_server.py).

The server runs as a separate process on loopback (UDP + TCP on one port) so the code
under test resolves through a real network path. Records and faults are changed by
rewriting its JSON files atomically; the server re-reads them on the next query.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.resolver
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 10.0


class DnsServer:
    """Handle on the running DNS server process: address plus zone/fault editing."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.zone_path = workdir / "zone.json"
        self.faults_path = workdir / "faults.json"
        self.host = "127.0.0.1"
        self.port = 0
        self._records: dict[str, Any] = {}
        self._servfail: list[str] = []
        self._timeout: list[str] = []
        self._last_mtime_ns = 0
        self._proc: subprocess.Popen[str] | None = None
        self._write(self.zone_path, {})
        self._write(self.faults_path, {"servfail": [], "timeout": []})

    # -- editing -------------------------------------------------------------

    @property
    def records(self) -> dict[str, Any]:
        """A copy of the records the server currently serves."""
        return dict(self._records)

    def set_records(self, records: dict[str, Any], *, replace: bool = False) -> None:
        """Merge `records` into the zone (or replace the whole zone); visible to the next query.

        Values as in the zone file: ``"txt string"`` or ``{"TXT": ..., "A": ...}``; a value of
        None removes that name.
        """
        new = {} if replace else dict(self._records)
        for name, value in records.items():
            if value is None:
                new.pop(name, None)
            else:
                new[name] = value
        self._write(self.zone_path, new)
        self._records = new

    def remove_records(self, *names: str) -> None:
        """Delete names from the zone (they become NXDOMAIN)."""
        self.set_records(dict.fromkeys(names))

    def set_faults(
        self, servfail: list[str] | tuple[str, ...] = (), timeout: list[str] | tuple[str, ...] = ()
    ) -> None:
        """Replace the fault lists: SERVFAIL for `servfail`, no answer at all for `timeout`."""
        faults = {"servfail": list(servfail), "timeout": list(timeout)}
        self._write(self.faults_path, faults)
        self._servfail, self._timeout = faults["servfail"], faults["timeout"]

    def reset(self) -> None:
        """Empty zone and no faults."""
        self.set_records({}, replace=True)
        self.set_faults()

    def load_zone_file(self, path: str | os.PathLike[str]) -> None:
        """Merge a zone JSON file (e.g. reset_mailbot/demo_data/zone.json) into the zone."""
        self.set_records(json.loads(Path(path).read_text(encoding="utf-8")))

    def _write(self, path: Path, data: Any) -> None:
        """Atomic replace with a strictly increasing mtime_ns, so the server's
        stat check sees every write, even several within one clock tick."""
        fd, tmp = tempfile.mkstemp(dir=self.workdir, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        mtime_ns = max(time.time_ns(), self._last_mtime_ns + 1_000)
        self._last_mtime_ns = mtime_ns
        os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)

    # -- process ---------------------------------------------------------------

    def start(self) -> None:
        """Start the server on a free port and wait until it answers a query."""
        started = time.monotonic()
        log = (self.workdir / "server.log").open("w", encoding="utf-8")
        self._proc = subprocess.Popen(
            [
                sys.executable, "-m", "reset_mailbot_testing.dns_server",
                "--zone", str(self.zone_path), "--faults", str(self.faults_path),
                "--port", "0", "--address", self.host, "--exit-on-stdin-eof",
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,  # closed when this process dies: the server then exits
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        log.close()
        assert self._proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=START_TIMEOUT):
                self.stop()
                pytest.fail(f"DNS server did not start within {START_TIMEOUT}s; see {log.name}")
        line = self._proc.stdout.readline()
        if not line.startswith("READY "):
            code = self._proc.poll()
            self.stop()
            err = (self.workdir / "server.log").read_text(encoding="utf-8")
            pytest.fail(f"DNS server failed to start (exit {code}): {line!r}\n{err}")
        self.port = int(line.split()[2])
        self._wait_answering(started + START_TIMEOUT)

    def _wait_answering(self, deadline: float) -> None:
        query = dns.message.make_query("ready.harness.invalid.", "TXT")
        while True:
            try:
                reply = dns.query.udp(query, self.host, port=self.port, timeout=0.5)
            except (dns.exception.Timeout, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("DNS server does not answer queries")
                continue
            if reply.rcode() == dns.rcode.NXDOMAIN:
                return

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and close its pipe."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()

    def resolver(self, lifetime: float = 5.0) -> dns.resolver.Resolver:
        """A dnspython Resolver aimed at this server only."""
        res = dns.resolver.Resolver(configure=False)
        res.nameservers = [self.host]
        res.port = self.port
        res.lifetime = lifetime
        res.timeout = lifetime
        return res

    def __repr__(self) -> str:
        return f"DnsServer({self.host}:{self.port}, {len(self._records)} names)"


@pytest.fixture(scope="session")
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsServer]:
    """The real DNS server for the whole session (UDP+TCP on `.host`:`.port`).

    Records persist across tests; use `clean_dns` for a test that needs an empty zone.
    """
    server = DnsServer(tmp_path_factory.mktemp("dns"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clean_dns(dns_server: DnsServer) -> Iterator[DnsServer]:
    """`dns_server` with an empty zone and no faults, emptied again after the test."""
    dns_server.reset()
    try:
        yield dns_server
    finally:
        dns_server.reset()
