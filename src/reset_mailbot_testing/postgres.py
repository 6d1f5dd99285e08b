"""A throwaway PostgreSQL cluster from the Debian `postgresql` package, for tests and benchmarks.

initdb + pg_ctl (run as user `postgres` when we are root), on 127.0.0.1 and a free port, trust
auth, durability off (fsync=off): the cluster lives for one test session or one benchmark run.
`tests/harness/db_fixtures.py` wraps it in pytest fixtures; `bench/daemon_drain.py` starts one
directly.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psycopg

HOST = "127.0.0.1"
SUPERUSER = "postgres"


class PostgresError(RuntimeError):
    """PostgreSQL is missing or did not start."""


def find_bindir() -> Path:
    """Directory with initdb/pg_ctl: `pg_config --bindir`, else the newest /usr/lib/postgresql/*."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        candidate = Path(result.stdout.strip())
        if result.returncode == 0 and (candidate / "initdb").exists():
            return candidate
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    raise PostgresError(
        "PostgreSQL server binaries not found (no initdb under pg_config --bindir or "
        "/usr/lib/postgresql/*/bin); run `make test-deps` to install the `postgresql` package"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """A private cluster under `root` (data, socket dir, log), owned by the run user."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.socket_dir = root / "socket"
        self.log_path = root / "postgres.log"
        self.host = HOST
        self.port = 0
        self.bindir: Path | None = None
        self.start_seconds = 0.0
        self.stop_seconds = 0.0
        # As root, run the server as `postgres` (PostgreSQL refuses to run as root).
        self._prefix: list[str] = []
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam(SUPERUSER)
            except KeyError as exc:
                raise PostgresError("user `postgres` missing: install `postgresql`") from exc
            self._prefix = ["runuser", "-u", SUPERUSER, "--"]
            self._owner = (pw.pw_uid, pw.pw_gid)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{name}"

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={dbname}"

    def _run(self, *args: str) -> None:
        """Run a server tool with output to a file (pg_ctl's child would hold a pipe open)."""
        out_path = self.root / "tool.log"
        with out_path.open("ab") as out:
            result = subprocess.run(
                [*self._prefix, *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                check=False, cwd=self.root,
            )
        if result.returncode != 0:
            log = ""
            if self.log_path.exists():
                log = self.log_path.read_text(errors="replace")[-3000:]
            raise PostgresError(
                f"{' '.join(args)} failed ({result.returncode}):\n"
                f"{out_path.read_text(errors='replace')[-3000:]}\n{log}"
            )

    def start(self) -> None:
        started = time.monotonic()
        self.bindir = find_bindir()
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(mode=0o755, parents=True)
        os.chmod(self.root, 0o755)
        self.socket_dir.mkdir(mode=0o755)
        if self._owner is not None:
            for path in (self.root, self.socket_dir):
                os.chown(path, *self._owner)
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        self.port = free_port()
        options = " ".join([
            f"-h {self.host}", f"-p {self.port}", f"-k {self.socket_dir}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            "-c max_connections=200",
        ])
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_path),
            "-o", options, "-w", "-t", "30", "start",
        )
        self.start_seconds = time.monotonic() - started

    def stop(self) -> None:
        if self.bindir is None or not (self.data_dir / "postmaster.pid").exists():
            return
        started = time.monotonic()
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"
        )
        self.stop_seconds = time.monotonic() - started

    def create_database(self) -> str:
        """CREATE DATABASE t_<random>; returns its name."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
