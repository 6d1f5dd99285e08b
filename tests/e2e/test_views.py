"""The support views (`requests`, `messages`, `stats`, `purge`) against a database filled by
really running the daemon (`run --once`) on real mail: Dovecot, SMTP sink, DNS, fake Forus.

One scenario per test, each run on SQLite and PostgreSQL. The CLI is a separate process, so
what is checked is exactly what an operator sees: stdout, stderr and the exit code.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from reset_mailbot_testing.dkim_signing import plain_message
from tests.e2e.daemon_env import EXAMPLES, DaemonEnv
from tests.e2e.test_daemon import COMPLETE_BODY, INCOMPLETE_BODY

SENDER = "j.devries@utrecht.nl"
ACCOUNT = "piet.jansen@hotmail.com"


def as_json(env: DaemonEnv, *args: str) -> Any:
    return json.loads(env.cli(*args, "--json").stdout)


def fill(env: DaemonEnv) -> None:
    """One executed request, one incomplete request, one unauthenticated (quarantined) mail."""
    env.deliver(env.request(COMPLETE_BODY))
    env.deliver(env.request(INCOMPLETE_BODY, subject="Vraag over 2FA"))
    env.deliver(plain_message(body=COMPLETE_BODY))  # not signed
    env.run_once()


def test_request_views_tell_the_whole_story(env: DaemonEnv) -> None:
    fill(env)
    listing = as_json(env, "requests", "list")
    assert listing["count"] == 2
    by_state = {r["state"]: r for r in listing["requests"]}
    assert set(by_state) == {"executed", "incomplete"}
    done = by_state["executed"]
    assert set(done) == {"id", "state", "municipality", "sender", "account_email", "created_at",
                         "deadline_at", "overdue", "executed_at", "closed_at", "age_seconds",
                         "deadline_label", "sla_status"}
    assert done["deadline_label"].endswith(", end of working day")
    assert done["sla_status"] == "closed"
    assert by_state["incomplete"]["sla_status"] == "none"
    assert (done["sender"], done["account_email"]) == ("j***@utrecht.nl", "p***@hotmail.com")
    assert done["municipality"] == "Utrecht" and done["deadline_at"] and not done["overdue"]
    assert by_state["incomplete"]["account_email"] is None

    table = env.cli("requests", "list").stdout
    assert done["id"] in table and "j***@utrecht.nl" in table and "executed" in table
    assert done["deadline_label"] in table
    assert SENDER not in table and ACCOUNT not in table  # lists are masked

    assert [r["id"] for r in as_json(env, "requests", "list", "--state", "executed")[
        "requests"]] == [done["id"]]
    assert as_json(env, "requests", "list", "--municipality", "Nijmegen")["count"] == 0
    # as people type it
    assert as_json(env, "requests", "list", "--municipality", "utrecht ")["count"] == len(
        as_json(env, "requests", "list", "--municipality", "Utrecht")["requests"]) > 0
    assert as_json(env, "requests", "list", "--since", "2999-01-01")["count"] == 0
    assert as_json(env, "requests", "list", "--overdue")["count"] == 0
    late = by_state["incomplete"]["id"]
    env.sql("update requests set deadline_at = :t where id = :id", t="2000-01-03 00:00:00",
            id=late)
    overdue = as_json(env, "requests", "list", "--overdue")["requests"]
    assert [(r["id"], r["overdue"], r["sla_status"], r["deadline_label"]) for r in overdue] \
        == [(late, True, "overdue", "Mon 3 Jan, 01:00")]  # not a local midnight: its time
    assert "Mon 3 Jan, 01:00 (overdue)" in env.cli(
        "requests", "list", "--overdue").stdout
    assert "deadline:          Mon 3 Jan, 01:00 (OVERDUE)" in env.cli(
        "requests", "show", late).stdout

    story = as_json(env, "requests", "show", done["id"])
    assert set(story) == {"request", "messages", "audit", "replies", "executions"}
    assert story["request"]["sender"] == SENDER  # show is for support staff: unmasked
    assert story["request"]["account_email"] == ACCOUNT
    assert story["request"]["case_reference"] == "88123"
    [message] = story["messages"]
    assert message["outcome"] == "complete" and message["dkim"] == "pass"
    assert {e["item"] for e in message["evidence"]} >= {"account_email", "identity_verified",
                                                        "reset_instructed"}
    events = [a["event"] for a in story["audit"]]
    assert events[0] == "request_created"
    assert {"execution_queued", "execution_started", "execution_succeeded",
            "reply_queued"} <= set(events)
    [reply] = story["replies"]
    assert (reply["kind"], reply["state"], reply["attempts"], reply["to"]) == (
        "confirmation", "sent", 1, SENDER)
    assert reply["sent_at"]
    [execution] = story["executions"]
    assert (execution["state"], execution["attempts"]) == ("succeeded", 1)
    assert execution["idempotency_key"] == f"reset-mailbot:{done['id']}"

    assert story["request"]["deadline_label"] == done["deadline_label"]
    text = env.cli("requests", "show", done["id"]).stdout
    for expected in (f"request {done['id']}: executed", SENDER, ACCOUNT, "evidence",
                     f"deadline:          {done['deadline_label']} (closed)",
                     "confirmation to", "execution_succeeded", "succeeded, 1 attempt(s)"):
        assert expected in text, expected
    masked = env.cli("requests", "show", done["id"], "--mask").stdout
    assert "j***@utrecht.nl" in masked and SENDER not in masked and ACCOUNT not in masked

    missing = env.cli("requests", "show", "R-NOSUCH00", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "reset-mailbot: error: no request R-NOSUCH00"
    bad = env.cli("requests", "list", "--state", "sleeping", check=False)
    assert bad.returncode == 2 and "--state 'sleeping'" in bad.stderr
    assert env.cli("requests", "list", "--since", "yesterday", check=False).returncode == 2


def test_message_views_and_stats(env: DaemonEnv) -> None:
    fill(env)
    listing = as_json(env, "messages", "list")
    assert listing["count"] == 3
    row = listing["messages"][0]
    assert set(row) == {"id", "received_at", "sender", "outcome", "reasons", "error",
                        "request_id", "folder", "attempts"}
    outcomes = sorted(m["outcome"] for m in listing["messages"])
    assert outcomes == ["complete", "incomplete", "rejected"]
    [rejected] = as_json(env, "messages", "list", "--outcome", "rejected")["messages"]
    assert rejected["folder"] == "Quarantine" and rejected["request_id"] is None
    assert "dkim_missing" in rejected["reasons"]
    assert as_json(env, "messages", "list", "--errors")["count"] == 0
    table = env.cli("messages", "list").stdout
    assert "Quarantine" in table and "j***@utrecht.nl" in table and SENDER not in table

    shown = as_json(env, "messages", "show", str(rejected["id"]))
    assert set(shown) == {"message", "audit"}
    assert shown["message"]["why"].startswith("rejected without a reply")
    assert shown["message"]["raw_stored"] is True
    assert [a["event"] for a in shown["audit"]] == ["message_decided"]
    text = env.cli("messages", "show", str(rejected["id"])).stdout
    assert "folder: Quarantine" in text and "why: rejected without a reply" in text
    assert env.cli("messages", "show", "99999", check=False).returncode == 1
    assert env.cli("messages", "show", "abc", check=False).returncode == 2

    stats = as_json(env, "stats")
    assert stats["messages"]["by_outcome"] == {"complete": 1, "incomplete": 1, "rejected": 1}
    assert stats["messages"]["by_reason"]["dkim_missing"] == 1
    assert stats["requests"]["by_state"] == {"executed": 1, "incomplete": 1}
    assert stats["requests"]["by_municipality"] == {"Utrecht": {"requests": 2, "executed": 1}}
    assert stats["requests"]["executed"] == 1
    assert stats["requests"]["median_seconds_to_reset"] >= 0
    assert as_json(env, "stats", "--since", "2999-01-01")["messages"]["total"] == 0
    text = env.cli("stats").stdout
    assert "messages: 3" in text and "median time to reset:" in text


def test_reprocess_refuses_executed_and_purged_messages(env: DaemonEnv) -> None:
    fill(env)
    messages = {m["outcome"]: m for m in as_json(env, "messages", "list")["messages"]}
    executed = env.cli("messages", "reprocess", str(messages["complete"]["id"]), check=False)
    assert executed.returncode == 1
    assert "refused" in executed.stderr and "executed" in executed.stderr

    # unauthenticated stays unauthenticated: recorded again, nothing sent
    again = as_json(env, "messages", "reprocess", str(messages["rejected"]["id"]), "--by",
                    "tester")
    assert again == {"message_id": messages["rejected"]["id"],
                     "previous": {"outcome": "rejected", "reasons": again["reasons"],
                                  "error": None},
                     "outcome": "rejected", "reasons": again["reasons"], "missing": [],
                     "acted": False, "request_id": None, "request_state": None}
    assert env.sql("select actor from audit_log where event = 'message_reprocessed'") == [
        ("tester",)]

    env.sql("update messages set raw = null, raw_purged_at = :t where id = :id",
            t="2026-01-01 00:00:00", id=messages["rejected"]["id"])
    purged = env.cli("messages", "reprocess", str(messages["rejected"]["id"]), check=False)
    assert purged.returncode == 1 and "deleted by retention" in purged.stderr
    assert env.cli("messages", "reprocess", "4242", check=False).returncode == 1
    env.run_once()
    assert len(env.forus.posts()) == 1
    assert sorted(str(m["X-Reset-Mailbot"]) for m in env.replies()) == [
        "confirmation", "incomplete"]


@dataclass
class OwnRulesEnv(DaemonEnv):
    """The daemon environment with a municipalities file the test may fix."""

    municipalities: Path = EXAMPLES / "municipalities.yaml"

    @property
    def config_path(self) -> Path:
        path = super().config_path
        path.write_text(path.read_text().replace(
            str(EXAMPLES / "municipalities.yaml"), str(self.municipalities)))
        return path


def test_reprocess_after_a_rules_fix_executes_once(env: DaemonEnv) -> None:
    own = OwnRulesEnv(**{f.name: getattr(env, f.name) for f in fields(DaemonEnv)},
                      municipalities=env.tmp / "municipalities.yaml")
    shutil.copy(EXAMPLES / "municipalities.yaml", own.municipalities)
    newcomer = "k.nieuw@eindhoven.nl"
    own.deliver(own.request(COMPLETE_BODY, from_=f"Kees Nieuw <{newcomer}>"))
    own.run_once()
    [message] = as_json(own, "messages", "list")["messages"]
    assert message["outcome"] == "rejected" and "sender_not_registered" in message["reasons"]
    assert own.forus.posts() == []
    replies_before = len(own.replies())

    # the rules fix: the new colleague is registered for Eindhoven
    rules = own.municipalities.read_text()
    own.municipalities.write_text(rules.replace(
        "      - a.devries@eindhoven.nl\n",
        f"      - a.devries@eindhoven.nl\n      - {newcomer}\n"))
    result = as_json(own, "messages", "reprocess", str(message["id"]))
    assert result["previous"]["outcome"] == "rejected"
    assert (result["outcome"], result["acted"]) == ("complete", True)
    assert result["request_id"] and result["request_state"] == "complete"
    own.run_once()
    assert own.forus.resets[ACCOUNT] == 1
    assert as_json(own, "requests", "show", result["request_id"])["request"]["state"] \
        == "executed"
    # never twice: the message now belongs to an executed request
    second = own.cli("messages", "reprocess", str(message["id"]), check=False)
    assert second.returncode == 1 and "executed" in second.stderr
    own.run_once()
    assert len(own.forus.posts()) == 1
    assert len(own.replies()) == replies_before + 1  # the confirmation only


def test_purge_dry_run_and_real(env: DaemonEnv) -> None:
    fill(env)
    assert env.sql("select count(*) from messages where raw is not null") == [(3,)]
    env.sql("update messages set received_at = :t", t="2020-01-01 00:00:00")
    dry = as_json(env, "purge", "--dry-run")
    assert dry["dry_run"] is True and dry["raw_purged"] == 3
    assert set(dry) == {"now", "dry_run", "raw_before", "anonymise_before", "raw_purged",
                        "requests_anonymised", "requests_kept_open", "messages_anonymised",
                        "outbox_anonymised", "executions_anonymised", "audit_anonymised"}
    assert env.sql("select count(*) from messages where raw is not null") == [(3,)]
    env.sql("update requests set created_at = :t", t="2020-01-01 00:00:00")
    real = as_json(env, "purge")
    assert (real["raw_purged"], real["requests_anonymised"], real["messages_anonymised"]) \
        == (3, 2, 3)
    story = env.cli("requests", "show",
                    env.sql("select id from requests where state = 'executed'")[0][0]).stdout
    assert SENDER not in story and ACCOUNT not in story and "***@utrecht.nl" in story
    assert "anonymised (retention)" in story
    stats = as_json(env, "stats")
    assert stats["requests"]["by_state"] == {"executed": 1, "incomplete": 1}
    again = as_json(env, "purge")
    assert (again["raw_purged"], again["requests_anonymised"]) == (0, 0)
    assert "raw bytes" in env.cli("purge", "--dry-run").stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_logs_of_a_run_carry_only_masked_addresses(env: DaemonEnv) -> None:
    """Item 5: the daemon's log lines (decision, reply_sent, reset_executed) are masked."""
    env.deliver(env.request(COMPLETE_BODY))
    proc = env.run_once()
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    events = {line["event"] for line in lines}
    assert {"decision", "reset_executed", "reply_sent"} <= events
    assert SENDER not in proc.stderr and ACCOUNT not in proc.stderr
    assert "j***@utrecht.nl" in proc.stderr and "p***@hotmail.com" in proc.stderr


