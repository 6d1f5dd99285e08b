"""DKIM key lookups over a real DNS server process (reset_mailbot_testing.dns_server), loopback.

The key lookup is the production one (`make_key_lookup` on dnspython, honouring nameservers,
port and timeout), so UDP, truncation with TCP fallback, SERVFAIL, silence (timeout), NXDOMAIN
and empty answers all take the real network path. The second half runs the shared example
messages through `reset-mailbot check --json` as a subprocess, configured by a TOML file that
points [dns] at the test server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import pytest

from reset_mailbot.adapters.dns import make_key_lookup
from reset_mailbot.domain.authentication import TemporaryKeyLookupError
from reset_mailbot.domain.decision import DecisionContext, decide
from reset_mailbot.domain.models import Decision, DkimStatus
from reset_mailbot.domain.reasons import Outcome, ReasonCode
from reset_mailbot.rules_loader import RuleSet, load_rules, packaged_rules_dir
from reset_mailbot_testing.dkim_signing import REVOKED_TXT, key_name, plain_message, rsa_key, sign
from tests.examples import EXAMPLES, EXPECTED
from tests.harness.dns_fixtures import DnsServer

pytestmark = pytest.mark.services

SUPPORT = EXPECTED["support_address"]
SELECTOR = "selector1"
NAME = key_name(SELECTOR, "utrecht.nl")
SHORT_TIMEOUT = 0.5
EXAMPLES_SIGNED_DAY = "2026-11-26T12:00:00+00:00"


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(packaged_rules_dir(), EXAMPLES / "municipalities.yaml")


@pytest.fixture
def server(clean_dns: DnsServer) -> DnsServer:
    """The session's DNS server, emptied for this test."""
    return clean_dns


def decide_over_dns(
    server: DnsServer, rules: RuleSet, raw: bytes, timeout: float = 2.0
) -> Decision:
    lookup = make_key_lookup([server.host], server.port, timeout)
    return decide(raw, DecisionContext(rules, lookup, SUPPORT), time.time())


def signed_2048() -> bytes:
    return sign(plain_message(), rsa_key(2048), "utrecht.nl", SELECTOR)


def assert_passes(decision: Decision) -> None:
    assert decision.outcome in {Outcome.COMPLETE, Outcome.INCOMPLETE}, decision
    assert decision.authentication.dkim is DkimStatus.PASS
    assert decision.authentication.aligned
    assert decision.reply is True


def assert_deferred(decision: Decision) -> None:
    assert decision.outcome is Outcome.DEFERRED, decision
    assert ReasonCode.DNS_TEMPORARY_FAILURE in decision.reasons
    assert decision.reply is False
    assert decision.authentication.dkim is DkimStatus.TEMPERROR


def assert_invalid(decision: Decision) -> None:
    assert decision.outcome is Outcome.REJECTED, decision
    assert decision.reasons == [ReasonCode.DKIM_INVALID]
    assert decision.reply is False


# ---------------------------------------------------------------------------------------------
# the key lookup on its own


def test_lookup_returns_the_published_record(server: DnsServer) -> None:
    server.set_records({NAME: rsa_key(2048).txt()})
    lookup = make_key_lookup([server.host], server.port, 2.0)
    assert lookup(NAME + ".") == rsa_key(2048).txt().encode()
    assert lookup("nobody._domainkey.utrecht.nl.") is None


def test_lookup_raises_temporary_error_on_servfail_and_silence(server: DnsServer) -> None:
    server.set_records({NAME: rsa_key(2048).txt(), "slow._domainkey.utrecht.nl": "v=DKIM1; p=x"})
    server.set_faults(servfail=[NAME], timeout=["slow._domainkey.utrecht.nl"])
    lookup = make_key_lookup([server.host], server.port, SHORT_TIMEOUT)
    with pytest.raises(TemporaryKeyLookupError):
        lookup(NAME + ".")
    start = time.monotonic()
    with pytest.raises(TemporaryKeyLookupError):
        lookup("slow._domainkey.utrecht.nl.")
    assert time.monotonic() - start < SHORT_TIMEOUT + 1.5  # the configured timeout is honoured


