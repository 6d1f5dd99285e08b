"""Pytest fixtures for real mail services: Dovecot (IMAP + LMTP) and an SMTP sink.

- `dovecot` (session): a private Dovecot; user support@forus.test / secret exists.
- `mailbox` (function): a fresh Dovecot user per test, so tests never see each other's mail.
- `smtp_sink` (function): an aiosmtpd server (session-wide) reset before each test; it
  stores every accepted message as .eml + envelope .json, and can refuse or demand AUTH.

Everything runs under /tmp/reset-mailbot-tests-<pid>/ (0755; pytest's tmp_path parents
are 0700, which Dovecot's uid-5000 mail processes cannot enter).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient

from reset_mailbot_testing.dovecot import Dovecot, DovecotError
from reset_mailbot_testing.smtp_sink import SmtpSink

SUPPORT_ADDRESS = "support@forus.test"
SUPPORT_PASSWORD = "secret"


def state_root() -> Path:
    """/tmp/reset-mailbot-tests-<pid>, mode 0755 (shared by the harnesses of this session)."""
    root = Path(f"/tmp/reset-mailbot-tests-{os.getpid()}")
    root.mkdir(mode=0o755, exist_ok=True)
    os.chmod(root, 0o755)
    return root


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """Turn SIGTERM (e.g. from `timeout`) into an interrupt, so that session fixtures still
    stop the daemonized Dovecot and PostgreSQL instead of leaking them."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)


# -- Dovecot -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """A running private Dovecot (IMAP `.imap_port`, LMTP `.lmtp_port`) for the session.

    Fails (does not skip) when Dovecot is missing: CI installs it via `make test-deps`.
    """
    server = Dovecot(state_root() / "dovecot")
    try:
        server.start()
    except DovecotError as exc:
        pytest.fail(str(exc), pytrace=False)
    server.add_user(SUPPORT_ADDRESS, SUPPORT_PASSWORD)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.state_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            server.state_dir.parent.rmdir()  # the shared state root, once every harness is done


_mailbox_counter = itertools.count(1)


@dataclass
class Mailbox:
    """A fresh Dovecot user for one test, with the helpers bound to it."""

    server: Dovecot
    address: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def imap_port(self) -> int:
        return self.server.imap_port

    @property
    def lmtp_port(self) -> int:
        return self.server.lmtp_port

    @property
    def user(self) -> str:
        """The IMAP login name (the address)."""
        return self.address

    def client(self) -> IMAPClient:
        """A logged-in IMAP client (the caller logs out)."""
        return self.server.client(self.address)

    def deliver(self, raw: bytes, mail_from: str = "sender@example.test") -> None:
        """Deliver over LMTP into this mailbox's INBOX."""
        self.server.deliver(raw, rcpt=self.address, mail_from=mail_from)

    def append(self, folder: str, raw: bytes, flags: Iterable[str] = ()) -> int | None:
        return self.server.append(folder, raw, user=self.address, flags=flags)

    def list_folder(self, folder: str = "INBOX") -> list[bytes]:
        return self.server.list_folder(folder, user=self.address)

    def folders(self) -> list[str]:
        return self.server.folders(user=self.address)


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Iterator[Mailbox]:
    """A brand-new, empty Dovecot user (support-<n>-<hex>@forus.test) for this test."""
    address = f"support-{next(_mailbox_counter)}-{uuid.uuid4().hex[:6]}@forus.test"
    password = uuid.uuid4().hex
    dovecot.add_user(address, password)
    yield Mailbox(dovecot, address, password)
    dovecot.reset_user(address)


# -- SMTP sink ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_sink_server() -> Iterator[SmtpSink]:
    """The session's SMTP sink process-thread; prefer the per-test `smtp_sink`."""
    sink = SmtpSink(state_root() / "smtp-sink")
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
        shutil.rmtree(sink.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            sink.directory.parent.rmdir()


@pytest.fixture
def smtp_sink(smtp_sink_server: SmtpSink) -> Iterator[SmtpSink]:
    """The SMTP sink, emptied and accepting everything without AUTH at test start."""
    smtp_sink_server.reset()
    yield smtp_sink_server
    smtp_sink_server.reset()
