"""Fixtures for the portal's browser tests: a real server process, a real webhook receiver, and
Debian's Chromium (headless) driven by Playwright for Python.

Chromium comes from `scripts/browser` (Debian's `chromium` package), never from Playwright's own
download; without /usr/bin/chromium these tests are skipped. Every page records console errors,
uncaught exceptions and CSP violations, and a test fails if any occurred.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)
from support.receiver import Receiver
from support.server import ServerProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REFRESH_PATH = "/portal-refresh"
DESKTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS_ENV = "OUTPOST_PORTAL_SCREENSHOTS"
REPO_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


# Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
# while it is started, and the async tests of other folders need the thread's loop back.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: run scripts/browser")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as rx:
        yield rx


@pytest.fixture(scope="module")
def server(receiver: Receiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "PORTAL_REFRESH_URL": receiver.url(REFRESH_PATH),
        "PORTAL_ORGANIZATION_NAME": "Acme Cloud",
        "PORTAL_ENABLE_WEBHOOK_CUSTOM_HEADERS": "true",
        "PORTAL_ENABLE_DESTINATION_FILTER": "true",
    }
    srv = ServerProcess(env, workdir=tmp_path_factory.mktemp("portal-server"))
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


class PageProblems:
    """Console errors (CSP violations among them) and uncaught exceptions seen by a page."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.messages.append(f"uncaught: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium logs every 4xx answer as "Failed to load resource"; the pages expect some
        # (a foreign destination's 404, an expired token's 401) and the tests assert what the
        # user sees instead.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.messages.append(message.text)


NewPage = Callable[..., Page]


@pytest.fixture
def new_page(browser: Browser) -> Iterator[NewPage]:
    """Opens pages in fresh browser contexts (own sessionStorage); checks them for problems."""
    contexts: list[tuple[BrowserContext, PageProblems]] = []

    def factory(viewport: ViewportSize = DESKTOP, color_scheme: str = "light") -> Page:
        context = browser.new_context(viewport=viewport, color_scheme=color_scheme)  # type: ignore[arg-type]
        page = context.new_page()
        page.set_default_timeout(15_000)
        contexts.append((context, PageProblems(page)))
        return page

    yield factory
    problems = [m for _, watcher in contexts for m in watcher.messages]
    for context, _ in contexts:
        context.close()
    assert not problems, problems


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots with OUTPOST_PORTAL_SCREENSHOTS=1, else tmp."""
    if os.environ.get(SCREENSHOTS_ENV) == "1":
        REPO_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return REPO_SCREENSHOTS
    return tmp_path
