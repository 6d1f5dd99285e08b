"""`[console] with_daemon = true`: `reset-mailbot run` serves the console beside its jobs, and
what the daemon decided is on it at once (one process to operate; issue #17 "run by the
daemon or on its own")."""

from __future__ import annotations

import json

from tests.e2e.daemon_env import DaemonEnv
from tests.e2e.test_metrics import INCOMPLETE_BODY, free_port, get, running_daemon, wait_until


def test_run_serves_the_console_with_the_daemon(env: DaemonEnv) -> None:
    port = free_port()
    settings = {
        "console__with_daemon": "true", "console__listen": f"127.0.0.1:{port}",
        "console__auth": "trusted_header", "console__trusted_proxies": '["127.0.0.1"]',
        "console__roles": json.dumps({"olaf@forus.test": "operator"}),
        "console__session_secret": "s" * 40,
    }
    base = f"http://127.0.0.1:{port}"

    def requests_page(who: str) -> tuple[int, str]:
        return get(base + "/requests", headers={"X-Forwarded-Email": who})

    with running_daemon(env, **settings) as (_metrics, log):
        env.deliver(env.request(INCOMPLETE_BODY))
        env.sink.wait_for(1, timeout=30)
        wait_until(lambda: "incomplete" in requests_page("olaf@forus.test")[1], 20,
                   "the request on the console", log)
        status, page = requests_page("olaf@forus.test")
        assert status == 200 and "olaf@forus.test · operator" in page
        assert requests_page("eve@forus.test")[0] == 403
    assert '"event": "console_listening"' in log.read_text()
