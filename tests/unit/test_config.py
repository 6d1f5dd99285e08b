"""Configuration: TOML file + env overrides, one clear error line, sections validated on use."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reset_mailbot.config import (
    ConfigError,
    DatabaseSettings,
    ExecutorSettings,
    MailboxSettings,
    load_config,
)

MINIMAL = """
[mailbox]
address = "support@forus.test"
[dns]
nameservers = ["127.0.0.1"]
port = 5353
timeout_seconds = 2.0
[rules]
municipalities = "munis.yaml"
"""


def write(tmp_path: Path, text: str, name: str = "reset-mailbot.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_file_with_three_sections(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.mailbox.address == "support@forus.test"
    assert config.dns.nameservers == ["127.0.0.1"]
    assert config.dns.port == 5353
    # relative paths resolve against the config file's directory
    assert config.rules.municipalities == tmp_path / "munis.yaml"
    assert config.rules.dir is None


def test_env_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESET_MAILBOT_DNS__PORT", "10053")
    monkeypatch.setenv("RESET_MAILBOT_DNS__NAMESERVERS", '["127.0.0.2"]')
    monkeypatch.setenv("RESET_MAILBOT_MAILBOX__ADDRESS", "helpdesk@forus.test")
    config = load_config(write(tmp_path, MINIMAL))
    assert config.dns.port == 10053
    assert config.dns.nameservers == ["127.0.0.2"]
    assert config.mailbox.address == "helpdesk@forus.test"


def test_config_path_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, MINIMAL, "other.toml")
    monkeypatch.setenv("RESET_MAILBOT_CONFIG", str(path))
    assert load_config().path == path


def test_no_file_gives_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RESET_MAILBOT_CONFIG", raising=False)
    config = load_config()
    assert config.path is None
    assert config.mailbox.address == "support@forus.io"
    assert config.dns.nameservers == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[dns]\nport = 'abc'\n", "[dns] port"),
        ("[dns]\nportt = 53\n", "[dns] portt"),
        ("[dnss]\nport = 53\n", "unknown section [dnss]"),
        ("[dns]\nnameservers = ['ns.example']\n", "[dns] nameservers"),
        ("[dns\n", "invalid TOML"),
        ("dns = 3\n", "[dns] must be a table"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config = load_config(path)
        _ = config.dns
    assert fragment in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_named_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_sections_are_validated_only_when_used(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL + "[smtp]\nport = 'x'\n"))
    assert config.dns.port == 5353  # check's sections still work
    with pytest.raises(ConfigError, match=r"\[smtp\] port"):
        config.get(__import__("reset_mailbot.config", fromlist=["SmtpSettings"]).SmtpSettings)


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    text = '[mailbox]\nhost = "127.0.0.1"\npassword_file = "pw"\n'
    config = load_config(write(tmp_path, text))
    assert config.get(MailboxSettings).password == "s3cret"


def test_unreadable_secret_file_names_it(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[database]\nurl_file = "missing-secret"\n'))
    with pytest.raises(ConfigError) as info:
        config.get(DatabaseSettings)
    assert "url_file" in str(info.value)
    assert "missing-secret" in str(info.value)


def test_plaintext_imap_only_on_loopback(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[mailbox]\nhost = "imap.forus.io"\nsecurity = "none"\n'))
    with pytest.raises(ConfigError, match="loopback"):
        config.get(MailboxSettings)
    ok_path = write(tmp_path, '[mailbox]\nhost = "127.0.0.1"\nsecurity = "none"\n', "b.toml")
    ok = load_config(ok_path)
    assert ok.get(MailboxSettings).security == "none"


def test_http_executor_needs_url(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[executor]\nkind = "http"\n'))
    with pytest.raises(ConfigError, match="needs url"):
        config.get(ExecutorSettings)


def test_cli_config_error_is_one_line_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "[dns]\nport = 'abc'\n")
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: a@b.nl\r\n\r\nhi\r\n")
    proc = subprocess.run(
        [sys.executable, "-m", "reset_mailbot.cli", "check", "--config", str(path), str(eml)],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "[dns] port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_example_config_is_complete_and_valid(tmp_path: Path) -> None:
    """reset-mailbot.example.toml names every key of every section, commented out."""
    from reset_mailbot.config import SECTIONS

    example = Path(__file__).resolve().parents[2] / "reset-mailbot.example.toml"
    text = example.read_text()
    for name, cls in SECTIONS.items():
        assert f"[{name}]" in text, name
        for key in cls.model_fields:
            assert f"# {key} =" in text or f"{key} =" in text, f"{name}.{key}"
    # uncommenting every key gives a file that loads
    key_line = re.compile(r"^# [a-z_]+ = ")
    uncommented = "\n".join(
        line[2:] if key_line.match(line) and "_file =" not in line else line
        for line in text.splitlines()
    )
    config = load_config(write(tmp_path, uncommented))
    for cls in SECTIONS.values():
        config.get(cls)


def test_an_environment_list_that_is_not_json_is_one_line_exit_2(tmp_path: Path) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(b"From: a@b.nl\r\n\r\nhi\r\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
    environ["RESET_MAILBOT_DNS__NAMESERVERS"] = "127.0.0.1"
    proc = subprocess.run(
        [sys.executable, "-m", "reset_mailbot.cli", "check", str(eml)],
        capture_output=True, text=True, check=False, env=environ, cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert "RESET_MAILBOT_DNS__NAMESERVERS" in proc.stderr and "JSON" in proc.stderr


def test_a_misspelt_time_zone_is_refused_when_the_file_is_read(tmp_path: Path) -> None:
    from reset_mailbot.config import SlaSettings

    config = load_config(write(tmp_path, '[sla]\ntimezone = "Europe/Amsterdm"\n'))
    with pytest.raises(ConfigError, match="unknown time zone 'Europe/Amsterdm'"):
        config.get(SlaSettings)
    assert load_config(write(tmp_path, '[sla]\ntimezone = "Europe/Amsterdam"\n', "ok.toml")
                       ).get(SlaSettings).timezone == "Europe/Amsterdam"


def test_a_misspelt_key_is_refused_whichever_section_the_command_uses(tmp_path: Path) -> None:
    """`check` reads no [smtp], but a typo there is still an error when the file is read."""
    with pytest.raises(ConfigError, match=r"\[smtp\] hots: unknown key \(did you mean host\?\)"):
        load_config(write(tmp_path, '[smtp]\nhots = "mail.forus.io"\n'))
    with pytest.raises(ConfigError, match=r"\[ha\] failover: unknown key \(did you mean "
                                          r"failover_seconds\?\)"):
        load_config(write(tmp_path, "[ha]\nfailover = 5\n", "b.toml"))


def test_db_upgrade_without_any_configuration_creates_nothing(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESET_MAILBOT_")}
    proc = subprocess.run([sys.executable, "-m", "reset_mailbot.cli", "db", "upgrade"],
                          capture_output=True, text=True, check=False, env=environ,
                          cwd=tmp_path)
    assert proc.returncode == 2 and "no configuration" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no ./var/ left behind
    environ["RESET_MAILBOT_DATABASE__DATA_DIR"] = str(tmp_path / "state")
    proc = subprocess.run([sys.executable, "-m", "reset_mailbot.cli", "db", "upgrade"],
                          capture_output=True, text=True, check=False, env=environ,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "state" / "reset-mailbot.sqlite3").is_file()


def test_oauth2_providers_name_what_they_need(tmp_path: Path) -> None:
    from reset_mailbot import bootstrap
    from reset_mailbot.adapters.oauth import MicrosoftTokens

    head = '[mailbox]\naddress = "support@forus.io"\nauth = "oauth2"\n'
    config = load_config(write(tmp_path, head + '[oauth2]\nprovider = "microsoft"\n'
                               'tenant_id = "t-1"\nclient_id = "app"\n'
                               'client_secret = "hunter2-secret"\n'))
    tokens = bootstrap.build_tokens(config)
    assert isinstance(tokens, MicrosoftTokens)
    assert tokens.token_url == "https://login.microsoftonline.com/t-1"
    assert tokens.scope == "https://outlook.office365.com/.default"
    assert "hunter2" not in repr(tokens)  # no secret in logs
    missing = load_config(write(tmp_path, head + '[oauth2]\nprovider = "microsoft"\n'
                                'client_id = "app"\nclient_secret = "s"\n', "b.toml"))
    with pytest.raises(ConfigError, match="tenant_id is needed"):
        bootstrap.build_tokens(missing)
    generic = load_config(write(tmp_path, head + '[oauth2]\ntoken_url = "http://idp.example/t"'
                                '\nclient_id = "app"\nclient_secret = "s"\n', "c.toml"))
    with pytest.raises(ConfigError, match="must be https://"):
        bootstrap.build_tokens(generic)
    plain = load_config(write(tmp_path, '[mailbox]\naddress = "support@forus.io"\n', "d.toml"))
    assert bootstrap.build_tokens(plain) is None


def test_support_contact_reaches_every_reply_template() -> None:
    from reset_mailbot import bootstrap
    from reset_mailbot.config import Config

    cfg = Config({"replies": {"support_contact": "085 - 123 45 67 of servicedesk@forus.io"}},
                 None)
    contact = bootstrap.build_templates(cfg).support_contact
    assert contact == "085 - 123 45 67 of servicedesk@forus.io"
    assert bootstrap.build_rules(cfg).templates.support_contact.startswith("085")
    assert bootstrap.build_templates(Config({}, None)).support_contact == ""
    with pytest.raises(ConfigError, match="did you mean support_contact"):
        Config({"replies": {"support_contakt": "x"}}, None)
