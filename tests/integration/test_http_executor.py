"""HttpExecutor against a real HTTP server on loopback (src/reset_mailbot_testing/forus_http.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from reset_mailbot.adapters.executors.base import ExecutionJob, ExecutionStatus, Executor
from reset_mailbot.adapters.executors.http import HttpExecutor, HttpExecutorError, classify
from reset_mailbot_testing.forus_http import DEFAULT_TOKEN, FakeForus

pytestmark = pytest.mark.services

ACCOUNT = "fam.ozturk@outlook.com"


@pytest.fixture
def forus() -> Iterator[FakeForus]:
    with FakeForus(accounts={ACCOUNT: True, "no2fa@example.nl": False}) as fake:
        yield fake


def _job(key: str = "req-1:exec", account: str = ACCOUNT) -> ExecutionJob:
    return ExecutionJob(
        request_id="req-1",
        idempotency_key=key,
        account_email=account,
        municipality="Utrecht",
        requested_by="j.jansen@utrecht.nl",
        case_reference="2026-00871",
        message_id="<AM9PR09MB1509BB531DBEC6AC9D77CFE54014@AM9PR09MB1509.eurprd09.prod.outlook.com>",
        approved_by=None,
        requested_by_name="Jan Jansen",
        received_at=datetime(2026, 11, 26, 8, 14, 3, tzinfo=UTC),
    )


def _executor(fake: FakeForus, timeout: float = 5.0, token: str = DEFAULT_TOKEN) -> HttpExecutor:
    return HttpExecutor(fake.url, token, timeout)


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_implements_the_executor_protocol(forus: FakeForus) -> None:
    executor: Executor = _executor(forus)
    assert executor.name == "http"


def test_success_sends_token_key_and_payload(forus: FakeForus) -> None:
    result = _executor(forus).execute(_job())
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.code == "reset"
    assert forus.resets == {ACCOUNT: 1}
    (post,) = forus.posts()
    assert post.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert post.headers["idempotency-key"] == "req-1:exec"
    assert post.headers["content-type"] == "application/json"
    assert post.body == {
        "email": ACCOUNT,
        "request_id": "req-1",
        "requested_by": {
            "name": "Jan Jansen",
            "email": "j.jansen@utrecht.nl",
            "municipality": "Utrecht",
        },
        "identity_verified": True,
        "case_reference": "2026-00871",
        "source": {"message_id": _job().message_id, "received_at": "2026-11-26T08:14:03Z"},
    }


def test_optional_fields_are_null_and_naive_times_are_utc(forus: FakeForus) -> None:
    job = _job().model_copy(
        update={
            "requested_by_name": None,
            "case_reference": None,
            "received_at": datetime(2026, 6, 1, 10, 0),
        }
    )
    body = HttpExecutor.payload(job)
    assert body["requested_by"]["name"] is None
    assert body["case_reference"] is None
    assert body["source"]["received_at"] == "2026-06-01T10:00:00Z"
    assert HttpExecutor.payload(_job().model_copy(update={"received_at": None}))["source"] == {
        "message_id": _job().message_id,
        "received_at": None,
    }
    result = _executor(forus).execute(job)
    assert result.status is ExecutionStatus.SUCCEEDED  # the fake accepts the nulls


def test_retry_with_the_same_key_resets_once(forus: FakeForus) -> None:
    executor = _executor(forus)
    first = executor.execute(_job())
    second = executor.execute(_job())
    assert first == second
    assert second.status is ExecutionStatus.SUCCEEDED and second.code == "reset"
    assert len(forus.posts()) == 2
    assert forus.resets == {ACCOUNT: 1}


def test_other_key_after_reset_is_already_reset(forus: FakeForus) -> None:
    executor = _executor(forus)
    executor.execute(_job("a"))
    result = executor.execute(_job("b"))
    assert result.status is ExecutionStatus.SUCCEEDED
    assert result.code == "already_reset"
    assert forus.resets == {ACCOUNT: 1}


def test_unknown_account_is_final(forus: FakeForus) -> None:
    result = _executor(forus).execute(_job(account="nobody@example.nl"))
    assert result.status is ExecutionStatus.FAILED
    assert result.code == "account_not_found"
    assert not forus.resets


def test_two_factor_not_enabled_is_final(forus: FakeForus) -> None:
    result = _executor(forus).execute(_job(account="no2fa@example.nl"))
    assert result.status is ExecutionStatus.FAILED
    assert result.code == "two_factor_not_enabled"
    assert not forus.resets


def test_server_error_then_success_resets_once(forus: FakeForus) -> None:
    executor = _executor(forus)
    forus.fail_next(500)
    first = executor.execute(_job())
    assert first.status is ExecutionStatus.RETRY
    assert first.code == "http_500"
    assert not forus.resets
    second = executor.execute(_job())
    assert second.status is ExecutionStatus.SUCCEEDED
    assert forus.resets == {ACCOUNT: 1}
    assert [p.headers["idempotency-key"] for p in forus.posts()] == ["req-1:exec"] * 2


@pytest.mark.parametrize(("status", "code"), [(429, "rate_limited"), (503, "http_503")])
def test_rate_limit_and_unavailable_are_retried(forus: FakeForus, status: int, code: str) -> None:
    forus.fail_next(status, headers={"Retry-After": "7"})
    result = _executor(forus).execute(_job())
    assert result.status is ExecutionStatus.RETRY
    assert result.code == code
    assert "Retry-After: 7" in result.detail


def test_timeout_is_retried_and_the_retry_does_not_reset_twice(forus: FakeForus) -> None:
    executor = _executor(forus, timeout=0.3)
    forus.delay_next(1.0)  # the server finishes the reset after the client gave up
    started = time.monotonic()
    result = executor.execute(_job())
    assert time.monotonic() - started < 0.9
    assert result.status is ExecutionStatus.RETRY
    assert result.code == "timeout"
    # While the first attempt still runs, a retry is told to come back later.
    busy = executor.execute(_job())
    assert busy.status is ExecutionStatus.RETRY
    assert busy.code == "request_in_progress"
    _wait_for(lambda: forus.resets[ACCOUNT] == 1)
    final = executor.execute(_job())
    assert final.status is ExecutionStatus.SUCCEEDED
    assert final.code == "reset"
    assert forus.resets == {ACCOUNT: 1}


def test_connection_refused_is_retried() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    executor = HttpExecutor(f"http://127.0.0.1:{port}/reset", "t", 2.0)
    result = executor.execute(_job())
    assert result.status is ExecutionStatus.RETRY
    assert result.code == "connection_error"


def test_wrong_token_is_retried_as_unauthorized_and_resets_nothing(forus: FakeForus) -> None:
    result = _executor(forus, token="wrong").execute(_job())
    assert result.status is ExecutionStatus.RETRY
    assert result.code == "unauthorized"
    assert not forus.resets


def test_redirect_is_not_followed(forus: FakeForus) -> None:
    forus.fail_next(307, headers={"Location": "http://127.0.0.1:1/elsewhere"})
    result = _executor(forus).execute(_job())
    assert result.status is ExecutionStatus.FAILED
    assert result.code == "http_307"
    assert len(forus.requests) == 1


def test_unexpected_client_error_is_final(forus: FakeForus) -> None:
    forus.fail_next(400, {"error": "bad_request", "message": "missing field"})
    result = _executor(forus).execute(_job())
    assert result.status is ExecutionStatus.FAILED
    assert result.code == "http_400"
    assert "missing field" in result.detail


def test_probe_checks_reachability_and_token_without_resetting(forus: FakeForus) -> None:
    assert "reachable" in _executor(forus).probe()
    with pytest.raises(HttpExecutorError, match="token"):
        _executor(forus, token="wrong").probe()
    assert not forus.posts()
    assert not forus.resets
    assert {r.method for r in forus.requests} == {"HEAD"}


def test_probe_raises_when_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HttpExecutorError, match="unreachable"):
        HttpExecutor(f"http://127.0.0.1:{port}/reset", "t", 2.0).probe()


def test_plain_http_is_refused_for_remote_hosts() -> None:
    with pytest.raises(ValueError, match="https"):
        HttpExecutor("http://forus.example/reset", "t")
    with pytest.raises(ValueError):
        HttpExecutor("ftp://forus.example/reset", "t")
    assert "t0ken" not in repr(HttpExecutor("https://forus.example/reset", "t0ken"))


S, F, R = ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.RETRY


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"status": "reset", "request_id": "R-1"}, (S, "reset")),
        (200, {}, (S, "reset")),
        (201, {"status": "reset"}, (S, "reset")),
        (200, {"status": "already_reset"}, (S, "already_reset")),
        (200, {"status": "reset", "already_reset": True}, (S, "already_reset")),
        (200, {"status": "queued"}, (F, "http_200")),  # never claim a reset we were not told of
        (202, {"status": "reset"}, (F, "http_202")),
        (404, {"error": "account_not_found"}, (F, "account_not_found")),
        (404, {"code": "account_not_found"}, (F, "account_not_found")),
        (404, {}, (F, "http_404")),  # a wrong URL is not "no such account"
        (404, {"error": "no_such_endpoint"}, (F, "http_404")),
        (409, {"error": "two_factor_not_enabled"}, (F, "two_factor_not_enabled")),
        (409, {"status": "two_factor_not_enabled"}, (F, "two_factor_not_enabled")),
        (409, {"error": "request_in_progress"}, (R, "request_in_progress")),
        (409, {"error": "already_reset"}, (S, "already_reset")),
        (409, {}, (F, "http_409")),
        (422, {}, (F, "two_factor_not_enabled")),
        (422, {"error": "two_factor_not_enabled"}, (F, "two_factor_not_enabled")),
        (422, {"error": "email_invalid"}, (F, "http_422")),
        (401, {}, (R, "unauthorized")),
        (403, {"error": "forbidden"}, (R, "unauthorized")),
        (429, {}, (R, "rate_limited")),
        (500, {}, (R, "http_500")),
        (502, {}, (R, "http_502")),
        (400, {"error": "bad_request"}, (F, "http_400")),
        (410, {}, (F, "http_410")),
        (307, {}, (F, "http_307")),
    ],
)
def test_classify(status: int, body: dict[str, object], expected: tuple[object, str]) -> None:
    result = classify(status, body)
    assert (result.status, result.code) == expected


def test_classify_keeps_odd_codes_out_of_result_codes() -> None:
    body = {"error": "Two Factor\r\nInjected" * 10, "message": "line\r\nbreak " * 200}
    result = classify(409, body)
    assert result.code == "http_409"
    assert len(result.detail) < 500
    assert "\r" not in result.detail and "\n" not in result.detail
