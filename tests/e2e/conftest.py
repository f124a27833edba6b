"""Fixtures for browser tests: the real app on a free local port, and Debian's Chromium.

Playwright's own browser download does not work on our machines, so the tests drive the
system Chromium (`make browser` installs it). Without it the tests are skipped locally and
fail in CI (where the CI variable is set). Each test gets a fresh browser context.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from configs.settings import Settings
from tests.support.axe import AxeWatch
from web.app import create_app

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture
async def base_url(settings: Settings) -> AsyncIterator[str]:
    """The whole app served on 127.0.0.1 (plain HTTP: cookies without the __Host- prefix)."""
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()  # before `settings` drops the test database


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium, one per test (the event loop is per test too)."""
    if not CHROMIUM.exists():  # fail, never skip: `make test` installs it (`make browser`)
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser`")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def context(browser: Browser, base_url: str) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (no cookies, no storage) whose relative URLs hit the app.

    Every page of it runs under the shop's Content-Security-Policy: anything the policy refuses
    (an inline script or handler, a style element, a foreign resource) fails the test. And every
    document its pages load is checked by axe-core (tests/support/axe.py: WCAG 2.1 A and AA and
    best practices), on load and once more at teardown: any violation fails the test.
    """
    context = await browser.new_context(base_url=base_url)
    context.set_default_timeout(10_000)
    refused: list[str] = []
    context.on("console", lambda message: _note_csp_violation(refused, message))
    axe = await AxeWatch.attach(context)
    try:
        yield context
        await axe.finish(context)
    finally:
        await context.close()
    assert not refused, f"the Content-Security-Policy refused: {refused}"
    assert not axe.found and not axe.errors, axe.report()


def _note_csp_violation(refused: list[str], message: ConsoleMessage) -> None:
    if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
        refused.append(f"{message.page.url if message.page else '?'}: {message.text}")


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    """A tab of the fresh context."""
    return await context.new_page()


@pytest.fixture
def artifacts() -> Path:
    """Where tests leave screenshots (gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
