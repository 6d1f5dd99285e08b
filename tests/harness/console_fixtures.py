"""The support console on a real database with real decided mail (issue #17).

`seed_console_store` runs the shipped, DKIM-signed demo messages through the inbox processor
(the demo's keys answer the DKIM lookups), with the approval gate on and the manual executor,
so the console has what support sees on a normal day: a request awaiting approval, incomplete
requests, rejected and ignored mail, and replies. `console_app` wires the console on top with
the same builders the product uses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from starlette.applications import Starlette

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.config import ConsoleSettings
from reset_mailbot.console.app import build_app
from reset_mailbot.console.auth import AuthSettings, Mode
from reset_mailbot.console.deps import ConsoleDeps
from reset_mailbot.demo import demo_dir, zone_lookup
from reset_mailbot.domain.decision import DecisionContext
from reset_mailbot.rules_loader import load_rules, packaged_rules_dir, packaged_templates
from reset_mailbot.service.inbox import InboxProcessor
from reset_mailbot.service.inbox_policy import InboxPolicy

SUPPORT = "support@forus.test"
# the demo messages were signed on 2026-11-26; they are decided as of that morning
SEEDED_AT = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
SECRET = "a-test-session-secret-of-more-than-32-characters"


@dataclass
class Seeded:
    """What the seeding made: request ids by the demo message's file name."""

    requests: dict[str, str]
    messages: dict[str, int]


def processor(store: Store, clock: object = None) -> InboxProcessor:
    data = demo_dir()
    zone = json.loads((data / "zone.json").read_text())
    faults = json.loads((data / "dns_faults.json").read_text())
    context = DecisionContext(load_rules(packaged_rules_dir(), data / "municipalities.yaml"),
                              zone_lookup(zone, faults), SUPPORT)
    policy = InboxPolicy(support_address=SUPPORT, max_message_bytes=10**6,
                         executor_kind="manual", require_approval=True)
    return InboxProcessor(store, context, policy, clock=lambda: SEEDED_AT)


def seed_console_store(store: Store) -> Seeded:
    proc = processor(store)
    requests: dict[str, str] = {}
    messages: dict[str, int] = {}
    for uid, path in enumerate(sorted(Path(demo_dir()).glob("*.eml")), start=1):
        _folder, pk = proc.handle_raw(path.read_bytes(), mailbox="INBOX", uidvalidity=1,
                                      uid=uid, now=SEEDED_AT)
        assert pk is not None
        messages[path.stem] = pk
        with store.unit_of_work() as uow:
            row = uow.messages.get(pk)
            assert row is not None
            if row.request_id:
                requests[path.stem] = row.request_id
    return Seeded(requests, messages)


def console_app(store: Store, *, mode: Mode = "demo", now: datetime = SEEDED_AT,
                **settings: object) -> Starlette:
    from reset_mailbot.config import Config

    values: dict[str, object] = {"listen": "127.0.0.1:8080"} | settings
    console = Config({"console": values}, None).get(ConsoleSettings)
    deps = ConsoleDeps(
        store=store, settings=console, auth=AuthSettings(mode, console),
        tz=ZoneInfo("Europe/Amsterdam"), quarantine_folder="Quarantine",
        support_address=SUPPORT, templates=packaged_templates(), max_attempts=3,
        extraction=load_rules(packaged_rules_dir()).extraction,
        executor=lambda: None, processor=lambda: processor(store), clock=lambda: now,
    )
    return build_app(deps, SECRET)


def request_state(store: Store, request_id: str) -> str:
    with store.unit_of_work() as uow:
        row = queries.request_story(uow, request_id)
        assert row is not None
        return row.state
