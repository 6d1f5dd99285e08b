"""The only wiring place: builds rules, DNS lookup and adapters from configuration.

Entry points (cli/) call these builders and hand the results to the core or the service. No
other module loads configuration: the service layer receives finished parts, or the one
settings section it works by (`SlaSettings`, `RetentionSettings`).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from reset_mailbot import __version__
from reset_mailbot.adapters.dns import make_key_lookup
from reset_mailbot.config import (
    Config,
    ConfigError,
    DatabaseSettings,
    ExecutorSettings,
    HaSettings,
    MetricsSettings,
    OAuth2Settings,
    RepliesSettings,
    RetentionSettings,
    SlaSettings,
    SmtpSettings,
)
from reset_mailbot.domain.authentication import KeyLookup
from reset_mailbot.domain.decision import DecisionContext
from reset_mailbot.domain.models import Decision
from reset_mailbot.domain.reply_templates import ReplyTemplates
from reset_mailbot.domain.rules import RuleSet
from reset_mailbot.domain.wire import WireLimits
from reset_mailbot.logs import decision_fields, get_logger
from reset_mailbot.rules_loader import load_reply_templates, load_rules, packaged_rules_dir

if TYPE_CHECKING:
    from reset_mailbot.adapters.db.unit_of_work import Store
    from reset_mailbot.adapters.executors.base import Executor
    from reset_mailbot.adapters.imap import Mailbox
    from reset_mailbot.adapters.oauth import (
        ClientCredentialsTokens,
        GoogleTokens,
        MicrosoftTokens,
        TokenSource,
    )
    from reset_mailbot.adapters.smtp import SmtpSender
    from reset_mailbot.service.daemon import Daemon
    from reset_mailbot.service.inbox_policy import InboxPolicy


def build_rules(config: Config) -> RuleSet:
    settings = config.rules
    rules = load_rules(settings.dir, settings.municipalities)
    return dataclasses.replace(rules, templates=_with_contact(rules.templates, config))


def build_templates(config: Config) -> ReplyTemplates:
    """The reply templates of the configured rules folder (the packaged ones without one):
    a reply a person triggers from the CLI reads like the daemon's."""
    return _with_contact(load_reply_templates(config.rules.dir or packaged_rules_dir()), config)


def _with_contact(templates: ReplyTemplates, config: Config) -> ReplyTemplates:
    """Templates that name [replies] support_contact as the way to reach support."""
    return templates.with_support_contact(config.get(RepliesSettings).support_contact)


def build_key_lookup(config: Config) -> KeyLookup:
    dns = config.dns
    return make_key_lookup(dns.nameservers, dns.port, dns.timeout_seconds)


def build_decision_context(config: Config) -> DecisionContext:
    return DecisionContext(
        rules=build_rules(config),
        key_lookup=build_key_lookup(config),
        support_address=config.mailbox.address,
        max_request_age_days=config.policy.max_request_age_days,
        limits=WireLimits(max_message_bytes=config.mailbox.max_message_bytes),
    )


def log_decision(decision: Decision, **extra: object) -> None:
    """The one structured log line per decided message (README, "Log events")."""
    get_logger().info("decision", **decision_fields(decision), **extra)


# ------------------------------------------------------------------------------ the daemon


def build_store(config: Config) -> Store:
    from reset_mailbot.adapters.db.unit_of_work import Store

    database = config.get(DatabaseSettings)
    url = database.resolved_url()
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    smtp = config.get(SmtpSettings)
    return Store.from_url(
        url,
        max_outbox_attempts=smtp.max_attempts,
        claim_timeout=timedelta(seconds=config.get(HaSettings).claim_timeout_seconds),
    )


def build_read_only_store(database: str) -> Store:
    """The daemon's database for `check --db`: a SQLite file path or a database URL, opened so
    that it refuses every write (and never makes a running daemon wait for a lock)."""
    from reset_mailbot.adapters.db.unit_of_work import Store

    if "://" not in database:
        path = Path(database)
        if not path.is_file():
            raise ConfigError(f"--db {database}: no such database file")
        database = f"sqlite:///{path.resolve()}"
    return Store.from_url(database, read_only=True)


def build_tokens(
    config: Config,
) -> ClientCredentialsTokens | MicrosoftTokens | GoogleTokens | None:
    """The OAuth 2.0 token source of `[oauth2]` when `[mailbox]` or `[smtp]` has
    `auth = "oauth2"`, else None. Build it once per process: the poller, the IDLE watcher and
    the SMTP sender share its cached token."""
    from reset_mailbot.adapters.oauth import ClientCredentialsTokens, MicrosoftTokens

    if config.mailbox.auth != "oauth2" and config.get(SmtpSettings).auth != "oauth2":
        return None
    try:
        oauth = config.get(OAuth2Settings).require()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if oauth.provider == "google":
        from reset_mailbot.adapters.oauth import GoogleTokens, TokenError

        try:
            return GoogleTokens(oauth.service_account_file,  # type: ignore[arg-type]
                                config.mailbox.username or config.mailbox.address,
                                oauth.scope or "https://mail.google.com/")
        except TokenError as exc:
            raise ConfigError(f"[oauth2] {exc}") from exc
    if oauth.provider == "microsoft":
        from reset_mailbot.adapters.oauth import TokenError

        try:
            return MicrosoftTokens(
                str(oauth.tenant_id), str(oauth.client_id), oauth.client_secret,
                oauth.scope or "https://outlook.office365.com/.default",
                authority_host=oauth.authority_host, timeout=oauth.timeout_seconds,
                certificate_file=oauth.client_certificate_file)
        except TokenError as exc:
            raise ConfigError(f"[oauth2] {exc}") from exc
    return ClientCredentialsTokens(str(oauth.token_url), str(oauth.client_id),
                                   str(oauth.client_secret), oauth.scope,
                                   timeout=oauth.timeout_seconds)


