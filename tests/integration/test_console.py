"""The support console over HTTP (issue #17): pages, actions, four eyes, CSRF, roles, headers.

The console runs in-process (Starlette's test client) on a real database seeded with the
shipped DKIM-signed demo mail decided by the real inbox processor; the actions go through the
service layer into that database. The OpenID Connect login runs against a real provider
process (reset_mailbot_testing.oidc_provider) over real HTTP. The browser tests
(tests/browser/test_console_browser.py) click the same paths in Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from reset_mailbot.adapters.db import queries
from reset_mailbot.adapters.db.schema import AuditEntry, OutboxItem
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot_testing.oidc_provider import OidcClient, OidcProvider, OidcUser
from tests.harness.console_fixtures import (
    SEEDED_AT,
    Seeded,
    console_app,
    request_state,
    seed_console_store,
)

pytestmark = pytest.mark.services

T0 = SEEDED_AT
LOOPBACK = ("127.0.0.1", 50000)
APPROVAL = "001-utrecht_basic"  # complete, held for approval (require_approval)


@pytest.fixture
def seeded(store: Store) -> Seeded:
    return seed_console_store(store)


def client(store: Store, **kwargs: object) -> TestClient:
    return TestClient(console_app(store, **kwargs), client=LOOPBACK,  # type: ignore[arg-type]
                      base_url="http://127.0.0.1:8080", follow_redirects=False)


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF field in the page"
    return found.group(1)


def demo_login(http: TestClient, who: str, role: str) -> None:
    page = http.get("/login").text
    answer = http.post("/login/demo", data={"identity": who, "role": role,
                                            "csrf_token": csrf(page)})
    assert answer.status_code == 303, answer.text


def audit(store: Store, request_id: str) -> list[tuple[str, str]]:
    with store.unit_of_work() as uow:
        story = queries.request_story(uow, request_id)
        assert story is not None
        return [(a.event, a.actor) for a in story.audit]


def test_pages_need_a_login(store: Store, seeded: Seeded) -> None:
    with client(store) as http:
        answer = http.get("/requests?state=awaiting_approval")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=%2Frequests%3Fstate%3Dawaiting_approval"
        assert http.get(f"/requests/{seeded.requests[APPROVAL]}").status_code == 303


def test_list_masks_and_detail_shows_what_the_municipality_wrote(
        store: Store, seeded: Seeded) -> None:
    request_id = seeded.requests[APPROVAL]
    with client(store) as http:
        demo_login(http, "viewer@forus.test", "viewer")
        listing = http.get("/requests").text
        assert request_id in listing
        assert "j.devries@utrecht.nl" not in listing  # masked in lists
        assert "awaiting_approval" in listing
        detail = http.get(f"/requests/{request_id}").text
        assert "utrecht.nl" in detail and "@" in detail
        # evidence sentences are highlighted and labelled with the item and the rule
        marks = re.findall(r'<mark title="([^"]+)">', detail)
        assert any(m.startswith("identity checked") for m in marks), marks
        assert any(m.startswith("reset instructed") for m in marks), marks
        # an incomplete request: the reply we queued is on the timeline with its text
        incomplete = http.get(f"/requests/{seeded.requests['026-missing_identity']}").text
        assert "Reply " in incomplete and "<summary>Text</summary>" in incomplete
        assert "tweefactorauthenticatie" in incomplete
        # deadlines read as the end of the promised working day, in Dutch
        assert "einde werkdag" in detail
        # a viewer sees the approval buttons disabled, not as links
        assert f'href="/requests/{request_id}/approve"' not in detail


def test_filters(store: Store, seeded: Seeded) -> None:
    with client(store) as http:
        demo_login(http, "viewer@forus.test", "viewer")
        only = http.get("/requests?state=incomplete").text
        assert seeded.requests[APPROVAL] not in only
        assert seeded.requests["026-missing_identity"] in only
        assert seeded.requests[APPROVAL] in http.get("/requests?municipality=UTRECHT").text
        assert "No requests match" in http.get("/requests?municipality=nowhere").text
        # since: the start of that day in Amsterdam (the requests came on 26 Nov, 10:00 local)
        assert seeded.requests[APPROVAL] in http.get("/requests?since=2026-11-26").text
        assert "No requests match" in http.get("/requests?since=2026-11-27").text


def test_security_headers_and_no_action_over_get(store: Store, seeded: Seeded) -> None:
    request_id = seeded.requests[APPROVAL]
    with client(store) as http:
        demo_login(http, "anna@forus.test", "approver")
        answer = http.get(f"/requests/{request_id}/approve")
        assert answer.status_code == 200  # a confirmation form, nothing done
        assert request_state(store, request_id) == "awaiting_approval"
        csp = answer.headers["content-security-policy"]
        assert "script-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["cache-control"] == "no-store"
        assert "reset_mailbot_console" in http.cookies  # the session the form's token lives in


def test_csrf_is_required_on_every_form(store: Store, seeded: Seeded) -> None:
    request_id = seeded.requests[APPROVAL]
    with client(store) as http:
        demo_login(http, "anna@forus.test", "approver")
        missing = http.post(f"/requests/{request_id}/approve", data={})
        assert missing.status_code == 403 and "CSRF" in missing.text
        wrong = http.post(f"/requests/{request_id}/approve", data={"csrf_token": "x" * 43})
        assert wrong.status_code == 403
        token = csrf(http.get(f"/requests/{request_id}/approve").text)
        foreign = http.post(f"/requests/{request_id}/approve", data={"csrf_token": token},
                            headers={"origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert request_state(store, request_id) == "awaiting_approval"
        # the logout form is checked too
        assert http.post("/logout", data={}).status_code == 403


def test_roles_are_enforced_by_the_server(store: Store, seeded: Seeded) -> None:
    request_id = seeded.requests[APPROVAL]
    with client(store) as http:
        demo_login(http, "olaf@forus.test", "operator")
        token = csrf(http.get("/requests").text)
        assert http.get(f"/requests/{request_id}/approve").status_code == 403
        refused = http.post(f"/requests/{request_id}/approve", data={"csrf_token": token})
        assert refused.status_code == 403 and "approver role" in refused.text
        assert request_state(store, request_id) == "awaiting_approval"


def test_four_eyes_approve_then_manual_done(store: Store, seeded: Seeded) -> None:
    request_id = seeded.requests[APPROVAL]
    with store.unit_of_work() as uow:
        sender = queries.request_story(uow, request_id).sender  # type: ignore[union-attr]
    with client(store) as http:
        # the requesting official cannot approve their own request
        demo_login(http, sender, "approver")
        token = csrf(http.get(f"/requests/{request_id}/approve").text)
        answer = http.post(f"/requests/{request_id}/approve", data={"csrf_token": token})
        assert answer.status_code == 303
        page = http.get(f"/requests/{request_id}").text
        assert "refused:" in page and "second person" in page
        assert request_state(store, request_id) == "awaiting_approval"
    with client(store) as http:
        demo_login(http, "Anna@Forus.test", "approver")
        token = csrf(http.get(f"/requests/{request_id}/approve").text)
        answer = http.post(f"/requests/{request_id}/approve", data={"csrf_token": token})
        assert answer.status_code == 303
        assert "approved by anna@forus.test" in http.get(f"/requests/{request_id}").text
    assert request_state(store, request_id) == "awaiting_manual_reset"
    with client(store) as http:
        demo_login(http, "olaf@forus.test", "operator")
        token = csrf(http.get(f"/requests/{request_id}/done").text)
        http.post(f"/requests/{request_id}/done",
                  data={"csrf_token": token, "reason": "reset in the back office"})
    assert request_state(store, request_id) == "executed"
    events = audit(store, request_id)
    assert any(actor == "anna@forus.test" for _event, actor in events)  # the approval
    assert any(actor == "olaf@forus.test" for _event, actor in events)


def test_someone_who_acted_on_the_request_cannot_approve_it(
        store: Store, seeded: Seeded) -> None:
    request_id = seeded.requests[APPROVAL]
    with store.unit_of_work() as uow:
        uow.session.add(AuditEntry(request_id=request_id, event="message_reprocessed",
                                   actor="anna@forus.test", at=datetime.now(UTC), data={}))
    with client(store) as http:
        demo_login(http, "anna@forus.test", "approver")
        token = csrf(http.get(f"/requests/{request_id}/approve").text)
        http.post(f"/requests/{request_id}/approve", data={"csrf_token": token})
        assert "already acted" in http.get(f"/requests/{request_id}").text
    assert request_state(store, request_id) == "awaiting_approval"


def test_deny_needs_a_reason(store: Store, seeded: Seeded) -> None:
    request_id = seeded.requests[APPROVAL]
    with client(store) as http:
        demo_login(http, "anna@forus.test", "approver")
        token = csrf(http.get(f"/requests/{request_id}/deny").text)
        empty = http.post(f"/requests/{request_id}/deny", data={"csrf_token": token,
                                                                 "reason": "   "})
        assert empty.status_code == 400 and "reason is required" in empty.text
        assert request_state(store, request_id) == "awaiting_approval"
        http.post(f"/requests/{request_id}/deny",
                  data={"csrf_token": token, "reason": "identity doubtful, please call"})
    assert request_state(store, request_id) == "denied"
    assert any(actor == "anna@forus.test" for _e, actor in audit(store, request_id))


def test_resend_a_failed_reply(store: Store, seeded: Seeded) -> None:
    with store.unit_of_work() as uow:
        reply = uow.session.query(OutboxItem).order_by(OutboxItem.id).first()
        assert reply is not None
        reply.state, reply.attempts, reply.last_error = "failed", 1, "550 5.1.1 unknown user"
        reply.next_attempt_at = None
        reply_id = reply.id
    with client(store) as http:
        demo_login(http, "viewer@forus.test", "viewer")
        assert http.get(f"/replies/{reply_id}/resend").status_code == 403
        assert "550 5.1.1" in http.get("/replies?failed=1").text
    with client(store) as http:
        demo_login(http, "olaf@forus.test", "operator")
        token = csrf(http.get(f"/replies/{reply_id}/resend").text)
        answer = http.post(f"/replies/{reply_id}/resend",
                           data={"csrf_token": token, "back": "https://evil.example/"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/replies?failed=1"  # never an open redirect
    with store.unit_of_work() as uow:
        row = uow.session.get(OutboxItem, reply_id)
        assert row is not None and row.state != "failed"
        events = uow.session.query(AuditEntry).filter_by(event="reply_resent").all()
        assert [e.actor for e in events] == ["olaf@forus.test"]


def test_quarantine_page_says_why_and_reprocess_is_audited(
        store: Store, seeded: Seeded) -> None:
    unsigned = seeded.messages["056-unsigned"]
    with client(store) as http:
        demo_login(http, "olaf@forus.test", "operator")
        listing = http.get("/messages?view=all").text
        assert f'href="/messages/{unsigned}"' in listing
        assert "no DKIM signature" in listing  # the reason in words
        page = http.get(f"/messages/{unsigned}").text
        assert "dkim_missing" in page
        token = csrf(http.get(f"/messages/{unsigned}/reprocess").text)
        answer = http.post(f"/messages/{unsigned}/reprocess", data={"csrf_token": token})
        assert answer.status_code == 303
        assert f"message {unsigned}:" in http.get(f"/messages/{unsigned}").text
    with store.unit_of_work() as uow:
        events = uow.session.query(AuditEntry).filter_by(event="message_reprocessed").all()
        assert [e.actor for e in events] == ["olaf@forus.test"]


def test_mail_text_cannot_become_markup(store: Store, seeded: Seeded) -> None:
    request_id = seeded.requests[APPROVAL]
    with store.unit_of_work() as uow:
        story = queries.request_story(uow, request_id)
        assert story is not None
        story.messages[0].subject = '<script>alert(1)</script>"><img src=x>'
    with client(store) as http:
        demo_login(http, "viewer@forus.test", "viewer")
        page = http.get(f"/requests/{request_id}").text
        assert "<script>alert(1)" not in page and "<img src=x>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_stats_page_has_the_chart(store: Store, seeded: Seeded) -> None:
    with client(store) as http:
        demo_login(http, "viewer@forus.test", "viewer")
        page = http.get("/stats").text
        assert "<svg" in page and "Requests per week" in page
        assert f">{len(seeded.requests)}, 0 reset<" in page.replace("\n", "") or \
            f"{len(seeded.requests)}, 0 reset" in page


def test_demo_answers_loopback_clients_only(store: Store, seeded: Seeded) -> None:
    app = console_app(store)
    with TestClient(app, client=("192.0.2.7", 4000), base_url="http://127.0.0.1:8080",
                    follow_redirects=False) as http:
        page = http.get("/requests")
        assert page.status_code == 403 and "loopback" in page.text


PROXY = ("10.0.0.5", 44000)


def test_trusted_header_only_from_the_proxy(store: Store, seeded: Seeded) -> None:
    app = console_app(store, mode="trusted_header", trusted_proxies=["10.0.0.0/24"],
                      roles={"anna@forus.test": "approver"},
                      role_groups={"forus-support": "viewer"})
    headers = {"x-forwarded-email": "anna@forus.test"}
    with TestClient(app, client=("192.0.2.7", 4000), base_url="http://127.0.0.1:8080",
                    follow_redirects=False) as http:
        assert http.get("/requests", headers=headers).status_code == 403
    with TestClient(app, client=PROXY, base_url="http://127.0.0.1:8080",
                    follow_redirects=False) as http:
        page = http.get("/requests", headers=headers)
        assert page.status_code == 200 and "anna@forus.test · approver" in page.text
        by_group = http.get("/requests", headers={"x-forwarded-email": "bob@forus.test",
                                                  "x-forwarded-groups": "x, forus-support"})
        assert by_group.status_code == 200 and "bob@forus.test · viewer" in by_group.text
        nobody = http.get("/requests", headers={"x-forwarded-email": "eve@forus.test"})
        assert nobody.status_code == 403 and "no role" in nobody.text


@pytest.fixture
def oidc() -> Iterator[OidcProvider]:
    provider = OidcProvider(
        clients={"console": OidcClient("console-secret",
                                       ["http://127.0.0.1:8080/auth/callback"])},
        users={"anna": OidcUser("anna@forus.test", "Anna Approver", ["g-approvers"]),
               "eve": OidcUser("eve@forus.test", "Eve Outsider", ["g-other"])},
    )
    with provider:
        yield provider


def oidc_login(http: TestClient, provider: OidcProvider, user: str) -> object:
    """The browser's part of the code flow, done with the test client and httpx2."""
    import httpx2

    start = http.get("/login/oidc?next=/stats")
    assert start.status_code in (302, 303), start.text
    authorize = start.headers["location"]
    assert authorize.startswith(provider.url + "/authorize")
    assert "code_challenge=" in authorize and "code_challenge_method=S256" in authorize
    with httpx2.Client(follow_redirects=False) as browser:
        form = browser.get(authorize).text
        request_field = re.search(r'name="request" value="([^"]+)"', form)
        assert request_field
        back = browser.post(provider.url + "/authorize",
                            data={"request": request_field.group(1), "username": user})
    callback = back.headers["location"]
    assert callback.startswith("http://127.0.0.1:8080/auth/callback?")
    return http.get(callback.removeprefix("http://127.0.0.1:8080"))


