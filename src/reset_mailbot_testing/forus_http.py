"""A stand-in for the Forus 2FA-reset endpoint: a real loopback HTTP server that records requests.

It behaves the way the integration contract (README, issue #4) asks Forus to behave, so the HTTP
executor and the daemon's end-to-end tests can be run against something that really listens:

- `Authorization: Bearer <token>` is required (401 otherwise).
- `Idempotency-Key` is required (400 otherwise). The first completed answer for a key is stored
  and replayed for every later request with that key, so a retry never resets twice. While a
  request with a key is still running, another one with the same key gets 409
  `request_in_progress` (as Stripe does).
- The body must follow the contract (docs/executor-http.md): `email`, `request_id`,
  `requested_by` {name, email, municipality}, `identity_verified: true`, `source`; 400
  `bad_request` otherwise.
- Known accounts with 2FA: 200 `{"status": "reset"}` and the reset is counted in `.resets`;
  unknown account: 404 `account_not_found`; account without 2FA: 409 `two_factor_not_enabled`;
  an account already reset by a request with a different key: 200 `{"status": "already_reset"}`.
- `"dry_run": true` in the body: the answer the request would get (`"dry_run": true` echoed),
  nothing stored under the key, nothing reset or counted (issue #5, `requests dry-run`).
- Faults can be scripted: `fail_next(status)` answers the next requests with an error (not
  stored under the key: a failed request did nothing), `delay_next(seconds)` makes the next request
  slow (it still completes and is stored, like a server that finishes after the client gave up).

Use it as a context manager or through the `forus_http` fixture.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_TOKEN = "forus-test-token"


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    status: int  # the status we answered with


@dataclass
class _Fault:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class FakeForus:
    """The fake endpoint. `accounts` maps account e-mail -> whether 2FA is enabled."""

    def __init__(
        self,
        accounts: dict[str, bool] | None = None,
        token: str = DEFAULT_TOKEN,
        path: str = "/api/v1/2fa-resets",
        port: int = 0,
    ) -> None:
        self._bind_port = port
        self.token = token
        self.path = path
        self.accounts: dict[str, bool] = dict(
            accounts if accounts is not None else {"fam.ozturk@outlook.com": True}
        )
        self.requests: list[RecordedRequest] = []
        self.resets: Counter[str] = Counter()  # account e-mail -> resets actually carried out
        self.dry_runs = 0  # POSTs with "dry_run": true (answered, never stored or counted)
        self._answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self._in_progress: set[str] = set()
        self._reset_by_key: dict[str, str] = {}  # account -> key that reset it
        self._faults: list[_Fault] = []
        self._delays: list[float] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeForus:
        server = ThreadingHTTPServer(("127.0.0.1", self._bind_port), _handler_for(self))
        server.daemon_threads = False
        server.block_on_close = True  # stop() joins handler threads: no stray sockets
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-forus"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeForus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    # -- scripting ------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | None = None,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `times` POSTs with `status` without doing anything."""
        with self._lock:
            for _ in range(times):
                self._faults.append(
                    _Fault(status, body or {"error": f"http_{status}"}, headers or {})
                )

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Make the next `times` POSTs wait before they are handled (they still complete)."""
        with self._lock:
            self._delays.extend([seconds] * times)

    def posts(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]

    # -- behaviour ------------------------------------------------------------------------------

    def _handle_post(
        self, headers: dict[str, str], body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"error": "unauthorized"}, {}
        with self._lock:
            delay = self._delays.pop(0) if self._delays else 0.0
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None:
            return fault.status, fault.body, fault.headers
        key = headers.get("idempotency-key")
        if not key:
            return 400, {"error": "idempotency_key_missing"}, {}
        problem = _contract_problem(body)
        if problem:
            return 400, {"error": "bad_request", "message": problem}, {}
        assert isinstance(body, dict)
        if body.get("dry_run") is True:
            return self._dry_run(body["email"].lower(), body)
        with self._lock:
            if key in self._answers:
                status, answer = self._answers[key]
                return status, answer, {"Idempotent-Replayed": "true"}
            if key in self._in_progress:
                return 409, {"error": "request_in_progress"}, {}
            self._in_progress.add(key)
        try:
            if delay:
                self._stopping.wait(delay)
            status, answer = self._reset(key, body["email"].lower(), body)
            with self._lock:
                self._answers[key] = (status, answer)
            return status, answer, {}
        finally:
            with self._lock:
                self._in_progress.discard(key)

    def _reset(self, key: str, account: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if account not in self.accounts:
                return 404, {"error": "account_not_found", "message": "no such account"}
            if account in self._reset_by_key:
                return 200, {"status": "already_reset", "request_id": body.get("request_id")}
            if not self.accounts[account]:
                return 409, {"error": "two_factor_not_enabled", "message": "2FA is off"}
            self.accounts[account] = False
            self._reset_by_key[account] = key
            self.resets[account] += 1
        return 200, {"status": "reset", "request_id": body.get("request_id")}


    def _dry_run(
        self, account: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """What `_reset` would answer, `"dry_run": true` echoed; nothing stored or counted."""
        with self._lock:
            self.dry_runs += 1
            if account not in self.accounts:
                return 404, {"error": "account_not_found", "dry_run": True}, {}
            if account in self._reset_by_key:
                return 200, {"status": "already_reset", "dry_run": True}, {}
            if not self.accounts[account]:
                return 409, {"error": "two_factor_not_enabled", "dry_run": True}, {}
        return 200, {
            "status": "reset", "dry_run": True, "request_id": body.get("request_id"),
            "message": f"would deactivate the 2FA of {account}",
        }, {}


def _contract_problem(body: dict[str, Any] | None) -> str | None:
    """What is wrong with a POST body, judged by the contract; None when it is fine."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    for name in ("email", "request_id"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name} must be a non-empty string"
    requested_by = body.get("requested_by")
    if not isinstance(requested_by, dict) or not isinstance(requested_by.get("email"), str):
        return "requested_by.email must be a string"
    if not isinstance(requested_by.get("municipality"), str):
        return "requested_by.municipality must be a string"
    if body.get("identity_verified") is not True:
        return "identity_verified must be true"
    if not isinstance(body.get("source"), dict):
        return "source must be an object"
    return None


