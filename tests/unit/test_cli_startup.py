"""`check` starts without the parts it does not use (issue #14, item 2).

Loading the CLI, and deciding a message with `check`, must not import the database layer,
Alembic, the scheduler, the HTTP server or the executors: each of them costs start-up time
(measured with `python -X importtime` and `time reset-mailbot check FILE`; the figures are in
the README's Measuring section).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.examples import EXAMPLES

HEAVY = ("sqlalchemy", "alembic", "apscheduler", "prometheus_client", "imapclient", "psycopg",
         "pymysql", "reset_mailbot.adapters.db", "reset_mailbot.service")

PROBE = """
import json, sys
argv = sys.argv[1:]
from reset_mailbot.cli import app
if argv:
    try:
        app(argv, standalone_mode=False)
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith({heavy!r}))))
"""


def loaded_after(*argv: str) -> list[str]:
    code = PROBE.replace("{heavy!r}", repr(HEAVY))
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=60, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_the_command_line_imports_nothing_heavy() -> None:
    assert loaded_after() == []


def test_check_decides_without_the_database_or_the_daemon() -> None:
    assert loaded_after("check", "--json", str(EXAMPLES / "001-utrecht_basic.eml")) == []
