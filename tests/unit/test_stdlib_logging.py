"""Every line on stderr is one masked JSON object, also what the libraries log (issue 11, item 8).

mail-parser, dkimpy, imapclient, SQLAlchemy, APScheduler and Alembic log through the standard
library; before `logs.configure_logging` routed them, mail-parser's
`log.warning("Email content ... not handled")` reached stderr as plain text through Python's
last-resort handler, unmasked. Each test runs in a subprocess, so stderr is a real file
descriptor (no pytest capture in between) and the global logging state of the test session is
left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from reset_mailbot.logs import LIBRARY_EVENT, mask_text

ADDRESSES = ("j.devries@utrecht.nl", "p.jansen@nijmegen.nl", "a.bakker@example.nl",
             "k.smit@utrecht.nl", "organiser@utrecht.nl")

# A message with a text/calendar part: mail-parser logs "Email content 'calendar' not handled".
CALENDAR_MESSAGE = (
    "From: Jan de Vries <j.devries@utrecht.nl>\r\n"
    "To: support@forus.test\r\n"
    "Subject: 2FA reset\r\n"
    "Message-ID: <cal-1@utrecht.nl>\r\n"
    "Date: Mon, 7 Dec 2026 10:00:00 +0100\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=XX\r\n"
    "\r\n"
    "--XX\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "Graag de 2FA resetten.\r\n"
    "--XX\r\n"
    "Content-Type: text/calendar; method=REQUEST\r\n"
    "\r\n"
    "BEGIN:VCALENDAR\r\nORGANIZER:mailto:organiser@utrecht.nl\r\nEND:VCALENDAR\r\n"
    "--XX--\r\n"
)

PRELUDE = """
import logging
import warnings

from reset_mailbot.config import LogSettings
from reset_mailbot.logs import configure_logging, get_logger
"""

LIBRARIES = """
configure_logging(LogSettings().level)  # what the CLI does with the default [log] level

import mailparser
from sqlalchemy.exc import SAWarning

mailparser.parse_from_bytes(CALENDAR_MESSAGE.encode())  # mail-parser's own warning
logging.getLogger("mailparser.core").warning(
    "Email content %r not handled (from %s)", "x-vcard", "j.devries@utrecht.nl")
logging.getLogger("sqlalchemy.pool.impl.QueuePool").warning(
    "Exception during reset or similar; connection of %s", "p.jansen@nijmegen.nl")
warnings.warn("relationship conflicts for a.bakker@example.nl", SAWarning, stacklevel=1)
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("apscheduler.executors.default").exception(
        'Job "outbox (trigger: interval)" raised an exception for %s', "k.smit@utrecht.nl")
logging.getLogger("imapclient").warning("%d bad arguments", "not a number")
logging.warning("root logger")

# INFO/DEBUG chatter of the libraries stays below the configured level (info)
logging.getLogger("apscheduler.scheduler").info('Added job "outbox" to job store "default"')
logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")
logging.getLogger("imapclient.imaplib").debug("> b'LOGIN'")
logging.getLogger("dkimpy").debug("sig: b=...")
logging.getLogger("some.other.library").info("hello")

get_logger().info("decision", sender="j.devries@utrecht.nl", outcome="ignored")
"""


def run_python(body: str) -> subprocess.CompletedProcess[str]:
    """Run PRELUDE + `body` in a fresh interpreter; stdout and stderr are real pipes."""
    script = f"CALENDAR_MESSAGE = {CALENDAR_MESSAGE!r}\n" + PRELUDE + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every stderr line parsed; fails on the first line that is not one JSON object."""
    lines = []
    for line in stderr.splitlines():
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line on stderr: {line!r}\n{stderr}") from None
        assert isinstance(parsed, dict), line
        assert {"event", "level", "timestamp"} <= set(parsed), line
        lines.append(parsed)
    return lines


def library(lines: list[dict[str, Any]], logger: str) -> list[dict[str, Any]]:
    return [x for x in lines if x["event"] == LIBRARY_EVENT and x["logger"] == logger]


