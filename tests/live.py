"""Fixtures for browser tests: a real daphne serving the test database, and headless Chromium.

    from .live import *  # noqa: F403  (brings the fixtures into a test module)

`daphne_server` starts `daphne crm.asgi:application` on a free loopback port with the test
settings and the test database pytest-django created, and waits for /health. It needs committed
rows, so it pulls in `transactional_db`. Events published by the test process reach the
browsers through the same Redis channel (tests.settings derives it from the checkout path).
`browser` is Debian's Chromium driven by Playwright (no browser download, ever).
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from .factories import PASSWORD
from .processes import database_url, free_port

__all__ = ["CHROMIUM", "LiveServer", "browser", "daphne_server", "log_in", "wait_live"]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT = 30.0
EXPECT_TIMEOUT_MS = 15_000  # a loaded CI machine is slower than a laptop
BASE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class LiveServer:
    url: str
    port: int
    env: dict
    log_path: Path
    process: subprocess.Popen | None = None
    command: list[str] | None = None  # instead of a plain `daphne -b -p` (its arguments)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [_daphne(), *self.command]
                if self.command
                else [_daphne(), "-b", "127.0.0.1", "-p", str(self.port), "crm.asgi:application"],
                cwd=BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_until_healthy(self)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _daphne() -> str:
    beside_python = Path(sys.executable).with_name("daphne")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("daphne")
    if not found:
        pytest.fail("daphne is not installed in this environment (pip install -r requirements.txt)")
    return found


def _wait_until_healthy(server: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"daphne exited with {server.process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"daphne did not answer /health within {STARTUP_TIMEOUT:.0f}s:\n{server.log()}")


@pytest.fixture
def daphne_server(transactional_db, tmp_path):
    """A live daphne on the test database; `.stop()` / `.start()` restart it on the same port."""
    port = free_port()
    env = {
        **os.environ,
        # tests.settings (read from the environment: override_settings hides SETTINGS_MODULE)
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "DATABASE_URL": database_url(),
        "DEBUG": "true",  # daphne serves /static/ itself
        # The page's .delay() has no worker here; the test runs the send task itself.
        "CELERY_BROKER_URL": "memory://",
        "PYTHONUNBUFFERED": "1",
    }
    server = LiveServer(f"http://127.0.0.1:{port}", port, env, tmp_path / "daphne.log")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(monkeypatch):
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium; "
            "or set CHROMIUM=/path/to/chromium)."
        )
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("Browser tests need Playwright: pip install -r requirements-dev.txt")
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # still plain synchronous code, which Django would otherwise refuse next to a loop.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(browser, server: LiveServer, user, *, viewport=None):
    """A new browser context (its own cookies) logged in through the real login page."""
    context = browser.new_context(viewport=viewport or {"width": 1360, "height": 860})
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    page = context.new_page()
    page.goto(server.url + "/login/")
    page.fill('input[name="username"]', user.username)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(lambda url: "/login/" not in url)
    return page


def wait_live(page, timeout_ms: float = EXPECT_TIMEOUT_MS) -> None:
    """Until the page's WebSocket said welcome (events published from now on reach it)."""
    page.wait_for_selector('html[data-realtime="live"]', state="attached", timeout=timeout_ms)
