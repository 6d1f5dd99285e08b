"""`rules check` and rule-file validation: a broken file is reported with file, line and problem."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reset_mailbot.rules_loader import RulesError, load_rules, packaged_rules_dir


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reset_mailbot.cli", *args],
        capture_output=True, text=True, check=False,
    )


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(packaged_rules_dir(), target)
    return target


def test_shipped_rules_load() -> None:
    rules = load_rules()
    assert "utrecht.nl" in rules.municipalities.by_domain
    assert rules.group_mailboxes.matches("Info") == "info"
    assert rules.group_mailboxes.matches("team-inkomen") == "team*"
    assert rules.group_mailboxes.matches("wmo.loket") is not None
    assert rules.group_mailboxes.matches("j.devries") is None
    assert rules.group_mailboxes.matches("p.post") is None  # Post is a surname


def test_rules_check_prints_summary(tmp_path: Path, rules_dir: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[rules]\ndir = "{rules_dir}"\n')
    proc = run_cli("rules", "check", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert "municipalities:" in proc.stdout
    assert "ok: " in proc.stdout


@pytest.mark.parametrize(
    ("file", "old", "new", "line", "fragment"),
    [
        ("municipalities.yaml", "domains: [nijmegen.nl]", "domains: [nij megen.nl]", 15, "domains"),
        ("municipalities.yaml", "  - name: Nijmegen", "  - nme: Nijmegen", 14, "nme"),
        ("municipalities.yaml", "domains: [nijmegen.nl]", "domains: [utrecht.nl]", None, "utrecht"),
        ("automatic.yaml", "pattern: '^list\\b'", "pattern: '^list('", None, "compile"),
        ("automatic.yaml", "reason: mailing_list", "reason: mailinglist", None, "reason"),
        ("group_mailboxes.yaml", "\nexact:\n", "\nexact: [\n", None, "invalid YAML"),
    ],
)
def test_broken_rules_name_file_line_and_problem(
    tmp_path: Path, rules_dir: Path, file: str, old: str, new: str, line: int | None, fragment: str
) -> None:
    path = rules_dir / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(RulesError) as info:
        load_rules(rules_dir)
    assert info.value.path == str(path)
    assert fragment in str(info.value)
    if line is not None:
        assert info.value.line == line
    config = tmp_path / "c.toml"
    config.write_text(f'[rules]\ndir = "{rules_dir}"\n')
    proc = run_cli("rules", "check", "--config", str(config))
    assert proc.returncode == 2
    assert str(path) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_json_shape(tmp_path: Path) -> None:
    from tests.examples import EXAMPLES as examples
    config = tmp_path / "c.toml"
    config.write_text(
        '[mailbox]\naddress = "support@forus.test"\n'
        '[dns]\nnameservers = ["127.0.0.1"]\nport = 9\ntimeout_seconds = 0.5\n'
        f'[rules]\nmunicipalities = "{examples / "municipalities.yaml"}"\n'
    )
    files = [str(examples / "056-unsigned.eml"), str(examples / "101-ooo_auto_submitted.eml")]
    proc = run_cli("check", "--json", "--config", str(config), *files)
    assert proc.returncode == 0, proc.stderr

    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["outcome"] for x in lines] == ["rejected", "ignored"]
    first = lines[0]
    assert set(first) >= {
        "message_id", "outcome", "reasons", "missing", "reply", "sender", "authentication",
        "request",
    }
    assert first["reasons"] == ["dkim_missing"]
    assert first["reply"] is False
    assert first["sender"] == {
        "address": "j.devries@utrecht.nl", "municipality": "Utrecht", "name": "Jan de Vries",
    }
    assert first["authentication"] == {"dkim": "none", "signing_domain": None, "aligned": False}
    # one structured log line per decision on stderr, with the address masked
    logs = [json.loads(x) for x in proc.stderr.splitlines() if x.startswith("{")]
    decisions = [x for x in logs if x["event"] == "decision"]
    assert len(decisions) == 2
    assert decisions[0]["sender"] == "j***@utrecht.nl"
    assert "j.devries@utrecht.nl" not in proc.stderr


def test_check_reads_stdin(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reset_mailbot.cli", "check", "--json", "-"],
        input=b"not a message at all", capture_output=True, check=False, cwd=tmp_path,
    )
    assert proc.returncode == 0
    assert b'"outcome": "rejected"' in proc.stdout


def test_check_reads_a_named_pipe_whole(tmp_path: Path) -> None:
    """A pipe given as a file (`check <(...)`) says size 0; it is still read to its end (and a
    regular file is read by its size, not into a buffer as large as max_message_bytes)."""
    import os
    import threading

    from tests.examples import EXAMPLES as examples

    raw = (examples / "001-utrecht_basic.eml").read_bytes()
    fifo = tmp_path / "message.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(raw))
    writer.start()
    from_pipe = run_cli("check", "--json", str(fifo))
    writer.join()
    copy = tmp_path / "message.eml"
    copy.write_bytes(raw)
    from_file = run_cli("check", "--json", str(copy))
    assert from_pipe.returncode == from_file.returncode == 0
    whole = json.loads(from_file.stdout)
    assert whole["message_id"] is not None and whole["sender"]["address"]
    assert json.loads(from_pipe.stdout) == whole


def test_version_and_the_values_of_filters_in_help() -> None:
    from importlib.metadata import version

    from reset_mailbot import __version__
    from reset_mailbot.domain.request_state import RequestState

    proc = run_cli("--version")
    assert (proc.returncode, proc.stdout) == (0, f"reset-mailbot {__version__}\n")
    assert version("reset-mailbot") == __version__  # the package metadata says the same
    shown = " ".join(run_cli("requests", "list", "--help").stdout.split())
    assert all(state.value in shown.replace("│", "") for state in RequestState)


def test_shell_completion_completes_commands() -> None:
    import os

    script = run_cli("--show-completion", "bash")
    assert script.returncode == 0 and "_RESET_MAILBOT_COMPLETE" in script.stdout
    env = {**os.environ, "_RESET_MAILBOT_COMPLETE": "complete_bash",
           "COMP_WORDS": "reset-mailbot req", "COMP_CWORD": "1"}
    script_path = Path(sys.executable).with_name("reset-mailbot")  # the installed command
    done = subprocess.run([str(script_path)], capture_output=True, text=True, env=env,
                          check=False)
    assert "requests" in done.stdout.split()


def test_check_missing_file_exit_2(tmp_path: Path) -> None:
    proc = run_cli("check", str(tmp_path / "nope.eml"))
    assert proc.returncode == 2
    assert "nope.eml" in proc.stderr


def test_check_db_on_a_file_without_our_schema_is_one_line_exit_2(tmp_path: Path) -> None:
    """`check --db` on a database without reset-mailbot's tables: one line, exit 2."""
    import sqlite3

    from tests.examples import EXAMPLES as examples
    empty = tmp_path / "other.sqlite3"
    sqlite3.connect(empty).close()
    config = tmp_path / "c.toml"
    config.write_text(
        '[mailbox]\naddress = "support@forus.test"\n'
        '[dns]\nnameservers = ["127.0.0.1"]\nport = 9\ntimeout_seconds = 0.5\n'
        f'[rules]\nmunicipalities = "{examples / "municipalities.yaml"}"\n'
    )
    proc = run_cli("check", "--config", str(config), "--db", str(empty),
                   str(examples / "056-unsigned.eml"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "database:" in proc.stderr and "no such table" in proc.stderr


def test_quiet_and_log_level_set_this_run_s_logging(tmp_path: Path) -> None:
    from tests.examples import EXAMPLES as examples

    message = str(examples / "056-unsigned.eml")
    for_people = run_cli("check", message)  # what a person reads: no JSON lines around it
    assert for_people.returncode == 0 and for_people.stderr == ""
    loud = run_cli("--log-level", "info", "check", message)
    assert '"event": "decision"' in loud.stderr and loud.stdout == for_people.stdout
    assert '"event": "decision"' in run_cli("check", "--json", message).stderr  # for machines
    quiet = run_cli("--quiet", "check", "--json", message)
    assert quiet.returncode == 0 and quiet.stderr == ""
    wrong = run_cli("--log-level", "loud", "check", message)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "one of" in wrong.stderr


def test_check_examples_shows_the_real_decisions_without_dns() -> None:
    """README's first step (issue #16): the shipped samples with their own keys, as of the day
    they were signed - not `dkim_invalid` from a resolver that cannot know the keys."""
    result = run_cli("check", "--examples", "--json")
    assert result.returncode == 0, result.stderr
    outcomes = [json.loads(line)["outcome"] for line in result.stdout.splitlines()]
    assert "dkim_invalid" not in result.stdout
    assert outcomes == ["complete", "complete", "complete", "incomplete", "incomplete",
                        "rejected", "rejected", "rejected", "ignored", "ignored", "deferred"]
    assert run_cli("check", "--examples", "x.eml").returncode == 2
    assert run_cli("check").returncode == 2
