"""Sending replies over SMTP (smtplib), with failures sorted into "try later" and "give up".

Thin on purpose: the message is already built (domain/replies.py) and stored in the outbox before
it gets here; this adapter only hands the bytes to the submission server. What it adds is the
classification the outbox needs (RFC 5321 section 4.2.1): a 4yz reply, a refused or dropped
connection, or a timeout is transient (`SmtpTemporaryError`: the reply stays queued); a 5yz reply
is permanent for this message (`SmtpPermanentError`). Problems that are about our configuration
rather than the message (authentication refused, STARTTLS or AUTH not offered, a certificate that
does not verify) raise `SmtpConfigurationError`, a temporary error: once the operator fixes the
configuration, the queued replies must still go out.

SMTP has no idempotency key: a crash after the server accepted DATA and before the outbox row is
marked sent re-sends on restart. The stable Message-ID of the reply makes such a duplicate
recognisable; keeping the window small is the caller's part (mark sent right after `send`).

Security: "ssl" is implicit TLS (RFC 8314, port 465), "starttls" upgrades the connection and
refuses to continue in plain text when the server does not offer it (RFC 3207), "none" is only
allowed for a loopback host (tests and a local relay).
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from types import TracebackType
from typing import Literal

from reset_mailbot.adapters.oauth import TokenError, TokenSource, oauthbearer, xoauth2
from reset_mailbot.domain.addresses import is_loopback

Security = Literal["ssl", "starttls", "none"]


class SmtpError(Exception):
    """Sending failed. `code` is the SMTP reply code when the server gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class SmtpTemporaryError(SmtpError):
    """Try again later: 4yz reply, connection refused or dropped, timeout."""


class SmtpConfigurationError(SmtpTemporaryError):
    """Our settings are wrong (login refused, no STARTTLS, bad certificate): alert, keep queued."""


class SmtpPermanentError(SmtpError):
    """The server refused this message for good (5yz reply): retrying will not help."""


# RFC 4954: authentication required (530), mechanism too weak (534), credentials invalid (535),
# encryption required (538): our configuration, not this message.
_CONFIGURATION_CODES = frozenset({530, 534, 535, 538})


def _by_code(code: int, text: str) -> SmtpError:
    if code in _CONFIGURATION_CODES:
        return SmtpConfigurationError(text, code)
    if 500 <= code < 600:
        return SmtpPermanentError(text, code)
    return SmtpTemporaryError(text, code)


def _reply_text(code: int, message: bytes | str) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{code} {message}".strip()


