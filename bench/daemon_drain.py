"""The daemon against real services: drain a 1,000-message backlog, then IDLE latency.

    .venv/bin/python bench/daemon_drain.py [--messages 1000] [--trickle 30]
                                           [--database both|sqlite|postgresql] [--once]

Starts (as root, from the checkout) a private Dovecot, the harness DNS server publishing the
DEMO-ONLY DKIM key, an SMTP sink process and the fake Forus executor process (the services of
`make demo`, reset_mailbot.demo_loop), and for PostgreSQL a private cluster. Then, for each
database (both by default, one after the other, fresh services each):

1. Drain (issue #14, item 3): APPENDs N mixed, DKIM-signed messages to INBOX (70 % complete,
   the rest incomplete, group mailbox, unsigned, out-of-office; small plain text, Outlook HTML
   with padding, some with a PDF attachment), then starts `reset-mailbot run` (IDLE on, poll
   every 30 s, the HTTP executor answering at once) and samples the database every 0.2 s.
   Printed, in seconds from the daemon's start: every message decided and moved, the last
   reset executed, the last reply sent (target: all within 60 s); the daemon's peak RSS
   (target < 200 MB) and CPU. Checked after SIGTERM: nothing left undecided, unsent or
   unexecuted, every reply in the sink. `--once` measures `run --once` instead (the older
   figure, messages per second).
2. Trickle: `reset-mailbot run` again, single messages delivered over LMTP every 0.5-1 s;
   latency = the sink's receive time of the reply minus the time LMTP delivery returned,
   per kind (target p95: incomplete < 1 s, complete < 3 s including the executor call).
   Dovecot batches IDLE notifications for ~0.5 s, so that is the floor.

`--repeat N` drains N times (fresh services each time). `--profile FILE` / `--py-spy FILE`
profile a `--once` drain. The package is byte-compiled first, as an installed one is.
"""

from __future__ import annotations

import argparse
import compileall
import email
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import reset_mailbot
from reset_mailbot.demo_loop import (
    COMPLETE_BODY,
    INCOMPLETE_BODY,
    OUT_OF_OFFICE_BODY,
    SELECTOR,
    DemoSigner,
    ServiceProcess,
    crlf,
    demo_dir,
)
from reset_mailbot_testing.dkim_signing import outlook_message, plain_message
from reset_mailbot_testing.dovecot import Dovecot

ROOT = Path(__file__).resolve().parent.parent

SUPPORT = "support@forus.test"
PASSWORD = "bench-secret"
TOKEN = "bench-token"
DOMAINS = ("utrecht.nl", "nijmegen.nl", "s-hertogenbosch.nl")
GROUP_LOCALS = ("team-inkomen-", "klantcontact", "info", "helpdesk", "afdeling-wmo-")
CLI = [sys.executable, "-m", "reset_mailbot.cli"]


# ----------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class Spec:
    kind: str
    index: int
    domain: str
    layout: str  # plain | outlook | attachment


def plan(n: int, seed: int = 4) -> list[Spec]:
    """A fixed, shuffled mix (issue #14): 70% complete, 12% incomplete, 5% group mailbox,
    5% unsigned, 8% out-of-office."""
    rng = random.Random(seed)
    kinds = (["complete"] * 70 + ["incomplete"] * 12 + ["group"] * 5 + ["unsigned"] * 5
             + ["ooo"] * 8)
    specs = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        roll = rng.random()
        layout = "plain" if roll < 0.5 else ("outlook" if roll < 0.93 else "attachment")
        specs.append(Spec(kind, i, DOMAINS[i % len(DOMAINS)], layout))
    rng.shuffle(specs)
    return specs


def account(index: int) -> str:
    return f"inwoner{index}@hotmail.com"


