"""The HTTP executor: asks a Forus endpoint to reset 2FA, with an idempotency key.

Thin on purpose: it translates one `ExecutionJob` into one POST and the HTTP answer into an
`ExecutionResult`; whether and when to retry is the service's business. The stdlib `urllib` is
enough for one JSON POST, so no HTTP library is added.

Idempotency (the service records the intent and its key before calling us): the same
`Idempotency-Key` header is sent on every retry of the same request, and the endpoint must replay
its first answer for a key instead of resetting again (the IETF httpapi draft
"The Idempotency-Key HTTP Header Field", as Stripe implements it). That is what makes RETRY after
a timeout safe: the first attempt may have reset the account before the answer was lost.

Mapping of answers (docs/executor-http.md is the integration spec):
- 200/201 `{"status": "reset"}` -> SUCCEEDED `reset`; `"already_reset"` -> SUCCEEDED `already_reset`
- 404 `account_not_found`, 409 `two_factor_not_enabled` -> FAILED with that code (final: the
  municipality is told); 422 is accepted as `two_factor_not_enabled` too, for robustness
- 409 `request_in_progress`, 429, 5xx, timeouts, connection errors -> RETRY (same key)
- 401/403 -> RETRY `unauthorized` (a configuration problem: the service alerts and retries slowly)
- anything else (other 4xx, a 404 without `account_not_found`, redirects) -> FAILED `http_<status>`
Redirects are never followed: a redirect would carry the bearer token somewhere else.
`dry_run` sends the same body with `"dry_run": true` (`requests dry-run`, issue #5).
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from reset_mailbot.adapters.executors.base import (
    ExecutionJob,
    ExecutionResult,
    ExecutionStatus,
)
from reset_mailbot.domain.addresses import is_loopback

_MAX_BODY = 64 * 1024
_USER_AGENT = "reset-mailbot/0.1"
_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # a code we store and show; else http_<status>


class HttpExecutorError(RuntimeError):
    """`probe()` found the endpoint unreachable, refusing the token or missing."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


class HttpExecutor:
    """POST `{request_id, account_email, ...}` to `url` with a bearer token and idempotency key."""

    name = "http"

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 30.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError(f"executor url must be http(s)://host/...: {url!r}")
        if parsed.scheme == "http" and not is_loopback(parsed.hostname):
            raise ValueError("executor url must use https unless the host is loopback")
        if not token:
            raise ValueError("executor token is empty")
        self.url = url
        self._token = token
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:  # never show the token
        return f"HttpExecutor(url={self.url!r}, timeout={self.timeout})"

    @staticmethod
    def payload(job: ExecutionJob) -> dict[str, Any]:
        """The JSON body; the field names are the integration contract (docs/executor-http.md).

        `identity_verified` is always true: a request only reaches the executor once the
        municipality has confirmed it, and saying so in the body makes the claim auditable on
        the Forus side.
        """
        return {
            "email": job.account_email,
            "request_id": job.request_id,
            "requested_by": {
                "name": job.requested_by_name,
                "email": job.requested_by,
                "municipality": job.municipality,
            },
            "identity_verified": True,
            "case_reference": job.case_reference,
            "source": {
                "message_id": job.message_id,
                "received_at": _iso_utc(job.received_at),
            },
        }

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "User-Agent": _USER_AGENT,
        }

    def execute(self, job: ExecutionJob) -> ExecutionResult:
        """One POST; never raises for HTTP or network failures (returns RETRY/FAILED instead)."""
        data = json.dumps(self.payload(job)).encode("utf-8")
        headers = self._headers() | {
            "Content-Type": "application/json",
            "Idempotency-Key": job.idempotency_key,
        }
        return self._post(data, headers)[0]

    def _post(
        self, data: bytes, headers: dict[str, str]
    ) -> tuple[ExecutionResult, dict[str, Any]]:
        """One POST and its classified answer (plus the JSON body, for dry-run checks)."""
        request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
                body = _json(response.read(_MAX_BODY))
                retry_after = response.headers.get("Retry-After")
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
                try:
                    body = _json(exc.read(_MAX_BODY))
                except (OSError, http.client.HTTPException):
                    body = {}
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
        except TimeoutError:
            return _retry("timeout", f"no answer within {self.timeout} s"), {}
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return _retry("timeout", f"no answer within {self.timeout} s"), {}
            return _retry("connection_error", str(exc.reason)), {}
        except (OSError, http.client.HTTPException) as exc:
            return _retry("connection_error", f"{type(exc).__name__}: {exc}"), {}
        return classify(status, body, retry_after), body

    def dry_run(self, job: ExecutionJob) -> ExecutionResult:
        """The same POST with `"dry_run": true`: the endpoint says what it would do, does nothing.

        The key gets a `:dry-run` suffix so that no endpoint can ever replay a dry-run answer
        for the real reset. A 2xx answer that does not echo `"dry_run": true` means the endpoint
        ignored the flag and may have reset the account: that is reported as FAILED
        `dry_run_ignored`, never as a plan.
        """
        data = json.dumps(self.payload(job) | {"dry_run": True}).encode("utf-8")
        headers = self._headers() | {
            "Content-Type": "application/json",
            "Idempotency-Key": f"{job.idempotency_key}:dry-run",
        }
        result, body = self._post(data, headers)
        if result.status is ExecutionStatus.SUCCEEDED and body.get("dry_run") is not True:
            return _failed(
                "dry_run_ignored",
                "the endpoint did not confirm dry_run: it may have carried out the reset; "
                + result.detail,
            )
        return result.model_copy(update={"detail": "dry run: " + result.detail})

    def probe(self) -> str:
        """An authenticated HEAD on the URL: proves reachability and token without a reset."""
        request = urllib.request.Request(self.url, headers=self._headers(), method="HEAD")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            with exc:
                status = exc.code
        except (OSError, http.client.HTTPException) as exc:
            raise HttpExecutorError(f"{self.url} unreachable: {exc}") from exc
        if status in (401, 403):
            raise HttpExecutorError(f"{self.url} refused the token (HTTP {status})")
        if status == 404 or status >= 500:
            raise HttpExecutorError(f"{self.url} answered HTTP {status}")
        return f"{self.url} reachable (HEAD: HTTP {status})"


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _retry(code: str, detail: str) -> ExecutionResult:
    return ExecutionResult(status=ExecutionStatus.RETRY, code=code, detail=detail)


