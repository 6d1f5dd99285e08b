"""One daemon per SQLite file (issue #15): a second `reset-mailbot run` on the same file refuses
to start, with a message saying why, instead of polling the same mailbox as the first. A
one-shot `run --once` takes no lock: beside a daemon it is safe (claims and unique keys, as
tests/e2e/test_executors.py's two concurrent runs show) and operators use it to act now.

The lock is an exclusive `flock` on `<database file>.lock`, held for the daemon's lifetime. The
kernel releases it when the process ends however it ends (kill -9 included), so a crashed
daemon never leaves a stale lock behind. Two daemons on one SQLite file would be safe (unique
message keys and claims), but both would fetch and decide the same mail: SQLite deployments
are single-instance by design. PostgreSQL deployments may run several (failover is issue #15's
leader lease, not this lock); for them and for in-memory databases this is a no-op.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url


class InstanceLocked(RuntimeError):
    """Another daemon holds the database file."""


def lock_path(url: str) -> Path | None:
    """`<file>.lock` for a SQLite file URL; None for other databases (and `:memory:`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database \
            or parsed.database == ":memory:":
        return None
    return Path(f"{parsed.database}.lock")


@contextmanager
def single_instance(url: str) -> Iterator[None]:
    """Hold the instance lock of the database at `url` for the block (see the module doc)."""
    path = lock_path(url)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise InstanceLocked(
                f"another reset-mailbot run (pid {holder}) is using {path.with_suffix('')}: "
                "a SQLite database serves one daemon; stop it first, or use PostgreSQL to run "
                "more than one"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