def build(spec: Spec, signer: DemoSigner, tag: str = "") -> bytes:
    """One realistic message; every sender is distinct (the reply limit is per sender)."""
    rng = random.Random(spec.index)
    name = f"Medewerker {spec.index}{tag}"
    local = f"medewerker{spec.index}{tag}"
    if spec.kind == "group":
        local = f"{GROUP_LOCALS[spec.index % len(GROUP_LOCALS)]}{spec.index}{tag}"
        name = "Gemeente"
    sender = f"{name} <{local}@{spec.domain}>"
    extra: list[tuple[str, str]] = []
    subject = f"Verzoek reset 2FA {spec.index}{tag}"
    if spec.kind in ("complete", "group", "unsigned"):
        body = COMPLETE_BODY.replace("piet.jansen@hotmail.com", account(spec.index))
    elif spec.kind == "incomplete":
        body = INCOMPLETE_BODY.replace("fam.ozturk@outlook.com", account(spec.index))
    else:
        body = OUT_OF_OFFICE_BODY
        subject = f"Automatisch antwoord: {subject}"
        extra = [("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")]
    if spec.layout == "plain":
        raw = plain_message(from_=sender, subject=subject, body=body, extra_headers=extra)
    else:
        attachment = rng.randbytes(rng.randint(60_000, 400_000)) \
            if spec.layout == "attachment" else None
        raw = crlf(outlook_message(
            from_=sender, subject=subject, text=body, extra_headers=extra,
            filler_paragraphs=rng.randint(0, 40), attachment=attachment,
        ))
    return raw if spec.kind == "unsigned" else signer.sign(raw, spec.domain)


def _build_many(args: tuple[list[Spec], str]) -> list[bytes]:
    specs, tag = args
    signer = DemoSigner()
    return [build(spec, signer, tag) for spec in specs]


def build_all(specs: list[Spec], tag: str = "", workers: int = 2) -> list[bytes]:
    """Signing 2048-bit RSA in pure Python takes ~10 ms a message: use both cores."""
    chunks = [specs[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_build_many, [(chunk, tag) for chunk in chunks]))
    order = {id(s): (w, k) for w, chunk in enumerate(chunks) for k, s in enumerate(chunk)}
    return [parts[order[id(s)][0]][order[id(s)][1]] for s in specs]


# ----------------------------------------------------------------------------- services


