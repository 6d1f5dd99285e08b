"""Failover time of a pair of daemons on PostgreSQL (issue #15), over repeated leader kills.

    .venv/bin/python bench/failover.py [--kills 10] [--failover 15] [--claim-timeout 30]

Starts the services of bench/daemon_drain.py (private Dovecot, DNS, SMTP sink, HTTP executor,
PostgreSQL) and two `reset-mailbot run` instances. Complete requests arrive over LMTP every
0.3-0.7 s throughout. Then, `--kills` times: wait a random 2-8 s, SIGKILL the current leader,
start a replacement (as an orchestrator would), and measure the failover time: from the kill
to the first confirmation the surviving instance sends for a request that arrived after the
kill (its first act as the new leader). Printed: each failover, their median and max next to
the configured bound (`failover_seconds` + the poll that follows), and a check that no account
was reset twice and no message answered twice.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from daemon_drain import CLI, DOMAINS, Bench, Spec, account, build
from reset_mailbot.demo_loop import DemoSigner


class Daemon:
    def __init__(self, bench: Bench, name: str, failover: float, claim_timeout: float) -> None:
        self.name = name
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
        env.update({"RESET_MAILBOT_HA__INSTANCE_ID": name,
                    "RESET_MAILBOT_HA__FAILOVER_SECONDS": str(failover),
                    "RESET_MAILBOT_HA__CLAIM_TIMEOUT_SECONDS": str(claim_timeout),
                    "RESET_MAILBOT_METRICS__LISTEN": ""})
        self.log = (bench.state / f"daemon-{name}.log").open("w")
        self.proc = subprocess.Popen([*CLI, "run", "--config", str(bench.config_path)],
                                     stdout=subprocess.DEVNULL, stderr=self.log, env=env)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def leader(bench: Bench) -> str | None:
    rows = bench.sql("select holder from leases where name = 'poller' and expires_at > now()")
    return str(rows[0][0]) if rows else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--failover", type=float, default=15.0)
    parser.add_argument("--claim-timeout", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    state = Path(f"/tmp/reset-mailbot-failover-{os.getpid()}")
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)  # the postgres user reads its cluster below it
    bench = Bench(state, "postgresql")
    accounts = [account(100_000 + i) for i in range(2000)]
    bench.start(accounts)
    bench.write_config()
    bench.cli("db", "upgrade")
    signer = DemoSigner()
    stop = threading.Event()
    sent: list[float] = []

    def trickle() -> None:
        i = 0
        while not stop.is_set():
            spec = Spec("complete", 100_000 + i, DOMAINS[i % len(DOMAINS)], "plain")
            bench.dovecot.deliver(build(spec, signer, tag="f"), rcpt="support@forus.test")
            sent.append(time.time())
            i += 1
            stop.wait(rng.uniform(0.3, 0.7))

    names = iter(f"i{n}" for n in range(1000))
    daemons = {name: Daemon(bench, name, args.failover, args.claim_timeout)
               for name in (next(names), next(names))}
    feeder = threading.Thread(target=trickle, daemon=True)
    times: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while leader(bench) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        feeder.start()
        for kill in range(args.kills):
            time.sleep(rng.uniform(2.0, 8.0))
            victim = leader(bench)
            if victim is None or victim not in daemons:
                print(f"kill {kill + 1}: no leader to kill; skipped")
                continue
            daemons[victim].proc.send_signal(signal.SIGKILL)
            daemons[victim].proc.wait()
            killed_at = datetime.now(UTC)
            daemons.pop(victim).stop()
            fresh = next(names)
            daemons[fresh] = Daemon(bench, fresh, args.failover, args.claim_timeout)
            survivors = [n for n in daemons if n != fresh]
            first: float | None = None
            limit = time.monotonic() + args.failover + args.claim_timeout + 60
            while first is None and time.monotonic() < limit:
                time.sleep(0.2)
                rows = bench.sql(
                    "select min(o.sent_at) from outbox o join requests r on r.id = o.request_id "
                    "join messages m on m.request_id = r.id "
                    f"where o.kind = 'confirmation' and o.claimed_by in "
                    f"({', '.join(repr(s) for s in [*survivors, fresh])}) "
                    f"and m.received_at > '{killed_at.isoformat()}'")
                at = rows[0][0] if rows else None
                if at is not None:
                    first = (at - killed_at).total_seconds()
            if first is None:
                print(f"kill {kill + 1}: {victim} killed; no confirmation by a survivor")
                continue
            times.append(first)
            print(f"kill {kill + 1}: leader {victim} killed; first confirmation of new mail "
                  f"by {leader(bench)} after {first:.1f} s")
    finally:
        stop.set()
        codes = {name: d.stop() for name, d in daemons.items()}
        posts = bench.sql("select count(*), count(distinct account_email) from requests "
                          "where state = 'executed'")
        # a second reply row for one request and kind would be a second Message-ID
        doubled = bench.sql("select count(*) from (select request_id, kind from outbox "
                            "where request_id is not null group by request_id, kind "
                            "having count(*) > 1) t")
        received = bench.sink_replies()
        resent = len(received) - len({irt for _, irt in received})
        bench.stop()
        shutil.rmtree(state, ignore_errors=True)
    bound = args.failover + 2.0
    if times:
        print(f"failover over {len(times)} kills: median {statistics.median(times):.1f} s, "
              f"max {max(times):.1f} s (failover_seconds {args.failover:.0f} + first poll; "
              f"bound ~{bound:.0f} s)")
    print(f"executed requests {posts[0][0]}, distinct accounts {posts[0][1]}; requests "
          f"answered under two Message-IDs: {doubled[0][0]}; replies re-sent with the same "
          f"Message-ID (the documented at-least-once window): {resent}; exit codes on "
          f"SIGTERM {codes}")
    ok = bool(times) and posts[0][0] == posts[0][1] and doubled[0][0] == 0 \
        and all(c == 0 for c in codes.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