def test_library_records_are_masked_json_lines() -> None:
    proc = run_python(LIBRARIES)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    lines = json_lines(proc.stderr)

    for line in lines:
        if line["event"] == LIBRARY_EVENT:
            assert {"logger", "message", "level", "timestamp"} <= set(line), line
    assert [x["message"] for x in library(lines, "mailparser.core")] == [
        "Email content 'calendar' not handled",
        f"Email content 'x-vcard' not handled (from {mask_text('j.devries@utrecht.nl')})",
    ]
    [pool] = library(lines, "sqlalchemy.pool.impl.QueuePool")
    assert pool["level"] == "warning"
    assert pool["message"].endswith("connection of p***@nijmegen.nl")
    [warning] = library(lines, "py.warnings")  # warnings.warn is routed too
    assert "SAWarning: relationship conflicts for a***@example.nl" in warning["message"]
    [job] = library(lines, "apscheduler.executors.default")
    assert job["level"] == "error"
    assert job["message"].endswith("raised an exception for k***@utrecht.nl")
    assert job["exception"].startswith("Traceback (most recent call last):")
    assert job["exception"].rstrip().endswith("ZeroDivisionError: division by zero")
    [bad] = library(lines, "imapclient")  # not logging's plain "--- Logging error ---"
    assert bad["message"] == "%d bad arguments" and "error" in bad
    [root] = library(lines, "root")
    assert root["message"] == "root logger"

    # our own events keep their shape: no `logger`/`message` added
    [decision] = [x for x in lines if x["event"] == "decision"]
    assert set(decision) == {"event", "sender", "outcome", "level", "timestamp"}
    assert decision["sender"] == "j***@utrecht.nl"

    loggers = {x.get("logger") for x in lines}
    for chatter in ("apscheduler.scheduler", "alembic.runtime.migration",
                    "sqlalchemy.engine.Engine", "imapclient.imaplib", "dkimpy",
                    "some.other.library"):
        assert chatter not in loggers
    assert len(lines) == 8  # the seven library records above and the decision
    for address in ADDRESSES:
        assert address not in proc.stderr


def test_levels_follow_the_configuration() -> None:
    code = """
    configure_logging("debug")
    configure_logging("debug")  # a second call replaces the handler: no line twice
    log = get_logger("reset_mailbot.inbox")
    log.debug("own_debug")
    logging.getLogger("sqlalchemy.engine.Engine").info("SELECT 1")  # still chatter
    logging.getLogger("apscheduler.executors.default").warning("library_warning")
    configure_logging("error")
    log.warning("own_warning_hidden")
    logging.getLogger("mailparser.core").warning("library_warning_hidden")
    logging.getLogger("alembic").error("library_error")
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    lines = json_lines(proc.stderr)
    assert [(x["event"], x.get("message")) for x in lines] == [
        ("own_debug", None),
        (LIBRARY_EVENT, "library_warning"),
        (LIBRARY_EVENT, "library_error"),
    ]


def test_threads_never_interleave_lines() -> None:
    code = """
    import threading

    configure_logging("info")

    def work(n):
        log = get_logger("reset_mailbot.daemon")
        other = logging.getLogger("apscheduler.executors.default")
        for i in range(300):
            log.info("poll_done", seen=i, thread=n, note="x" * 500)
            other.warning("Run time of job %s was missed by %d", "j" * 500, i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert len(json_lines(proc.stderr)) == 4 * 2 * 300


def test_check_command_writes_only_json_to_stderr(tmp_path: Path) -> None:
    """The CLI path (`check` configures logging from the config's [log] level; a person's
    `check` logs warnings only unless asked, hence --log-level info)."""
    from tests.examples import EXAMPLES as examples
    config = tmp_path / "c.toml"
    config.write_text(
        '[mailbox]\naddress = "support@forus.test"\n'
        '[dns]\nnameservers = ["127.0.0.1"]\nport = 9\ntimeout_seconds = 0.5\n'
        f'[rules]\nmunicipalities = "{examples / "municipalities.yaml"}"\n'
    )
    message = tmp_path / "calendar.eml"
    message.write_bytes(CALENDAR_MESSAGE.encode())
    proc = subprocess.run(
        [sys.executable, "-m", "reset_mailbot.cli", "--log-level", "info", "check", "--config",
         str(config), str(message)],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = json_lines(proc.stderr)
    assert [x["event"] for x in lines if x["event"] != LIBRARY_EVENT] == ["decision"]
    for line in lines:
        if line["event"] == LIBRARY_EVENT:  # e.g. mail-parser on the calendar part
            assert line["logger"].startswith(("mailparser", "dkimpy", "py.warnings")), line
    assert "j.devries@utrecht.nl" not in proc.stderr
    assert "organiser@utrecht.nl" not in proc.stderr