class Bench:
    def __init__(self, state: Path, database: str) -> None:
        self.state = state
        self.database_kind = database
        self.dovecot = Dovecot(state / "dovecot")
        self.services: list[ServiceProcess] = []
        self.postgres = None
        self.sink_dir = state / "smtp-sink"
        self.database_url = f"sqlite:///{state / 'state.sqlite3'}"
        self.dns_port = self.smtp_port = 0
        self.executor_url = ""

    def start(self, accounts: list[str]) -> None:
        signer = DemoSigner()
        zone = {f"demo2026._domainkey.{d}": signer.txt for d in DOMAINS}
        (self.state / "zone.json").write_text(json.dumps(zone))
        (self.state / "faults.json").write_text('{"servfail": [], "timeout": []}')
        self.sink_dir.mkdir()
        self.dovecot.start()
        self.dovecot.add_user(SUPPORT, PASSWORD)
        py = sys.executable
        dns = self._spawn("dns", [py, "-m", "reset_mailbot_testing.dns_server", "--zone",
                                  str(self.state / "zone.json"), "--faults",
                                  str(self.state / "faults.json"), "--port", "0",
                                  "--address", "127.0.0.1", "--exit-on-stdin-eof"])
        self.dns_port = int(dns.ready_line.split()[2])
        smtp = self._spawn("smtp", [py, "-m", "reset_mailbot.demo_loop", "serve-smtp",
                                    str(self.sink_dir)])
        self.smtp_port = int(smtp.ready_line.split()[2])
        accounts_file = self.state / "accounts.txt"
        accounts_file.write_text("\n".join(accounts))
        executor = self._spawn("executor", [py, "-m", "reset_mailbot.demo_loop",
                                            "serve-executor", "--token", TOKEN, *accounts])
        self.executor_url = executor.ready_line.split()[1]
        if self.database_kind == "postgresql":
            from reset_mailbot_testing.postgres import PostgresCluster

            self.postgres = PostgresCluster(self.state / "postgres")
            self.postgres.start()
            self.database_url = self.postgres.database_url(self.postgres.create_database())

    def _spawn(self, name: str, argv: list[str]) -> ServiceProcess:
        service = ServiceProcess(name, argv, ROOT, self.state / f"{name}.log")
        self.services.append(service)
        return service

    def stop(self) -> int:
        """Stop everything; returns how many POSTs the executor saw."""
        posts = 0
        for service in reversed(self.services):
            out = service.stop()
            if service.name == "executor":
                posts = sum(1 for line in out.splitlines() if line.startswith("{"))
        self.services.clear()
        if self.postgres is not None:
            self.postgres.stop()
        self.dovecot.stop()
        return posts

    @property
    def config_path(self) -> Path:
        return self.state / "reset-mailbot.toml"

    def write_config(self) -> None:
        self.config_path.write_text(
            "[mailbox]\n"
            f'address = "{SUPPORT}"\nhost = "127.0.0.1"\nport = {self.dovecot.imap_port}\n'
            f'security = "none"\nusername = "{SUPPORT}"\npassword = "{PASSWORD}"\n'
            "poll_interval_seconds = 30\nidle = true\n"
            "[dns]\n"
            f'nameservers = ["127.0.0.1"]\nport = {self.dns_port}\ntimeout_seconds = 2.0\n'
            "[rules]\n"
            f'municipalities = "{demo_dir() / "municipalities.yaml"}"\n'
            "[smtp]\n"
            f'host = "127.0.0.1"\nport = {self.smtp_port}\nsecurity = "none"\n'
            "timeout_seconds = 10\n"
            "[replies]\nmax_per_sender_per_hour = 100\n"
            "[database]\n"
            f'url = "{self.database_url}"\n'
            "[executor]\n"
            f'kind = "http"\nurl = "{self.executor_url}"\ntoken = "{TOKEN}"\n'
            "timeout_seconds = 10\n"
            # the daily safety limit (10) would hold most of the backlog for approval
            "max_resets_per_municipality_per_day = 100000\n"
            '[log]\nlevel = "warning"\n'
        )

    def cli(self, *args: str) -> None:
        subprocess.run([*CLI, *args, "--config", str(self.config_path)], check=True,
                       capture_output=True, text=True)

    def sql(self, query: str) -> list[tuple[object, ...]]:
        if self.database_url.startswith("sqlite:///"):
            db = sqlite3.connect(self.database_url.removeprefix("sqlite:///"))
            try:
                return list(db.execute(query))
            finally:
                db.close()
        import psycopg

        conninfo = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo) as conn:
            return [tuple(r) for r in conn.execute(query).fetchall()]

    def sink_replies(self) -> list[tuple[float, str]]:
        """(receive time, In-Reply-To) of every reply in the sink."""
        out = []
        for meta_path in self.sink_dir.glob("*.json"):
            meta = json.loads(meta_path.read_text())
            head = meta_path.with_suffix(".eml").read_bytes().split(b"\r\n\r\n", 1)[0]
            msg = email.message_from_bytes(head + b"\r\n\r\n")
            out.append((float(meta["received_at"]), str(msg["In-Reply-To"])))
        return out


# ----------------------------------------------------------------------------- phases