def test_openid_connect_login_with_pkce(store: Store, seeded: Seeded,
                                        oidc: OidcProvider) -> None:
    # a tenant may send hundreds of group ids: the session cookie keeps those with a role
    oidc.users["anna"].groups += [f"00000000-0000-0000-0000-{i:012d}" for i in range(300)]
    app = console_app(store, mode="oidc", oidc_issuer=oidc.url, oidc_client_id="console",
                      oidc_client_secret="console-secret",
                      role_groups={"g-approvers": "approver"})
    with TestClient(app, client=LOOPBACK, base_url="http://127.0.0.1:8080",
                    follow_redirects=False) as http:
        done = oidc_login(http, oidc, "anna")
        assert done.status_code == 303 and done.headers["location"] == "/stats"  # type: ignore[attr-defined]
        page = http.get("/requests").text
        assert "Anna Approver · approver" in page
        assert oidc.token_requests[-1].pkce_verified
        assert len(http.cookies["reset_mailbot_console"]) < 4000
    with TestClient(app, client=LOOPBACK, base_url="http://127.0.0.1:8080",
                    follow_redirects=False) as http:
        refused = oidc_login(http, oidc, "eve")
        assert refused.status_code == 403 and "no role" in refused.text  # type: ignore[attr-defined]
        assert http.get("/requests").status_code == 303  # still not logged in


