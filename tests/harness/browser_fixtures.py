"""Real-browser harness for the console's tests (issue #17): Debian's Chromium driven by
Playwright's sync API.

Playwright's own browser builds are not installed and cannot be downloaded here, so the
browser is always the system one (`/usr/bin/chromium`, from the `chromium` package that
`make test-deps` installs; `RESET_MAILBOT_CHROMIUM` names another binary). Without it the
browser tests FAIL, naming `make test-deps`: a skipped browser test would hide a failure.

Fixtures:
- `browser`: one headless Chromium per test package (see its docstring for why not per
  session);
- `page`: a page in a fresh browser context (no cookies or storage from other tests); when the
  test fails, a screenshot of it is saved as `<test>--failure.png`;
- `screenshots`: `screenshots(page, "name")` saves `test-artifacts/screenshots/<test>--name.png`
  (at the repository root, ignored by git) and returns its path.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path(os.environ.get("RESET_MAILBOT_CHROMIUM", "/usr/bin/chromium"))
DEFAULT_TIMEOUT_MS = 10_000  # Playwright's 30 s default makes a broken page slow to fail

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Keep each phase's report on the item, so `page` knows at teardown whether the test
    failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def chromium_arguments() -> list[str]:
    arguments = ["--disable-dev-shm-usage"]  # containers give /dev/shm 64 MB
    if os.geteuid() == 0:
        arguments.append("--no-sandbox")  # Chromium refuses to run its sandbox as root
    return arguments


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """A headless system Chromium, shared by the tests of one package (tests/browser/).

    Not session-wide on purpose: while Playwright's sync API is running it marks an asyncio
    loop as running in the main thread, so `asyncio.run()` there fails; per package, it is
    stopped before the tests of other packages run (a launch takes about half a second)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: the browser tests drive the "
                    "system Chromium (Playwright's browsers cannot be downloaded here). "
                    "Run `make test-deps` as root (it installs Debian's `chromium`).",
                    pytrace=False)
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=chromium_arguments())
        except Error as error:
            pytest.fail(f"Chromium at {CHROMIUM} did not start ({error}). "
                        "Run `make test-deps` as root to (re)install Debian's `chromium`.",
                        pytrace=False)
        try:
            yield launched
        finally:
            launched.close()


class Screenshots:
    """Saves PNGs of pages under `directory`, named after the test."""

    def __init__(self, directory: Path, test_name: str) -> None:
        self.directory = directory
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_")
        self.taken: list[Path] = []

    def __call__(self, page: Page, name: str, *, full_page: bool = True) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.prefix}--{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        return path


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    return Screenshots(SCREENSHOTS, request.node.nodeid.split("::", 1)[-1])


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest,
         screenshots: Screenshots) -> Iterator[Page]:
    """A page in a new browser context: each test starts with no cookies or storage."""
    context = browser.new_context()
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    try:
        opened = context.new_page()
        yield opened
        report = request.node.stash.get(_REPORTS, {}).get("call")
        if report is not None and report.failed and not opened.is_closed():
            with contextlib.suppress(Exception):  # a broken page must not hide the failure
                screenshots(opened, "failure")
    finally:
        context.close()
