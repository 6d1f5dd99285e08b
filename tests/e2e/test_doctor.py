"""`reset-mailbot doctor` against the real environment: working, then broken one way at a time.

Each broken set-up must give exactly one FAIL line, naming what is wrong and how to fix it, the
other checks still PASS, and the exit code is 1.
"""

from __future__ import annotations

import socket
import subprocess

from reset_mailbot_testing.forus_http import DEFAULT_TOKEN
from tests.e2e.daemon_env import CLI, DaemonEnv

CHECKS = ["config", "rules", "imap login", "imap folders", "smtp", "dns", "database", "instances",
          "executor"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def doctor(env: DaemonEnv, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env.extra_env = {f"RESET_MAILBOT_{k.upper()}": v for k, v in settings.items()}
    return env.cli("doctor", *args, check=False)


def lines(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """{check name: whole line}; every stdout line is one check."""
    out = {}
    for line in proc.stdout.splitlines():
        status, _, rest = line.partition(" ")
        assert status in {"PASS", "FAIL", "SKIP"}, line
        out[rest.partition(":")[0]] = line
    return out


def only_failure(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1, proc.stdout
    return failed[0]


def test_working_setup_passes_every_check(env: DaemonEnv) -> None:
    env.request("Hallo")  # signing publishes the key at e2e._domainkey.utrecht.nl
    proc = doctor(env, "--dkim-probe", "e2e._domainkey.utrecht.nl")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = lines(proc)
    assert list(found) == CHECKS
    assert all(line.startswith("PASS ") for line in found.values()), proc.stdout
    assert found["imap login"] == (
        f"PASS imap login: {env.mailbox.address} at 127.0.0.1:{env.mailbox.imap_port} (none), "
        "IDLE yes"
    )
    assert found["imap folders"] == (
        "PASS imap folders: INBOX, Processed, Quarantine (created Processed, Quarantine)"
    )
    assert found["dns"] == (
        f"PASS dns: DKIM key found at e2e._domainkey.utrecht.nl via 127.0.0.1:{env.dns.port}"
    )
    assert found["executor"].startswith(f"PASS executor: http: {env.forus.url} reachable")
    assert found["database"].endswith("schema at head (" + found["database"].split("(")[-1])
    assert found["instances"] == (
        "PASS instances: no daemon registered (none has run on this database)")
    # folders exist now: the second run creates nothing
    again = lines(doctor(env))
    assert again["imap folders"] == "PASS imap folders: INBOX, Processed, Quarantine"
    assert again["dns"] == (
        f"PASS dns: resolver answers via 127.0.0.1:{env.dns.port} (no DKIM key at "
        "selector1._domainkey.utrecht.nl, selector2._domainkey.utrecht.nl)"
    )


def test_an_unreadable_password_file_is_one_failure(env: DaemonEnv) -> None:
    """Reported once, by `config`; the checks that need [mailbox] say they were not tried."""
    missing = env.tmp / "no-such-password"
    config = env.tmp / "password-file.toml"
    config.write_text("\n".join(
        f'password_file = "{missing}"' if line.startswith("password = ") else line
        for line in env.config_path.read_text().splitlines()))
    proc = subprocess.run([*CLI, "doctor", "--config", str(config)], capture_output=True,
                          text=True, check=False)
    line = only_failure(proc)
    assert line.startswith(f"FAIL config: {config}: [mailbox]: cannot read "
                           f"password_file {missing}")
    found = lines(proc)
    assert found["imap login"] == (
        "SKIP imap login: not tried: [mailbox] is invalid (see the config line)")
    assert found["smtp"] == "SKIP smtp: not tried: [mailbox] is invalid (see the config line)"
    assert str(missing) not in proc.stdout.replace(line, "")


def test_wrong_imap_password(env: DaemonEnv) -> None:
    line = only_failure(doctor(env, mailbox__password="wrong"))
    where = f"{env.mailbox.address} at 127.0.0.1:{env.mailbox.imap_port} (none)"
    assert line.startswith(f"FAIL imap login: {where}: connect: login refused: ")
    assert line.endswith("(fix: check [mailbox] username and password (or password_file))")


def test_smtp_port_closed(env: DaemonEnv) -> None:
    port = closed_port()
    line = only_failure(doctor(env, smtp__port=str(port)))
    assert line == (
        f"FAIL smtp: 127.0.0.1:{port} (none): 127.0.0.1:{port}: ConnectionRefusedError: "
        "[Errno 111] Connection refused (fix: is the SMTP server up? check [smtp] host, port "
        "and security)"
    )


def test_dns_servfail_and_timeout(env: DaemonEnv) -> None:
    name = "selector1._domainkey.utrecht.nl"
    hint = ("(fix: check [dns] nameservers, port and timeout_seconds; while DNS fails every "
            "message is deferred)")
    env.dns.set_faults(servfail=[name])
    line = only_failure(doctor(env))
    assert line == (
        f"FAIL dns: {name} via 127.0.0.1:{env.dns.port}: SERVFAIL or no nameserver answered "
        + hint
    )
    env.dns.set_faults(timeout=[name])
    line = only_failure(doctor(env))
    assert line == f"FAIL dns: {name} via 127.0.0.1:{env.dns.port}: timeout after 1.0s " + hint


def test_empty_and_outdated_database(env: DaemonEnv) -> None:
    head = lines(doctor(env))["database"].split("(")[-1].rstrip(")")
    env.sql("update alembic_version set version_num = '0000_older'")
    line = only_failure(doctor(env))
    assert line.startswith("FAIL database: ")
    assert line.endswith(
        f": schema at revision 0000_older, this version needs {head} "
        "(fix: run `reset-mailbot db upgrade`)"
    )
    assert "password" not in line.lower()
    empty = env.tmp / "empty.sqlite3"
    empty.touch()
    line = only_failure(doctor(env, database__url=f"sqlite:///{empty}"))
    assert line == (
        f"FAIL database: sqlite:///{empty}: no schema (empty database) "
        "(fix: run `reset-mailbot db upgrade`)"
    )


def test_executor_down_or_refusing_the_token(env: DaemonEnv) -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/api/2fa-reset"
    line = only_failure(doctor(env, executor__url=url))
    assert line.startswith(f"FAIL executor: http: {url} unreachable: ")
    assert line.endswith(
        "(fix: check [executor] url and token, and that Forus is reachable from here)"
    )
    assert DEFAULT_TOKEN not in line
    line = only_failure(doctor(env, executor__token="not-the-token"))
    assert line.startswith(f"FAIL executor: http: {env.forus.url} refused the token (HTTP 401)")


def test_broken_configuration(env: DaemonEnv) -> None:
    proc = doctor(env, sla__warn_hours="-1")
    line = only_failure(proc)
    assert line.startswith(f"FAIL config: {env.config_path}: [sla] warn_hours (or env ")
    assert line.endswith("(fix: correct the setting it names; every key is listed in "
                         "reset-mailbot.example.toml)")
    proc = doctor(env, metrics__listen="9464")
    assert only_failure(proc) == (
        "FAIL config: [metrics] listen must be host:port, not '9464' "
        "(fix: correct the setting it names; every key is listed in "
        "reset-mailbot.example.toml)"
    )
    missing = env.tmp / "missing.toml"
    proc = subprocess.run([*CLI, "doctor", "--config", str(missing)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert proc.stdout.strip() == (
        f"FAIL config: {missing}: config file not found (fix: pass --config PATH or fix the file)"
    )



def test_console_is_checked_when_configured(env: DaemonEnv) -> None:
    """[console] with OIDC: the provider's discovery document is fetched and its issuer
    compared; a wrong issuer is one FAIL line naming the key."""
    from reset_mailbot_testing.oidc_provider import OidcProvider

    with OidcProvider() as provider:
        settings = {"console__oidc_issuer": provider.url, "console__oidc_client_id": "console",
                    "console__oidc_client_secret": "secret",
                    "console__session_secret": "s" * 40,
                    "console__roles": '{"anna@forus.test": "approver"}'}
        proc = doctor(env, **settings)
        found = lines(proc)
        assert list(found) == [*CHECKS, "console"], proc.stdout
        assert found["console"].startswith(f"PASS console: http://127.0.0.1:8080, OpenID "
                                           f"provider {provider.url} (client console)")
        wrong = doctor(env, **{**settings, "console__oidc_issuer": provider.url + "/other"})
        assert only_failure(wrong).startswith("FAIL console: OpenID discovery")
        assert "oidc_issuer" in wrong.stdout
    no_secret = doctor(env, console__auth="trusted_header",
                       console__trusted_proxies='["127.0.0.1"]',
                       console__roles='{"anna@forus.test": "approver"}')
    assert "session_secret_file" in only_failure(no_secret)