def test_answers_are_cached_for_their_ttl_and_failures_are_not(server: DnsServer) -> None:
    """A backlog from one municipality costs one lookup, as behind any caching resolver."""
    first, second = rsa_key(2048).txt(), rsa_key(1024).txt()
    server.set_records({NAME: first})
    lookup = make_key_lookup([server.host], server.port, 2.0)
    assert lookup(NAME + ".") == first.encode()
    server.set_records({NAME: second})
    assert lookup(NAME + ".") == first.encode()  # within the harness TTL (60 s)
    assert make_key_lookup([server.host], server.port, 2.0)(NAME + ".") == second.encode()

    other = "s2._domainkey.utrecht.nl"
    server.set_records({other: first})
    server.set_faults(servfail=[other])
    fresh = make_key_lookup([server.host], server.port, SHORT_TIMEOUT)
    with pytest.raises(TemporaryKeyLookupError):
        fresh(other + ".")
    server.set_faults()
    assert fresh(other + ".") == first.encode()  # the SERVFAIL was not remembered


# ---------------------------------------------------------------------------------------------
# decisions over DNS


def test_2048_bit_key_passes(server: DnsServer, rules: RuleSet) -> None:
    server.set_records({NAME: rsa_key(2048).txt()})
    assert_passes(decide_over_dns(server, rules, signed_2048()))


def test_servfail_is_deferred(server: DnsServer, rules: RuleSet) -> None:
    server.set_records({NAME: rsa_key(2048).txt()})
    server.set_faults(servfail=[NAME])
    assert_deferred(decide_over_dns(server, rules, signed_2048()))


def test_no_answer_is_deferred(server: DnsServer, rules: RuleSet) -> None:
    server.set_records({NAME: rsa_key(2048).txt()})
    server.set_faults(timeout=[NAME])
    start = time.monotonic()
    decision = decide_over_dns(server, rules, signed_2048(), timeout=SHORT_TIMEOUT)
    assert_deferred(decision)
    assert time.monotonic() - start < SHORT_TIMEOUT + 1.5


def test_nxdomain_is_invalid(server: DnsServer, rules: RuleSet) -> None:
    server.set_records({"other._domainkey.utrecht.nl": rsa_key(2048).txt()})
    assert_invalid(decide_over_dns(server, rules, signed_2048()))


def test_empty_noerror_is_invalid(server: DnsServer, rules: RuleSet) -> None:
    # the name exists (an A record) but has no TXT: empty NOERROR answer
    server.set_records({NAME: {"A": "192.0.2.1"}})
    reply = server.resolver().resolve(NAME, "A")
    assert reply.rrset is not None  # the name really exists
    assert_invalid(decide_over_dns(server, rules, signed_2048()))


def test_revoked_key_is_invalid(server: DnsServer, rules: RuleSet) -> None:
    server.set_records({NAME: REVOKED_TXT})
    assert_invalid(decide_over_dns(server, rules, signed_2048()))


@pytest.mark.parametrize("selector", ["s" * 64, "a..b", "x" * 60 + "." + "y" * 60 + ".z" * 40])
def test_selector_that_cannot_be_a_dns_name_is_invalid_not_deferred(
    server: DnsServer, rules: RuleSet, selector: str
) -> None:
    # a hostile or broken s= must not park the message in "deferred" forever
    raw = sign(plain_message(), rsa_key(2048), "utrecht.nl", selector)
    assert_invalid(decide_over_dns(server, rules, raw))


def test_recovers_when_the_fault_is_gone(server: DnsServer, rules: RuleSet) -> None:
    raw = signed_2048()
    server.set_records({NAME: rsa_key(2048).txt()})
    server.set_faults(servfail=[NAME])
    assert_deferred(decide_over_dns(server, rules, raw))
    server.set_faults()
    assert_passes(decide_over_dns(server, rules, raw))


def dns_query(name: str, payload: int) -> dns.message.Message:
    return dns.message.make_query(name, "TXT", use_edns=0, payload=payload)


def dns_udp(query: dns.message.Message, host: str, port: int) -> dns.message.Message:
    return dns.query.udp(query, host, port=port, timeout=2.0, ignore_trailing=True)


def test_4096_bit_key_passes(server: DnsServer, rules: RuleSet) -> None:
    server.set_records({NAME: rsa_key(4096).txt()})
    # without EDNS (512 bytes) the answer is truncated: clients must retry over TCP
    classic = dns_udp(dns.message.make_query(NAME, "TXT"), server.host, server.port)
    assert classic.flags & dns.flags.TC
    raw = sign(plain_message(), rsa_key(4096), "utrecht.nl", SELECTOR)
    decision = decide_over_dns(server, rules, raw)
    assert_passes(decision)