# --- issue #17: message text, follow-ups, the outbox ---------------------------------------


def test_messages_show_body_prints_what_the_sender_wrote(env: DaemonEnv) -> None:
    from tests.e2e.test_daemon import _thank_for

    env.deliver(env.request(COMPLETE_BODY))
    env.run_once()
    ours = env.replies()[-1]
    _thank_for(env, "Dank je wel, het werkt weer!\r\n\r\nJan\r\n\r\n"
                    f"Op 26 nov. 2026 om 09:14 schreef Forus Support <{ours['From']}>:\r\n"
                    "> Beste collega,\r\n>\r\n> De 2FA is hersteld.\r\n")
    env.run_once()
    [request_id] = [r["id"] for r in as_json(env, "requests", "list")["requests"]]
    [thanks] = as_json(env, "messages", "list", "--outcome", "ignored")["messages"]

    story = env.cli("requests", "show", request_id).stdout
    assert "follow-ups after it closed (1):" in story
    assert f"message {thanks['id']} received" in story
    assert "messages show ID --body" in story

    text = env.cli("messages", "show", str(thanks["id"]), "--body").stdout
    assert "body (what the sender wrote):" in text
    assert "  | Dank je wel, het werkt weer!" in text
    assert "De 2FA is hersteld" not in text  # the quote is folded away
    assert "[... 4 quoted lines hidden]" in text
    shown = as_json(env, "messages", "show", str(thanks["id"]), "--body")
    assert set(shown) == {"message", "audit", "body"}
    assert shown["body"]["new_text"].startswith("Dank je wel")
    assert "De 2FA is hersteld" in shown["body"]["quoted"]
    assert (shown["body"]["quoted_lines"], shown["body"]["truncated"]) == (4, False)
    assert shown["body"]["subject"] == "RE: Verzoek reset 2FA"
    assert "body" not in as_json(env, "messages", "show", str(thanks["id"]))

    [first] = [m for m in as_json(env, "messages", "list")["messages"]
               if m["outcome"] == "complete"]
    masked = env.cli("messages", "show", str(first["id"]), "--body", "--mask").stdout
    assert "p***@hotmail.com" in masked and ACCOUNT not in masked

    env.sql("update messages set raw = null, raw_purged_at = :t where id = :id",
            t="2026-01-01 00:00:00", id=thanks["id"])
    gone = env.cli("messages", "show", str(thanks["id"]), "--body").stdout
    assert "body: not available, the raw message is deleted by retention" in gone
    assert as_json(env, "messages", "show", str(thanks["id"]), "--body")["body"] is None


