"""What a person does to a reply (issue #17): resend one whose delivery failed for good.

The CLI (`replies resend`) and the web console call `resend_reply`; the rule lives here so it
is the same for both. The reply is not built again: the row goes back to `queued`, due now,
with its attempts counted from zero, and the daemon's outbox job sends the very bytes stored
when it was queued, with the same Message-ID (so a municipality that did get the first one
sees the same message, and a reply to either threads the same way). Unit of work: the state
change and the `reply_resent` audit entry (actor: the person) commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from reset_mailbot.adapters.db.outbox import OutboxState
from reset_mailbot.adapters.db.schema import utcnow
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.logs import get_logger
from reset_mailbot.service.actions import ActionOutcome, ActionRefused

log = get_logger("reset_mailbot.actions")


def resend_reply(
    store: Store,
    reply_id: int,
    *,
    by: str,
    clock: Callable[[], datetime] = utcnow,
) -> ActionOutcome:
    """Queue a reply whose delivery failed permanently again, byte-identical.

    Refused (ActionRefused) for an unknown id, a reply that is not `failed` (queued, sending
    and sent ones are the daemon's), one emptied by retention, and without a person (`by`).
    `ActionOutcome.request_id` is the reply's request ("" for a reply to a message that made
    none, e.g. sender_not_registered); `state` is the reply's new state, `queued`.
    """
    actor = " ".join(by.split())
    if not actor:
        raise ActionRefused("--by must name the person acting")
    now = clock()
    with store.unit_of_work() as uow:
        try:
            item = uow.outbox.get(reply_id)
        except LookupError:
            raise ActionRefused(f"no reply {reply_id}") from None
        if item.state != OutboxState.FAILED:
            raise ActionRefused(
                f"reply {reply_id} is {item.state}; only a failed reply can be resent"
                + (" (the daemon is still trying it)" if item.state != OutboxState.SENT else "")
            )
        requeued = uow.outbox.requeue_failed(reply_id, actor=actor, now=now)
        if requeued is None:  # emptied by retention, or another person resent it just now
            raise ActionRefused(f"reply {reply_id} cannot be resent: its stored message was "
                                "deleted by retention, or it was resent at the same moment")
        request_id, kind, to = requeued.request_id, requeued.kind, requeued.to_address
        reply_message_id = requeued.reply_message_id
    log.info("reply_resent", outbox_id=reply_id, request_id=request_id, kind=kind, to=to,
             reply_message_id=reply_message_id, resent_by=actor)
    return ActionOutcome(request_id or "", OutboxState.QUEUED,
                         f"reply {reply_id} ({kind}) queued again by {actor}; the daemon "
                         "sends it with the same Message-ID")