def _iso_utc(when: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z; a naive datetime is UTC (that is how the database stores it)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _body_code(body: dict[str, Any]) -> str | None:
    """The machine-readable code of an answer: `error`, else `code`, else `status`."""
    for key in ("error", "code", "status"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _failed(code: str, detail: str) -> ExecutionResult:
    return ExecutionResult(status=ExecutionStatus.FAILED, code=code, detail=detail)


def classify(status: int, body: dict[str, Any], retry_after: str | None = None) -> ExecutionResult:
    """The answer of the endpoint as an ExecutionResult (pure; see the module docstring).

    Only codes the contract names become result codes (they drive the reply to the
    municipality); anything unexpected is `http_<status>` with the server's words in `detail`.
    """
    raw_code = _body_code(body)
    code = raw_code if raw_code and _CODE_RE.match(raw_code) else None
    detail = f"HTTP {status}"
    if raw_code and code != raw_code:
        detail += f" {raw_code[:80]!r}"
    elif code:
        detail += f" {code}"
    message = body.get("message")
    if isinstance(message, str) and message:
        detail += ": " + " ".join(message.split())[:300]  # one line in logs, whatever was sent
    if status in (200, 201):
        if body.get("status") == "already_reset" or body.get("already_reset") is True:
            return ExecutionResult(
                status=ExecutionStatus.SUCCEEDED, code="already_reset", detail=detail
            )
        if body.get("status") in ("reset", None):
            return ExecutionResult(status=ExecutionStatus.SUCCEEDED, code="reset", detail=detail)
        return _failed(f"http_{status}", detail + " (unexpected status)")
    if status == 404 and code == "account_not_found":
        return _failed("account_not_found", detail)
    if status == 409:
        if code == "two_factor_not_enabled":
            return _failed("two_factor_not_enabled", detail)
        if code == "request_in_progress":
            return _retry("request_in_progress", detail)
        if code == "already_reset":  # robustness: a server that reports it as a conflict
            return ExecutionResult(
                status=ExecutionStatus.SUCCEEDED, code="already_reset", detail=detail
            )
    if status == 422 and code in (None, "two_factor_not_enabled"):
        return _failed("two_factor_not_enabled", detail)
    if status in (401, 403):
        return _retry("unauthorized", detail)
    if status == 429 or status >= 500:
        if retry_after:
            detail += f"; Retry-After: {retry_after[:40]}"
        return _retry("rate_limited" if status == 429 else f"http_{status}", detail)
    return _failed(f"http_{status}", detail)
