"""Several tabs of one browser whose access token has expired: every tab stays signed in.

Each tab's navigation reaches the server with the same refresh cookie at about the same time, and
each is refreshed silently on the server (web.cookies.browser_session). They must all get the
same new pair: one refresh token spent twice outside the grace window would end the session.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import jwt
from playwright.async_api import BrowserContext, Page, Route

from auth.tokens import SigningKeys, issue_access_token
from storage.database import connect
from tests.conftest import TEST_SECRET

EMAIL = "ada@example.com"
TABS = 4


async def sign_up(page: Page) -> None:
    await page.goto("/register?next=/account")
    await page.fill("#f-name", "Ada")
    await page.fill("#f-email", EMAIL)
    await page.fill("#f-password", "a very long test secret")
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("**/account")


async def cookie_value(context: BrowserContext, name: str) -> str:
    values = [cookie["value"] for cookie in await context.cookies() if cookie["name"] == name]
    assert len(values) == 1, values
    return values[0]


async def live_sessions(dsn: str) -> int:
    conn = await connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM sessions WHERE revoked_at IS NULL")
        return count
    finally:
        await conn.close()


async def arrive_together(context: BrowserContext, path: str, count: int) -> None:
    """Hold the navigations to `path` until `count` of them are waiting, then let all go: the
    tabs' requests leave with the same cookies, as when a browser restores its tabs at once."""
    waiting = 0
    everyone = asyncio.Event()

    async def hold(route: Route) -> None:
        nonlocal waiting
        waiting += 1
        if waiting == count:
            everyone.set()
        await everyone.wait()
        await route.continue_()

    await context.route(f"**{path}", hold)


async def all_signed_in(tabs: list[Page]) -> None:
    for tab in tabs:
        assert urlsplit(tab.url).path == "/account", tab.url  # not sent to the sign-in page
        assert EMAIL in await tab.content()


async def test_tabs_loading_at_once_with_an_expired_access_token_stay_signed_in(
    context: BrowserContext, page: Page, base_url: str, fresh_db: str
) -> None:
    await sign_up(page)
    claims = jwt.decode(
        await cookie_value(context, "aioshop-access"), options={"verify_signature": False}
    )
    expired = issue_access_token(
        SigningKeys.from_secrets(TEST_SECRET),
        int(claims["sub"]),
        "customer",
        claims["sid"],
        now=datetime.now(UTC) - timedelta(hours=2),
    )
    await context.add_cookies([{"name": "aioshop-access", "value": expired, "url": base_url}])
    old_refresh = await cookie_value(context, "aioshop-refresh")
    tabs = [page, *[await context.new_page() for _ in range(TABS - 1)]]
    await arrive_together(context, "/account", TABS)

    await asyncio.gather(*(tab.goto("/account") for tab in tabs))

    await all_signed_in(tabs)
    assert await cookie_value(context, "aioshop-access") != expired
    assert await cookie_value(context, "aioshop-refresh") != old_refresh
    assert await live_sessions(fresh_db) == 1
    # The pair the tabs were given keeps working, in every tab.
    await context.unroute_all()
    await asyncio.gather(*(tab.reload() for tab in tabs))
    await all_signed_in(tabs)
