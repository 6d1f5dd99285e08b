"""`make demo`: the whole loop against real services, started and stopped by this module.

What it does: start a throwaway Dovecot (IMAP + LMTP on loopback), an SMTP sink process, a DNS
server process publishing the demo DKIM key, and a stand-in Forus executor (HTTP) process;
deliver realistic signed messages over LMTP; run `reset-mailbot run --once` as a subprocess
(twice: the second round is the municipality answering our "incomplete" reply); print a table
of message -> outcome -> reasons -> executor call -> reply; stop everything it started, also on
Ctrl-C, SIGTERM or an error.

Why the services come from `reset_mailbot_testing` (like `structlog.testing`): they are the
project's own stand-ins, already exercised by the test suite, and the demo should show the
daemon against exactly what the tests use rather than a second copy that drifts. They need the
dev extras (aiosmtpd, dnslib); without them the demo stops with a clear message, and
`reset-mailbot demo --check-only` (the decision table over the shipped samples, no services)
still works.

The DKIM key is `demo_data/DEMO-ONLY-dkim-key.pem`: generated once and shipped so the demo
does not spend seconds finding 2048-bit primes in pure Python. It is public, hence worthless;
it is only ever published by the demo's own DNS server.

The SMTP sink and the executor run as child processes of this module (`python -m
reset_mailbot.demo_loop serve-smtp|serve-executor`), like the DNS server they exit when their
stdin closes, so even a SIGKILLed demo leaves no service behind (Dovecot, which daemonizes, is
the exception; it is stopped in `finally`).

Why one module of ~600 lines: it is a script, read top to bottom (start services, deliver,
run, print, stop); its child-process servers are in the same file so `python -m` can start
them without another entry point.
"""

from __future__ import annotations

import contextlib
import email
import email.utils
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from reset_mailbot.demo import demo_dir

SUPPORT = "support@forus.test"
SUPPORT_PASSWORD = "demo-secret"
EXECUTOR_TOKEN = "demo-token"
SELECTOR = "demo2026"
ACCOUNTS = ("piet.jansen@hotmail.com", "fam.ozturk@outlook.com")
START_TIMEOUT = 15.0
RUN_TIMEOUT = 120.0


class DemoUnavailable(RuntimeError):
    """The loop demo cannot run here (no dev extras, no Dovecot, not root)."""


def _require_testing_package() -> None:
    """The demo's services come from reset_mailbot_testing and its dev extras."""
    try:
        import aiosmtpd  # noqa: F401
        import dnslib  # noqa: F401

        import reset_mailbot_testing  # noqa: F401
    except ImportError as exc:
        raise DemoUnavailable(
            f"{exc.name} is missing: the demo needs the dev extras (`make venv` installs them)"
        ) from exc


# ----------------------------------------------------------------------------- processes


class ServiceProcess:
    """A child service that prints `READY ...` when listening and exits when stdin closes."""

    def __init__(self, name: str, argv: list[str], cwd: Path, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.log = log_path.open("w", encoding="utf-8")
        # own session: a terminal ^C reaches only us, and we stop the services in order
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, start_new_session=True,
        )
        self.ready_line = self._wait_ready()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start: {line.strip()!r}\n"
                f"{self.log_path.read_text(errors='replace')[-2000:]}"
            )
        return line.strip()

    def stop(self) -> str:
        """Close stdin (the service's cue to exit), then SIGTERM/SIGKILL; returns its stdout."""
        out = ""
        try:
            out, _ = self.proc.communicate(timeout=5)  # closes stdin first
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                out, _ = self.proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, _ = self.proc.communicate(timeout=5)
        self.log.close()
        return out or ""


