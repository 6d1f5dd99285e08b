"""A complete, real environment for `reset-mailbot run`: Dovecot, SMTP sink, DNS, fake Forus, DB.

The daemon runs as a separate process (the `reset-mailbot` console script), exactly as in
production, so a test can kill it at a failpoint and start it again.
"""

from __future__ import annotations

import email
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from reset_mailbot_testing.dkim_signing import DEFAULT_SIGNED_HEADERS, plain_message, rsa_key, sign
from reset_mailbot_testing.forus_http import DEFAULT_TOKEN, FakeForus
from reset_mailbot_testing.smtp_sink import SmtpSink
from tests.examples import EXAMPLES
from tests.harness.mail_fixtures import Mailbox

SUPPORT = "support@forus.test"
SELECTOR = "e2e"
CLI = [sys.executable, "-m", "reset_mailbot.cli"]


@dataclass
class DaemonEnv:
    tmp: Path
    mailbox: Mailbox
    sink: SmtpSink
    dns: Any
    forus: FakeForus
    database_url: str
    executor: str = "http"
    require_approval: bool = False
    max_message_bytes: int = 25 * 1024 * 1024
    poll_interval_seconds: float = 30
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        path = self.tmp / "reset-mailbot.toml"
        executor = (
            f'kind = "http"\nurl = "{self.forus.url}"\ntoken = "{DEFAULT_TOKEN}"\n'
            if self.executor == "http"
            else f'kind = "{self.executor}"\n'
        )
        path.write_text(
            "[mailbox]\n"
            f'address = "{SUPPORT}"\nhost = "127.0.0.1"\nport = {self.mailbox.imap_port}\n'
            f'security = "none"\nusername = "{self.mailbox.address}"\n'
            f'password = "{self.mailbox.password}"\n'
            f"poll_interval_seconds = {self.poll_interval_seconds}\n"
            f"max_message_bytes = {self.max_message_bytes}\n"
            "[dns]\n"
            f'nameservers = ["127.0.0.1"]\nport = {self.dns.port}\ntimeout_seconds = 1.0\n'
            "[rules]\n"
            f'municipalities = "{EXAMPLES / "municipalities.yaml"}"\n'
            "[smtp]\n"
            f'host = "127.0.0.1"\nport = {self.sink.port}\nsecurity = "none"\n'
            "timeout_seconds = 5\n"
            "[database]\n"
            f'url = "{self.database_url}"\n'
            "[executor]\n" + executor + f"require_approval = {str(self.require_approval).lower()}\n"
            "timeout_seconds = 5\n"
        )
        return path

    def cli(self, *args: str, failpoint: str | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
        env.update(self.extra_env)
        if failpoint:
            env["RESET_MAILBOT_FAILPOINT"] = failpoint
        proc = subprocess.run(
            [*CLI, *args, "--config", str(self.config_path)],
            capture_output=True, text=True, env=env, timeout=timeout, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def run_once(self, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.cli("run", "--once", **kw)

    def deliver(self, raw: bytes) -> None:
        self.mailbox.deliver(raw)

    def signed(self, raw: bytes, domain: str = "utrecht.nl",
               signed_headers: Iterable[str] = DEFAULT_SIGNED_HEADERS) -> bytes:
        key = rsa_key(2048, "e2e")
        self.dns.set_records({f"{SELECTOR}._domainkey.{domain}": key.txt()})
        return sign(raw, key, domain, SELECTOR, include_headers=list(signed_headers))

    def request(self, body: str, from_: str = "Jan de Vries <j.devries@utrecht.nl>",
                signed_headers: Iterable[str] = DEFAULT_SIGNED_HEADERS, **kw: Any) -> bytes:
        domain = from_.rpartition("@")[2].rstrip(">")
        return self.signed(plain_message(from_=from_, body=body, **kw), domain, signed_headers)

    def folder(self, name: str) -> list[bytes]:
        return self.mailbox.list_folder(name) if name == "INBOX" or name in self.mailbox.folders() \
            else []

    def replies(self) -> list[email.message.Message]:
        return [email.message_from_bytes(raw) for _, raw in self.sink.messages()]

    def sql(self, query: str, **params: Any) -> list[tuple[Any, ...]]:
        engine = create_engine(self.database_url.replace("sqlite:////", "sqlite:////"))
        try:
            with engine.begin() as conn:
                result = conn.execute(text(query), params)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            engine.dispose()


def sqlite_url(tmp: Path) -> str:
    path = tmp / "state.sqlite3"
    sqlite3.connect(path).close()
    return f"sqlite:///{path}"