class SmtpSender:
    """Submits ready-made RFC 5322 messages. One connection per `send`, or one for many inside
    `with sender:` (the connection is checked with NOOP and re-opened when the server dropped it).
    """

    def __init__(
        self,
        host: str,
        port: int,
        security: Security = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        from_address: str = "",
        *,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        tokens: TokenSource | None = None,
        sasl: str = "XOAUTH2",
    ) -> None:
        """`tokens`: authenticate as `username` with an OAuth 2.0 access token (SASL `sasl`:
        XOAUTH2 or OAUTHBEARER) instead of a password (issue #16)."""
        if security not in {"ssl", "starttls", "none"}:
            raise ValueError(f"security must be ssl, starttls or none, not {security!r}")
        if security == "none" and not is_loopback(host):
            raise ValueError('security = "none" is only allowed for a loopback host')
        if tokens is None and (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        if tokens is not None and not username:
            raise ValueError("OAuth needs the username the token is for")
        if sasl.upper() not in {"XOAUTH2", "OAUTHBEARER"}:
            raise ValueError(f"sasl must be XOAUTH2 or OAUTHBEARER, not {sasl!r}")
        self._tokens = tokens
        self.sasl = sasl.upper()
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.timeout = timeout
        self.from_address = from_address
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname
        self._conn: smtplib.SMTP | None = None
        self._persistent = False

    def __repr__(self) -> str:  # never show the password
        return (
            f"SmtpSender(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"username={self.username!r})"
        )

    # -- connection -----------------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        """Connect, say EHLO, upgrade to TLS and log in. Raises SmtpError subclasses only."""
        conn: smtplib.SMTP | None = None
        try:
            if self.security == "ssl":
                conn = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self._local_hostname,
                    timeout=self.timeout,
                    context=self._context(),
                )
            else:
                conn = smtplib.SMTP(
                    self.host, self.port, local_hostname=self._local_hostname, timeout=self.timeout
                )
            conn.ehlo()
            if self.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise SmtpConfigurationError(
                        f"{self.host}:{self.port} does not offer STARTTLS; refusing to send in "
                        "plain text"
                    )
                conn.starttls(context=self._context())
                conn.ehlo()
            if self._tokens is not None:
                self._oauth_login(conn)
            elif self.username is not None and self._password is not None:
                conn.login(self.username, self._password)
            return conn
        except BaseException as exc:
            if conn is not None:
                _close_quietly(conn)
            if isinstance(exc, SmtpError):
                raise
            raise _translate(exc, f"{self.host}:{self.port}") from exc

    def _oauth_login(self, conn: smtplib.SMTP) -> None:
        """AUTH with a bearer token; a refused token is replaced once, then the refusal is a
        configuration error (the mailbox may not be granted to the app)."""
        tokens, user = self._tokens, str(self.username)
        assert tokens is not None
        offered = (conn.esmtp_features.get("auth") or "").upper().split()
        if self.sasl not in offered:
            raise SmtpConfigurationError(f"{self.host}:{self.port} does not offer AUTH "
                                         f"{self.sasl}")
        build = xoauth2 if self.sasl == "XOAUTH2" else oauthbearer
        for attempt in (1, 2):
            try:
                initial = build(user, tokens.token())
            except TokenError as exc:
                raise SmtpConfigurationError(f"no OAuth token: {exc}") from exc
            try:
                # a refusal may come as a 334 challenge (an error document): answer it empty
                conn.auth(self.sasl, lambda challenge=None, first=initial: (
                    first if challenge is None else ""), initial_response_ok=True)
                return
            except smtplib.SMTPAuthenticationError as exc:
                tokens.invalidate()
                if attempt == 2:
                    raise SmtpConfigurationError(
                        f"{self.host}:{self.port} refused {self.sasl} twice with a fresh "
                        f"token: {_reply_text(exc.smtp_code, exc.smtp_error)}",
                        exc.smtp_code) from exc

    def open(self) -> None:
        """Keep one connection for several `send` calls until `close()`."""
        self._persistent = True
        if self._conn is None:
            self._conn = self._connect()

    def close(self) -> None:
        self._persistent = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()
            _close_quietly(conn)

    def __enter__(self) -> SmtpSender:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _usable_connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            try:
                code, _ = self._conn.noop()
                if code == 250:
                    return self._conn
            except (smtplib.SMTPException, OSError):
                pass
            _close_quietly(self._conn)
            self._conn = None
        conn = self._connect()
        if self._persistent:
            self._conn = conn
        return conn

    # -- sending --------------------------------------------------------------------------------

    def send(self, rfc822: bytes, to: list[str], envelope_from: str | None = None) -> None:
        """Submit `rfc822` to the recipients in `to`; return only once the server accepted DATA.

        Raises SmtpTemporaryError (incl. SmtpConfigurationError) or SmtpPermanentError. Any
        recipient refused counts as a failure of the whole message: replies have one recipient.
        """
        sender = envelope_from if envelope_from is not None else self.from_address
        if not to:
            raise ValueError("no recipients")
        for address in (sender, *to):
            if any(c in address for c in "\r\n<>"):
                raise ValueError(f"unusable address {address!r}")
        conn = self._usable_connection()
        failed = False
        try:
            options: list[str] = []
            if not all(a.isascii() for a in (sender, *to)):
                if not conn.has_extn("smtputf8"):
                    raise SmtpPermanentError("non-ASCII address and the server lacks SMTPUTF8")
                options.append("SMTPUTF8")
            refused = conn.sendmail(sender, to, rfc822, mail_options=options)
            if refused:
                # Some recipients accepted: a retry would duplicate for them, so say so.
                codes = sorted({code for code, _ in refused.values()})
                text = "; ".join(f"{r}: {_reply_text(*v)}" for r, v in refused.items())
                raise SmtpPermanentError(f"refused for some recipients: {text}", codes[-1])
        except SmtpError:
            failed = True
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            failed = True
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(f"{r}: {_reply_text(*v)}" for r, v in exc.recipients.items())
            # Permanent only if every refusal was permanent.
            if codes and all(500 <= c < 600 for c in codes):
                raise SmtpPermanentError(f"recipients refused: {text}", max(codes)) from exc
            raise SmtpTemporaryError(f"recipients refused: {text}", min(codes or [0])) from exc
        except BaseException as exc:
            failed = True
            raise _translate(exc, f"{self.host}:{self.port}") from exc
        finally:
            if failed or not self._persistent:
                if self._conn is conn:
                    self._conn = None
                if failed:
                    _close_quietly(conn)
                else:
                    with contextlib.suppress(smtplib.SMTPException, OSError):
                        conn.quit()
                    _close_quietly(conn)

    def probe(self) -> str:
        """Connect, TLS, log in and QUIT without sending: for `doctor`. Raises SmtpError."""
        conn = self._connect()
        try:
            conn.noop()
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conn.quit()
            _close_quietly(conn)
        return f"{self.host}:{self.port} accepts us ({self.security})"


def _close_quietly(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        conn.close()


def _translate(exc: BaseException, where: str) -> SmtpError:
    """smtplib/socket/ssl exceptions -> our three kinds. KeyboardInterrupt etc. pass through."""
    if isinstance(exc, SmtpError):
        return exc
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SmtpConfigurationError(
            f"{where} refused our login: {_reply_text(exc.smtp_code, exc.smtp_error)}",
            exc.smtp_code,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SmtpConfigurationError(f"{where}: {exc}")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _by_code(
            exc.smtp_code, f"sender refused: {_reply_text(exc.smtp_code, exc.smtp_error)}"
        )
    if isinstance(exc, smtplib.SMTPResponseException):  # DATA, connect, HELO and other replies
        return _by_code(exc.smtp_code, f"{where}: {_reply_text(exc.smtp_code, exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SmtpTemporaryError(f"{where} disconnected: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SmtpConfigurationError(f"{where}: TLS certificate not accepted: {exc}")
    if isinstance(exc, TimeoutError):
        return SmtpTemporaryError(f"{where} timed out")
    if isinstance(exc, OSError | smtplib.SMTPException):
        return SmtpTemporaryError(f"{where}: {type(exc).__name__}: {exc}")
    if isinstance(exc, Exception):
        return SmtpTemporaryError(f"{where}: unexpected {type(exc).__name__}: {exc}")
    raise exc
