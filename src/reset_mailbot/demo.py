"""`reset-mailbot demo --check-only`: decides the shipped sample messages (no services).

The samples are DKIM-signed; their keys come from demo_data/zone.json through an in-memory key
lookup (names listed under "servfail" in dns_faults.json fail temporarily, like a broken DNS
server would), so the demo needs no network and no services.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reset_mailbot.domain.authentication import KeyLookup, TemporaryKeyLookupError
from reset_mailbot.domain.decision import DecisionContext, decide
from reset_mailbot.rules_loader import load_rules, packaged_rules_dir

SUPPORT_ADDRESS = "support@forus.test"


def demo_dir() -> Path:
    return Path(str(resources.files("reset_mailbot") / "demo_data"))


def zone_lookup(zone: dict[str, object], faults: dict[str, list[str]]) -> KeyLookup:
    """A KeyLookup answering from a zone mapping, as the test DNS server does."""
    records = {k.lower().rstrip("."): v for k, v in zone.items()}
    broken = {n.lower().rstrip(".") for n in faults.get("servfail", []) + faults.get("timeout", [])}

    def lookup(name: str) -> bytes | None:
        key = name.lower().rstrip(".")
        if key in broken:
            raise TemporaryKeyLookupError("SERVFAIL (demo)")
        value = records.get(key)
        if isinstance(value, dict):
            value = value.get("TXT")
        return value.encode() if isinstance(value, str) else None

    return lookup


def run_demo(console: Console | None = None) -> None:
    console = console or Console(width=160)
    data = demo_dir()
    zone = json.loads((data / "zone.json").read_text())
    faults = json.loads((data / "dns_faults.json").read_text())
    rules = load_rules(packaged_rules_dir(), data / "municipalities.yaml")
    context = DecisionContext(rules, zone_lookup(zone, faults), SUPPORT_ADDRESS)
    # The samples were signed on 2026-11-26; decided as of that day, as `check --at` would.
    signed_day = datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()
    table = Table(title="reset-mailbot check over the shipped sample messages (as of 2026-11-26)")
    for column in ("message", "outcome", "reasons", "missing", "account", "reply"):
        table.add_column(column)
    for path in sorted(data.glob("*.eml")):
        decision = decide(path.read_bytes(), context, signed_day)
        table.add_row(
            path.name,
            decision.outcome.value,
            ", ".join(r.value for r in decision.reasons) or "-",
            ", ".join(m.value for m in decision.missing) or "-",
            decision.request.account_email or "-",
            "yes" if decision.reply else "no",
        )
    console.print(table)
