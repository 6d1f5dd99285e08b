"""The CLI views without services: a SQLite file, the real CLI app, typer's test runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reset_mailbot.adapters.db import migrate
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot.cli import app
from reset_mailbot.cli.context import parse_since
from reset_mailbot.domain.models import Decision, SenderInfo
from reset_mailbot.domain.reasons import Outcome, ReasonCode


@pytest.fixture
def config(tmp_path: Path) -> Path:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    migrate.upgrade(url)
    store = Store.from_url(url)
    with store.unit_of_work() as uow:
        decision = Decision(
            message_id="<m@evil.nl>", message_key="<m@evil.nl>", outcome=Outcome.REJECTED,
            reasons=[ReasonCode.DOMAIN_NOT_ALLOWLISTED],
            sender=SenderInfo(address="mallory@[/bold]evil.nl"), subject="[/x] hi",
        )
        uow.messages.record(decision, raw=b"x", now=datetime(2026, 11, 2, tzinfo=UTC))
    store.engine.dispose()
    path = tmp_path / "c.toml"
    path.write_text(f'[mailbox]\naddress = "support@forus.test"\n[database]\nurl = "{url}"\n')
    return path


def test_lists_escape_markup_from_mail_and_mask(config: Path) -> None:
    result = CliRunner().invoke(app, ["messages", "list", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "m***@[/bold]evil.nl" in result.stdout and "mallory" not in result.stdout


def test_json_and_exit_codes(config: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(app, ["messages", "show", "1", "--json", "-c", str(config)])
    assert out.exit_code == 0
    assert json.loads(out.stdout)["message"]["sender"] == "mallory@[/bold]evil.nl"
    assert runner.invoke(app, ["messages", "show", "2", "-c", str(config)]).exit_code == 1
    assert runner.invoke(app, ["messages", "list", "--outcome", "x", "-c",
                               str(config)]).exit_code == 2
    assert runner.invoke(app, ["stats", "--since", "nope", "-c", str(config)]).exit_code == 2
    missing = runner.invoke(app, ["stats", "-c", str(config.parent / "missing.toml")])
    assert missing.exit_code == 2


def test_parse_since() -> None:
    assert parse_since("2026-11-02") == datetime(2026, 11, 2, tzinfo=UTC)
    assert parse_since("2026-11-02T10:00+01:00") == datetime(2026, 11, 2, 9, tzinfo=UTC)
    assert parse_since(None) is None
