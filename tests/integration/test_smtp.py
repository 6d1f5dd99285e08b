"""SmtpSender against real aiosmtpd servers: the shared `smtp_sink` and own TLS servers."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from reset_mailbot.adapters.smtp import (
    SmtpConfigurationError,
    SmtpPermanentError,
    SmtpSender,
    SmtpTemporaryError,
)
from reset_mailbot_testing.smtp_sink import SmtpSink

pytestmark = pytest.mark.services

MESSAGE = (
    b"From: Forus Support <support@forus.test>\r\n"
    b"To: j.jansen@utrecht.nl\r\n"
    b"Subject: Re: Herstel 2FA\r\n"
    b"Message-ID: <rmb.0123@forus.test>\r\n"
    b"Auto-Submitted: auto-replied\r\n"
    b"\r\n"
    b"Beste collega,\r\n.leading dot stays\r\n"
)
USER, PASSWORD = "support@forus.test", "s3cret"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: Any
    auth_user: str | None


@dataclass
class _Handler:
    """Records messages with the connection (peer) and login they came over."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        user = session.authenticated and session.auth_data
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                session.peer,
                user.login.decode() if isinstance(user, LoginPassword) else None,
            )
        )
        return "250 Message accepted"


def _authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USER
        and auth_data.password.decode() == PASSWORD
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI)."""
    directory = tmp_path_factory.mktemp("smtp-tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def client_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files[0]))


def _server_tls(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tls_files[0]), str(tls_files[1]))
    return ctx


ServerFactory = Callable[..., tuple[Controller, _Handler]]


@pytest.fixture
def smtp_server(tls_files: tuple[Path, Path]) -> Iterator[ServerFactory]:
    """Start aiosmtpd servers: plain, STARTTLS (+AUTH) or implicit TLS; all stopped afterwards."""
    started: list[Controller] = []

    def start(
        *, starttls: bool = False, implicit_tls: bool = False, auth: bool = False, port: int = 0
    ) -> tuple[Controller, _Handler]:
        handler = _Handler()
        kwargs: dict[str, Any] = {}
        if starttls:
            kwargs["tls_context"] = _server_tls(tls_files)
        if implicit_tls:
            kwargs["ssl_context"] = _server_tls(tls_files)
        if auth:
            kwargs["authenticator"] = _authenticator
            kwargs["auth_require_tls"] = starttls or implicit_tls
        controller = Controller(
            handler, hostname="127.0.0.1", port=port or _free_port(), ready_timeout=5, **kwargs
        )
        controller.start()
        started.append(controller)
        return controller, handler

    yield start
    for controller in started:
        if controller._thread is not None:
            controller.stop()


def _plain(controller: Controller, **kw: Any) -> SmtpSender:
    return SmtpSender("127.0.0.1", controller.port, "none", timeout=5, from_address=USER, **kw)


def _to_sink(sink: SmtpSink, **kw: Any) -> SmtpSender:
    return SmtpSender(sink.host, sink.port, "none", timeout=5, from_address=USER, **kw)


def test_accepted_message_arrives_byte_for_byte(smtp_sink: SmtpSink) -> None:
    _to_sink(smtp_sink).send(MESSAGE, ["j.jansen@utrecht.nl"])
    ((envelope, raw),) = smtp_sink.messages()
    assert envelope["mail_from"] == USER
    assert envelope["rcpt_tos"] == ["j.jansen@utrecht.nl"]
    assert raw == MESSAGE


def test_envelope_from_can_differ(smtp_sink: SmtpSink) -> None:
    _to_sink(smtp_sink).send(MESSAGE, ["a@utrecht.nl"], envelope_from="bounces@forus.test")
    assert smtp_sink.messages()[0][0]["mail_from"] == "bounces@forus.test"


@pytest.mark.parametrize(
    ("stage", "code", "error"),
    [
        ("RCPT", 450, SmtpTemporaryError),
        ("RCPT", 550, SmtpPermanentError),
        ("DATA", 451, SmtpTemporaryError),
        ("DATA", 554, SmtpPermanentError),
        ("MAIL", 421, SmtpTemporaryError),
        ("MAIL", 553, SmtpPermanentError),
    ],
)
def test_server_replies_are_classified(
    smtp_sink: SmtpSink, stage: str, code: int, error: type[Exception]
) -> None:
    smtp_sink.refuse, smtp_sink.refuse_at = code, stage
    with pytest.raises(error) as caught:
        _to_sink(smtp_sink).send(MESSAGE, ["j.jansen@utrecht.nl"])
    assert caught.value.code == code  # type: ignore[attr-defined]
    if error is SmtpPermanentError:
        assert not isinstance(caught.value, SmtpTemporaryError)
    assert not smtp_sink.messages()


def test_plain_auth_on_loopback(smtp_sink: SmtpSink) -> None:
    smtp_sink.require_auth(USER, PASSWORD)
    _to_sink(smtp_sink, username=USER, password=PASSWORD).send(MESSAGE, ["a@utrecht.nl"])
    assert smtp_sink.messages()[0][0]["auth_user"] == USER


@pytest.mark.parametrize(("credentials", "code"), [((USER, "wrong"), 535), ((None, None), 530)])
def test_auth_problems_are_configuration_errors(
    smtp_sink: SmtpSink, credentials: tuple[str | None, str | None], code: int
) -> None:
    smtp_sink.require_auth(USER, PASSWORD)
    sender = _to_sink(smtp_sink, username=credentials[0], password=credentials[1])
    with pytest.raises(SmtpConfigurationError) as caught:
        sender.send(MESSAGE, ["a@utrecht.nl"])
    assert isinstance(caught.value, SmtpTemporaryError)  # stays queued until fixed
    assert caught.value.code == code
    assert not smtp_sink.messages()


def test_starttls_required_but_not_offered(smtp_sink: SmtpSink) -> None:
    sender = SmtpSender(smtp_sink.host, smtp_sink.port, "starttls", timeout=5, from_address=USER)
    with pytest.raises(SmtpConfigurationError, match="STARTTLS"):
        sender.send(MESSAGE, ["a@utrecht.nl"])
    assert not smtp_sink.messages()


# -- TLS and restarts: own aiosmtpd servers (the shared sink has no TLS and is session-wide)


def test_starttls_with_auth(smtp_server: ServerFactory, client_tls: ssl.SSLContext) -> None:
    controller, handler = smtp_server(starttls=True, auth=True)
    sender = SmtpSender(
        "127.0.0.1", controller.port, "starttls", USER, PASSWORD, 5, USER, ssl_context=client_tls
    )
    sender.send(MESSAGE, ["j.jansen@utrecht.nl"])
    assert handler.received[0].auth_user == USER
    assert "accepts us" in sender.probe()


def test_implicit_tls(smtp_server: ServerFactory, client_tls: ssl.SSLContext) -> None:
    controller, handler = smtp_server(implicit_tls=True)
    sender = SmtpSender(
        "127.0.0.1", controller.port, "ssl", timeout=5, from_address=USER, ssl_context=client_tls
    )
    sender.send(MESSAGE, ["a@utrecht.nl"])
    assert len(handler.received) == 1


def test_untrusted_certificate_is_a_configuration_error(smtp_server: ServerFactory) -> None:
    controller, handler = smtp_server(starttls=True)
    sender = SmtpSender("127.0.0.1", controller.port, "starttls", timeout=5, from_address=USER)
    with pytest.raises(SmtpConfigurationError, match="certificate"):
        sender.send(MESSAGE, ["a@utrecht.nl"])
    assert not handler.received


def test_server_down_is_temporary() -> None:
    sender = SmtpSender("127.0.0.1", _free_port(), "none", timeout=2, from_address=USER)
    with pytest.raises(SmtpTemporaryError):
        sender.send(MESSAGE, ["a@utrecht.nl"])
    with pytest.raises(SmtpTemporaryError):
        sender.probe()


def test_silent_server_times_out_as_temporary() -> None:
    """The kernel completes the TCP handshake (listen backlog); the greeting never comes."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        sender = SmtpSender("127.0.0.1", port, "none", timeout=0.5, from_address=USER)
        started = time.monotonic()
        with pytest.raises(SmtpTemporaryError):
            sender.send(MESSAGE, ["a@utrecht.nl"])
        assert time.monotonic() - started < 3


