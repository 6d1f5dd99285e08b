"""Issue #11's attack classes over the real DNS test server, and `check` explaining replays.

The same cases as tests/unit/test_signed_view_attacks.py, with the production key lookup
(dnspython over UDP/TCP to reset_mailbot_testing.dns_server), then through `reset-mailbot check`
as a subprocess: a replay of the same signed message under a new Message-ID is `ignored
[duplicate]` in check's explanation too.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from reset_mailbot.adapters.dns import make_key_lookup
from reset_mailbot.domain.decision import DecisionContext, decide
from reset_mailbot.rules_loader import RuleSet, load_rules, packaged_rules_dir
from tests.attack_mail import Case, cases, replay_pair
from tests.harness.dns_fixtures import DnsServer
from tests.integration.test_dkim_dns import _cli
from tests.unit.test_signed_view_attacks import SUPPORT, assert_expected

pytestmark = pytest.mark.services
CASES = cases()
MUNICIPALITIES = ("municipalities:\n  - name: Utrecht\n    domains: [utrecht.nl]\n"
                  "  - name: Eindhoven\n    domains: [eindhoven.nl]\n"
                  "    contacts: [A.deVries@eindhoven.nl]\n")


@pytest.fixture(scope="module")
def municipalities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "municipalities.yaml"
    path.write_text(MUNICIPALITIES, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rules(municipalities: Path) -> RuleSet:
    return load_rules(packaged_rules_dir(), municipalities)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_attack_class_over_dns(clean_dns: DnsServer, rules: RuleSet, case: Case) -> None:
    clean_dns.set_records(dict(case.zone))
    lookup = make_key_lookup([clean_dns.host], clean_dns.port, 2.0)
    assert_expected(case, decide(case.raw, DecisionContext(rules, lookup, SUPPORT), time.time()))


def test_check_explains_a_replay_as_duplicate(
    clean_dns: DnsServer, municipalities: Path, tmp_path: Path
) -> None:
    first, second, zone = replay_pair()
    clean_dns.set_records(dict(zone))
    files = []
    for name, raw in (("first.eml", first), ("replay.eml", second)):
        (tmp_path / name).write_bytes(raw)
        files.append(str(tmp_path / name))
    config = tmp_path / "check.toml"
    config.write_text(
        f'[mailbox]\naddress = "{SUPPORT}"\n[dns]\nnameservers = ["{clean_dns.host}"]\n'
        f"port = {clean_dns.port}\n[rules]\nmunicipalities = {json.dumps(str(municipalities))}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
    proc = subprocess.run([*_cli(), "check", "--json", "--config", str(config), *files],
                          capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    one, two = (json.loads(line) for line in proc.stdout.splitlines())
    assert one["outcome"] == "complete", one
    assert two["outcome"] == "ignored" and two["reasons"] == ["duplicate"], two
    assert "first.eml" in two["detail"]
