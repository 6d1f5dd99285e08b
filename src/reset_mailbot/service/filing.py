"""Where a decided message goes in the mailbox, and the MOVEs that take it there.

Folders: complete, incomplete, ignored and answered rejections go to Processed; rejections we
do not answer (unauthenticated, not allowlisted, malformed, oversize) and processing errors go
to Quarantine; deferred messages stay in the inbox until a later poll decides them again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.adapters.imap import Mailbox
from reset_mailbot.domain.reasons import Outcome
from reset_mailbot.service.failpoints import failpoint

PROCESSED = "processed"
QUARANTINE = "quarantine"
STAY = "stay"



@dataclass
class PollStats:
    seen: int = 0
    decided: int = 0
    moved: int = 0
    skipped: int = 0
    errors: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def folder_for(outcome: str | None, reply: bool, error: str | None = None) -> str:
    if error is not None and outcome is None:
        return QUARANTINE
    if outcome == Outcome.DEFERRED:
        return STAY
    if outcome == Outcome.REJECTED and not reply:
        return QUARANTINE
    return PROCESSED


def imap_folder(mailbox: Mailbox, folder: str) -> str:
    """The mailbox folder name for PROCESSED or QUARANTINE."""
    return mailbox.processed_folder if folder == PROCESSED else mailbox.quarantine_folder



class PendingMoves:
    """MOVEs of decided messages, sent a batch at a time (one UID MOVE per folder).

    Only messages whose decision is committed are added, so a crash before `flush` leaves
    committed decisions whose MOVE the next poll finishes (`InboxProcessor._resume_target`);
    a crash after the MOVE but before the "moved" commit leaves messages out of the inbox
    whose rows say not moved, which the next poll records
    (`InboxProcessor._record_moves_done_before_a_crash`).
    """

    def __init__(
        self, mailbox: Mailbox, store: Store, stats: PollStats, clock: Callable[[], datetime]
    ) -> None:
        self.mailbox = mailbox
        self.store = store
        self.stats = stats
        self.clock = clock
        self.pending: dict[str, list[tuple[int, int | None]]] = {}
        self.count = 0

    def add(self, uid: int, folder: str, message_pk: int | None) -> None:
        if folder == STAY:
            return
        self.pending.setdefault(folder, []).append((uid, message_pk))
        self.count += 1
        if self.count >= self.mailbox.batch_size:
            self.flush()

    def flush(self) -> None:
        for folder, items in self.pending.items():
            target = imap_folder(self.mailbox, folder)
            self.mailbox.move_many([uid for uid, _ in items], target)
            failpoint("after_move")
            self.stats.moved += len(items)
            with self.store.unit_of_work() as uow:
                uow.messages.mark_all_moved(
                    (pk for _, pk in items if pk is not None), target, now=self.clock()
                )
        self.pending.clear()
        self.count = 0
