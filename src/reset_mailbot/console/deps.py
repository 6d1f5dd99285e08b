"""What the console's pages and actions need, built once by `server.build_deps`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.adapters.executors.base import Executor
from reset_mailbot.config import ConsoleSettings
from reset_mailbot.console.auth import AuthSettings
from reset_mailbot.domain.extraction import ExtractionRules
from reset_mailbot.domain.reply_templates import ReplyTemplates
from reset_mailbot.service.inbox import InboxProcessor


@dataclass
class ConsoleDeps:
    store: Store
    settings: ConsoleSettings
    auth: AuthSettings
    tz: ZoneInfo
    quarantine_folder: str
    support_address: str
    templates: ReplyTemplates
    extraction: ExtractionRules  # where a message's quoted history starts (readable_text)
    max_attempts: int
    # a fresh executor per approval (None: manual resets); closed after the action
    executor: Callable[[], Executor | None]
    processor: Callable[[], InboxProcessor]  # for "reprocess"
    clock: Callable[[], datetime]
