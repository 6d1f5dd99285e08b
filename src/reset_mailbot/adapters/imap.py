"""The support mailbox over IMAP (imapclient): list, fetch without side effects, move, wait.

Thin on purpose: no decisions here. What it guarantees is what the helpdesk tools that lose or
duplicate mail got wrong:
- Messages are identified by UIDVALIDITY + UID (RFC 3501 section 2.3.1.1), never by sequence
  numbers (which shift when anyone expunges) nor by \\Seen (which people change by reading).
- Listing is `UID SEARCH ALL` plus `UID FETCH RFC822.SIZE` in batches, so an over-size message
  can be quarantined without downloading it; bodies are fetched with `BODY.PEEK[]`, which does
  not set \\Seen (RFC 3501 section 6.4.5).
- Moving uses MOVE (RFC 6851) when offered, else COPY + \\Deleted + `UID EXPUNGE` of exactly that
  UID (UIDPLUS, RFC 4315). Without either, the message is copied and marked with the keyword
  `$ResetMailbotMoved` (and listing skips it), because a plain EXPUNGE would also remove
  messages someone else marked \\Deleted: this adapter never deletes mail otherwise.
- Waiting uses IDLE (RFC 2177) when offered, re-issued on every call and at least every 25
  minutes (servers drop idle clients after ~30); Dovecot batches notifications for ~0.5 s. Without
  IDLE it sleeps and asks with NOOP. The daemon's poll stays the safety net either way.

Errors: `MailboxConnectionError` (dropped, refused, timed out: reconnect after a
`domain.backoff.Backoff` delay and try again) and `MailboxAuthError` (login refused, no
STARTTLS, certificate not trusted: configuration, retrying will not help) are both
`MailboxError`, as is any NO/BAD answer.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from reset_mailbot.adapters.oauth import TokenError, TokenSource
from reset_mailbot.domain.addresses import is_loopback

Security = Literal["ssl", "starttls", "none"]
MOVED_KEYWORD = "$ResetMailbotMoved"
_IDLE_MAX_SECONDS = 25 * 60  # RFC 2177: re-issue IDLE at least every 29 minutes
_IDLE_SLICE_SECONDS = 1.0  # how often a stop request is noticed while idling


class MailboxError(Exception):
    """Any failure talking to the mailbox."""


class MailboxConnectionError(MailboxError):
    """The connection failed or dropped: retryable after a reconnect."""


class MailboxAuthError(MailboxError):
    """Login refused or not possible safely (no STARTTLS, untrusted certificate): configuration."""


def _batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class Mailbox:
    """One IMAP connection to the support mailbox. Not thread-safe: one user at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        security: Security = "ssl",
        username: str = "",
        password: str = "",
        *,
        inbox: str = "INBOX",
        processed_folder: str = "Processed",
        quarantine_folder: str = "Quarantine",
        batch_size: int = 50,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        tokens: TokenSource | None = None,
        sasl: str = "XOAUTH2",
    ) -> None:
        """`tokens`: log in with OAuth 2.0 (SASL `sasl`: XOAUTH2 or OAUTHBEARER) instead of
        the password (issue #16)."""
        if security not in {"ssl", "starttls", "none"}:
            raise ValueError(f"security must be ssl, starttls or none, not {security!r}")
        if security == "none" and not is_loopback(host):
            raise ValueError('security = "none" is only allowed for a loopback host')
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.inbox = inbox
        self.processed_folder = processed_folder
        self.quarantine_folder = quarantine_folder
        self.batch_size = batch_size
        self.timeout = timeout
        self._ssl_context = ssl_context
        self._tokens = tokens
        if sasl.upper() not in {"XOAUTH2", "OAUTHBEARER"}:
            raise ValueError(f"sasl must be XOAUTH2 or OAUTHBEARER, not {sasl!r}")
        self.sasl = sasl.upper()
        self._client: IMAPClient | None = None
        self._idling = False
        self.capabilities: frozenset[str] = frozenset()
        self.uidvalidity: int | None = None

    def __repr__(self) -> str:  # never show the password
        return (
            f"Mailbox(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"username={self.username!r})"
        )

    # -- connection -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Translate imapclient/imaplib/socket errors into our three kinds."""
        try:
            yield
        except MailboxError:
            raise
        except LoginError as exc:
            raise MailboxAuthError(f"{operation}: login refused: {exc}") from exc
        except ssl.SSLCertVerificationError as exc:
            raise MailboxAuthError(f"{operation}: TLS certificate not trusted: {exc}") from exc
        except (IMAPClientAbortError, OSError, EOFError) as exc:  # incl. timeouts, ssl.SSLError
            self._drop()
            raise MailboxConnectionError(f"{operation}: {type(exc).__name__}: {exc}") from exc
        except IMAPClientError as exc:
            raise MailboxError(f"{operation}: {exc}") from exc

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise MailboxConnectionError("not connected")
        return self._client

    @property
    def connected(self) -> bool:
        return self._client is not None

    def connect(self) -> None:
        """Connect, upgrade to TLS as configured, and log in."""
        self.close()
        try:
            self._connect()
        except BaseException:
            self._drop()  # never leave a half-open socket behind
            raise

    def _connect(self) -> None:
        with self._errors("connect"):
            context = self._ssl_context or ssl.create_default_context()
            client = IMAPClient(
                self.host,
                port=self.port,
                ssl=self.security == "ssl",  # imapclient defaults to ssl=True
                ssl_context=context if self.security == "ssl" else None,
                timeout=self.timeout,
            )
            self._client = client
            if self.security == "starttls":
                if not client.has_capability("STARTTLS"):
                    self._drop()
                    raise MailboxAuthError(
                        f"{self.host}:{self.port} does not offer STARTTLS; refusing to log in "
                        "in plain text"
                    )
                client.starttls(context)
            if self._tokens is None:
                client.login(self.username, self._password)
            else:
                self._oauth_login(client)
            self.capabilities = frozenset(c.decode().upper() for c in client.capabilities())

    def _oauth_login(self, client: IMAPClient) -> None:
        """SASL with a bearer token; a refused token is replaced once (revoked or expired
        early), a second refusal is an authentication error saying where to look."""
        tokens = self._tokens
        assert tokens is not None
        if f"AUTH={self.sasl}" not in {c.decode().upper() for c in client.capabilities()}:
            raise MailboxAuthError(f"{self.host}:{self.port} does not offer AUTH={self.sasl}")
        for attempt in (1, 2):
            try:
                token = tokens.token()
            except TokenError as exc:
                raise MailboxAuthError(f"no OAuth token: {exc}") from exc
            try:
                if self.sasl == "XOAUTH2":
                    client.oauth2_login(self.username, token)
                else:
                    client.oauthbearer_login(self.username, token)
                return
            except LoginError as exc:
                tokens.invalidate()
                if attempt == 2:
                    raise MailboxAuthError(
                        f"{self.sasl} login refused twice with a fresh token: {exc} (the "
                        "mailbox may not be granted to the app, or the scope is wrong)"
                    ) from exc
                # the connection is still usable after a refused AUTHENTICATE

    def close(self) -> None:
        """Log out (leaving IDLE first if needed); never raises."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if self._idling:
                self._idling = False
                client.idle_done()
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    def _drop(self) -> None:
        """Forget a broken connection, closing its socket."""
        self._idling = False
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()

    def __enter__(self) -> Mailbox:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    # -- folders --------------------------------------------------------------------------------

    def ensure_folders(self) -> None:
        """Create the processed and quarantine folders if missing (and subscribe to them)."""
        for folder in (self.processed_folder, self.quarantine_folder):
            with self._errors(f"ensure folder {folder}"):
                if self.client.folder_exists(folder):
                    continue
                try:
                    self.client.create_folder(folder)
                except IMAPClientError:
                    if not self.client.folder_exists(folder):  # lost a race: fine
                        raise
                with contextlib.suppress(IMAPClientError):
                    self.client.subscribe_folder(folder)

    def select_inbox(self) -> int:
        """SELECT the inbox read-write; returns (and remembers) its UIDVALIDITY."""
        with self._errors(f"select {self.inbox}"):
            info = self.client.select_folder(self.inbox)
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        return self.uidvalidity

    # -- reading --------------------------------------------------------------------------------

    def list_uids_with_sizes(self) -> list[tuple[int, int]]:
        """Every message in the inbox as (uid, size in bytes), oldest UID first.

        Starts with NOOP: servers only need to reveal new mail at such sync points
        (RFC 3501 section 6.1.2), and Dovecot does not do it for a bare SEARCH.
        """
        criteria: list[str | bytes] = ["ALL"]
        if not (self.has("MOVE") or self.has("UIDPLUS")):
            criteria = ["NOT", "KEYWORD", MOVED_KEYWORD]
        with self._errors("search"):
            self.client.noop()  # a sync point: the server shows us mail that arrived since
            uids = sorted(int(u) for u in self.client.search(criteria))
        sizes: list[tuple[int, int]] = []
        for batch in _batches(uids, self.batch_size):
            with self._errors("fetch sizes"):
                response = self.client.fetch(batch, ["RFC822.SIZE"])
            for uid in batch:  # a UID expunged meanwhile is simply absent
                data = response.get(uid)
                if data is not None and b"RFC822.SIZE" in data:
                    sizes.append((uid, int(data[b"RFC822.SIZE"])))
        return sizes

    def fetch(self, uids: Iterable[int]) -> dict[int, bytes]:
        """Raw bytes of the given messages via BODY.PEEK[] (leaves \\Seen alone), in batches.

        UIDs that no longer exist are absent from the result.
        """
        wanted = sorted(set(uids))
        found: dict[int, bytes] = {}
        for batch in _batches(wanted, self.batch_size):
            with self._errors("fetch"):
                response = self.client.fetch(batch, ["BODY.PEEK[]"])
            for uid in batch:
                data = response.get(uid)
                body = data.get(b"BODY[]") if data else None
                if isinstance(body, bytes):
                    found[uid] = body
        return found

    def fetch_batches(
        self, uids_with_sizes: Iterable[tuple[int, int]], max_batch_bytes: int = 8 * 1024 * 1024
    ) -> Iterator[list[tuple[int, bytes]]]:
        """Yield batches of (uid, raw bytes) in UID order, bounded by count AND bytes.

        Keeps memory flat on a backlog of large messages (a batch of 50 x 20 MB would not be):
        only one batch is held at a time. A message larger than `max_batch_bytes` is fetched
        alone. Other commands (move) may be issued between batches.
        """
        batch: list[int] = []
        batch_bytes = 0
        for uid, size in sorted(uids_with_sizes):
            if batch and (len(batch) >= self.batch_size or batch_bytes + size > max_batch_bytes):
                yield sorted(self.fetch(batch).items())
                batch, batch_bytes = [], 0
            batch.append(uid)
            batch_bytes += size
        if batch:
            yield sorted(self.fetch(batch).items())

    # -- moving ---------------------------------------------------------------------------------

    def move(self, uid: int, folder: str) -> None:
        """Move one message out of the inbox into `folder` (see the module docstring)."""
        self.move_many([uid], folder)

    def move_many(self, uids: Sequence[int], folder: str) -> None:
        """Move messages out of the inbox into `folder`, one command per `batch_size` UIDs.

        One UID MOVE for many messages costs about what one costs for a single message (the
        server's fsync dominates), which is most of what draining a backlog takes. A UID that
        is no longer in the inbox (moved by someone else) is skipped by the server, not an error.

        A collision is not a failure either (issue #15): when another session expunged some of
        the set since this one last synchronised, Dovecot refuses the whole MOVE with
        `NO [EXPUNGEISSUED]` and moves none. The UIDs still in the inbox are then looked up and
        moved; only a second refusal is an error.
        """
        for batch in _batches(sorted(set(uids)), self.batch_size):
            with self._errors(f"move {len(batch)} message(s) to {folder}"):
                try:
                    self._move(batch, folder)
                except IMAPClientAbortError:
                    raise
                except IMAPClientError:  # a tagged NO/BAD: the connection is fine
                    remaining = self._still_in_inbox(batch)
                    if remaining:
                        self._move(remaining, folder)

    def _move(self, batch: list[int], folder: str) -> None:
        if self.has("MOVE"):
            self.client.move(batch, folder)
        elif self.has("UIDPLUS"):
            self.client.copy(batch, folder)
            self.client.add_flags(batch, [b"\\Deleted"])
            self.client.uid_expunge(batch)
        else:
            self.client.copy(batch, folder)
            self.client.add_flags(batch, [MOVED_KEYWORD])

    def _still_in_inbox(self, batch: list[int]) -> list[int]:
        """The UIDs of `batch` the inbox still holds, after a sync point (NOOP) that lets the
        server report what others expunged."""
        criteria: list[str | bytes] = ["UID", ",".join(str(uid) for uid in batch)]
        if not (self.has("MOVE") or self.has("UIDPLUS")):
            criteria = [*criteria, "NOT", "KEYWORD", MOVED_KEYWORD]
        self.client.noop()
        return sorted(int(uid) for uid in self.client.search(criteria))

    # -- waiting --------------------------------------------------------------------------------

    def wait_for_change(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Block until new mail arrives (True) or `timeout` seconds pass or `stop` is set (False).

        Needs the inbox selected. Uses IDLE when offered, else sleeps and checks with NOOP.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if not self.has("IDLE"):
            if stop is not None:
                stop.wait(timeout)
            else:
                time.sleep(timeout)
            with self._errors("noop"):
                _, responses = self.client.noop()
            return _has_exists(responses)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                return False
            if self._idle_once(min(remaining, _IDLE_MAX_SECONDS), stop):
                return True

    def _idle_once(self, seconds: float, stop: threading.Event | None) -> bool:
        client = self.client
        end = time.monotonic() + seconds
        changed = False
        quick_empty = 0
        with self._errors("idle"):
            client.idle()
            self._idling = True
            try:
                while not changed and time.monotonic() < end:
                    if stop is not None and stop.is_set():
                        break
                    slice_ = min(_IDLE_SLICE_SECONDS, max(0.0, end - time.monotonic()))
                    started = time.monotonic()
                    responses = client.idle_check(timeout=slice_)
                    changed = _has_exists(responses)
                    # A closed socket polls readable forever and yields nothing: notice it.
                    if not responses and time.monotonic() - started < slice_ / 2:
                        quick_empty += 1
                        if quick_empty >= 50:
                            self._drop()
                            raise MailboxConnectionError("connection closed during IDLE")
                    else:
                        quick_empty = 0
            finally:
                self._idling = False
                if self._client is client:
                    _, responses = client.idle_done()
                    changed = changed or _has_exists(responses)
        return changed


def _has_exists(responses: Sequence[object]) -> bool:
    """True if the untagged responses announce a new message count (RFC 3501 section 7.3.1)."""
    for response in responses:
        if isinstance(response, tuple) and len(response) >= 2 and response[1] == b"EXISTS":
            return True
    return False


__all__ = [
    "MOVED_KEYWORD",
    "Mailbox",
    "MailboxAuthError",
    "MailboxConnectionError",
    "MailboxError",
]
