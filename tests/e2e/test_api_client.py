"""web/static/js/api.js in a real browser: one refresh for many 401s, tabs, login redirect, CSRF."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from playwright.async_api import BrowserContext, Page, Request, Route

REFRESH = "/api/v1/auth/refresh"
EMAIL = "ada@example.com"
SIGN_UP = """() => api.post("/api/v1/auth/register",
    {email: "ada@example.com", password: "a very long test secret", name: "Ada"})"""
GET_ME = '() => api.get("/api/v1/me")'
FIVE_AT_ONCE = '() => Promise.all([1, 2, 3, 4, 5].map(() => api.get("/api/v1/me")))'


def path_of(url: str) -> str:
    return urlsplit(url).path


def record(context: BrowserContext, path: str) -> list[Request]:
    """Every request the context sends to `path` (any tab), in order."""
    sent: list[Request] = []
    context.on(
        "request", lambda request: sent.append(request) if path_of(request.url) == path else None
    )
    return sent


async def slow_refresh(context: BrowserContext, delay: float) -> None:
    """Hold refresh requests for `delay` seconds, so that other requests meet the 401 meanwhile."""

    async def hold(route: Route) -> None:
        await asyncio.sleep(delay)
        await route.continue_()

    if delay:
        await context.route(f"**{REFRESH}", hold)


async def signed_in(page: Page) -> None:
    await page.goto("/")
    user = await page.evaluate(SIGN_UP)
    assert user["user"]["email"] == EMAIL
    assert "access_token" not in user  # a browser gets cookies, never tokens in the body


async def cookie_names(context: BrowserContext) -> set[str]:
    return {cookie["name"] for cookie in await context.cookies()}


@pytest.mark.parametrize("web_locks", [True, False], ids=["web-locks", "no-web-locks"])
@pytest.mark.parametrize("refresh_delay", [0, 0.3])
async def test_parallel_401s_share_one_refresh(
    context: BrowserContext, page: Page, base_url: str, refresh_delay: float, web_locks: bool
) -> None:
    if not web_locks:  # older browsers: the tab's own queue must still refresh only once
        await context.add_init_script("delete Navigator.prototype.locks")
    await signed_in(page)
    assert await page.evaluate("() => 'locks' in navigator") is web_locks
    # An access token that no longer verifies, in place of the real one.
    await context.add_cookies(
        [{"name": "aioshop-access", "value": "ey.expired.junk", "url": base_url}]
    )
    assert [c["value"] for c in await context.cookies() if c["name"] == "aioshop-access"] == [
        "ey.expired.junk"
    ]
    refreshes = record(context, REFRESH)
    me_calls = record(context, "/api/v1/me")
    await slow_refresh(context, refresh_delay)

    users = await page.evaluate(FIVE_AT_ONCE)

    assert [user["email"] for user in users] == [EMAIL] * 5
    assert len(refreshes) == 1
    assert len(me_calls) == 11  # five 401s, one probe under the lock, five retries
    assert refreshes[0].headers["x-csrf-token"]
    assert await page.evaluate(GET_ME) == users[0]  # the new cookies keep working


async def test_failed_refresh_sends_user_to_login_with_next(
    context: BrowserContext, page: Page, base_url: str
) -> None:
    await page.goto("/?from=test")
    await page.evaluate(SIGN_UP)
    stale = next(c for c in await context.cookies() if c["name"] == "aioshop-refresh")
    await page.evaluate('() => api.post("/api/v1/auth/logout-everywhere")')
    assert not {"aioshop-access", "aioshop-refresh"} & await cookie_names(context)
    # The browser still holds the (now revoked) refresh token, but no access token.
    await context.add_cookies([{"name": stale["name"], "value": stale["value"], "url": base_url}])
    refreshes = record(context, REFRESH)

    # Not awaited: the page navigates away. sessionStorage outlives the navigation in this tab.
    await page.evaluate(
        """() => { api.get("/api/v1/me").catch(
            (error) => sessionStorage.setItem("rejected", `${error.name} ${error.status}`)); }"""
    )

    expected = f"{base_url}/login?next=%2F%3Ffrom%3Dtest"
    await page.wait_for_url(lambda url: url == expected)
    assert len(refreshes) == 1
    assert (await refreshes[0].response()).status == 401
    assert await page.evaluate('() => sessionStorage.getItem("rejected")') == "ApiError 401"
    assert "aioshop-refresh" not in await cookie_names(context)  # the server cleared it


@pytest.mark.parametrize("refresh_delay", [0, 0.3])
async def test_two_tabs_spend_the_refresh_token_once(
    context: BrowserContext, page: Page, refresh_delay: float
) -> None:
    await signed_in(page)
    other = await context.new_page()
    await other.goto("/")
    await context.clear_cookies(name="aioshop-access")
    refreshes = record(context, REFRESH)
    await slow_refresh(context, refresh_delay)

    mine, theirs = await asyncio.gather(page.evaluate(GET_ME), other.evaluate(GET_ME))

    assert mine["email"] == theirs["email"] == EMAIL
    assert len(refreshes) == 1
    # Had both tabs spent the same token, the session would be revoked by now.
    assert (await other.evaluate(GET_ME))["email"] == EMAIL


async def test_unsafe_requests_carry_the_csrf_header(context: BrowserContext, page: Page) -> None:
    # A page every anonymous visitor shares (web.store.page_cache) carries no token: the client
    # asks GET /csrf-token once, which also sets the cookie the token is checked against.
    await page.goto("/")
    assert await page.locator('meta[name="csrf-token"]').count() == 0
    sent: list[Request] = []  # the client's requests (not the page's pictures and scripts)
    page.on(
        "request",
        lambda request: (
            sent.append(request)
            if path_of(request.url) == "/csrf-token" or path_of(request.url).startswith("/api/")
            else None
        ),
    )

    await page.evaluate(SIGN_UP)
    await page.evaluate('() => api.patch("/api/v1/me", {name: "Ada L."})')

    [token] = [c["value"] for c in await context.cookies() if c["name"] == "aioshop-csrf"]
    assert [(r.method, path_of(r.url), r.headers.get("x-csrf-token")) for r in sent] == [
        ("GET", "/csrf-token", None),
        ("POST", "/api/v1/auth/register", token),
        ("PATCH", "/api/v1/me", token),
    ]
    # A page that names the visitor carries the token: the client takes it from there.
    await page.goto("/")
    assert await page.get_attribute('meta[name="csrf-token"]', "content") == token
    sent.clear()
    await page.evaluate('() => api.patch("/api/v1/me", {name: "Ada"})')
    assert [(r.method, path_of(r.url), r.headers.get("x-csrf-token")) for r in sent] == [
        ("PATCH", "/api/v1/me", token),
    ]
    forged = await page.evaluate(
        """async () => {
            const response = await fetch("/api/v1/auth/logout", {method: "POST"});
            return [response.status, response.headers.get("Content-Type"), await response.json()];
        }"""
    )
    status, content_type, problem = forged
    assert status == 403
    assert content_type.startswith("application/problem+json")
    assert problem["status"] == 403
    assert problem["type"] == "/problems/csrf-rejected"
    assert (await page.evaluate(GET_ME))["name"] == "Ada"  # still signed in


async def test_401s_that_are_answers_do_not_refresh(context: BrowserContext, page: Page) -> None:
    await signed_in(page)
    refreshes = record(context, REFRESH)
    failures = await page.evaluate(
        """() => Promise.all([
            api.post("/api/v1/auth/login", {email: "nobody@example.com",
                                             password: "a very long test secret"}),
            api.post("/api/v1/me/password", {current_password: "not the password at all",
                                              new_password: "another long test secret"}),
        ].map((call) => call.then(() => null, (e) => ({
            isApiError: e instanceof api.ApiError, status: e.status, type: e.problem.type}))))"""
    )
    assert failures == [
        {"isApiError": True, "status": 401, "type": "/problems/invalid-credentials"},
        {"isApiError": True, "status": 422, "type": "/problems/invalid-input"},
    ]
    assert refreshes == []
    assert urlsplit(page.url).path == "/"
