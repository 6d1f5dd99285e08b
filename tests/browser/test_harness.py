"""Proof that the browser harness drives a real Chromium (tests/harness/browser_fixtures.py)
and that the test OpenID provider's login works in it. If these fail, every console browser
test is suspect."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from playwright.sync_api import Page, expect

from reset_mailbot_testing.oidc_provider import OidcClient, OidcProvider, OidcUser
from tests.harness.browser_fixtures import REPO_ROOT, SCREENSHOTS, Screenshots

BUTTON_PAGE = b"""<!doctype html><html><head><title>harness</title></head><body>
<p id="out">not yet</p>
<button id="go" onclick="document.getElementById('out').textContent = 'clicked'">Go</button>
</body></html>"""


class _Site:
    """A tiny local web server: `/` is BUTTON_PAGE, anything else is recorded and answered
    with a short page (a stand-in for the console's OIDC callback)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = BUTTON_PAGE if self.path == "/" else b"<p id='done'>back</p>"
                if self.path != "/":
                    site.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> _Site:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[_Site]:
    with _Site() as running:
        yield running


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is no PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chromium_opens_a_page_runs_its_script_and_is_photographed(
        page: Page, site: _Site, screenshots: Screenshots) -> None:
    page.goto(site.url + "/")
    expect(page.locator("#out")).to_have_text("not yet")
    page.click("#go")
    expect(page.locator("#out")).to_have_text("clicked")
    assert "Chrom" in page.evaluate("navigator.userAgent")

    shot = screenshots(page, "clicked")
    assert shot.parent == SCREENSHOTS and shot.name.endswith("--clicked.png")
    assert shot.is_relative_to(REPO_ROOT / "test-artifacts")
    width, height = _png_size(shot)
    assert width > 100 and height > 100
    assert screenshots.taken == [shot]


def test_each_test_gets_a_fresh_context(page: Page, site: _Site) -> None:
    page.goto(site.url + "/")
    page.context.add_cookies([{"name": "left", "value": "over", "url": site.url}])
    assert page.context.cookies() != []
    other = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        assert other.cookies() == []
    finally:
        other.close()


def test_the_oidc_provider_login_form_works_in_chromium(
        page: Page, site: _Site, screenshots: Screenshots) -> None:
    callback = site.url + "/auth/callback"
    provider = OidcProvider(
        clients={"console": OidcClient("console-secret", [callback])},
        users={"alice": OidcUser("alice@forus.test", "Alice Support", ["support"])})
    verifier, nonce = generate_token(48), generate_token(20)
    with provider, OAuth2Client("console", "console-secret", scope="openid email groups",
                                redirect_uri=callback, code_challenge_method="S256") as client:
        url, state = client.create_authorization_url(provider.url + "/authorize",
                                                     code_verifier=verifier, nonce=nonce)
        page.goto(url)
        expect(page.locator("#username")).to_be_visible()
        screenshots(page, "login-form")
        page.fill("#username", "alice")
        page.click("#login")
        page.wait_for_url(callback + "?*")
        expect(page.locator("#done")).to_have_text("back")

        [arrived] = [path for path in site.requests if path.startswith("/auth/callback?")]
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(arrived).query))
        assert query["state"] == state
        assert query["code"] == provider.authorizations[-1].code
        token = client.fetch_token(provider.url + "/token", code=query["code"],
                                   state=state, code_verifier=verifier)
    assert token["id_token"] and provider.token_requests[-1].pkce_verified
    assert provider.authorizations[-1].username == "alice"


def test_without_chromium_the_browser_tests_fail_naming_make_test_deps(tmp_path: Path) -> None:
    """A missing browser must be a failure, not a skip that hides one."""
    (tmp_path / "test_needs_browser.py").write_text("def test_it(page):\n    pass\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.harness.browser_fixtures",
         "-p", "no:cacheprovider", "-q", str(tmp_path / "test_needs_browser.py")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "RESET_MAILBOT_CHROMIUM": str(tmp_path / "no-chromium")})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 error" in run.stdout and "skipped" not in run.stdout
    assert "make test-deps" in run.stdout


def test_a_failing_browser_test_leaves_a_screenshot(tmp_path: Path) -> None:
    (tmp_path / "test_fails_in_browser.py").write_text(
        "def test_harness_failure_probe(page):\n"
        "    page.set_content('<h1>probe</h1>')\n"
        "    assert False\n")
    shot = SCREENSHOTS / "test_harness_failure_probe--failure.png"
    shot.unlink(missing_ok=True)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.harness.browser_fixtures",
         "-p", "no:cacheprovider", "-q", str(tmp_path / "test_fails_in_browser.py")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout + run.stderr
    try:
        assert _png_size(shot) > (0, 0)
    finally:
        shot.unlink(missing_ok=True)
