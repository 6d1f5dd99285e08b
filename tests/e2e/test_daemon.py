"""`reset-mailbot run` against real Dovecot, SMTP, DNS, HTTP executor and database.

The daemon runs as its own process. These tests check what a user would see: where the
message ended up, which replies went out (and only once), what the executor was asked, and that
a crash at any point leaves state from which a restart finishes the work without acting twice.
"""

from __future__ import annotations

import email.utils
import json
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from reset_mailbot_testing.dkim_signing import DEFAULT_SIGNED_HEADERS, message_id, plain_message
from tests.e2e.daemon_env import CLI, DaemonEnv

INCOMPLETE_BODY = (
    "Beste Forus,\r\n\r\nKunnen jullie iets doen aan de 2FA van een inwoner?\r\n\r\n"
    "Met vriendelijke groet,\r\nJan de Vries\r\n"
)
COMPLETE_BODY = (
    "Beste Forus support,\r\n\r\n"
    "E-mailadres account: piet.jansen@hotmail.com\r\n"
    "De identiteit van de inwoner is vandaag aan de balie gecontroleerd met een paspoort.\r\n"
    "Hierbij geeft de gemeente Utrecht opdracht om de 2FA te resetten.\r\n"
    "Dossiernummer: 88123\r\n\r\n"
    "Met vriendelijke groet,\r\nJan de Vries\r\n"
)



#: what Google Workspace signs in a reply, and what Microsoft 365 signs in any message
THREAD_SIGNED = (*DEFAULT_SIGNED_HEADERS, "in-reply-to", "references")
M365_SIGNED = ("from", "date", "subject", "message-id", "content-type", "mime-version")

def kinds(env: DaemonEnv) -> list[str]:
    return [str(m["X-Reset-Mailbot"]) for m in env.replies()]


def test_incomplete_request_gets_one_reply_and_is_filed(env: DaemonEnv) -> None:
    original = env.request(INCOMPLETE_BODY)
    env.deliver(original)
    env.run_once()
    assert env.folder("INBOX") == []
    assert len(env.folder("Processed")) == 1
    [reply] = env.replies()
    assert reply["X-Reset-Mailbot"] == "incomplete"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert email.utils.parseaddr(reply["To"])[1] == "j.devries@utrecht.nl"
    original_id = email.message_from_bytes(original)["Message-ID"]
    assert reply["In-Reply-To"] == original_id
    assert original_id in reply["References"]
    rows = env.sql("select state, sender from requests")
    assert rows == [("incomplete", "j.devries@utrecht.nl")]
    # running again changes nothing and sends nothing
    env.run_once()
    assert len(env.replies()) == 1
    assert env.forus.posts() == []


def test_unauthenticated_mail_is_quarantined_without_reply(env: DaemonEnv) -> None:
    env.deliver(plain_message(body=COMPLETE_BODY))  # not signed
    env.run_once()
    assert env.folder("INBOX") == []
    assert len(env.folder("Quarantine")) == 1
    assert env.replies() == []
    assert env.sql("select outcome, reasons from messages")[0][0] == "rejected"


def test_group_mailbox_gets_an_explaining_reply(env: DaemonEnv) -> None:
    env.deliver(env.request(COMPLETE_BODY, from_="Gemeente Utrecht <info@utrecht.nl>"))
    env.run_once()
    assert len(env.folder("Processed")) == 1
    assert kinds(env) == ["rejected_group"]
    assert env.forus.posts() == []


def test_automatic_mail_is_ignored(env: DaemonEnv) -> None:
    env.deliver(env.request(INCOMPLETE_BODY, extra_headers=[("Auto-Submitted", "auto-replied")]))
    env.run_once()
    assert len(env.folder("Processed")) == 1
    assert env.replies() == []


def test_replayed_message_id_is_ignored_without_second_reply(env: DaemonEnv) -> None:
    msgid = message_id()
    env.deliver(env.request(INCOMPLETE_BODY, msgid=msgid))
    env.run_once()
    env.deliver(env.request(INCOMPLETE_BODY + "\r\nP.S.\r\n", msgid=msgid))
    env.run_once()
    assert len(env.folder("Processed")) == 2
    assert len(env.replies()) == 1
    assert env.sql("select count(*) from audit_log where event = 'duplicate_ignored'") == [(1,)]


