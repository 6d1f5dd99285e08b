"""The metrics module without a daemon: listen parsing, the health rule, private registries."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reasons import Outcome, ReasonCode
from reset_mailbot.service.metrics import Metrics, MetricsServer, parse_listen

T0 = datetime(2026, 4, 27, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:9000", ("::1", 9000)),
     (":9464", ("0.0.0.0", 9464)), ("", None), ("  ", None), (None, None)],
)
def test_parse_listen(value: str | None, expected: tuple[str, int] | None) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9464", "localhost", "host:port", "h:99999"])
def test_parse_listen_refuses(value: str) -> None:
    with pytest.raises(ValueError, match=r"\[metrics\] listen must be host:port"):
        parse_listen(value)


def test_health_is_three_poll_intervals_from_the_last_success_or_the_start() -> None:
    clock = Clock()
    last: list[datetime | None] = [None]
    metrics = Metrics(poll_interval_seconds=10, last_successful_poll=lambda: last[0],
                      clock=clock)
    assert metrics.health() == (True, "no successful poll since start 0.0s ago (limit 30s)")
    clock.now = T0 + timedelta(seconds=31)
    assert metrics.health()[0] is False
    last[0] = clock.now - timedelta(seconds=30)
    assert metrics.health() == (True, "last successful poll 30.0s ago (limit 30s)")
    clock.now += timedelta(seconds=1)
    assert metrics.health() == (False, "last successful poll 31.0s ago (limit 30s)")
    assert metrics.seconds_since_last_poll() == 31.0


def test_two_instances_have_their_own_registry_and_serve_over_http() -> None:
    clock = Clock()
    first = Metrics(poll_interval_seconds=1, last_successful_poll=lambda: None, clock=clock)
    second = Metrics(poll_interval_seconds=1, last_successful_poll=lambda: None, clock=clock)
    decision = Decision(message_id=None, message_key="k", outcome=Outcome.REJECTED,
                        reasons=[ReasonCode.OVERSIZE])
    first.observe_decision(decision, 0.02)
    first.observe_reply("incomplete", "sent")
    first.observe_execution("succeeded", "reset")
    assert first.registry.get_sample_value(
        "reset_mailbot_messages_total", {"outcome": "rejected"}) == 1
    assert first.registry.get_sample_value(
        "reset_mailbot_decision_reasons_total", {"outcome": "rejected", "reason": "oversize"}
    ) == 1
    assert second.registry.get_sample_value(
        "reset_mailbot_messages_total", {"outcome": "rejected"}) is None
    server = MetricsServer(first, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'reset_mailbot_replies_total{kind="incomplete",result="sent"} 1.0' in text
        assert 'reset_mailbot_executions_total{code="reset",result="succeeded"} 1.0' in text
        assert 'reset_mailbot_requests{state="awaiting_approval"} 0.0' in text
        assert "reset_mailbot_decision_seconds_count 1.0" in text
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            assert response.status == 200
        clock.now = T0 + timedelta(seconds=4)
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(base + "/healthz", timeout=5)
        with failed.value as error:
            assert error.code == 503
            assert error.read().decode() == (
                "unhealthy: no successful poll since start 4.0s ago (limit 3s)\n"
            )
    finally:
        server.stop()
