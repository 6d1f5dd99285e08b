"""Deciding without side effects: `check` and `rules check`.

`check` runs the daemon's own decision (and, with `--db`, its own context rules) on message
files: no mail, no reset, no database write.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from reset_mailbot.cli.context import ExitCode, load_config
from reset_mailbot.cli.options import ConfigOption

if TYPE_CHECKING:
    from reset_mailbot.domain.decision import DecisionContext
    from reset_mailbot.domain.models import Decision


def describe(decision: Decision, name: str) -> str:
    """A short human explanation of one decision."""
    lines = [f"{name}: {decision.outcome.value}"]
    if decision.reasons:
        lines.append("  reasons: " + ", ".join(r.value for r in decision.reasons))
    if decision.sender.address:
        who = decision.sender.address
        if decision.sender.municipality:
            who += f" ({decision.sender.municipality})"
        lines.append(f"  sender: {who}")
    auth = decision.authentication
    if decision.outcome.value not in {"ignored"} and decision.sender.address:
        signed = f"DKIM {auth.dkim.value}"
        if auth.signing_domain:
            signed += f" d={auth.signing_domain}" + (" aligned" if auth.aligned else " not aligned")
        lines.append(f"  authentication: {signed}")
    if decision.outcome.value in {"complete", "incomplete"}:
        req = decision.request
        lines.append(f"  account: {req.account_email or '-'}")
        lines.append(f"  identity verified: {'yes' if req.identity_verified else 'no'}")
        lines.append(f"  reset instructed: {'yes' if req.reset_instructed else 'no'}")
        lines.append(f"  case reference: {req.case_reference or '-'}")
        if decision.missing:
            lines.append("  missing: " + ", ".join(m.value for m in decision.missing))
        for evidence in req.evidence:
            rule = f" [{evidence.rule}]" if evidence.rule else ""
            lines.append(f"  evidence {evidence.item.value}{rule}: {evidence.text!r}")
    if decision.detail:
        lines.append(f"  detail: {decision.detail}")
    lines.append(f"  reply: {'yes' if decision.reply else 'no'}")
    return "\n".join(lines)


def _read_bounded(name: str, limit: int) -> bytes:
    """At most limit + 1 bytes: enough for the decision to say `oversize`, never more."""
    if name == "-":
        return sys.stdin.buffer.read(limit + 1)
    with Path(name).open("rb") as handle:
        # read(limit + 1) allocates the whole limit (25 MB) for every file: a regular file
        # says its size (a pipe, e.g. <(...), says 0 and is read up to the limit)
        status = os.fstat(handle.fileno())
        wanted = min(status.st_size, limit) if stat.S_ISREG(status.st_mode) else limit
        return handle.read(wanted + 1)


def _parse_at(value: str | None) -> float:
    """`--at` as seconds since the epoch; now when not given (the core reads no clock)."""
    if value is None:
        return time.time()
    try:
        when = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO 8601 time") from exc
    if when.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no time zone (e.g. 2026-11-26T12:00+01:00)")
    return when.timestamp()


def _examples_context() -> tuple[list[str], DecisionContext, float]:
    """The shipped samples, the demo's DKIM keys and municipalities, and the day they were
    signed: `check --examples` shows their real decisions without any DNS (issue #16)."""
    import json as _json

    from reset_mailbot.demo import SUPPORT_ADDRESS, demo_dir, zone_lookup
    from reset_mailbot.domain.decision import DecisionContext
    from reset_mailbot.rules_loader import load_rules, packaged_rules_dir

    data = demo_dir()
    zone = _json.loads((data / "zone.json").read_text())
    faults = _json.loads((data / "dns_faults.json").read_text())
    rules = load_rules(packaged_rules_dir(), data / "municipalities.yaml")
    files = [str(p) for p in sorted(data.glob("*.eml"))]
    signed_day = datetime.fromisoformat("2026-11-26T12:00:00+00:00").timestamp()
    return files, DecisionContext(rules, zone_lookup(zone, faults), SUPPORT_ADDRESS), signed_day


def check(
    files: Annotated[list[str] | None, typer.Argument(
        help="Message files (.eml); - reads stdin")] = None,
    config: ConfigOption = None,
    examples: Annotated[bool, typer.Option(
        "--examples", help="Decide the shipped sample messages with their own DKIM keys "
        "(no DNS) as of the day they were signed: what the README's first steps show")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per message")] = False,
    at: Annotated[str | None, typer.Option(
        "--at", help="Decide as of this time (ISO 8601 with zone), e.g. for a saved old message;"
        " default: now")] = None,
    db: Annotated[str | None, typer.Option(
        "--db", help="Explain in the light of this database (a SQLite file or a database URL),"
        " opened read-only: what the daemon did or would do (duplicate, follow-up on a closed"
        " request)")] = None,
) -> None:
    """Decide messages without side effects: no mail, no reset, no database write.

    Messages given together are checked as one mailbox would see them: a second message with a
    Message-ID or DKIM signature seen before in the same call is `ignored [duplicate]`. With
    --db, what the daemon recorded counts too (domain/context.py, the daemon's own rules).
    """
    from reset_mailbot import bootstrap
    from reset_mailbot.domain.context import as_duplicate, decide_in_context
    from reset_mailbot.domain.decision import decide

    cfg = load_config(config, for_people=not as_json)
    if examples:
        if files:
            raise typer.BadParameter("--examples decides the shipped samples: give no files")
        files, context, now = _examples_context()
        if at is not None:
            now = _parse_at(at)
    elif not files:
        raise typer.BadParameter("give message files (or - for stdin), or --examples")
    else:
        context = bootstrap.build_decision_context(cfg)
        now = _parse_at(at)
    store = bootstrap.build_read_only_store(db) if db is not None else None
    seen: dict[str, str] = {}
    status = ExitCode.OK
    for name in files:
        try:
            raw = _read_bounded(name, context.limits.max_message_bytes)
        except OSError as exc:
            typer.echo(f"reset-mailbot: error: {name}: {exc.strerror or exc}", err=True)
            status = ExitCode.OPERATOR
            continue
        decision = decide(raw, context, now)
        keys = [decision.message_key, *decision.replay_keys]
        earlier = next((seen[key] for key in keys if key in seen), None)
        if earlier is not None:
            decision = as_duplicate(decision, earlier)
        else:
            seen.update((key, name) for key in keys)
            if store is not None:
                with store.unit_of_work() as uow:
                    facts = uow.facts_for(decision)
                decision = decide_in_context(
                    decision, facts, hashlib.sha256(raw).hexdigest()).decision
        bootstrap.log_decision(decision, file=name)
        if as_json:
            typer.echo(json.dumps(decision.check_json(), ensure_ascii=False))
        else:
            typer.echo(describe(decision, name))
    raise typer.Exit(int(status))


def rules_check(config: ConfigOption = None) -> None:
    """Validate every rule file and print a summary."""
    from reset_mailbot import bootstrap

    cfg = load_config(config)
    rules = bootstrap.build_rules(cfg)
    munis = rules.municipalities.municipalities
    domains = sum(len(m.domains) for m in munis)
    contacts = sum(len(m.contacts) for m in munis)
    typer.echo(f"municipalities: {len(munis)} ({domains} domains, {contacts} registered contacts)")
    groups = rules.group_mailboxes
    typer.echo(
        f"group mailboxes: {len(groups.exact)} exact, {len(groups.prefixes)} prefixes, "
        f"{len(groups.tokens)} tokens"
    )
    typer.echo(f"automatic mail: {len(rules.automatic.headers)} header rules")
    for line in rules.extraction.summary() if hasattr(rules.extraction, "summary") else []:
        typer.echo(line)
    for line in rules.templates.summary():
        typer.echo(line)
    for source in rules.sources:
        typer.echo(f"ok: {source}")
