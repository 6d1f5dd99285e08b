"""A real SMTP server on loopback (aiosmtpd) that stores what it receives: the stand-in for
Forus's outgoing mail server in the tests and in `reset-mailbot demo`. It can refuse at a given
stage or demand AUTH, so delivery failures are tested against a real socket."""

from __future__ import annotations

import base64
import itertools
import json
import os
import smtplib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from reset_mailbot_testing.dovecot import HOST, free_port


class SinkHandler:
    """aiosmtpd handler: refuses when told, else stores each message atomically."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    def _refusal(self, stage: str) -> str | None:
        code = self.sink.refuse
        if code is None or self.sink.refuse_at != stage:
            return None
        if 400 <= code < 500:
            return f"{code} 4.3.0 Temporarily unavailable (test sink)"
        return f"{code} 5.7.1 Refused (test sink)"

    def _auth_missing(self, session: Session) -> str | None:
        demanded = self.sink.auth_credentials is not None or self.sink.bearer is not None
        if demanded and not session.authenticated:
            return "530 5.7.0 Authentication required"
        return None

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 (Google's and Microsoft's dialect): "user=U^Aauth=Bearer T^A^A"."""
        return await self._bearer(server, args, "user=", "\x01")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 7628: "n,a=U,^Aauth=Bearer T^A^A"."""
        return await self._bearer(server, args, "n,a=", ",")

    async def _bearer(self, server: SMTP, args: list[str], prefix: str, end: str) -> AuthResult:
        check = self.sink.bearer
        if check is None:
            return AuthResult(success=False, handled=False)
        if len(args) == 1:
            data = await server.challenge_auth("")
            if not isinstance(data, bytes):
                return AuthResult(success=False, handled=False)
        else:
            try:
                data = base64.b64decode(args[1].encode(), validate=True)
            except ValueError:
                return AuthResult(success=False, handled=False)
        text = data.decode("utf-8", "replace")
        user = text.removeprefix(prefix).split(end, 1)[0] if text.startswith(prefix) else ""
        token = next((part.removeprefix("auth=Bearer ") for part in text.split("\x01")
                      if part.startswith("auth=Bearer ")), "")
        if user and token and check(user, token):
            return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        refusal = self._auth_missing(session) or self._refusal("MAIL")
        if refusal:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self._refusal("RCPT")
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        refusal = self._refusal("DATA")
        if refusal:
            return refusal
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        auth_user = session.auth_data.login.decode() if isinstance(
            session.auth_data, LoginPassword
        ) else None
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "peer": list(session.peer) if session.peer else None,
            "helo": session.host_name,
            "auth_user": auth_user,
            "received_at": time.time(),
        }
        self.sink.store(meta, raw)
        return "250 2.0.0 Message accepted for delivery"


class _SinkController(Controller):
    """Controller whose factory passes our authenticator (no AUTH-without-TLS warning:
    auth is demanded by the handler at MAIL, as a submission server does)."""

    def __init__(self, sink: SmtpSink, port: int) -> None:
        self.sink = sink
        super().__init__(
            SinkHandler(sink),
            hostname=HOST,
            port=port,
            authenticator=self._authenticate,
            auth_require_tls=False,
            server_hostname="sink.test",
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        creds = self.sink.auth_credentials
        if creds is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (auth_data.login.decode(), auth_data.password.decode()) == creds
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


class SmtpSink:
    """A real SMTP server on loopback that stores what it accepts in `.directory`.

    `.refuse = 451` (temporary) or `550` (permanent) makes it refuse at `.refuse_at`
    ("MAIL", "RCPT" or "DATA"); `.require_auth(user, password)` demands AUTH PLAIN/LOGIN.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = 0
        self.refuse: int | None = None
        self.refuse_at = "RCPT"
        self.auth_credentials: tuple[str, str] | None = None
        #: (user, bearer token) -> accepted: demands AUTH XOAUTH2 / OAUTHBEARER (issue #16)
        self.bearer: Callable[[str, str], bool] | None = None
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._controller: _SinkController | None = None

    def start(self) -> None:
        for attempt in range(5):
            port = free_port()
            controller = _SinkController(self, port)
            try:
                controller.start()
            except OSError:
                if attempt == 4:
                    raise
                continue
            self._controller, self.port = controller, port
            return

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def store(self, meta: dict[str, Any], raw: bytes) -> None:
        """Write .eml then .json, each via tmp + os.replace: once .json exists, it is complete."""
        with self._lock:
            stem = f"{time.time_ns()}-{next(self._counter):06d}"
        meta["id"] = stem
        eml, env = self.directory / f"{stem}.eml", self.directory / f"{stem}.json"
        tmp = self.directory / f".{stem}.eml.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, eml)
        tmp = self.directory / f".{stem}.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, env)

    def messages(self) -> list[tuple[dict[str, Any], bytes]]:
        """(envelope, raw bytes) of every stored message, oldest first."""
        out = []
        for env in sorted(self.directory.glob("*.json")):
            meta = json.loads(env.read_text())
            out.append((meta, env.with_suffix(".eml").read_bytes()))
        return out

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[dict[str, Any], bytes]]:
        """Wait until at least `count` messages are stored, then return them all."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages()
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def clear(self) -> None:
        """Forget all stored messages."""
        for path in self.directory.iterdir():
            path.unlink()

    def require_auth(self, user: str | None, password: str | None = None) -> None:
        """Demand AUTH with these credentials before MAIL; `require_auth(None)` turns it off."""
        self.auth_credentials = None if user is None else (user, password or "")

    def reset(self) -> None:
        """Accept everything again, no AUTH, no stored messages."""
        self.refuse = None
        self.refuse_at = "RCPT"
        self.auth_credentials = None
        self.bearer = None
        self.clear()

    def send(self, raw: bytes, mail_from: str, rcpt_tos: list[str]) -> None:
        """Convenience for tests: submit like a client would."""
        with smtplib.SMTP(self.host, self.port, timeout=10) as smtp:
            smtp.sendmail(mail_from, rcpt_tos, raw)
