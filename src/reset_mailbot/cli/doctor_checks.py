"""The checks of `reset-mailbot doctor` (the command itself is in doctor.py).

`doctor` answers "will `run` work here?" before support finds out from a silent mailbox: it
tries every outside dependency the daemon needs the way the daemon uses it, and prints one line
per check (`PASS`/`FAIL`, what, and for a failure a fix hint). Exit code 1 on any failure, so
it can gate a deployment. It changes nothing, except creating the processed/quarantine IMAP
folders when missing (exactly what `run` would do first).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reset_mailbot import bootstrap
from reset_mailbot.config import (
    SECTIONS,
    Config,
    ConfigError,
    DatabaseSettings,
    ExecutorSettings,
    MetricsSettings,
    SmtpSettings,
)

DKIM_SELECTORS = ("selector1", "selector2")  # Microsoft 365's, the most common at municipalities


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    hint: str = ""
    skipped: bool = False  # not tried: what it needs failed already (and was reported)

    def line(self) -> str:
        detail = " ".join(self.detail.split())
        status = "SKIP" if self.skipped else ("PASS" if self.ok else "FAIL")
        text = f"{status} {self.name}: {detail}"
        return text + (f" (fix: {self.hint})" if not self.ok and self.hint else "")


def passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, hint: str) -> Check:
    return Check(name, False, detail, hint)


def not_tried(name: str, problem: ConfigError) -> Check:
    """A check that needs a section the `config` line already reported as invalid: one line
    says so instead of repeating the same error under another name."""
    found = re.search(r"\[(\w+)\]", str(problem))
    section = f"[{found.group(1)}]" if found else "the configuration"
    return Check(name, True, f"not tried: {section} is invalid (see the config line)",
                 skipped=True)


# ----------------------------------------------------------------------------- checks


def check_config(config: Config) -> Check:
    problems: list[str] = []
    for cls in SECTIONS.values():
        try:
            config.get(cls)
        except ConfigError as exc:
            problems.append(str(exc))
    if not problems:
        from reset_mailbot.service.metrics import parse_listen

        try:
            parse_listen(config.get(MetricsSettings).listen)
        except ValueError as exc:
            problems.append(str(exc))
    where = str(config.path) if config.path else "defaults (no config file)"
    if problems:
        return failed("config", "; ".join(problems),
                       "correct the setting it names; every key is listed in "
                       "reset-mailbot.example.toml")
    return passed("config", f"{where}: all {len(SECTIONS)} sections valid")


def check_rules(config: Config) -> Check:
    from reset_mailbot.rules_loader import RulesError

    try:
        rules = bootstrap.build_rules(config)
    except (RulesError, ConfigError) as exc:
        return failed("rules", str(exc), "run `reset-mailbot rules check` and fix the file named")
    munis = rules.municipalities.municipalities
    return passed("rules", f"{len(munis)} municipalities, "
                            f"{sum(len(m.domains) for m in munis)} domains")


def check_imap(config: Config) -> list[Check]:
    from reset_mailbot.adapters.imap import MailboxAuthError, MailboxError
    from reset_mailbot.adapters.oauth import TokenError

    checks: list[Check] = []
    try:
        tokens = bootstrap.build_tokens(config)
    except ConfigError as exc:
        if "[oauth2]" not in str(exc):  # [mailbox] or [smtp]: the config line names it
            return [not_tried("imap login", exc)]
        return [failed("oauth2 token", str(exc),
                       "set the [oauth2] keys of the provider (README, \"Deploy\")")]
    if tokens is not None:  # the token first, then the SASL login: two causes, two lines
        try:
            tokens.token()
        except TokenError as exc:
            return [failed("oauth2 token", str(exc),
                           "check [oauth2] client_id, client_secret and scope, and the app "
                           "registration at the provider")]
        checks.append(passed("oauth2 token", f"issued by {tokens.token_url} to client "
                                              f"{tokens.client_id}"))
    try:
        mailbox = bootstrap.build_mailbox(config, tokens)
    except ConfigError as exc:
        return [*checks, not_tried("imap login", exc)]
    except ValueError as exc:
        return [*checks, failed("imap login", str(exc), "correct [mailbox]")]
    where = f"{mailbox.username} at {mailbox.host}:{mailbox.port} ({mailbox.security})"
    try:
        mailbox.connect()
    except MailboxAuthError as exc:
        hint = ("grant the app access to the mailbox ([mailbox] username) and check the "
                "[oauth2] scope" if tokens is not None
                else "check [mailbox] username and password (or password_file)")
        return [*checks, failed("imap login", f"{where}: {exc}", hint)]
    except MailboxError as exc:
        return [*checks, failed("imap login", f"{where}: {exc}",
                                "is the IMAP server up? check [mailbox] host, port and security")]
    how = f", {mailbox.sasl}" if tokens is not None else ""
    checks.append(passed("imap login",
                         f"{where}{how}, IDLE {'yes' if mailbox.has('IDLE') else 'no'}"))
    try:
        try:
            mailbox.select_inbox()
        except MailboxError as exc:
            checks.append(failed("imap folders", f"inbox {mailbox.inbox!r}: {exc}",
                                  "check [mailbox] inbox (the folder must exist)"))
            return checks
        missing = [f for f in (mailbox.processed_folder, mailbox.quarantine_folder)
                   if not mailbox.client.folder_exists(f)]
        try:
            mailbox.ensure_folders()
        except MailboxError as exc:
            checks.append(failed(
                "imap folders", f"cannot create {', '.join(missing)}: {exc}",
                "create the folders by hand or give the account the right to create them",
            ))
            return checks
        created = f" (created {', '.join(missing)})" if missing else ""
        checks.append(passed("imap folders", f"{mailbox.inbox}, {mailbox.processed_folder}, "
                                              f"{mailbox.quarantine_folder}{created}"))
        return checks
    finally:
        mailbox.close()


def check_smtp(config: Config) -> Check:
    from reset_mailbot.adapters.smtp import SmtpConfigurationError, SmtpError

    try:
        sender = bootstrap.build_smtp(config)
        config.get(SmtpSettings)
    except ConfigError as exc:
        return not_tried("smtp", exc)
    except ValueError as exc:
        return failed("smtp", str(exc), "correct [smtp]")
    where = f"{sender.host}:{sender.port} ({sender.security})"
    try:
        detail = sender.probe()
    except SmtpConfigurationError as exc:
        hint = ("check [oauth2] and that the app may send as [smtp] username"
                if config.get(SmtpSettings).auth == "oauth2"
                else "check [smtp] username/password and security (starttls, ssl)")
        return failed("smtp", f"{where}: {exc}", hint)
    except SmtpError as exc:
        return failed("smtp", f"{where}: {exc}",
                       "is the SMTP server up? check [smtp] host, port and security")
    auth = (f"with AUTH {sender.sasl}" if config.get(SmtpSettings).auth == "oauth2"
            else "with AUTH" if sender.username else "without AUTH")
    return passed("smtp", f"{detail}, {auth}")


def dkim_probe_names(config: Config, explicit: str | None) -> list[str]:
    """The name(s) to look up: --dkim-probe, else selector1/2 of the first municipal domain."""
    if explicit:
        return [explicit]
    municipalities = bootstrap.build_rules(config).municipalities.municipalities
    domain = municipalities[0].domains[0]
    return [f"{selector}._domainkey.{domain}" for selector in DKIM_SELECTORS]


def check_dns(config: Config, explicit: str | None) -> Check:
    """A DKIM key lookup as the decision does it: an answer (even "no key") is a pass."""
    from reset_mailbot.domain.authentication import TemporaryKeyLookupError
    from reset_mailbot.rules_loader import RulesError

    try:
        names = dkim_probe_names(config, explicit)
        lookup = bootstrap.build_key_lookup(config)
        dns = config.dns
    except (ConfigError, RulesError) as exc:
        return failed("dns", str(exc), "correct [dns] and [rules] first")
    servers = ", ".join(f"{s}:{dns.port}" for s in dns.nameservers) or "system resolver"
    for name in names:
        try:
            key = lookup(name)
        except TemporaryKeyLookupError as exc:
            return failed(
                "dns", f"{name} via {servers}: {exc}",
                "check [dns] nameservers, port and timeout_seconds; while DNS fails every "
                "message is deferred",
            )
        if key is not None:
            return passed("dns", f"DKIM key found at {name} via {servers}")
    return passed("dns", f"resolver answers via {servers} (no DKIM key at {', '.join(names)})")


def check_database(config: Config) -> Check:
    from reset_mailbot.adapters.db.migrate import current_revision, head_revision

    try:
        url = config.get(DatabaseSettings).resolved_url()
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            # connecting would create an empty file: say so instead of leaving one behind
            return failed("database", f"{url}: no database file",
                           "run `reset-mailbot db upgrade` (creates it), or check [database]")
        store = bootstrap.build_store(config)
    except (ConfigError, ValueError, OSError) as exc:
        return failed("database", str(exc), "correct [database] url")
    shown = store.engine.url.render_as_string(hide_password=True)
    try:
        current = current_revision(store.engine)
    except Exception as exc:  # any driver error: unreachable, refused, no such database
        return failed("database", f"{shown}: {type(exc).__name__}: {str(exc)[:300]}",
                       "is the database up? check [database] url (or url_file)")
    finally:
        store.engine.dispose()
    head = head_revision()
    if current is None:
        return failed("database", f"{shown}: no schema (empty database)",
                       "run `reset-mailbot db upgrade`")
    if current != head:
        return failed("database", f"{shown}: schema at revision {current}, this version needs "
                                   f"{head}", "run `reset-mailbot db upgrade`")
    return passed("database", f"{shown}: schema at head ({head})")


def check_instances(config: Config) -> Check:
    """The daemons registered on this database (issue #15): the leader and each instance's
    last heartbeat. Fails only when live instances exist and none holds the lease."""
    from datetime import UTC, datetime

    from reset_mailbot.config import HaSettings

    failover = config.get(HaSettings).failover_seconds
    store = bootstrap.build_store(config)
    try:
        with store.unit_of_work() as uow:
            instances = uow.instances.all()
            lease = uow.instances.lease()
    except Exception as exc:
        return failed("instances", f"{type(exc).__name__}: {str(exc)[:300]}",
                      "is the database up? check [database] url")
    finally:
        store.engine.dispose()
    if not instances:
        return passed("instances", "no daemon registered (none has run on this database)")
    now = datetime.now(UTC)
    parts = []
    live = 0
    for instance in instances:
        age = (now - instance.heartbeat_at).total_seconds()
        live += age <= failover
        role = "leader" if instance.leader else ("standby" if age <= failover else "silent")
        parts.append(f"{instance.id} {role}, heartbeat {age:.0f}s ago")
    leader = next((i.id for i in instances if i.leader), None)
    detail = "; ".join(parts)
    if lease is not None and leader is None and lease.expires_at > now:
        leader = lease.holder
    if live and leader is None and store.engine.dialect.name == "postgresql":
        return failed("instances", f"no instance holds the leader lease: {detail}",
                      f"a standby takes over within [ha] failover_seconds ({failover:.0f}s); "
                      "if this stays, check the daemons' logs for heartbeat_failed")
    return passed("instances", (f"leader {leader}: " if leader else "") + detail)


def check_executor(config: Config) -> Check:
    try:
        settings = config.get(ExecutorSettings)
        executor = bootstrap.build_executor(config)
    except (ConfigError, ValueError) as exc:
        return failed("executor", str(exc), "correct [executor]")
    if executor is None:
        return passed("executor", "manual: a person resets and records it (nothing to reach)")
    try:
        detail = executor.probe()
    except Exception as exc:  # each executor raises its own error type
        hint = ("check [executor] url and token, and that Forus is reachable from here"
                if settings.kind == "http" else
                "check [executor] url, the database user's rights (docs/executor-forus-db.md)")
        return failed("executor", f"{settings.kind}: {exc}", hint)
    finally:
        close = getattr(executor, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
    return passed("executor", f"{settings.kind}: {detail}")


def console_configured(config: Config) -> bool:
    """A [console] section in the file or in the environment: only then is it checked."""
    import os

    return "console" in config.data or any(
        key.upper().startswith("RESET_MAILBOT_CONSOLE__") for key in os.environ)


def check_console(config: Config) -> Check:
    """The console's settings, and for OIDC the provider's discovery document: a wrong issuer
    would otherwise surface as a failed login on the first morning."""
    import httpx2

    from reset_mailbot.config import ConsoleSettings

    try:
        settings = config.get(ConsoleSettings).require()
    except (ConfigError, ValueError) as exc:
        return failed("console", str(exc), "correct [console] (docs/console.md)")
    people = f"{len(settings.roles)} people, {len(settings.role_groups)} groups with a role"
    if settings.auth == "trusted_header":
        return passed("console", f"{settings.base_url}, trusted_header from "
                                 f"{', '.join(settings.trusted_proxies)}; {people}")
    issuer = str(settings.oidc_issuer).rstrip("/")
    url = issuer + "/.well-known/openid-configuration"
    try:
        answer = httpx2.get(url, timeout=10)
        answer.raise_for_status()
        found = answer.json()
    except (httpx2.HTTPError, ValueError) as exc:
        return failed("console", f"OpenID discovery {url}: {exc}",
                      "check [console] oidc_issuer (Entra ID: https://login.microsoftonline.com"
                      "/<tenant-id>/v2.0; Google: https://accounts.google.com)")
    if not isinstance(found, dict) or str(found.get("issuer", "")).rstrip("/") != issuer:
        return failed("console", f"OpenID discovery {url}: issuer is "
                                 f"{found.get('issuer') if isinstance(found, dict) else '?'!r}",
                      "set [console] oidc_issuer to the issuer the provider names")
    if "S256" not in (found.get("code_challenge_methods_supported") or ["S256"]):
        return failed("console", f"{issuer} does not offer PKCE S256",
                      "use a provider that supports PKCE")
    return passed("console", f"{settings.base_url}, OpenID provider {issuer} "
                             f"(client {settings.oidc_client_id}); {people}")


# ----------------------------------------------------------------------------- command


def run_checks(config: Config, dkim_probe: str | None = None,
               emit: Callable[[Check], None] | None = None) -> list[Check]:
    """Every check in order; `emit` sees each one as soon as it is known."""
    results: list[Check] = []
    steps: list[Callable[[], Check | list[Check]]] = [
        lambda: check_config(config),
        lambda: check_rules(config),
        lambda: check_imap(config),
        lambda: check_smtp(config),
        lambda: check_dns(config, dkim_probe),
        lambda: check_database(config),
        lambda: [check_instances(config)] if results[-1].ok else [],  # needs the schema
        lambda: check_executor(config),
        lambda: [check_console(config)] if console_configured(config) else [],
    ]
    for step in steps:
        outcome = step()
        for check in outcome if isinstance(outcome, list) else [outcome]:
            results.append(check)
            if emit is not None:
                emit(check)
    return results