def _handler_for(fake: FakeForus) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            return

        def _headers(self) -> dict[str, str]:
            return {k.lower(): v for k, v in self.headers.items()}

        def _send(self, status: int, payload: dict[str, Any] | None, extra: dict[str, str]) -> None:
            data = b"" if payload is None else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except OSError:  # the client gave up (timeout test): nothing to tell it
                self.close_connection = True

        def _record(self, body: dict[str, Any] | None, status: int) -> None:
            with fake._lock:
                fake.requests.append(
                    RecordedRequest(self.command, self.path, self._headers(), body, status)
                )

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            if self.path != fake.path:
                status, answer, extra = 404, {"error": "no_such_endpoint"}, {}
            else:
                status, answer, extra = fake._handle_post(self._headers(), body)
            self._record(body, status)
            self._send(status, answer, extra)

        def _probe(self) -> None:
            if self.path != fake.path:
                status = 404
            elif self.headers.get("Authorization") != f"Bearer {fake.token}":
                status = 401
            else:
                status = 204
            self._record(None, status)
            self._send(status, None, {"Allow": "POST, HEAD"})

        do_HEAD = _probe
        do_GET = _probe

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Run the fake endpoint in the foreground (for `make demo`): prints its URL, stops on ^C.

    python -m reset_mailbot_testing.forus_http --port 18080 --account a@example.nl \
        --no-2fa b@example.nl
    """
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--account", action="append", default=[], help="account with 2FA on")
    parser.add_argument("--no-2fa", action="append", default=[], help="account without 2FA")
    args = parser.parse_args(argv)
    accounts = {a.lower(): True for a in args.account} | {a.lower(): False for a in args.no_2fa}
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeForus(accounts=accounts, token=args.token, port=args.port) as fake:
        print(fake.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        for request in fake.posts():
            print(request.status, json.dumps(request.body), flush=True)


if __name__ == "__main__":
    main()