def test_truncated_udp_answer_falls_back_to_tcp(server: DnsServer, rules: RuleSet) -> None:
    # A 4096-bit key (~750 bytes) fits the 1232-byte EDNS payload the lookup advertises; a
    # record with notes (n=, RFC 6376 3.6.1) as some providers publish does not.
    notes = "; n=" + "Published-by-the-municipal-ICT-department-key-rotation-2026" * 10
    record = rsa_key(4096).txt() + notes
    server.set_records({NAME: record})
    reply = dns_udp(dns_query(NAME, 1232), server.host, server.port)
    assert reply.flags & dns.flags.TC, "the answer must not fit in UDP, or this test proves nothing"
    assert not reply.answer
    raw = sign(plain_message(), rsa_key(4096), "utrecht.nl", SELECTOR)
    assert_passes(decide_over_dns(server, rules, raw))


# ---------------------------------------------------------------------------------------------
# the shared examples through `reset-mailbot check --json`, as a subprocess


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("reset-mailbot")
    if script.exists():
        return [str(script)]
    found = shutil.which("reset-mailbot")
    return [found] if found else [sys.executable, "-m", "reset_mailbot.cli"]


@pytest.fixture(scope="module")
def example_decisions(
    dns_server: DnsServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict]]:
    """Every example decided by ONE `check` run against the example zone and faults."""
    server = dns_server
    server.reset()
    try:
        yield _run_examples(server, tmp_path_factory.mktemp("cli"))
    finally:
        server.reset()


def _run_examples(server: DnsServer, tmp_path: Path) -> dict[str, dict]:
    server.load_zone_file(EXAMPLES / "zone.json")
    faults = json.loads((EXAMPLES / "dns_faults.json").read_text(encoding="utf-8"))
    server.set_faults(servfail=faults.get("servfail", []), timeout=faults.get("timeout", []))
    config = tmp_path / "reset-mailbot.toml"
    config.write_text(
        "[mailbox]\n"
        f'address = "{SUPPORT}"\n'
        "[dns]\n"
        f'nameservers = ["{server.host}"]\n'
        f"port = {server.port}\n"
        "timeout_seconds = 2.0\n"
        "[rules]\n"
        f"municipalities = {json.dumps(str(EXAMPLES / 'municipalities.yaml'))}\n",
        encoding="utf-8",
    )
    files = [str(EXAMPLES / case["file"]) for case in EXPECTED["cases"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
    proc = subprocess.run(
        # the examples were signed on 2026-11-26: decide them as of that day, not as replays
        [*_cli(), "check", "--json", "--at", EXAMPLES_SIGNED_DAY, "--config", str(config),
         *files],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == len(files), proc.stdout
    return {case["id"]: line for case, line in zip(EXPECTED["cases"], lines, strict=True)}


@pytest.mark.parametrize("case", EXPECTED["cases"], ids=lambda c: c["id"])
def test_example_via_cli_over_dns(case: dict, example_decisions: dict[str, dict]) -> None:
    got = example_decisions[case["id"]]
    expected = case["expected"]
    reasons = set(got["reasons"])
    assert got["reply"] is expected["reply"], got
    assert set(expected["reasons"]) <= reasons, got
    if "reasons_any" in expected:
        assert reasons & set(expected["reasons_any"]), got
    if expected["outcome"] == "deferred":
        assert got["outcome"] == "deferred", got
        assert got["reasons"] == [ReasonCode.DNS_TEMPORARY_FAILURE.value], got
        assert got["authentication"]["dkim"] == "temperror"
        return
    if expected["outcome"] not in {"complete", "incomplete"}:
        assert got["outcome"] == expected["outcome"], got
        if expected["reasons"] and "reasons_any" not in expected:
            assert got["reasons"] == expected["reasons"], got
        return
    # authentic and authorised: the authentication half must have let it through
    assert got["outcome"] in {"complete", "incomplete"}, got
    assert got["authentication"]["dkim"] == "pass", got
    assert got["authentication"]["aligned"] is True, got
    assert got["sender"]["municipality"] is not None, got
    assert got["outcome"] == expected["outcome"], got
    assert got["missing"] == expected["missing"], got
    assert got["request"]["account_email"] == expected["account_email"], got
    assert got["request"]["case_reference"] == expected["case_reference"], got
    assert got["reasons"] == expected["reasons"], got
