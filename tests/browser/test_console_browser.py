"""A support employee's day in a real browser (issue #17 item 5): Debian's Chromium, driven by
Playwright, against the console served by uvicorn on a real port, logging in through a real
OpenID Connect provider process, on a database seeded with the shipped signed demo mail.

Screenshots of the main pages are saved in test-artifacts/screenshots/ (docs/console.png in
the README is one of them).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect

from reset_mailbot.adapters.db import migrate
from reset_mailbot.adapters.db.engine import create_db_engine
from reset_mailbot.adapters.db.schema import OutboxItem
from reset_mailbot.adapters.db.unit_of_work import Store
from reset_mailbot_testing.oidc_provider import OidcClient, OidcProvider, OidcUser
from tests.harness.browser_fixtures import Screenshots
from tests.harness.console_fixtures import (
    SEEDED_AT,
    Seeded,
    console_app,
    request_state,
    seed_console_store,
)

APPROVAL = "001-utrecht_basic"
SENDER = "j.devries@utrecht.nl"  # the official who sent the demo request


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Console:
    url: str
    store: Store
    seeded: Seeded
    oidc: OidcProvider


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    migrate.upgrade(url)
    engine = create_db_engine(url)
    store = Store(engine, clock=lambda: SEEDED_AT)
    seeded = seed_console_store(store)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    provider = OidcProvider(
        clients={"console": OidcClient("console-secret", [base + "/auth/callback"])},
        users={
            "anna": OidcUser("anna@forus.test", "Anna Approver", ["support-approvers"]),
            "olaf": OidcUser("olaf@forus.test", "Olaf Operator", ["support"]),
            "vera": OidcUser("vera@forus.test", "Vera Viewer", ["readers"]),
            # the requesting official, given a console role by mistake: four eyes still holds
            "jan": OidcUser(SENDER, "Jan de Vries", ["support-approvers"]),
        },
    ).start()
    app = console_app(
        store, mode="oidc", listen=f"127.0.0.1:{port}", oidc_issuer=provider.url,
        oidc_client_id="console", oidc_client_secret="console-secret",
        role_groups={"support-approvers": "approver", "support": "operator",
                     "readers": "viewer"},
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "console did not start"
        time.sleep(0.02)
    try:
        yield Console(base, store, seeded, provider)
    finally:
        server.should_exit = True
        thread.join(10)
        provider.stop()
        engine.dispose()


def login(page: Page, console: Console, user: str) -> None:
    page.context.clear_cookies()
    page.goto(console.url + "/requests")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.click("#login-oidc")
    page.fill("#username", user)
    page.click("#login")
    expect(page.locator("#who")).to_contain_text(console.oidc.users[user].name)


def test_a_support_day_in_the_browser(page: Page, console: Console,
                                      screenshots: Screenshots) -> None:
    request_id = console.seeded.requests[APPROVAL]
    page.goto(console.url + "/login")
    screenshots(page, "login")

    # a viewer finds the request, reads it, and cannot act
    login(page, console, "vera")
    expect(page.locator("#requests")).to_contain_text(request_id)
    screenshots(page, "requests")
    page.click(f"text={request_id}")
    expect(page.locator("#state")).to_have_text("awaiting_approval")
    expect(page.locator("mark").first).to_be_visible()
    expect(page.locator("#action-approve")).to_have_count(0)
    page.goto(f"{console.url}/requests/{request_id}/approve")
    expect(page.locator("#refused")).to_contain_text("approver role")

    # the requesting official may not approve their own request
    login(page, console, "jan")
    page.goto(f"{console.url}/requests/{request_id}")
    page.click("#action-approve")
    page.click("#confirm")
    expect(page.locator("#flash")).to_contain_text("a second person must approve it")
    assert request_state(console.store, request_id) == "awaiting_approval"

    # a second person approves
    login(page, console, "anna")
    page.goto(f"{console.url}/requests/{request_id}")
    screenshots(page, "request")
    page.click("#action-approve")
    screenshots(page, "confirm")
    page.click("#confirm")
    expect(page.locator("#flash")).to_contain_text("approved by anna@forus.test")
    expect(page.locator("#state")).to_have_text("awaiting_manual_reset")

    # an operator records the manual reset
    login(page, console, "olaf")
    page.goto(f"{console.url}/requests/{request_id}")
    page.click("#action-done")
    page.fill("#reason", "reset in the Forus back office")
    page.click("#confirm")
    expect(page.locator("#state")).to_have_text("executed")
    expect(page.locator(".timeline")).to_contain_text("olaf@forus.test")
    assert request_state(console.store, request_id) == "executed"


def test_resend_a_failed_reply_in_the_browser(page: Page, console: Console,
                                              screenshots: Screenshots) -> None:
    with console.store.unit_of_work() as uow:
        reply = uow.session.query(OutboxItem).order_by(OutboxItem.id).first()
        assert reply is not None
        reply.state, reply.attempts = "failed", 1
        reply.last_error = "550 5.1.1 mailbox unavailable"
        reply_id = reply.id
    login(page, console, "olaf")
    page.goto(console.url + "/replies?failed=1")
    expect(page.locator("#replies")).to_contain_text("550 5.1.1")
    screenshots(page, "replies")
    page.click(f"a[href='/replies/{reply_id}/resend']")
    page.click("#confirm")
    expect(page.locator("#flash")).to_contain_text(str(reply_id))
    with console.store.unit_of_work() as uow:
        row = uow.session.get(OutboxItem, reply_id)
        assert row is not None and row.state != "failed"


class _EvilPage(BaseHTTPRequestHandler):
    """Another site's page with a form aimed at the console (no script needed: a click)."""

    target = ""

    def do_GET(self) -> None:
        body = (f'<form method="post" action="{self.target}">'
                '<input type="hidden" name="csrf_token" value="guessed">'
                '<button id="go">Win a prize</button></form>').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_csrf_from_another_page_is_refused(page: Page, console: Console) -> None:
    request_id = console.seeded.requests[APPROVAL]
    login(page, console, "anna")
    handler = type("Evil", (_EvilPage,),
                   {"target": f"{console.url}/requests/{request_id}/approve"})
    evil = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        page.click("#go")
        expect(page.locator("#refused")).to_contain_text("CSRF")
    finally:
        evil.shutdown()
        evil.server_close()
    assert request_state(console.store, request_id) == "awaiting_approval"


def test_quarantine_and_stats_pages(page: Page, console: Console,
                                    screenshots: Screenshots) -> None:
    login(page, console, "vera")
    page.goto(console.url + "/messages?view=all")
    expect(page.locator("#messages")).to_contain_text("no DKIM signature")
    screenshots(page, "messages")
    page.goto(console.url + "/stats")
    expect(page.locator("#chart svg")).to_be_visible()
    screenshots(page, "stats")


def test_no_script_runs_and_the_policy_holds(browser: Browser, console: Console) -> None:
    """The Content-Security-Policy is enforced by the browser: a script slipped into a page
    would not run (here: the console serves none; an injected one is blocked)."""
    context = browser.new_context()
    page = context.new_page()
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text))
    try:
        login(page, console, "vera")
        page.goto(console.url + "/requests")
        blocked = page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.__ran = 1'; document.body.appendChild(s);"
            " return window.__ran === 1 }")
        assert blocked is False
        assert any("Content Security Policy" in v for v in violations), violations
    finally:
        context.close()