def test_new_uidvalidity_is_logged_and_nothing_is_decided_twice(env: DaemonEnv) -> None:
    """The mailbox is rebuilt (a restore, a server migration): UIDVALIDITY changes and every
    message comes back with new UIDs. Message-IDs, not UIDs, say what was decided."""
    original = env.request(INCOMPLETE_BODY)
    env.deliver(original)
    env.run_once()
    [(old_validity,)] = env.sql("select uidvalidity from mailbox_state")
    # what a restore does: the message back in the inbox, the inbox's UID list rebuilt
    maildir = env.mailbox.server.home(env.mailbox.address) / "Maildir"
    for index in [maildir / "dovecot-uidlist", *maildir.glob("dovecot.index*")]:
        index.unlink()
    time.sleep(1.1)  # Dovecot derives a new UIDVALIDITY from the clock
    env.deliver(original)
    run = env.run_once()
    [(new_validity,)] = env.sql("select uidvalidity from mailbox_state")
    assert new_validity != old_validity
    events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    changed = [e for e in events if e["event"] == "uidvalidity_changed"]
    assert [(e["old"], e["new"]) for e in changed] == [(old_validity, new_validity)]
    assert env.folder("INBOX") == []
    assert len(env.replies()) == 1  # decided once, answered once
    assert env.sql("select count(*) from requests") == [(1,)]
    assert env.sql("select count(*) from messages") == [(1,)]


def test_dns_failure_defers_and_a_later_run_decides(env: DaemonEnv) -> None:
    raw = env.request(INCOMPLETE_BODY)
    env.dns.set_faults(servfail=["e2e._domainkey.utrecht.nl"])
    env.deliver(raw)
    env.run_once()
    assert len(env.folder("INBOX")) == 1  # stays for a retry
    assert env.replies() == []
    assert env.sql("select outcome from messages") == [("deferred",)]
    env.dns.set_faults(servfail=[])
    env.run_once()  # not yet due: the retry waits with backoff
    assert len(env.folder("INBOX")) == 1
    env.sql("update messages set decided_at = :t", t="2000-01-01 00:00:00")
    env.run_once()
    assert env.folder("INBOX") == []
    assert kinds(env) == ["incomplete"]


def test_oversize_message_is_quarantined_without_download(env: DaemonEnv) -> None:
    env.max_message_bytes = 2000
    env.deliver(env.request(INCOMPLETE_BODY + "x" * 5000 + "\r\n"))
    env.run_once()
    assert len(env.folder("Quarantine")) == 1
    assert env.sql("select reasons, raw from messages") == [('["oversize"]', None)] or \
        env.sql("select raw from messages") == [(None,)]
    assert env.replies() == []


def test_garbage_does_not_stop_the_others(env: DaemonEnv) -> None:
    env.deliver(b"\x00\xff garbage without headers\r\n")
    env.deliver(env.request(INCOMPLETE_BODY))
    env.run_once()
    assert env.folder("INBOX") == []
    assert kinds(env) == ["incomplete"]


def test_smtp_down_keeps_the_reply_and_sends_it_later(env: DaemonEnv) -> None:
    env.sink.refuse = 451
    env.deliver(env.request(INCOMPLETE_BODY))
    env.run_once()
    assert env.replies() == []
    assert env.sql("select state, attempts from outbox") == [("queued", 1)]
    env.sink.refuse = None
    env.sql("update outbox set next_attempt_at = :t", t="2000-01-01 00:00:00")
    env.run_once()
    assert kinds(env) == ["incomplete"]
    assert env.sql("select state from outbox") == [("sent",)]


@pytest.mark.parametrize("point", ["after_decision_commit", "after_claim_reply"])
def test_crash_before_side_effect_then_restart_replies_once(env: DaemonEnv, point: str) -> None:
    env.deliver(env.request(INCOMPLETE_BODY))
    crashed = env.run_once(failpoint=point, check=False)
    assert crashed.returncode == 137
    if point == "after_claim_reply":
        # the claim's lease must expire before another worker takes it over
        env.sql("update outbox set claimed_at = :t", t="2000-01-01 00:00:00")
    env.run_once()
    assert env.folder("INBOX") == []
    assert len(env.folder("Processed")) == 1
    assert kinds(env) == ["incomplete"]
    env.run_once()
    assert len(env.replies()) == 1


def test_crash_after_a_batch_commit_finishes_every_message_of_it_once(env: DaemonEnv) -> None:
    """Several messages share one transaction; a kill after its commit leaves all of them
    decided and still in the inbox: the restart files them and acts on each exactly once."""
    env.deliver(env.request(INCOMPLETE_BODY))
    env.deliver(env.request(INCOMPLETE_BODY, from_="Anna Smit <a.smit@utrecht.nl>"))
    env.deliver(env.request(COMPLETE_BODY, from_="Sanne Kuipers <s.kuipers@utrecht.nl>"))
    assert env.run_once(failpoint="after_decision_commit", check=False).returncode == 137
    assert len(env.folder("INBOX")) == 3
    assert env.sql("select count(*) from messages where outcome is not null") == [(3,)]
    env.run_once()
    env.run_once()
    assert env.folder("INBOX") == []
    assert len(env.folder("Processed")) == 3
    assert sorted(kinds(env)) == ["confirmation", "incomplete", "incomplete"]
    assert env.forus.resets["piet.jansen@hotmail.com"] == 1


