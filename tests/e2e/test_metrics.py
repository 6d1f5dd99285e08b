"""Metrics and /healthz scraped over HTTP from a running `reset-mailbot run` process.

The daemon runs against the real environment (Dovecot, SMTP sink, DNS, fake Forus, database)
with `[metrics] listen` on a free port (set through the environment, as an operator could).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

import reset_mailbot
from reset_mailbot_testing.dkim_signing import plain_message
from tests.e2e.daemon_env import CLI, DaemonEnv

INCOMPLETE_BODY = (
    "Beste Forus,\r\n\r\nKunnen jullie iets doen aan de 2FA van een inwoner?\r\n\r\n"
    "Met vriendelijke groet,\r\nJan de Vries\r\n"
)
COMPLETE_BODY = (
    "Beste Forus support,\r\n\r\n"
    "E-mailadres account: piet.jansen@hotmail.com\r\n"
    "De identiteit van de inwoner is vandaag aan de balie gecontroleerd met een paspoort.\r\n"
    "Hierbij geeft de gemeente Utrecht opdracht om de 2FA te resetten.\r\n"
    "Dossiernummer: 88123\r\n\r\n"
    "Met vriendelijke groet,\r\nJan de Vries\r\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_daemon(env: DaemonEnv, **settings: str) -> Iterator[tuple[str, Path]]:
    """`reset-mailbot run` with extra RESET_MAILBOT_* settings; yields (base URL, stderr log)."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
    environ["RESET_MAILBOT_METRICS__LISTEN"] = f"127.0.0.1:{port}"
    environ.update({f"RESET_MAILBOT_{k.upper()}": v for k, v in settings.items()})
    log_path = env.tmp / f"daemon-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([*CLI, "run", "--config", str(env.config_path)],
                                stdout=log, stderr=log, env=environ)
    try:
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log_path.read_text()[-3000:]


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}),
                                    timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as {(name, sorted labels): value}."""
    status, text = get(base + "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_until(check: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-3000:]}")


def test_counters_move_and_health_is_ok_while_polling(env: DaemonEnv) -> None:
    with running_daemon(env, mailbox__poll_interval_seconds="1") as (base, log):
        # 200 from the start (grace of 3 poll intervals), then because polls succeed
        wait_until(lambda: get(base + "/healthz")[1].startswith("ok: last successful poll"),
                   20, "a successful poll", log)
        env.deliver(env.request(INCOMPLETE_BODY))
        env.deliver(plain_message(body=INCOMPLETE_BODY))  # not signed: rejected, no reply
        env.deliver(env.request(COMPLETE_BODY, from_="Jan de Vries <j.devries@utrecht.nl>",
                                subject="Reset 2FA"))
        env.sink.wait_for(2, timeout=30)  # incomplete reply + confirmation

        def counted() -> bool:
            s = scrape(base)
            return (value(s, "reset_mailbot_replies_total", kind="incomplete", result="sent") == 1
                    and value(s, "reset_mailbot_requests", state="incomplete") == 1
                    and value(s, "reset_mailbot_outbox_length") == 0)

        wait_until(counted, 40, "counters and database gauges", log)
        s = scrape(base)
        assert value(s, "reset_mailbot_messages_total", outcome="incomplete") == 1
        assert value(s, "reset_mailbot_messages_total", outcome="rejected") == 1
        rejected_reasons = [k for k in s if k[0] == "reset_mailbot_decision_reasons_total"
                            and ("outcome", "rejected") in k[1]]
        assert rejected_reasons, "the rejected message's reason codes are counted"
        assert value(s, "reset_mailbot_decision_seconds_count") == 3
        assert value(s, "reset_mailbot_polls_total", result="ok") >= 1
        assert value(s, "reset_mailbot_polls_total", result="error") == 0
        assert 0 <= value(s, "reset_mailbot_seconds_since_last_successful_poll") < 10
        assert value(s, "reset_mailbot_requests_overdue") == 0
        assert ("reset_mailbot_requests", (("state", "awaiting_approval"),)) in s  # all states
        assert value(s, "reset_mailbot_messages_total", outcome="complete") == 1
        assert value(s, "reset_mailbot_executions_total", result="succeeded", code="reset") == 1
        assert value(s, "reset_mailbot_replies_total", kind="confirmation", result="sent") == 1
        assert value(s, "reset_mailbot_requests", state="executed") == 1
        assert get(base + "/healthz")[0] == 200
        # exporter conventions (issue #16): build info, process series, a poll timestamp,
        # no _created series; a duplicate is counted like every logged decision
        assert value(s, "reset_mailbot_build_info", version=reset_mailbot.__version__) == 1
        assert value(s, "process_resident_memory_bytes") > 10_000_000
        assert abs(value(s, "reset_mailbot_last_successful_poll_timestamp_seconds")
                   - time.time()) < 10
        assert value(s, "reset_mailbot_leader") == 1
        assert not [k for k in s if k[0].endswith("_created")]
        env.deliver(env.folder("Processed")[0])  # the same message once more
        wait_until(lambda: value(scrape(base), "reset_mailbot_messages_total",
                                 outcome="ignored") == 1, 20, "the duplicate counted", log)
        assert value(scrape(base), "reset_mailbot_decision_reasons_total", outcome="ignored",
                     reason="duplicate") == 1


def test_healthz_is_503_when_polling_keeps_failing(env: DaemonEnv) -> None:
    closed = free_port()  # nothing listens there: every poll fails
    with running_daemon(env, mailbox__port=str(closed),
                        mailbox__poll_interval_seconds="1") as (base, log):
        wait_until(lambda: get(base + "/healthz")[0] == 503, 20, "healthz 503", log)
        status, body = get(base + "/healthz")
        assert status == 503
        assert body.startswith("unhealthy: no successful poll since start"), body
        s = scrape(base)
        assert value(s, "reset_mailbot_polls_total", result="error") >= 1
        assert value(s, "reset_mailbot_polls_total", result="ok") == 0
        assert value(s, "reset_mailbot_seconds_since_last_successful_poll") > 3
    assert '"event": "imap_reconnect"' in log.read_text()


def _image_healthcheck(port: int) -> list[str]:
    """The Dockerfile's HEALTHCHECK command, pointed at `port` instead of the image's 9464."""
    import json
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    line = text.replace("\\\n", " ").split("HEALTHCHECK", 1)[1].splitlines()[0]
    command = json.loads(line.split("CMD", 1)[1])
    return [sys.executable, *command[1:-1],
            command[-1].replace("127.0.0.1:9464", f"127.0.0.1:{port}")]


def test_the_image_healthcheck_passes_on_a_healthy_daemon_and_fails_otherwise(
    env: DaemonEnv,
) -> None:
    with running_daemon(env) as (base, log):
        wait_until(lambda: get(base + "/healthz")[0] == 200, 20, "healthz 200", log)
        port = int(base.rsplit(":", 1)[1])
        check = _image_healthcheck(port)
        assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
    assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0  # stopped
    closed = free_port()
    with running_daemon(env, mailbox__port=str(closed),
                        mailbox__poll_interval_seconds="1") as (base, log):
        wait_until(lambda: get(base + "/healthz")[0] == 503, 20, "healthz 503", log)
        unhealthy = _image_healthcheck(int(base.rsplit(":", 1)[1]))
        assert subprocess.run(unhealthy, capture_output=True, timeout=30).returncode != 0


def test_empty_listen_disables_the_endpoint(env: DaemonEnv) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
    environ["RESET_MAILBOT_METRICS__LISTEN"] = ""
    proc = subprocess.Popen([*CLI, "run", "--config", str(env.config_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environ,
                            text=True)
    try:
        env.deliver(env.request(INCOMPLETE_BODY))
        env.sink.wait_for(1, timeout=20)  # the daemon works without the endpoint
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "metrics_listening" not in err and "metrics_unavailable" not in err