def build_mailbox(config: Config, tokens: TokenSource | None = None) -> Mailbox:
    """The IMAP adapter; with `[mailbox] auth = "oauth2"` it logs in with `tokens` (built here
    when not given)."""
    from reset_mailbot.adapters.imap import Mailbox

    box = config.mailbox
    if box.auth == "oauth2" and tokens is None:
        tokens = build_tokens(config)
    return Mailbox(
        box.host, box.port, box.security, box.username or box.address, box.password or "",
        inbox=box.inbox, processed_folder=box.processed_folder,
        quarantine_folder=box.quarantine_folder, batch_size=box.batch_size,
        tokens=tokens if box.auth == "oauth2" else None,
        sasl=config.get(OAuth2Settings).sasl if box.auth == "oauth2" else "XOAUTH2",
    )


def build_smtp(config: Config, tokens: TokenSource | None = None) -> SmtpSender:
    """The SMTP adapter; with `[smtp] auth = "oauth2"` it authenticates with `tokens` (built
    here when not given) as `[smtp] username`, else the support address."""
    from reset_mailbot.adapters.smtp import SmtpSender

    smtp = config.get(SmtpSettings)
    if smtp.auth == "oauth2":
        return SmtpSender(
            smtp.host, smtp.port, smtp.security, smtp.username or config.mailbox.address,
            None, timeout=smtp.timeout_seconds, from_address=config.mailbox.address,
            tokens=tokens or build_tokens(config), sasl=config.get(OAuth2Settings).sasl,
        )
    return SmtpSender(
        smtp.host, smtp.port, smtp.security, smtp.username, smtp.password,
        timeout=smtp.timeout_seconds, from_address=config.mailbox.address,
    )


def build_executor(config: Config) -> Executor | None:
    """The configured executor; None for `manual` (a person resets, `requests done` records it)."""
    settings = config.get(ExecutorSettings)
    if settings.kind == "http":
        from reset_mailbot.adapters.executors.http import HttpExecutor

        assert settings.url is not None  # validated by ExecutorSettings
        return HttpExecutor(settings.url, settings.token or "", settings.timeout_seconds)
    if settings.kind == "forus-db":
        from reset_mailbot.adapters.executors.forus_db import ForusDbExecutor

        assert settings.url is not None
        return ForusDbExecutor(settings.url, revoke_sessions=settings.revoke_sessions)
    return None


def build_inbox_policy(config: Config) -> InboxPolicy:
    from reset_mailbot.service.inbox_policy import InboxPolicy
    from reset_mailbot.service.limits import ResetLimits

    executor = config.get(ExecutorSettings)
    sla = config.get(SlaSettings)
    return InboxPolicy(
        support_address=config.mailbox.address,
        max_message_bytes=config.mailbox.max_message_bytes,
        executor_kind=executor.kind,
        require_approval=executor.require_approval,
        sla_working_days=sla.working_days,
        sla_timezone=sla.timezone,
        max_replies_per_sender_per_hour=config.get(RepliesSettings).max_per_sender_per_hour,
        limits=ResetLimits(
            per_municipality_per_day=executor.max_resets_per_municipality_per_day,
            per_account_per_30_days=executor.max_resets_per_account_per_30_days,
            staff_domains=frozenset(executor.staff_domains),
        ),
    )


def build_daemon(config: Config) -> Daemon:
    """The daemon with every part wired from `config`; the schema is checked (or upgraded with
    `[database] auto_upgrade`) before anything runs."""
    from reset_mailbot.adapters.db.migrate import ensure_schema
    from reset_mailbot.service.daemon import Daemon, DaemonParts

    store = build_store(config)
    ensure_schema(store.engine, auto_upgrade=config.get(DatabaseSettings).auto_upgrade)
    executor = config.get(ExecutorSettings)
    ha = config.get(HaSettings)
    tokens = build_tokens(config)  # one token cache for the poller and the IDLE watcher
    return Daemon(DaemonParts(
        store=store,
        context=build_decision_context(config),
        policy=build_inbox_policy(config),
        open_mailbox=lambda: build_mailbox(config, tokens),
        smtp=build_smtp(config, tokens),
        executor=build_executor(config),
        executor_kind=executor.kind,
        max_attempts=executor.max_attempts,
        executor_concurrency=executor.concurrency,
        executor_max_calls_per_second=executor.max_calls_per_second,
        poll_interval_seconds=config.mailbox.poll_interval_seconds,
        idle=config.mailbox.idle,
        sla=config.get(SlaSettings),
        retention=config.get(RetentionSettings),
        metrics_listen=config.get(MetricsSettings).listen,
        failover_seconds=ha.failover_seconds,
        instance_id=ha.instance_id,
        use_lease=store.engine.dialect.name == "postgresql",
        version=__version__,
    ))