def test_disconnect_is_temporary() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.close()

    thread = threading.Thread(target=hang_up)
    thread.start()
    try:
        sender = SmtpSender(
            "127.0.0.1", listener.getsockname()[1], "none", timeout=5, from_address=USER
        )
        with pytest.raises(SmtpTemporaryError):
            sender.send(MESSAGE, ["a@utrecht.nl"])
    finally:
        thread.join()
        listener.close()


def test_one_connection_for_many_and_reconnect_after_restart(smtp_server: ServerFactory) -> None:
    controller, handler = smtp_server()
    sender = _plain(controller)
    with sender:
        for _ in range(3):
            sender.send(MESSAGE, ["a@utrecht.nl"])
        assert len({r.peer for r in handler.received}) == 1
        port = controller.port
        controller.stop()
        restarted, handler2 = smtp_server(port=port)
        sender.send(MESSAGE, ["a@utrecht.nl"])  # the dropped connection is replaced
        assert len(handler2.received) == 1
        restarted.stop()
        with pytest.raises(SmtpTemporaryError):
            sender.send(MESSAGE, ["a@utrecht.nl"])


def test_refuses_plain_text_to_remote_hosts_and_bad_addresses() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SmtpSender("smtp.example.nl", 25, "none")
    with pytest.raises(ValueError):
        SmtpSender("127.0.0.1", 25, "none").send(MESSAGE, ["a@b\r\nRCPT TO:<x@y>"])
    with pytest.raises(ValueError):
        SmtpSender("127.0.0.1", 25, "none").send(MESSAGE, [])
    assert PASSWORD not in repr(SmtpSender("smtp.example.nl", 587, "starttls", USER, PASSWORD))