def test_replies_list_and_resend_a_failed_reply(env: DaemonEnv) -> None:
    fill(env)
    listing = as_json(env, "replies", "list")
    assert listing["count"] == 2
    assert set(listing["replies"][0]) == {"id", "request_id", "kind", "to", "subject", "state",
                                          "attempts", "created_at", "sent_at",
                                          "next_attempt_at", "last_error"}
    assert {r["to"] for r in listing["replies"]} == {"j***@utrecht.nl"}  # lists are masked
    assert all(r["state"] == "sent" for r in listing["replies"])
    assert all("[R-" in r["subject"] for r in listing["replies"])
    assert as_json(env, "replies", "list", "--failed")["count"] == 0
    table = env.cli("replies", "list").stdout
    assert "confirmation" in table and "j***@utrecht.nl" in table and SENDER not in table

    confirmation = next(r for r in listing["replies"] if r["kind"] == "confirmation")
    by_request = as_json(env, "replies", "list", "--request", confirmation["request_id"].lower())
    assert [r["id"] for r in by_request["replies"]] == [confirmation["id"]]

    sent = env.cli("replies", "resend", str(confirmation["id"]), "--by", "Petra", check=False)
    assert sent.returncode == 1
    assert "is sent; only a failed reply can be resent" in sent.stderr
    assert env.cli("replies", "resend", "4242", "--by", "Petra", check=False).returncode == 1

    # the SMTP server refused it for good
    env.sql("update outbox set state = 'failed', attempts = 20, sent_at = null, "
            "next_attempt_at = null, last_error = :e where id = :id",
            e="550 5.1.1 <j.devries@utrecht.nl>: mailbox unavailable", id=confirmation["id"])
    [failed] = as_json(env, "replies", "list", "--failed")["replies"]
    assert failed["id"] == confirmation["id"]
    assert failed["last_error"] == "550 5.1.1 <j***@utrecht.nl>: mailbox unavailable"
    assert "failed" in env.cli("replies", "list", "--failed").stdout
    before = len(env.replies())

    out = env.cli("replies", "resend", str(confirmation["id"]), "--by", "Petra de Boer").stdout
    assert out.startswith(f"{confirmation['request_id']}: reply {confirmation['id']} "
                          "(confirmation) queued again by Petra de Boer")
    [(state, attempts)] = env.sql("select state, attempts from outbox where id = :id",
                                  id=confirmation["id"])
    assert (state, attempts) == ("queued", 0)
    [(actor,)] = env.sql("select actor from audit_log where event = 'reply_resent'")
    assert actor == "Petra de Boer"

    env.run_once()
    replies = env.sink.messages()
    assert len(replies) == before + 1
    [(stored, message_id)] = env.sql("select rfc822, reply_message_id from outbox where id = :id",
                                     id=confirmation["id"])
    first = next(raw for _, raw in replies if message_id.encode() in raw)
    assert replies[-1][1] == first  # the same message, byte for byte
    assert bytes(stored) in replies[-1][1].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert as_json(env, "replies", "list", "--failed")["count"] == 0
