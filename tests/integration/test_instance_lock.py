"""One daemon per SQLite file (adapters/db/instance_lock.py, issue #15).

A second `reset-mailbot run` on the same SQLite file refuses to start with one line and exit
code 2; the lock dies with its holder, kill -9 included, so no stale lock is ever left.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reset_mailbot.adapters.db.instance_lock import InstanceLocked, lock_path, single_instance

HOLDER = """
import sys
from reset_mailbot.adapters.db.instance_lock import single_instance
with single_instance(sys.argv[1]):
    print("READY", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.sqlite3'}"


@pytest.fixture
def holder(url: str) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the instance lock of `url` until its stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    with proc:  # closes its pipes
        yield proc
        if proc.poll() is None:
            proc.kill()


def test_a_second_holder_is_refused_naming_the_first(
    url: str, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(InstanceLocked, match=rf"pid {holder.pid}\b.*state\.sqlite3"), \
            single_instance(url):
        pass


def test_the_lock_dies_with_its_holder_even_by_kill_9(
    url: str, holder: subprocess.Popen[str]
) -> None:
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    with single_instance(url):  # no stale lock
        pass


def test_released_at_the_end_of_the_block(url: str) -> None:
    with single_instance(url):
        pass
    with single_instance(url):
        pass


def test_postgresql_and_memory_databases_take_no_lock() -> None:
    assert lock_path("postgresql+psycopg://u@127.0.0.1:5432/db") is None
    assert lock_path("sqlite://") is None
    assert lock_path("sqlite:///:memory:") is None
    with single_instance("postgresql+psycopg://u@127.0.0.1:5432/db"), \
            single_instance("postgresql+psycopg://u@127.0.0.1:5432/db"):
        pass


def test_a_second_run_refuses_to_start_with_one_line(
    tmp_path: Path, url: str, holder: subprocess.Popen[str]
) -> None:
    config = tmp_path / "reset-mailbot.toml"
    config.write_text(
        '[mailbox]\naddress = "support@forus.test"\nhost = "127.0.0.1"\nport = 1\n'
        'security = "none"\nusername = "support@forus.test"\npassword = "x"\n'
        f'[database]\nurl = "{url}"\n'
    )
    done = subprocess.run([sys.executable, "-m", "reset_mailbot.cli", "run",
                           "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("reset-mailbot: error: another reset-mailbot run (pid "
                                  f"{holder.pid}) is using ")
    assert "Traceback" not in done.stderr
    assert "PostgreSQL" in done.stderr