def drain(bench: Bench, raws: list[bytes], profile: str | None, py_spy: str | None = None
          ) -> dict[str, object]:
    client = bench.dovecot.client(SUPPORT)
    started = time.monotonic()
    try:
        for raw in raws:
            client.append("INBOX", raw)
    finally:
        client.logout()
    append_seconds = time.monotonic() - started
    size = sum(len(r) for r in raws)
    print(f"appended {len(raws)} messages ({size / 1e6:.1f} MB) in {append_seconds:.1f} s")

    argv = [*CLI, "run", "--once", "--config", str(bench.config_path)]
    if profile:
        argv = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "reset_mailbot.cli",
                "run", "--once", "--config", str(bench.config_path)]
    if py_spy:  # peak RSS is then py-spy's, not the daemon's
        argv = [shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")),
                "record", "--idle", "--threads", "--format", "raw", "--rate", "200", "-o",
                py_spy, "--", *argv]
    log = (bench.state / "drain.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, text=True)
    _, status, rusage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read() if proc.stdout else ""
    log.close()
    print(f"run --once: exit {proc.returncode} in {elapsed:.2f} s: {out.strip()}")
    if proc.returncode != 0:
        print((bench.state / "drain.log").read_text()[-3000:])
    return {"seconds": elapsed, "peak_rss_mb": rusage.ru_maxrss / 1024,
            "cpu_seconds": rusage.ru_utime + rusage.ru_stime, "exit": proc.returncode}


def drain_running(bench: Bench, raws: list[bytes], complete: int,
                  limit_seconds: float = 300.0) -> dict[str, object]:
    """The backlog is in the inbox when `reset-mailbot run` starts (IDLE on, poll every 30 s):
    seconds from the daemon's start until the last message is decided and moved, the last
    reset executed and the last reply sent (sampled every 0.2 s from the database)."""
    client = bench.dovecot.client(SUPPORT)
    try:
        for raw in raws:
            client.append("INBOX", raw)
    finally:
        client.logout()
    n = len(raws)
    log = (bench.state / "drain.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen([*CLI, "run", "--config", str(bench.config_path)],
                            stdout=subprocess.DEVNULL, stderr=log)
    marks: dict[str, float] = {}
    ended: tuple[int, int, object] | None = None  # (pid, status, rusage) once it exited
    try:
        while time.monotonic() - started < limit_seconds:
            ended = os.wait4(proc.pid, os.WNOHANG)
            if ended[0] != 0:
                break  # the daemon died: the checks below say what was left
            ended = None
            time.sleep(0.2)
            now = time.monotonic() - started
            filed = bench.sql("select count(*) from messages where folder_moved_to is not null")
            if "intake" not in marks and int(filed[0][0]) >= n:  # type: ignore[call-overload]
                marks["intake"] = now
            done = bench.sql("select count(*) from executions "
                             "where state in ('succeeded', 'failed')")
            if "resets" not in marks and int(done[0][0]) >= complete:  # type: ignore[call-overload]
                marks["resets"] = now
            if "intake" in marks and "resets" in marks:
                waiting = bench.sql("select count(*) from outbox where state <> 'sent'")
                if int(waiting[0][0]) == 0:  # type: ignore[call-overload]
                    marks["replies"] = now
                    break
    finally:
        if ended is None:
            proc.send_signal(signal.SIGTERM)
            ended = os.wait4(proc.pid, 0)
        _, status, rusage = ended
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.close()
    if proc.returncode != 0:
        print((bench.state / "drain.log").read_text()[-3000:])
    return {"marks": marks, "peak_rss_mb": rusage.ru_maxrss / 1024,
            "cpu_seconds": rusage.ru_utime + rusage.ru_stime, "exit": proc.returncode,
            "seconds": marks.get("replies", float("nan"))}


def check_drained(bench: Bench, n: int) -> list[str]:
    """What is not finished after the drain (empty when everything is)."""
    problems = []
    decided = bench.sql("select outcome, count(*) from messages group by outcome")
    total = sum(int(c) for _, c in decided)  # type: ignore[call-overload]
    print("outcomes: " + ", ".join(f"{o} {c}" for o, c in sorted(decided, key=str)))
    if total != n:
        problems.append(f"{n - total} messages not decided")
    deferred = dict(decided).get("deferred")  # type: ignore[arg-type]
    if deferred:
        problems.append(f"{deferred} deferred")
    inbox = bench.dovecot.client(SUPPORT)
    try:
        inbox.select_folder("INBOX", readonly=True)
        left = len(inbox.search("ALL"))
    finally:
        inbox.logout()
    if left:
        problems.append(f"{left} messages still in INBOX")
    outbox = dict(bench.sql("select state, count(*) from outbox group by state"))  # type: ignore[arg-type]
    print(f"outbox: {outbox}")
    sink = len(list(bench.sink_dir.glob("*.json")))
    if set(outbox) - {"sent"}:
        problems.append(f"outbox not drained: {outbox}")
    if sink != outbox.get("sent", 0):
        problems.append(f"sink has {sink} replies, outbox says {outbox.get('sent', 0)} sent")
    executions = dict(bench.sql("select state, count(*) from executions group by state"))  # type: ignore[arg-type]
    print(f"executions: {executions}")
    if set(executions) - {"succeeded", "done", "executed", "failed"}:
        problems.append(f"executions not final: {executions}")
    return problems


def trickle(bench: Bench, signer: DemoSigner, count: int) -> list[tuple[str, float]]:
    """Deliver `count` single messages into a running daemon; (kind, latency in seconds)."""
    log = (bench.state / "daemon.log").open("w")
    daemon = subprocess.Popen([*CLI, "run", "--config", str(bench.config_path)],
                              stdout=subprocess.DEVNULL, stderr=log)
    rng = random.Random(7)
    arrivals: dict[str, float] = {}
    kinds: dict[str, str] = {}
    try:
        time.sleep(3.0)  # first poll done, IDLE watching
        for i in range(count):
            kind = "incomplete" if i % 2 else "complete"
            spec = Spec(kind, 100_000 + i, DOMAINS[i % len(DOMAINS)], "plain" if i % 3 else
                        "outlook")
            raw = build(spec, signer, tag="t")
            msgid = str(email.message_from_bytes(raw)["Message-ID"])
            bench.dovecot.deliver(raw, rcpt=SUPPORT)
            arrivals[msgid] = time.time()
            kinds[msgid] = kind
            time.sleep(rng.uniform(0.5, 1.0))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answered = {irt for _, irt in bench.sink_replies()}
            if set(arrivals) <= answered:
                break
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
    first_reply: dict[str, float] = {}
    for at, irt in bench.sink_replies():
        if irt in arrivals:
            first_reply[irt] = min(at, first_reply.get(irt, at))
    missing = len(arrivals) - len(first_reply)
    if missing:
        print(f"trickle: {missing} of {len(arrivals)} messages got no reply within 20 s")
    return sorted((kinds[m], first_reply[m] - arrivals[m]) for m in first_reply)


def calibrate(raws: list[bytes], count: int = 200) -> float:
    """CPU ms per message of parse + decide in this process (keys from memory, no I/O).

    On the 2-core reference machine the same code measured 2.3 ms when the host was quiet and
    3.5-4.2 ms when it was not (the drain rate moved with it: ~58 vs ~41 messages/s), so
    read the two figures together.
    """
    from reset_mailbot.domain.decision import DecisionContext, decide_parsed
    from reset_mailbot.domain.message import parse_message
    from reset_mailbot.rules_loader import load_rules

    txt = DemoSigner().txt.encode()
    zone = {f"{SELECTOR}._domainkey.{d}": txt for d in DOMAINS}
    context = DecisionContext(rules=load_rules(), key_lookup=lambda n: zone.get(n.rstrip(".")),
                              support_address=SUPPORT)
    sample = raws[:count]
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for raw in sample:
            decide_parsed(parse_message(raw), context, time.time())
        best = min(best, time.process_time() - started)
    return best / len(sample) * 1000


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] \
        if len(values) > 1 else values[0]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so `finally` stops the services