def test_a_forged_callback_is_refused(store: Store, seeded: Seeded, oidc: OidcProvider) -> None:
    app = console_app(store, mode="oidc", oidc_issuer=oidc.url, oidc_client_id="console",
                      oidc_client_secret="console-secret",
                      role_groups={"g-approvers": "approver"})
    with TestClient(app, client=LOOPBACK, base_url="http://127.0.0.1:8080",
                    follow_redirects=False) as http:
        http.get("/login/oidc")
        answer = http.get("/auth/callback?code=made-up&state=made-up")
        assert answer.status_code == 401
        assert http.get("/requests").status_code == 303


def test_session_cookie_is_http_only_same_site_and_secure_behind_https(
        store: Store, seeded: Seeded) -> None:
    app = console_app(store, public_url="https://reset-console.forus.test")
    with TestClient(app, client=LOOPBACK, base_url="https://reset-console.forus.test",
                    follow_redirects=False) as http:
        answer = http.get("/login")
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" in cookie
    with client(store) as http:  # plain http on loopback (the demo): not Secure
        cookie = http.get("/login").headers["set-cookie"].lower()
        assert "httponly" in cookie and "secure" not in cookie


def test_a_followup_after_closing_is_shown_with_its_text(store: Store, seeded: Seeded) -> None:
    """A "thanks" in the thread of a closed request is recorded on the request's audit trail,
    not as one of its messages; the console shows its text there (issue #17: "its text is
    shown nowhere")."""
    request_id = seeded.requests[APPROVAL]
    followup = seeded.messages["056-unsigned"]  # any stored message stands in for the thanks
    with store.unit_of_work() as uow:
        uow.session.add(AuditEntry(request_id=request_id, message_id=followup,
                                   event="followup_received", actor="system",
                                   at=datetime.now(UTC), data={}))
    with client(store) as http:
        demo_login(http, "viewer@forus.test", "viewer")
        page = http.get(f"/requests/{request_id}").text
        assert "Follow-up after the request closed" in page
        assert f'href="/messages/{followup}"' in page
        assert page.count('<div class="body">') >= 2  # the request's message and the thanks
