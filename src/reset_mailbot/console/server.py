"""Serving the console: alone (`reset-mailbot console`) or in a thread of the daemon
(`[console] with_daemon = true`), with uvicorn.

`build_deps` wires the console from the configuration with `bootstrap`'s builders, so the
console acts with the same store, templates, executor and rules as the daemon and the CLI.
Demo mode (`--demo`) is refused unless the console listens on loopback.
"""

from __future__ import annotations

import secrets
import threading
from zoneinfo import ZoneInfo

import uvicorn

from reset_mailbot.adapters.db.schema import utcnow
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.config import (
    Config,
    ConfigError,
    ConsoleSettings,
    ExecutorSettings,
    SlaSettings,
)
from reset_mailbot.console.app import build_app
from reset_mailbot.console.auth import AuthSettings
from reset_mailbot.console.deps import ConsoleDeps
from reset_mailbot.domain.addresses import is_loopback
from reset_mailbot.logs import get_logger

log = get_logger("reset_mailbot.console")


def console_settings(config: Config, *, demo: bool) -> tuple[ConsoleSettings, AuthSettings, str]:
    """The settings, the login mode and the session secret; ConfigError when they cannot
    serve (a missing secret or client, demo mode off loopback)."""
    settings = config.get(ConsoleSettings)
    host = settings.listen.rpartition(":")[0].strip("[]")
    if demo:
        if not is_loopback(host):
            raise ConfigError(f"[console] listen {settings.listen}: --demo serves loopback "
                              "only (it has no login)")
        return settings, AuthSettings("demo", settings), secrets.token_urlsafe(32)
    try:
        settings.require()
    except ValueError as exc:
        raise ConfigError(f"{config.path or 'configuration'}: {exc}") from None
    return settings, AuthSettings(settings.auth, settings), str(settings.session_secret)


def build_deps(config: Config, store: Store, settings: ConsoleSettings,
               auth: AuthSettings) -> ConsoleDeps:
    from reset_mailbot import bootstrap
    from reset_mailbot.service.inbox import InboxProcessor

    def processor() -> InboxProcessor:
        return InboxProcessor(store, bootstrap.build_decision_context(config),
                              bootstrap.build_inbox_policy(config))

    return ConsoleDeps(
        store=store, settings=settings, auth=auth,
        tz=ZoneInfo(config.get(SlaSettings).timezone),
        quarantine_folder=config.mailbox.quarantine_folder,
        support_address=config.mailbox.address,
        templates=bootstrap.build_templates(config),
        extraction=bootstrap.build_rules(config).extraction,
        max_attempts=config.get(ExecutorSettings).max_attempts,
        executor=lambda: bootstrap.build_executor(config),
        processor=processor,
        clock=utcnow,
    )


def make_server(config: Config, store: Store, *, demo: bool = False) -> uvicorn.Server:
    settings, auth, secret = console_settings(config, demo=demo)
    app = build_app(build_deps(config, store, settings, auth), secret)
    host, _, port = settings.listen.rpartition(":")
    server = uvicorn.Server(uvicorn.Config(
        app, host=host.strip("[]"), port=int(port), log_config=None, access_log=False,
        proxy_headers=False,  # the client address decides trusted_header: never from a header
        server_header=False, lifespan="off",
    ))
    log.info("console_listening", url=settings.base_url, auth=auth.mode)
    return server


def serve_in_thread(server: uvicorn.Server) -> threading.Thread:
    """For the daemon: the console beside the jobs; `server.should_exit = True` stops it."""
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    return thread