def test_crash_between_move_and_its_record_is_repaired_without_acting_again(
    env: DaemonEnv,
) -> None:
    env.deliver(env.request(INCOMPLETE_BODY))
    env.deliver(env.request(INCOMPLETE_BODY, from_="Anna Smit <a.smit@utrecht.nl>"))
    env.deliver(plain_message(body=INCOMPLETE_BODY))  # unsigned: quarantined, no reply
    crashed = env.run_once(failpoint="after_move", check=False)
    assert crashed.returncode == 137
    # the first folder's batch went out; the database does not know yet
    assert env.sql("select count(*) from messages where folder_moved_to is null") == [(3,)]
    restarted = env.run_once()
    assert restarted.stderr.count('"event": "move_recorded_late"') == 2
    assert env.folder("INBOX") == []
    assert len(env.folder("Processed")) == 2 and len(env.folder("Quarantine")) == 1
    assert sorted(env.sql("select folder_moved_to from messages")) == [
        ("Processed",), ("Processed",), ("Quarantine",)
    ]
    assert kinds(env) == ["incomplete", "incomplete"]
    assert env.sql("select count(*) from messages") == [(3,)]


def test_crash_after_smtp_send_does_not_resend_within_the_lease(env: DaemonEnv) -> None:
    env.deliver(env.request(INCOMPLETE_BODY))
    crashed = env.run_once(failpoint="after_smtp_send", check=False)
    assert crashed.returncode == 137
    assert len(env.replies()) == 1
    env.run_once()
    assert len(env.replies()) == 1
    assert env.sql("select state from outbox") == [("sending",)]


