"""Crash injection for the crash-safety tests ("kill -9 at any point").

Setting RESET_MAILBOT_FAILPOINT=<name> makes the process die with os._exit (no cleanup, no
flush, no rollback: the same as kill -9) when it reaches that point. The names are the windows
between a committed state change and the side effect that follows it, which are exactly where a
crash could lose a message or act twice. Unset in production, this is a dictionary lookup.
"""

from __future__ import annotations

import os

ENV = "RESET_MAILBOT_FAILPOINT"
EXIT_CODE = 137

POINTS = frozenset(
    {
        "after_decision_commit",  # a batch's decisions committed, its messages not yet moved
        "after_move",  # message moved out of the inbox, the move not yet recorded
        "after_claim_execution",  # execution claimed (running), executor not yet called
        "after_execute",  # executor returned, result not yet recorded
        "after_claim_reply",  # reply claimed (sending), SMTP not yet talked to
        "after_smtp_send",  # SMTP accepted DATA, not yet marked sent
    }
)


def failpoint(name: str) -> None:
    if os.environ.get(ENV) == name:
        os._exit(EXIT_CODE)
