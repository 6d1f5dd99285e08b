"""The manual executor: a Forus support employee resets 2FA in the back office.

Nothing is called. A complete request waits in `awaiting_manual_reset` (the inbox puts it there
directly, so the daemon runs no execution job for `kind = "manual"`), and the person records the
outcome with `reset-mailbot requests done ID --by NAME` or `requests failed ID --by NAME
--reason ...`. This class exists so that `requests dry-run` and any code holding an `Executor`
get a truthful answer: a person must act.
"""

from __future__ import annotations

from reset_mailbot.adapters.executors.base import ExecutionJob, ExecutionResult, ExecutionStatus


def instructions(job: ExecutionJob) -> str:
    """What the support employee must do, in the order the back office asks for it."""
    lines = [
        f"1. In the Forus back office, find the identity whose primary e-mail is "
        f"{job.account_email}.",
        "2. Deactivate every active or pending 2FA factor (phone and authenticator) and end "
        "the resident's sessions.",
        f"3. Record it: reset-mailbot requests done {job.request_id} --by YOUR-NAME "
        "[--note ...]",
        f"   or, if it cannot be done: reset-mailbot requests failed {job.request_id} "
        "--by YOUR-NAME --reason '...' (the municipality receives the reason).",
    ]
    if job.case_reference:
        lines.insert(1, f"   (municipality {job.municipality}, case {job.case_reference})")
    return "\n".join(lines)


class ManualExecutor:
    """Hands every reset to a person: `execute` and `dry_run` both answer PENDING_HUMAN."""

    name = "manual"

    def execute(self, job: ExecutionJob) -> ExecutionResult:
        return ExecutionResult(
            status=ExecutionStatus.PENDING_HUMAN, code="manual", detail=instructions(job)
        )

    def dry_run(self, job: ExecutionJob) -> ExecutionResult:
        return self.execute(job)

    def probe(self) -> str:
        return "manual: nothing to reach; a person resets in the Forus back office"