def _wait_for_stdin_eof_or_signal() -> None:
    """Block until the parent closes our stdin (or dies), or SIGTERM/SIGINT arrives."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=watch, daemon=True).start()
    stop.wait()


def serve_smtp(directory: Path) -> None:
    """Child process: the harness SMTP sink writing .eml + .json into `directory`."""
    from reset_mailbot_testing.smtp_sink import SmtpSink

    sink = SmtpSink(directory)
    sink.start()
    print(f"READY 127.0.0.1 {sink.port}", flush=True)
    try:
        _wait_for_stdin_eof_or_signal()
    finally:
        sink.stop()


def serve_executor(accounts: list[str], token: str) -> None:
    """Child process: the fake Forus endpoint; prints every POST it got as JSON when stopping."""
    from reset_mailbot_testing.forus_http import FakeForus

    with FakeForus(accounts=dict.fromkeys(accounts, True), token=token) as fake:
        print(f"READY {fake.url}", flush=True)
        _wait_for_stdin_eof_or_signal()
        for post in fake.posts():
            print(json.dumps({"status": post.status, "body": post.body,
                              "idempotency_key": post.headers.get("idempotency-key")}),
                  flush=True)


# ----------------------------------------------------------------------------- messages


@dataclass
class DemoMessage:
    label: str
    raw: bytes
    round: int = 1
    message_id: str = ""
    sender: str = ""

    def __post_init__(self) -> None:
        parsed = email.message_from_bytes(self.raw)
        self.message_id = str(parsed["Message-ID"])
        self.sender = email.utils.parseaddr(str(parsed["From"]))[1]


COMPLETE_BODY = (
    "Beste Forus support,\r\n\r\n"
    "Wilt u de tweefactorauthenticatie (2FA) resetten van het account van onze inwoner?\r\n\r\n"
    "E-mailadres account: piet.jansen@hotmail.com\r\n"
    "De identiteit van de inwoner is vandaag aan de balie gecontroleerd met zijn paspoort.\r\n"
    "Hierbij geeft de gemeente Utrecht opdracht om de 2FA te resetten.\r\n"
    "Dossiernummer: 88123\r\n\r\n"
    "Met vriendelijke groet,\r\n\r\nJan de Vries\r\nConsulent Werk en Inkomen\r\n"
    "Gemeente Utrecht\r\n"
)
INCOMPLETE_BODY = (
    "Goedemiddag,\r\n\r\n"
    "Een inwoner kan niet meer inloggen omdat hij een nieuwe telefoon heeft. Kunnen jullie de\r\n"
    "2FA van zijn account fam.ozturk@outlook.com resetten?\r\n\r\n"
    "Met vriendelijke groet,\r\n\r\nSanne Elzinga\r\nTeam Inkomen\r\nGemeente Eindhoven\r\n"
)
FOLLOW_UP_BODY = (
    "Beste Forus,\r\n\r\n"
    "Excuses, hierbij de ontbrekende gegevens.\r\n"
    "E-mailadres account: fam.ozturk@outlook.com\r\n"
    "Identiteit gecontroleerd: ja, aan de balie met een identiteitskaart.\r\n"
    "De gemeente geeft opdracht tot het resetten van de 2FA: ja\r\n"
    "Zaaknummer: Z-2026-04417\r\n\r\n"
    "Met vriendelijke groet,\r\n\r\nSanne Elzinga\r\nTeam Inkomen\r\nGemeente Eindhoven\r\n"
)
OUT_OF_OFFICE_BODY = (
    "Ik ben afwezig tot en met maandag 30 november en heb beperkt toegang tot mijn e-mail.\r\n"
    "Voor dringende zaken kunt u contact opnemen met het KCC via 14 030.\r\n\r\n"
    "Met vriendelijke groet,\r\nMarieke Bakker\r\n"
)


class DemoSigner:
    """Signs with the shipped demo key (DEMO ONLY) and collects the zone that publishes it."""

    def __init__(self) -> None:
        data = demo_dir()
        self.private_pem = (data / "DEMO-ONLY-dkim-key.pem").read_bytes()
        self.txt = (data / "DEMO-ONLY-dkim-key.txt").read_text().strip()
        self.zone: dict[str, str] = {}

    def sign(self, raw: bytes, domain: str) -> bytes:
        import dkim

        self.zone[f"{SELECTOR}._domainkey.{domain}"] = self.txt
        header = dkim.sign(
            raw, SELECTOR.encode(), domain.encode(), self.private_pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=[b"from", b"to", b"subject", b"date", b"message-id",
                             b"in-reply-to", b"references", b"mime-version", b"content-type"],
        )
        return header + raw


def crlf(raw: bytes) -> bytes:
    """reset_mailbot_testing.dkim_signing.outlook_message's quoted-printable parts end lines
    in CR CR LF; an MTA (Dovecot LMTP here) normalises that, which breaks the body hash. Real
    Outlook sends plain CRLF, so normalise before signing."""
    return raw.replace(b"\r\r\n", b"\r\n")


def first_round(signer: DemoSigner) -> list[DemoMessage]:
    """The messages that arrive before the first run."""
    from reset_mailbot_testing.dkim_signing import outlook_message, plain_message

    return [
        DemoMessage("complete request (Outlook)", signer.sign(crlf(outlook_message(
            from_="Jan de Vries <j.devries@utrecht.nl>", subject="Verzoek reset 2FA inwoner",
            text=COMPLETE_BODY)), "utrecht.nl")),
        DemoMessage("incomplete request", signer.sign(plain_message(
            from_="Sanne Elzinga <s.elzinga@eindhoven.nl>", subject="2FA inwoner",
            body=INCOMPLETE_BODY), "eindhoven.nl")),
        DemoMessage("group mailbox", signer.sign(plain_message(
            from_="Gemeente Utrecht <info@utrecht.nl>", subject="Reset 2FA",
            body=COMPLETE_BODY.replace("piet.jansen@hotmail.com", "k.smit@gmail.com")),
            "utrecht.nl")),
        DemoMessage("spoof: lookalike domain", signer.sign(plain_message(
            from_="Jan de Vries <j.devries@utrecht-nl.com>", subject="Verzoek reset 2FA",
            body=COMPLETE_BODY.replace("piet.jansen@hotmail.com", "a.hacker@proton.me")),
            "utrecht-nl.com")),
        DemoMessage("spoof: unsigned", plain_message(
            from_="Jan de Vries <j.devries@utrecht.nl>", subject="Dringend: reset 2FA",
            body=COMPLETE_BODY.replace("piet.jansen@hotmail.com", "b.hacker@proton.me"))),
        DemoMessage("out-of-office", signer.sign(plain_message(
            from_="Marieke Bakker <m.bakker@eindhoven.nl>",
            subject="Automatisch antwoord: 2FA inwoner", body=OUT_OF_OFFICE_BODY,
            extra_headers=[("Auto-Submitted", "auto-replied"),
                           ("X-Auto-Response-Suppress", "All")]), "eindhoven.nl")),
    ]


def follow_up(signer: DemoSigner, original: DemoMessage, our_reply: email.message.Message
              ) -> DemoMessage:
    """Sanne answers our 'incomplete' reply: same thread (In-Reply-To our reply), same sender."""
    from reset_mailbot_testing.dkim_signing import plain_message

    reply_id = str(our_reply["Message-ID"])
    references = f"{original.message_id} {reply_id}"
    raw = plain_message(
        from_="Sanne Elzinga <s.elzinga@eindhoven.nl>", subject=f"RE: {our_reply['Subject']}",
        body=FOLLOW_UP_BODY,
        extra_headers=[("In-Reply-To", reply_id), ("References", references)],
    )
    return DemoMessage("follow-up completing it", signer.sign(raw, "eindhoven.nl"), round=2)


# ----------------------------------------------------------------------------- the run


@dataclass
class DemoEnvironment:
    """The started services and the files the daemon is pointed at."""

    state: Path
    dovecot: Any = None
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    smtp_port: int = 0
    dns_port: int = 0
    executor_url: str = ""
    executor_calls: list[dict[str, Any]] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    executor_kind: str = "http"  # http | manual | forus-db, as [executor] kind
    mariadb: Any = None
    forus_db: Any = None
    forus_events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sink_dir(self) -> Path:
        return self.state / "smtp-sink"

    @property
    def database(self) -> Path:
        return self.state / "state.sqlite3"

    @property
    def config_path(self) -> Path:
        return self.state / "reset-mailbot.toml"

    def write_config(self) -> None:
        self.config_path.write_text(
            "# written by reset_mailbot.demo_loop for one demo run\n"
            "[mailbox]\n"
            f'address = "{SUPPORT}"\nhost = "127.0.0.1"\nport = {self.dovecot.imap_port}\n'
            f'security = "none"\nusername = "{SUPPORT}"\npassword = "{SUPPORT_PASSWORD}"\n'
            "[dns]\n"
            f'nameservers = ["127.0.0.1"]\nport = {self.dns_port}\ntimeout_seconds = 2.0\n'
            "[rules]\n"
            f'municipalities = "{demo_dir() / "municipalities.yaml"}"\n'
            "[smtp]\n"
            f'host = "127.0.0.1"\nport = {self.smtp_port}\nsecurity = "none"\n'
            "timeout_seconds = 10\n"
            "[database]\n"
            f'url = "sqlite:///{self.database}"\nauto_upgrade = true\n'
            "[executor]\n" + self._executor_section() + "timeout_seconds = 10\n"
            "[log]\nlevel = \"warning\"\n"
            f'[console]\nlisten = "127.0.0.1:{free_port()}"\n'
        )

    def _executor_section(self) -> str:
        if self.executor_kind == "manual":
            return 'kind = "manual"\n'
        if self.executor_kind == "forus-db":
            return f'kind = "forus-db"\nurl = "{self.forus_db.url}"\n'
        return f'kind = "http"\nurl = "{self.executor_url}"\ntoken = "{EXECUTOR_TOKEN}"\n'

    def _start_forus_database(self) -> None:
        """A throwaway MariaDB with the Forus tables; each demo account has an active 2FA."""
        from reset_mailbot_testing.mariadb import MariaDbServer

        self.mariadb = MariaDbServer(self.state / "mariadb")
        self.mariadb.start()
        self.pids["mariadb"] = self.mariadb.process.pid if self.mariadb.process else 0
        self.forus_db = self.mariadb.create_forus_database()
        for account in ACCOUNTS:
            identity = self.forus_db.add_identity(account)
            self.forus_db.add_2fa(identity)

    def start(self, zone: dict[str, str]) -> None:
        from reset_mailbot_testing.dovecot import Dovecot

        self.sink_dir.mkdir()
        (self.state / "zone.json").write_text(json.dumps(zone, indent=1))
        (self.state / "faults.json").write_text('{"servfail": [], "timeout": []}')
        self.dovecot = Dovecot(self.state / "dovecot")
        self.dovecot.start()
        self.dovecot.add_user(SUPPORT, SUPPORT_PASSWORD)
        deadline = time.monotonic() + 5
        while self.dovecot.master_pid() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the master writes its pid file just after it starts listening
        self.pids["dovecot"] = self.dovecot.master_pid() or 0
        python = sys.executable
        dns = self._spawn("dns", [
            python, "-m", "reset_mailbot_testing.dns_server",
            "--zone", str(self.state / "zone.json"),
            "--faults", str(self.state / "faults.json"), "--port", "0",
            "--address", "127.0.0.1", "--exit-on-stdin-eof",
        ])
        self.dns_port = int(dns.ready_line.split()[2])
        smtp = self._spawn("smtp", [python, "-m", "reset_mailbot.demo_loop", "serve-smtp",
                                    str(self.sink_dir)])
        self.smtp_port = int(smtp.ready_line.split()[2])
        if self.executor_kind == "http":
            executor = self._spawn("executor", [
                python, "-m", "reset_mailbot.demo_loop", "serve-executor", "--token",
                EXECUTOR_TOKEN, *ACCOUNTS,
            ])
            self.executor_url = executor.ready_line.split()[1]
        elif self.executor_kind == "forus-db":
            self._start_forus_database()
        self.write_config()

    def _spawn(self, name: str, argv: list[str]) -> ServiceProcess:
        service = ServiceProcess(name, argv, self.state, self.state / f"{name}.log")
        self.services[name] = service
        self.pids[name] = service.pid
        return service

    def stop(self) -> None:
        """Stop everything started, newest first; each stop is attempted even if one fails."""
        for name in ("executor", "smtp", "dns"):
            service = self.services.pop(name, None)
            if service is None:
                continue
            with contextlib.suppress(Exception):
                out = service.stop()
                if name == "executor":
                    self.executor_calls = [json.loads(line) for line in out.splitlines()
                                           if line.startswith("{")]
        if self.forus_db is not None:
            with contextlib.suppress(Exception):
                self.forus_events = self.forus_db.rows("event_logs")
            with contextlib.suppress(Exception):
                self.forus_db.close()
            self.forus_db = None
        if self.mariadb is not None:
            self.mariadb.stop()
            self.mariadb = None
        if self.dovecot is not None:
            self.dovecot.stop()
            self.dovecot = None

    def deliver(self, message: DemoMessage) -> None:
        self.dovecot.deliver(message.raw, rcpt=SUPPORT, mail_from=message.sender or
                             "unknown@example.test")

    def run_daemon(self) -> str:
        """`reset-mailbot run --once` as its own process, exactly as an operator runs it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
        proc = subprocess.run(
            [sys.executable, "-m", "reset_mailbot.cli", "run", "--once", "--config",
             str(self.config_path)],
            capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT, check=False,
            start_new_session=True,
        )
        with (self.state / "daemon.log").open("a") as log:
            log.write(proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(
                f"reset-mailbot run --once exited {proc.returncode}:\n{proc.stderr[-3000:]}"
            )
        return proc.stdout.strip()

    def replies(self) -> list[tuple[dict[str, Any], email.message.Message]]:
        out = []
        for meta_path in sorted(self.sink_dir.glob("*.json")):
            meta = json.loads(meta_path.read_text())
            raw = meta_path.with_suffix(".eml").read_bytes()
            out.append((meta, email.message_from_bytes(raw)))
        return out


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like ^C while services run, so `finally` stops them."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Row:
    message: DemoMessage
    outcome: str
    reasons: str
    executor: str
    reply: str


def collect_rows(env: DemoEnvironment, messages: list[DemoMessage]) -> list[Row]:
    """Join what the database, the executor and the SMTP sink saw, per delivered message."""
    db = sqlite3.connect(env.database)
    try:
        decided = {
            mid: (outcome, json.loads(reasons or "[]"), request_id)
            for mid, outcome, reasons, request_id in db.execute(
                "select message_id, outcome, reasons, request_id from messages")
        }
        latest_of_request = {
            request_id: mid for request_id, mid in db.execute(
                "select request_id, message_id from messages where request_id is not null "
                "order by id")
        }
        states = dict(db.execute("select id, state from requests"))
    finally:
        db.close()
    calls: dict[str, list[str]] = {}
    for call in env.executor_calls:
        body = call.get("body") or {}
        answer = "reset" if call["status"] == 200 else f"HTTP {call['status']}"
        calls.setdefault(str(body.get("request_id")), []).append(
            f"POST {body.get('email') or body.get('account_email')} -> {call['status']} {answer}"
        )
    for event in env.forus_events:  # forus-db: the audit row the executor wrote per reset
        data = event.get("data")
        data = json.loads(data) if isinstance(data, str | bytes) else (data or {})
        calls.setdefault(str(data.get("request_id")), []).append(
            f"forus-db: 2FA deactivated, event_logs #{event['id']}")
    replies: dict[str, list[str]] = {}
    for meta, reply in env.replies():
        to = ", ".join(meta.get("rcpt_tos", []))
        replies.setdefault(str(reply["In-Reply-To"]), []).append(
            f"{reply['X-Reset-Mailbot']} -> {to}")
    rows = []
    for message in messages:
        outcome, reasons, request_id = decided.get(message.message_id, ("(not decided)", [], None))
        executor = "-"
        if request_id is not None and latest_of_request.get(request_id) == message.message_id:
            waiting = states.get(request_id, "")
            executor = "; ".join(calls.get(request_id, [])) or (
                waiting if waiting.startswith("awaiting") else "-")
        rows.append(Row(message, outcome or "-", ", ".join(reasons) or "-", executor,
                        "; ".join(replies.get(message.message_id, [])) or "none"))
    return rows


def print_table(console: Console, rows: list[Row]) -> None:
    table = Table(title="reset-mailbot run --once against Dovecot, SMTP, DNS and an executor")
    for column in ("#", "message", "from", "outcome", "reasons", "executor call", "reply sent"):
        table.add_column(column, overflow="fold")
    for number, row in enumerate(rows, 1):
        table.add_row(str(number), f"{row.message.label} (run {row.message.round})",
                      row.message.sender or "-", row.outcome, row.reasons, row.executor,
                      row.reply)
    console.print(table)


def free_port(preferred: int = 8080) -> int:
    """8080 when it is free (the README's URL), else any free loopback port."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


def serve_demo_console(env: DemoEnvironment, console: Console) -> None:
    """The support console on the demo's database, demo login, loopback; until Ctrl-C or
    SIGTERM (issue #17: a newcomer sees the result in a browser)."""
    from reset_mailbot import bootstrap
    from reset_mailbot.config import load_config
    from reset_mailbot.console.server import make_server

    config = load_config(env.config_path)
    store = bootstrap.build_store(config)
    server = make_server(config, store, demo=True)
    from reset_mailbot.config import ConsoleSettings

    console.print(f"console: http://{config.get(ConsoleSettings).listen}/requests  (demo login: "
                  "type any address, pick a role; Ctrl-C stops the demo)")
    sys.stdout.flush()
    try:
        server.run()  # returns on Ctrl-C / SIGTERM, then re-raises the signal it captured
    except KeyboardInterrupt:
        pass  # the way a person ends the demo: the services stop and the state goes
    finally:
        store.engine.dispose()


def run_loop_demo(
    console: Console | None = None, keep: bool = False, executor: str = "http",
    serve_console: bool = False,
) -> None:
    """Start the services, deliver, run the daemon twice, print the table, stop everything
    (with `serve_console`: serve the console on the result first, until interrupted)."""
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=200)  # piped (tests, CI logs): do not fold to 80 columns
    _require_testing_package()
    from reset_mailbot_testing.dovecot import DovecotError

    started = time.monotonic()
    state = Path(f"/tmp/reset-mailbot-demo-{os.getpid()}")
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)  # Dovecot's uid-5000 mail processes must enter it
    console.print(f"state: {state}")
    env = DemoEnvironment(state, executor_kind=executor)
    ok = False
    try:
        with _terminate_as_interrupt():
            signer = DemoSigner()
            messages = first_round(signer)
            # the follow-up is signed later; its domain is already in the zone
            try:
                env.start(signer.zone)
            except DovecotError as exc:
                raise DemoUnavailable(str(exc)) from exc
            console.print("services: " + ", ".join(f"{k} pid {v}" for k, v in env.pids.items()))
            for message in messages:
                env.deliver(message)
            console.print(f"run 1: delivered {len(messages)} messages; {env.run_daemon()}")
            incomplete = messages[1]
            our_reply = next((r for _, r in env.replies()
                              if r["In-Reply-To"] == incomplete.message_id), None)
            if our_reply is not None:
                second = follow_up(signer, incomplete, our_reply)
                messages.append(second)
                env.deliver(second)
                console.print(f"run 2: delivered 1 message; {env.run_daemon()}")
            else:
                console.print("[red]no 'incomplete' reply was sent: no follow-up round[/red]")
            env.stop()  # the executor reports its calls when it stops
            print_table(console, collect_rows(env, messages))
            if serve_console:
                serve_demo_console(env, console)
            ok = True
    finally:
        env.stop()
        console.print("stopped: " + ", ".join(f"{k} pid {v}" for k, v in env.pids.items()))
        if ok and not keep:
            shutil.rmtree(state, ignore_errors=True)
        else:
            console.print(f"logs kept in {state} (daemon.log, dovecot/dovecot.log, *.log)")
    console.print(f"demo finished in {time.monotonic() - started:.1f} s")


def main(argv: list[str]) -> None:
    """Entry point of the child service processes (not a user command)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m reset_mailbot.demo_loop")
    sub = parser.add_subparsers(dest="command", required=True)
    smtp = sub.add_parser("serve-smtp")
    smtp.add_argument("directory", type=Path)
    executor = sub.add_parser("serve-executor")
    executor.add_argument("--token", default=EXECUTOR_TOKEN)
    executor.add_argument("accounts", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "serve-smtp":
        serve_smtp(args.directory)
    else:
        serve_executor(args.accounts, args.token)


if __name__ == "__main__":
    main(sys.argv[1:])
