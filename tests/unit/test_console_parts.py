"""The console's pure parts (issue #17): roles, CSRF and origin checks, evidence highlighting,
the weekly chart, the reason words, and the [console] settings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from reset_mailbot.config import Config, ConfigError, ConsoleSettings
from reset_mailbot.console.auth import NotAllowed, identity_from_claims
from reset_mailbot.console.charts import bar_chart, weekly
from reset_mailbot.console.highlight import highlight
from reset_mailbot.console.roles import Person, Role, role_for
from reset_mailbot.console.security import csrf_ok, csrf_token, origin_ok
from reset_mailbot.domain.reasons import REASON_TEXT, ReasonCode, reason_text

AMS = ZoneInfo("Europe/Amsterdam")


def test_roles_come_from_configuration_only() -> None:
    roles = {"anna@forus.io": "approver"}
    groups = {"support": "operator", "readers": "viewer"}
    assert role_for(" Anna@Forus.io ", [], roles, groups) is Role.APPROVER
    assert role_for("bob@forus.io", ["x", "Support"], roles, groups) is Role.OPERATOR
    assert role_for("bob@forus.io", ["readers", "support"], roles, groups) is Role.OPERATOR
    assert role_for("eve@forus.io", ["admins"], roles, groups) is None
    assert role_for("", [], {"": "approver"}, {}) is None


def test_roles_grow() -> None:
    approver = Person("a@forus.io", "A", Role.APPROVER)
    viewer = Person("v@forus.io", "V", Role.VIEWER)
    assert approver.may(Role.OPERATOR) and approver.may(Role.VIEWER)
    assert viewer.may(Role.VIEWER) and not viewer.may(Role.OPERATOR)


def test_identity_needs_a_verified_address() -> None:
    assert identity_from_claims({"email": "Anna@Forus.io", "name": "Anna", "groups": ["g"]}) \
        == ("anna@forus.io", "Anna", ["g"])
    assert identity_from_claims({"preferred_username": "a@forus.io"})[0] == "a@forus.io"
    with pytest.raises(NotAllowed, match="not verified"):
        identity_from_claims({"email": "a@forus.io", "email_verified": False})
    with pytest.raises(NotAllowed, match="no e-mail"):
        identity_from_claims({"sub": "123"})


def test_csrf_token_is_per_session_and_compared_exactly() -> None:
    session: dict[str, object] = {}
    token = csrf_token(session)
    assert csrf_token(session) == token and len(token) >= 32
    assert csrf_ok(session, token)
    assert not csrf_ok(session, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert not csrf_ok(session, None) and not csrf_ok({}, token)
    assert not csrf_ok({"csrf": "short"}, "short")


def test_origin_must_be_ours_when_sent() -> None:
    assert origin_ok(None, "https://console.forus.io")
    assert origin_ok("https://console.forus.io", "https://console.forus.io/")
    assert not origin_ok("https://evil.example", "https://console.forus.io")
    assert not origin_ok("http://console.forus.io", "https://console.forus.io")
    assert not origin_ok("null", "https://console.forus.io")


def test_evidence_is_found_across_line_breaks_and_labelled() -> None:
    text = "Beste Forus,\n\nWij hebben de identiteit\nvan de inwoner gecontroleerd.\nGroet"
    evidence = [
        {"item": "identity_verified", "text": "Wij hebben de identiteit van de inwoner "
                                               "gecontroleerd.", "rule": "nl:active"},
        {"item": "reset_instructed", "text": "Dit staat er niet in", "rule": None},
    ]
    segments, unplaced = highlight(text, evidence)
    assert "".join(s.text for s in segments) == text
    marked = [s for s in segments if s.label]
    assert [s.label for s in marked] == ["identity checked (nl:active)"]
    assert marked[0].text.startswith("Wij hebben") and marked[0].text.endswith("gecontroleerd.")
    assert unplaced == [evidence[1]]


def test_weekly_counts_and_median() -> None:
    today = date(2026, 12, 9)  # a Wednesday
    monday = datetime(2026, 12, 7, 9, tzinfo=UTC)
    times = [
        (monday, monday + timedelta(hours=2)),
        (monday + timedelta(days=1), monday + timedelta(days=1, hours=6)),
        (monday + timedelta(days=1), None),
        (monday - timedelta(days=7), None),
        (monday - timedelta(days=400), None),  # outside the chart
    ]
    weeks = weekly(times, AMS, today, weeks=4)
    assert [w.start for w in weeks] == [date(2026, 11, 16), date(2026, 11, 23),
                                        date(2026, 11, 30), date(2026, 12, 7)]
    assert [w.requests for w in weeks] == [0, 0, 1, 3]
    assert weeks[-1].executed == 2 and weeks[-1].median_hours_to_reset == 4.0
    svg = bar_chart(weeks)
    assert svg.startswith("<svg") and svg.count("<rect") == 8 and "style=" not in svg
    assert svg.count("<circle") == 1 and "median 4.0 h to reset" in svg


def test_every_reason_has_words() -> None:
    assert set(REASON_TEXT) == set(ReasonCode)
    assert reason_text("dkim_missing").startswith("no DKIM signature")
    assert reason_text("something_new") == "something_new"


def console(**values: object) -> ConsoleSettings:
    return Config({"console": values}, None).get(ConsoleSettings)


def test_console_settings_refuse_what_cannot_be_safe() -> None:
    with pytest.raises(ConfigError, match="must be https"):
        console(public_url="http://console.forus.io")
    with pytest.raises(ConfigError, match="host:port"):
        console(listen="8080")
    with pytest.raises(ConfigError, match="not an IP"):
        console(trusted_proxies=["proxy.local"])
    with pytest.raises(ConfigError, match="unknown key"):
        Config({"console": {"role": {}}}, None)
    with pytest.raises(ValueError, match="32 or more"):
        console(session_secret="short").require()
    secret = "s" * 40
    with pytest.raises(ValueError, match="oidc_issuer"):
        console(session_secret=secret, roles={"a@forus.io": "viewer"}).require()
    with pytest.raises(ValueError, match="trusted_proxies"):
        console(session_secret=secret, auth="trusted_header",
                roles={"a@forus.io": "viewer"}).require()
    with pytest.raises(ValueError, match="nobody may log in"):
        console(session_secret=secret, oidc_issuer="https://login.example",
                oidc_client_id="c", oidc_client_secret="s").require()
    ok = console(session_secret=secret, oidc_issuer="https://login.example",
                 oidc_client_id="c", oidc_client_secret="s", roles={"A@Forus.io": "approver"})
    assert ok.require().roles == {"a@forus.io": "approver"}
    assert ok.base_url == "http://127.0.0.1:8080"