def test_daemon_uses_idle_and_stops_cleanly_on_sigterm(env: DaemonEnv) -> None:
    proc = subprocess.Popen(
        [*CLI, "run", "--config", str(env.config_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")},
    )
    try:
        time.sleep(3)  # first poll done, IDLE watching
        env.deliver(env.request(INCOMPLETE_BODY))
        # poll interval is 30 s: a reply within ~10 s proves IDLE woke the poll
        env.sink.wait_for(1, timeout=15)
        assert kinds(env) == ["incomplete"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert '"event": "daemon_stopped"' in err


def test_complete_request_is_executed_once_and_confirmed(env: DaemonEnv) -> None:
    env.deliver(env.request(COMPLETE_BODY))
    env.run_once()
    assert env.forus.resets["piet.jansen@hotmail.com"] == 1
    [post] = env.forus.posts()
    assert post.headers["idempotency-key"].startswith("reset-mailbot:R-")
    # the contract's requested_by: the authenticated address and the From display name
    assert post.body["requested_by"] == {
        "name": "Jan de Vries", "email": "j.devries@utrecht.nl", "municipality": "Utrecht",
    }
    assert kinds(env) == ["confirmation"]
    assert env.sql("select state from requests") == [("executed",)]
    env.run_once()
    assert len(env.forus.posts()) == 1
    assert len(env.replies()) == 1


@pytest.mark.parametrize("point", ["after_claim_execution", "after_execute"])
def test_crash_around_execution_resets_once(env: DaemonEnv, point: str) -> None:
    env.deliver(env.request(COMPLETE_BODY))
    assert env.run_once(failpoint=point, check=False).returncode == 137
    env.sql("update executions set claimed_at = :t", t="2000-01-01 00:00:00")
    env.run_once()
    assert env.forus.resets["piet.jansen@hotmail.com"] == 1
    assert kinds(env) == ["confirmation"]
    assert env.sql("select state from requests") == [("executed",)]


def test_executor_outage_is_retried(env: DaemonEnv) -> None:
    env.forus.fail_next(503)
    env.deliver(env.request(COMPLETE_BODY))
    first = env.run_once()
    assert env.replies() == []
    assert env.sql("select state from requests") == [("complete",)]
    assert "deadlines: 0 open request(s) near or past their deadline" in first.stdout
    # still open past its deadline: `run --once` says so (and the SLA check flags it once)
    env.sql("update requests set deadline_at = :t", t="2000-01-01 00:00:00")
    late = env.run_once()
    assert "deadlines: 1 open request(s) near or past their deadline; newly warned 0, " \
        "newly breached 1" in late.stdout, late.stdout
    env.sql("update executions set next_attempt_at = :t", t="2000-01-01 00:00:00")
    env.run_once()
    assert env.forus.resets["piet.jansen@hotmail.com"] == 1
    assert kinds(env) == ["confirmation"]


NO_IDENTITY_BODY = (
    "Beste Forus support,\r\n\r\n"
    "E-mailadres account: piet.jansen@hotmail.com\r\n"
    "Hierbij geeft de gemeente Utrecht opdracht om de 2FA te resetten.\r\n\r\n"
    "Met vriendelijke groet,\r\nJan de Vries\r\n"
)
FOLLOW_UP_BODY = (
    "Hallo,\r\n\r\n"
    "Aanvulling: de identiteit van de inwoner is vanochtend aan de balie gecontroleerd met "
    "een geldig paspoort.\r\n\r\nGroet,\r\nJan de Vries\r\n"
)


def test_follow_up_in_the_thread_completes_the_request(env: DaemonEnv) -> None:
    first = env.request(NO_IDENTITY_BODY)
    env.deliver(first)
    env.run_once()
    [incomplete] = env.replies()
    assert incomplete["X-Reset-Mailbot"] == "incomplete"
    assert env.forus.posts() == []
    ours = str(incomplete["Message-ID"])
    original = str(email.message_from_bytes(first)["Message-ID"])
    env.deliver(env.request(  # Google-style: In-Reply-To and References signed
        FOLLOW_UP_BODY, subject="RE: Verzoek reset 2FA",
        extra_headers=[("In-Reply-To", ours), ("References", f"{original} {ours}")],
        signed_headers=THREAD_SIGNED,
    ))
    env.run_once()
    assert env.forus.resets["piet.jansen@hotmail.com"] == 1
    assert kinds(env) == ["incomplete", "confirmation"]
    assert env.sql("select count(*), min(state) from requests") == [(1, "executed")]
    confirmation = env.replies()[1]
    assert str(confirmation["In-Reply-To"]) != ours  # answers the follow-up itself


def test_m365_follow_up_threads_by_the_request_tag_in_its_signed_subject(env: DaemonEnv) -> None:
    """Microsoft 365 never signs In-Reply-To/References: the "[R-...]" tag our reply put in the
    subject (which it does sign) finds the request instead."""
    env.deliver(env.request(NO_IDENTITY_BODY))
    env.run_once()
    [incomplete] = env.replies()
    request_id = env.sql("select id from requests")[0][0]
    assert f"[{request_id}]" in str(incomplete["Subject"])
    ours = str(incomplete["Message-ID"])
    env.deliver(env.request(
        FOLLOW_UP_BODY, subject="RE: " + str(incomplete["Subject"]),
        extra_headers=[("In-Reply-To", ours), ("References", ours)], signed_headers=M365_SIGNED,
    ))
    env.run_once()
    assert env.forus.resets["piet.jansen@hotmail.com"] == 1
    assert env.sql("select count(*), min(state) from requests") == [(1, "executed")]


def test_unsigned_in_reply_to_does_not_attach_to_a_request(env: DaemonEnv) -> None:
    """Issue #11: whoever adds an In-Reply-To the signature does not cover cannot move a genuine
    message of the same employee into another request of theirs."""
    env.deliver(env.request(NO_IDENTITY_BODY))
    env.run_once()
    ours = str(env.replies()[0]["Message-ID"])
    env.deliver(env.request(
        FOLLOW_UP_BODY, subject="RE: Verzoek reset 2FA",
        extra_headers=[("In-Reply-To", ours), ("References", ours)], signed_headers=M365_SIGNED,
    ))
    env.run_once()
    assert env.forus.posts() == []
    assert env.sql("select count(*) from requests") == [(2,)]


def test_follow_up_from_another_sender_is_its_own_request(env: DaemonEnv) -> None:
    first = env.request(NO_IDENTITY_BODY)
    env.deliver(first)
    env.run_once()
    ours = str(env.replies()[0]["Message-ID"])
    env.deliver(env.request(
        FOLLOW_UP_BODY, from_="Sanne Kuipers <s.kuipers@utrecht.nl>",
        extra_headers=[("In-Reply-To", ours), ("References", ours)],
    ))
    env.run_once()
    assert env.forus.posts() == []
    assert env.sql("select count(*) from requests") == [(2,)]


THANKS_BODY = "Dank je wel voor de snelle afhandeling!\r\n\r\nGroet,\r\nJan de Vries\r\n"


def _thank_for(env: DaemonEnv, body: str = THANKS_BODY, **kw: Any) -> None:
    """The sender answers our confirmation, quoting nothing: a thread reply and nothing else."""
    ours = str(env.replies()[-1]["Message-ID"])
    env.deliver(env.request(
        body, subject="RE: Verzoek reset 2FA",
        extra_headers=[("In-Reply-To", ours), ("References", ours)],
        signed_headers=THREAD_SIGNED, **kw,
    ))


def test_thanks_after_the_reset_opens_no_request_and_gets_no_reply(env: DaemonEnv) -> None:
    env.deliver(env.request(COMPLETE_BODY))
    env.run_once()
    assert kinds(env) == ["confirmation"]
    _thank_for(env)
    result = env.run_once()
    assert kinds(env) == ["confirmation"]  # no "incomplete" answer to a thank-you
    assert env.sql("select count(*), min(state) from requests") == [(1, "executed")]
    [(outcome, reasons, request_id)] = env.sql(
        "select outcome, reasons, request_id from messages order by id desc limit 1")
    assert (outcome, json.loads(reasons) if isinstance(reasons, str) else reasons) == (
        "ignored", ["closed_request_followup"])
    assert request_id is None  # not one of the request's own messages
    [(event_request,)] = env.sql(
        "select request_id from audit_log where event = 'followup_received'")
    assert event_request == env.sql("select id from requests")[0][0]
    assert '"event": "followup_received"' in result.stderr
    assert len(env.forus.posts()) == 1


def test_a_thread_reply_that_asks_again_is_a_request_of_its_own(env: DaemonEnv) -> None:
    env.deliver(env.request(COMPLETE_BODY))
    env.run_once()
    _thank_for(env, "Dank! Kunnen jullie ook de 2FA van k.de.boer@gmail.com resetten?\r\n")
    env.run_once()
    assert kinds(env) == ["confirmation", "incomplete"]  # identity not confirmed yet
    assert env.sql("select state from requests order by created_at") == [
        ("executed",), ("incomplete",)]


def test_thanks_from_a_colleague_in_the_thread_is_still_their_own_request(
    env: DaemonEnv,
) -> None:
    env.deliver(env.request(COMPLETE_BODY))
    env.run_once()
    _thank_for(env, from_="Sanne Kuipers <s.kuipers@utrecht.nl>")
    env.run_once()
    assert kinds(env) == ["confirmation", "incomplete"]
    assert env.sql("select count(*) from requests") == [(2,)]


def test_replies_per_sender_are_limited(env: DaemonEnv) -> None:
    for _ in range(7):
        env.deliver(env.request(INCOMPLETE_BODY))
    env.run_once()
    assert len(env.folder("Processed")) == 7
    assert kinds(env) == ["incomplete"] * 5
    assert env.sql("select count(*) from audit_log where event = 'reply_rate_limited'") == [(2,)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_backlog_of_a_thousand_messages_is_drained(env: DaemonEnv) -> None:
    """Runs on the default database only: the backlog takes a while to build and sign."""
    template = env.request(INCOMPLETE_BODY)
    raws = []
    senders = [f"medewerker{i}@utrecht.nl" for i in range(250)]
    for i in range(1000):
        body = INCOMPLETE_BODY + f"\r\nvolgnummer {i}\r\n"
        raws.append(env.request(body, from_=f"Medewerker {i} <{senders[i % 250]}>"))
    del template
    client = env.mailbox.client()
    try:
        for raw in raws:
            client.append("INBOX", raw)
    finally:
        client.logout()
    started = time.monotonic()
    env.run_once(timeout=600)
    elapsed = time.monotonic() - started
    assert env.folder("INBOX") == []
    assert env.sql("select count(*) from messages") == [(1000,)]
    assert len(env.replies()) == 1000  # 4 per sender: under the hourly limit
    assert env.sql("select count(*) from outbox where state <> 'sent'") == [(0,)]
    print(f"drained 1000 messages in {elapsed:.1f}s")


def test_english_request_gets_an_english_reply(env: DaemonEnv) -> None:
    body = (
        "Dear Forus support,\r\n\r\nCould you please reset the two-factor authentication "
        "for one of our residents? We will send the details of the account later.\r\n\r\n"
        "Kind regards,\r\nJan de Vries\r\n"
    )
    env.deliver(env.request(body, subject="2FA reset request"))
    env.run_once()
    [reply] = env.replies()
    assert reply["X-Reset-Mailbot"] == "incomplete"
    assert reply.is_multipart()
    plain = next(p for p in reply.walk() if p.get_content_type() == "text/plain")
    words = plain.get_payload(decode=True).decode()
    assert "Thank you for your request" in words
    assert env.sql("select language from requests") == [("en",)]