def run_once_with_services(
    args: argparse.Namespace, database: str, specs: list[Spec], raws: list[bytes],
    trickle_count: int,
) -> tuple[dict[str, object], list[str], list[tuple[str, float]], int]:
    """Fresh services and state, one drain (and the trickle, if asked); stops everything."""
    state = Path(f"/tmp/reset-mailbot-bench-{os.getpid()}")
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    accounts = [account(s.index) for s in specs if s.kind == "complete"]
    accounts += [account(100_000 + i) for i in range(0, trickle_count, 2)]
    bench = Bench(state, database)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    failed = True
    problems: list[str] = []
    try:
        bench.start(accounts)
        bench.write_config()
        bench.cli("db", "upgrade")
        if args.once:
            result = drain(bench, raws, args.profile, args.py_spy)
        else:
            result = drain_running(bench, raws, sum(s.kind == "complete" for s in specs))
        problems = check_drained(bench, args.messages)
        latencies = trickle(bench, DemoSigner(), trickle_count) if trickle_count else []
        posts = bench.stop()
        failed = False
    finally:
        if failed:
            bench.stop()
        signal.signal(signal.SIGTERM, previous)
        if not args.keep and not failed and not problems:
            shutil.rmtree(state, ignore_errors=True)
        else:
            print(f"state kept in {state}")
    return result, problems, latencies, posts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--trickle", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=1,
                        help="drain this many times, fresh services and state each time (the "
                             "trickle runs after the last); prints every run and the median")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--once", action="store_true",
                        help="drain with `run --once` (the old measure) instead of `run`")
    parser.add_argument("--profile", help="cProfile output file for the drain run")
    parser.add_argument("--py-spy", dest="py_spy",
                        help="py-spy (must be installed) raw output file for the drain run, "
                             "idle frames included: shows where the wall time goes")
    parser.add_argument("--keep", action="store_true", help="keep the state dir")
    args = parser.parse_args()

    # Byte-compiled as `pip install` leaves an installed package; a checkout run with
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module at each daemon start.
    compileall.compile_dir(str(Path(reset_mailbot.__file__).parent), quiet=1)
    specs = plan(args.messages)
    started = time.monotonic()
    raws = build_all(specs)
    print(f"built and signed {len(raws)} messages in {time.monotonic() - started:.1f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(Counter(s.kind for s in specs).items()))
          + "; layouts " + ", ".join(f"{k} {v}" for k, v in
                                     sorted(Counter(s.layout for s in specs).items())))
    print(f"calibration: parse + decide {calibrate(raws):.2f} ms CPU per message in-process "
          "(2.3 on the quiet 2-core reference machine)")
    problems: list[str] = []
    exit_codes: list[object] = []
    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    summary: list[str] = []
    for database in databases:
        rates: list[float] = []
        latencies: list[tuple[str, float]] = []
        posts = 0
        for run in range(args.repeat):
            last = run == args.repeat - 1
            result, run_problems, latencies, posts = run_once_with_services(
                args, database, specs, raws, args.trickle if last else 0
            )
            problems += [f"{database}: {p}" for p in run_problems]
            exit_codes.append(result["exit"])
            print()
            print(f"database: {database}; executor POSTs seen: {posts}")
            if args.once:
                rate = args.messages / float(result["seconds"])  # type: ignore[arg-type]
                rates.append(rate)
                print(f"run --once: {args.messages} messages in {result['seconds']:.2f} s = "
                      f"{rate:.1f} messages/s; daemon CPU {result['cpu_seconds']:.1f} s")
            else:
                marks: dict[str, float] = result["marks"]  # type: ignore[assignment]
                line = (f"{database:<10} run: decided and moved {marks.get('intake', -1):6.1f} s"
                        f" ({args.messages / marks['intake'] if 'intake' in marks else 0:.1f}"
                        f" msg/s), last reset {marks.get('resets', -1):6.1f} s, last reply"
                        f" {marks.get('replies', -1):6.1f} s (target <= 60 s); peak RSS"
                        f" {result['peak_rss_mb']:.0f} MB (< 200); CPU"
                        f" {result['cpu_seconds']:.1f} s")
                print(line)
                summary.append(line)
            if not args.once:
                continue
            print(f"peak RSS of run --once: {result['peak_rss_mb']:.0f} MB (target < 200 MB)")
        if len(rates) > 1:
            print(f"{database}: drain over {len(rates)} runs: median "
                  f"{statistics.median(rates):.1f} messages/s, min {min(rates):.1f}, "
                  f"max {max(rates):.1f}")
        for kind, target in (("incomplete", 1.0), ("complete", 3.0)):
            values = [v for k, v in latencies if k == kind]
            if values:
                line = (f"{database:<10} IDLE arrival-to-reply, {kind:<10} ({len(values)}): "
                        f"p50 {percentile(values, 50):.2f} s, p95 {percentile(values, 95):.2f} s,"
                        f" max {max(values):.2f} s (target p95 < {target:.0f} s)")
                print(line)
                summary.append(line)
    print()
    print("summary (one run of this script, same machine):")
    for line in summary:
        print("  " + line)
    # the host's speed drifts during a run (up to 1.8x on the reference machine): measured
    # again after the drains, the two calibrations bracket the conditions the drains met
    print(f"calibration after the drains: {calibrate(raws):.2f} ms CPU per message")
    if len(rates) > 1:
        print(f"drain over {len(rates)} runs: median {statistics.median(rates):.1f} messages/s, "
              f"min {min(rates):.1f}, max {max(rates):.1f}")
    for problem in problems:
        print(f"NOT DRAINED: {problem}")
    return 1 if problems or any(code != 0 for code in exit_codes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
