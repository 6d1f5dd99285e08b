"""Throughput of the decision core next to the bare library floor, on the same messages.

    .venv/bin/python bench/check_throughput.py [--n 2000] [--rounds 3] [--profile]

Builds N realistic DKIM-signed messages (2048-bit RSA, relaxed/relaxed, d=utrecht.nl) of mixed
sizes: small plain text, Outlook-style multipart/alternative (text + html, signature,
disclaimer, some padding), and some multipart/mixed with a base64 attachment of 50 KB - 1 MB.
Then, in one process, for every message:

  floor:    mailparser.parse_from_bytes(raw) + one dkim.DKIM(raw).verify(dnsfunc=in-memory),
            dkimpy as released (a second floor line shows it with our linear relaxed body
            canonicalisation, as earlier runs measured it)
  decision: reset_mailbot.domain.decision.decide(raw, context) with an in-memory key lookup

After a warm-up pass, the two are run alternately (floor then decision, the order swapped every
round) for --rounds rounds; each message keeps its best time per side, which removes most
scheduling noise. Printed: messages/second (N / sum of the per-message best times), p50 and p99
milliseconds per message, the ratio decision/floor throughput (issue #14's target: >= 1.5 on the
mix and >= 1.0 per kind) and the peak RSS.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import random
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from email.utils import formataddr
from pathlib import Path

import dkim
import mailparser

from reset_mailbot.domain.decision import DecisionContext, decide
from reset_mailbot.rules_loader import load_rules, packaged_rules_dir
from reset_mailbot_testing.dkim_signing import (
    DUTCH_REQUEST,
    Signer,
    outlook_message,
    plain_message,
    rsa_key,
)

TARGET_RATIO = 1.5  # issue #14: the whole mix
TARGET_KIND_RATIO = 1.0  # issue #14: every kind of message
SUPPORT = "support@forus.test"
SENDERS = [
    ("Jan de Vries", "j.devries"), ("Marieke Bakker", "m.bakker"), ("Sanne Elzinga", "s.elzinga"),
    ("Pieter de Jong", "p.dejong"), ("Ayşe Yılmaz", "a.yilmaz"), ("Ruud van Dijk", "r.vandijk"),
]


KINDS = ("plain", "outlook", "attachment")


def build_messages(n: int, seed: int) -> tuple[list[bytes], dict[str, str], list[str]]:
    """N signed messages: ~50% small plain, ~38% Outlook multipart, ~12% with an attachment."""
    rng = random.Random(seed)
    signer = Signer()
    key = rsa_key(2048)
    messages = []
    kinds = []
    for i in range(n):
        name, local = rng.choice(SENDERS)
        # a distinct From per message, so no per-sender caching can flatter the decision side
        sender = formataddr((name, f"{local}{i}@utrecht.nl"))  # RFC 2047 for non-ASCII names
        kind = rng.random()
        if kind < 0.50:
            kinds.append("plain")
            raw = plain_message(from_=sender, subject=f"Verzoek reset 2FA #{i}")
        elif kind < 0.88:
            kinds.append("outlook")
            raw = outlook_message(
                from_=sender, subject=f"RE: Verzoek reset 2FA #{i}", text=DUTCH_REQUEST,
                filler_paragraphs=rng.randint(0, 30),
            )
        else:
            kinds.append("attachment")
            size = rng.randint(50 * 1024, 1024 * 1024)
            raw = outlook_message(
                from_=sender, subject=f"Verzoek reset 2FA met bijlage #{i}",
                attachment=rng.randbytes(size), filler_paragraphs=rng.randint(0, 5),
            )
        messages.append(signer.sign(raw, key, "utrecht.nl", "selector1"))
    return messages, signer.zone, kinds


def make_floor(zone: dict[str, str]) -> Callable[[bytes], object]:
    records = {f"{k}.".encode(): v.encode() for k, v in zone.items()}

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        return records.get(name)

    def floor(raw: bytes) -> object:
        parsed = mailparser.parse_from_bytes(raw)
        ok = dkim.DKIM(raw).verify(dnsfunc=dnsfunc)
        if not ok:
            raise SystemExit("floor: a benchmark message does not verify")
        return parsed

    return floor


def make_decision(zone: dict[str, str]) -> Callable[[bytes], object]:
    records = {k: v.encode() for k, v in zone.items()}

    def lookup(name: str) -> bytes | None:
        return records.get(name.rstrip("."))

    context = DecisionContext(load_rules(packaged_rules_dir()), lookup, SUPPORT)

    def decision(raw: bytes) -> object:
        result = decide(raw, context, time.time())
        if result.authentication.dkim.value != "pass" or not result.authentication.aligned:
            raise SystemExit(f"decision: a benchmark message did not pass: {result.reasons}")
        return result

    return decision


def timed(func: Callable[[bytes], object], raw: bytes) -> float:
    start = time.perf_counter()
    func(raw)
    return time.perf_counter() - start


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(name: str, times: list[float]) -> tuple[float, str]:
    rate = len(times) / sum(times)
    line = (
        f"{name:<9} {rate:9.1f} msg/s   p50 {percentile(times, 50) * 1000:7.3f} ms   "
        f"p99 {percentile(times, 99) * 1000:8.3f} ms   "
        f"mean {statistics.fmean(times) * 1000:7.3f} ms"
    )
    return rate, line


def profile(func: Callable[[bytes], object], messages: list[bytes], top: int = 25) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for raw in messages:
        func(raw)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def measure_cli(messages: list[bytes], zone: dict[str, str], in_process_rate: float) -> None:
    """`reset-mailbot check` over every message in one call, keys from the harness DNS server
    on loopback, next to the in-process rate measured in this run (issue #14: >= 0.9x); and
    the start-up: `check` on one message, best of five (issue #14: <= 0.3 s)."""
    import json
    import subprocess
    import tempfile

    from reset_mailbot.demo_loop import ServiceProcess

    with tempfile.TemporaryDirectory(prefix="check-bench-") as tmp:
        folder = Path(tmp)
        (folder / "zone.json").write_text(json.dumps(zone))
        (folder / "faults.json").write_text('{"servfail": [], "timeout": []}')
        dns = ServiceProcess("dns", [sys.executable, "-m", "reset_mailbot_testing.dns_server",
                                     "--zone", str(folder / "zone.json"), "--faults",
                                     str(folder / "faults.json"), "--port", "0", "--address",
                                     "127.0.0.1", "--exit-on-stdin-eof"],
                             folder, folder / "dns.log")
        try:
            port = int(dns.ready_line.split()[2])
            config = folder / "reset-mailbot.toml"
            config.write_text(f'[mailbox]\naddress = "{SUPPORT}"\n[dns]\n'
                              f'nameservers = ["127.0.0.1"]\nport = {port}\n'
                              '[log]\nlevel = "warning"\n')
            files = []
            for i, raw in enumerate(messages):
                path = folder / f"{i:05d}.eml"
                path.write_bytes(raw)
                files.append(str(path))
            argv = [sys.executable, "-m", "reset_mailbot.cli", "check", "--json",
                    "--config", str(config)]
            started = time.perf_counter()
            done = subprocess.run([*argv, *files], capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - started
            outcomes = [json.loads(line)["outcome"] for line in done.stdout.splitlines()]
            startup = min(_timed_run([*argv, files[0]]) for _ in range(5))
        finally:
            dns.stop()
    rate = len(messages) / seconds
    print(f"check over {len(messages)} files in one call: {seconds:.2f} s = {rate:.1f} msg/s,"
          f" {rate / in_process_rate:.2f}x the in-process rate {in_process_rate:.1f} msg/s "
          f"(target >= 0.90); outcomes {dict(sorted(Counter(outcomes).items()))}")
    print(f"check start-up to the first decision (one file, best of 5): {startup:.2f} s "
          "(target <= 0.30)")


def _linear_floor_rate(messages: list[bytes], zone: dict[str, str], rounds: int) -> float:
    """The floor as earlier runs measured it: until the DKIM step moved to OpenSSL, importing
    the product replaced dkimpy's quadratic-prone relaxed body canonicalisation with the linear
    one for the whole process, the floor included. Printed for comparison only; the target is
    against dkimpy as released."""
    from dkim.canonicalization import Relaxed

    from reset_mailbot.domain.authentication import relaxed_body

    original = Relaxed.__dict__["canonicalize_body"]
    Relaxed.canonicalize_body = staticmethod(relaxed_body)  # type: ignore[method-assign]
    try:
        floor = make_floor(zone)
        best = [min(timed(floor, raw) for _ in range(rounds)) for raw in messages]
    finally:
        Relaxed.canonicalize_body = original  # type: ignore[method-assign]
    return len(best) / sum(best)


def _timed_run(argv: list[str]) -> float:
    import subprocess

    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=False)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="number of messages (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--profile", action="store_true", help="always print a cProfile")
    parser.add_argument("--no-cli", dest="cli", action="store_false",
                        help="skip the `reset-mailbot check` measurement")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    rsa_key(2048)
    messages, zone, kinds = build_messages(args.n, args.seed)
    sizes = sorted(len(m) for m in messages)
    print(
        f"built {len(messages)} signed messages in {time.perf_counter() - t0:.1f}s: "
        f"sizes p50 {sizes[len(sizes) // 2] / 1024:.1f} KB, max {sizes[-1] / 1024:.0f} KB, "
        f"total {sum(sizes) / 2**20:.1f} MB"
    )
    floor = make_floor(zone)
    decision = make_decision(zone)

    for raw in messages[: min(len(messages), 200)]:  # warm-up: imports, caches, PSL load
        floor(raw)
        decision(raw)

    best_floor = [float("inf")] * len(messages)
    best_decision = [float("inf")] * len(messages)
    round_rates: list[tuple[float, float]] = []
    for rnd in range(args.rounds):
        gc.collect()
        sum_f = sum_d = 0.0
        for i, raw in enumerate(messages):
            if rnd % 2 == 0:
                tf = timed(floor, raw)
                td = timed(decision, raw)
            else:
                td = timed(decision, raw)
                tf = timed(floor, raw)
            best_floor[i] = min(best_floor[i], tf)
            best_decision[i] = min(best_decision[i], td)
            sum_f += tf
            sum_d += td
        round_rates.append((len(messages) / sum_f, len(messages) / sum_d))

    floor_rate, floor_line = summary("floor", best_floor)
    decision_rate, decision_line = summary("decision", best_decision)
    ratio = decision_rate / floor_rate
    print(f"best of {args.rounds} rounds per message:")
    print(floor_line)
    print(decision_line)
    for rnd, (fr, dr) in enumerate(round_rates):
        print(
            f"  round {rnd + 1} (whole pass): floor {fr:.1f} msg/s, "
            f"decision {dr:.1f} msg/s, ratio {dr / fr:.3f}"
        )
    print("per kind (best times):")
    for kind in KINDS:
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if not idx:
            continue
        kf = [best_floor[i] for i in idx]
        kd = [best_decision[i] for i in idx]
        print(
            f"  {kind:<10} n={len(idx):<5} floor p50 {percentile(kf, 50) * 1000:7.3f} ms, "
            f"decision p50 {percentile(kd, 50) * 1000:7.3f} ms, ratio {sum(kf) / sum(kd):.3f}"
            f" (target >= {TARGET_KIND_RATIO:.1f})"
        )
    linear_rate = _linear_floor_rate(messages, zone, args.rounds)
    print(f"floor with dkimpy's relaxed body canonicalisation replaced by ours (what the floor "
          f"measured before 2026-12-07, when the product patched dkimpy): {linear_rate:.1f} msg/s;"
          f" decision/that = {decision_rate / linear_rate:.3f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak RSS {peak / 1024:.0f} MB")
    if args.cli:
        # a whole pass, as the CLI makes one (the best-of-rounds figure drops the slow runs)
        measure_cli(messages, zone, statistics.median(d for _, d in round_rates))
    verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
    print(f"ratio decision/floor = {ratio:.3f} (target >= {TARGET_RATIO:.2f}): {verdict}")
    if ratio < TARGET_RATIO or args.profile:
        sample = messages[: min(len(messages), 500)]
        print("\n--- cProfile: floor ---")
        print(profile(floor, sample))
        print("--- cProfile: decision ---")
        print(profile(decision, sample))
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
