"""`make demo` end to end: the real services start, the daemon runs, the table tells the story.

Runs the same command as the Makefile's `demo` target (the `reset-mailbot` console script of
this venv), parses the printed table and checks that every process the demo started is gone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reset_mailbot_testing.dovecot import process_running

CLI = str(Path(sys.executable).with_name("reset-mailbot"))
ENV = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}

pytestmark = pytest.mark.services


def table_rows(out: str) -> dict[str, list[str]]:
    """{message label: [from, outcome, reasons, executor call, reply]} from the rich table."""
    rows: dict[str, list[str]] = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 7 and cells[0].isdigit():
            label = re.sub(r" \(run \d\)$", "", cells[1])
            rows[label] = cells[2:]
    return rows


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and process_running(int(proc.name)):
            pids.append(int(proc.name))
    return pids


def test_demo_runs_the_whole_loop_and_stops_everything() -> None:
    proc = subprocess.run([CLI, "demo"], capture_output=True, text=True, env=ENV, timeout=120,
                          check=False)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    out = proc.stdout
    rows = table_rows(out)
    complete = rows["complete request (Outlook)"]
    assert complete[1] == "complete"
    assert complete[3] == "POST piet.jansen@hotmail.com -> 200 reset"
    assert complete[4] == "confirmation -> j.devries@utrecht.nl"
    incomplete = rows["incomplete request"]
    assert (incomplete[1], incomplete[3]) == ("incomplete", "-")
    assert incomplete[4] == "incomplete -> s.elzinga@eindhoven.nl"
    group = rows["group mailbox"]
    assert (group[1], group[2], group[4]) == (
        "rejected", "group_mailbox", "rejected_group -> info@utrecht.nl")
    lookalike = rows["spoof: lookalike domain"]
    assert (lookalike[1], lookalike[2], lookalike[3], lookalike[4]) == (
        "rejected", "domain_not_allowlisted", "-", "none")
    unsigned = rows["spoof: unsigned"]
    assert (unsigned[1], unsigned[2], unsigned[3], unsigned[4]) == (
        "rejected", "dkim_missing", "-", "none")
    ooo = rows["out-of-office"]
    assert (ooo[1], ooo[2], ooo[3], ooo[4]) == ("ignored", "auto_submitted", "-", "none")
    follow_up = rows["follow-up completing it"]
    assert follow_up[0] == "s.elzinga@eindhoven.nl"
    assert follow_up[1] == "complete"
    assert follow_up[3] == "POST fam.ozturk@outlook.com -> 200 reset"
    assert follow_up[4] == "confirmation -> s.elzinga@eindhoven.nl"

    # nothing the demo started is still running, and its state dir is gone
    state = re.search(r"^state: (\S+)$", out, re.M)
    services = re.search(r"^services: (.+)$", out, re.M)
    assert state and services, out
    pids = [int(p) for p in re.findall(r"pid (\d+)", services.group(1))]
    assert len(pids) == 4 and all(pids)
    assert [p for p in pids if process_running(p)] == []
    assert processes_mentioning(state.group(1)) == []
    assert not Path(state.group(1)).exists()


def test_check_only_demo_needs_no_services() -> None:
    proc = subprocess.run([CLI, "demo", "--check-only"], capture_output=True, text=True,
                          env=ENV, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "001-utrecht_basic.eml" in proc.stdout
    assert "state:" not in proc.stdout


@pytest.mark.parametrize(
    ("executor", "call"),
    [
        ("forus-db", "forus-db: 2FA deactivated, event_logs #"),
        ("manual", "awaiting_manual_reset"),
    ],
)
def test_demo_switches_executor_by_configuration(executor: str, call: str) -> None:
    proc = subprocess.run([CLI, "demo", "--executor", executor], capture_output=True, text=True,
                          env=ENV, timeout=180, check=False)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    rows = table_rows(proc.stdout)
    for label in ("complete request (Outlook)", "follow-up completing it"):
        assert rows[label][1] == "complete"
        assert rows[label][3].startswith(call), rows[label]
    confirmation = rows["complete request (Outlook)"][4]
    if executor == "manual":  # a person resets first; `requests done` queues the confirmation
        assert confirmation == "none"
    else:
        assert confirmation == "confirmation -> j.devries@utrecht.nl"
    state = re.search(r"^state: (\S+)$", proc.stdout, re.M)
    services = re.search(r"^services: (.+)$", proc.stdout, re.M)
    assert state and services
    pids = [int(p) for p in re.findall(r"pid (\d+)", services.group(1))]
    assert [p for p in pids if process_running(p)] == []
    assert processes_mentioning(state.group(1)) == []


def test_make_demo_ends_with_the_console_on_its_requests() -> None:
    """`make demo` (demo --console): after the table, the console serves the demo's database
    with the demo login on loopback until Ctrl-C; then everything stops and is cleaned up."""
    import signal
    import time

    import httpx2

    proc = subprocess.Popen([CLI, "demo", "--executor", "manual", "--console"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 150
    url = None
    try:
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.match(r"console: (http://127\.0\.0\.1:\d+)/requests", line)
            url = found.group(1) if found else None
        assert url, "".join(lines)
        with httpx2.Client(base_url=url, follow_redirects=False) as http:
            for _ in range(100):  # the URL is printed just before uvicorn binds
                try:
                    login_page = http.get("/login")
                    break
                except httpx2.ConnectError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf_token" value="([^"]+)"', login_page.text)
            assert token, login_page.text
            answer = http.post("/login/demo", data={"identity": "demo@forus.test",
                                                    "role": "approver",
                                                    "csrf_token": token.group(1)})
            assert answer.status_code == 303
            listing = http.get("/requests?state=awaiting_manual_reset").text
            assert listing.count('href="/requests/R-') == 2, listing  # the two complete ones
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    out = "".join(lines) + out
    assert proc.returncode == 0, f"{out}\n{err}"
    state = re.search(r"^state: (\S+)$", out, re.M)
    assert state and not Path(state.group(1)).exists(), out
    assert processes_mentioning(state.group(1)) == []
