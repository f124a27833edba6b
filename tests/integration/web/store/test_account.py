"""The storefront's account pages: forms with CSRF, cookies, silent refresh, safe redirects."""

from __future__ import annotations

import asyncio
import re

from yarl import URL

from storage.database import connect
from tests.support.accounts import emailed_token
from tests.support.browser import PASSWORD, cookie, post_form


async def sign_up(client, name: str = "Ada", email: str = "ada@example.com"):  # type: ignore[no-untyped-def]
    resp = await post_form(
        client,
        "/register",
        {"name": name, "email": email, "password": PASSWORD, "next": "/account"},
    )
    assert resp.status == 303, await resp.text()
    return resp


async def test_a_form_without_the_csrf_token_is_refused(client, fresh_db) -> None:
    resp = await client.post(
        "/register",
        data={"name": "A", "email": "a@example.com", "password": PASSWORD},
        allow_redirects=False,
    )
    assert resp.status == 403
    conn = await connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
    finally:
        await conn.close()


async def test_register_signs_in_and_the_account_page_shows_the_user(client) -> None:
    resp = await sign_up(client, name="Ada <script>x</script>")
    assert resp.headers["Location"] == "/account"
    assert cookie(client, "aioshop-access") and cookie(client, "aioshop-refresh")
    set_cookie = " ".join(resp.headers.getall("Set-Cookie"))
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    page = await client.get("/account")
    html = await page.text()
    assert page.status == 200 and "ada@example.com" in html
    assert "Ada &lt;script&gt;x&lt;/script&gt;" in html and "<script>x" not in html
    assert page.headers["Cache-Control"] == "private, no-store"


async def test_register_errors_are_shown_beside_their_fields(client) -> None:
    resp = await post_form(
        client, "/register", {"name": "Ada", "email": "not-an-email", "password": "short"}
    )
    html = await resp.text()
    assert resp.status == 422
    assert 'id="e-email"' in html and 'id="e-password"' in html
    assert 'value="not-an-email"' in html  # the shopper's input is kept ...
    assert 'value="short"' not in html  # ... but never the password


async def test_login_with_a_wrong_password_says_so_without_saying_which(client) -> None:
    await sign_up(client)
    client.session.cookie_jar.clear()
    resp = await post_form(client, "/login", {"email": "ada@example.com", "password": "wrong one!"})
    html = await resp.text()
    assert resp.status == 401 and "The email or password is not right." in html


async def test_next_only_redirects_within_the_site(client) -> None:
    await sign_up(client)
    for target, expected in [
        ("/account?tab=addresses", "/account?tab=addresses"),
        ("//evil.example/", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
    ]:
        resp = await post_form(
            client, "/login", {"email": "ada@example.com", "password": PASSWORD, "next": target}
        )
        assert resp.status == 303 and resp.headers["Location"] == expected, target


async def test_an_expired_access_cookie_is_refreshed_silently_on_a_page(client) -> None:
    await sign_up(client)
    old_refresh = cookie(client, "aioshop-refresh")
    jar = client.session.cookie_jar
    jar.clear(lambda morsel: morsel.key == "aioshop-access")  # as the browser does at expiry
    assert cookie(client, "aioshop-access") is None
    page = await client.get("/account")
    assert page.status == 200 and "ada@example.com" in await page.text()
    assert cookie(client, "aioshop-refresh") != old_refresh  # rotated
    assert cookie(client, "aioshop-access")


async def test_pages_loading_at_once_share_one_silent_refresh(client, fresh_db) -> None:
    """Several tabs with an expired access cookie and one refresh cookie: all stay signed in."""
    await sign_up(client)
    old_refresh = cookie(client, "aioshop-refresh")
    client.session.cookie_jar.clear(lambda morsel: morsel.key == "aioshop-access")
    pages = await asyncio.gather(*(client.get("/account") for _ in range(6)))
    for page in pages:
        assert page.status == 200 and "ada@example.com" in await page.text()
    refreshed = {page.cookies["aioshop-refresh"].value for page in pages}
    assert len(refreshed) == 1 and old_refresh not in refreshed  # one successor, handed to all
    assert len({page.cookies["aioshop-access"].value for page in pages}) == 1
    conn = await connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM sessions WHERE revoked_at IS NULL") == 1
    finally:
        await conn.close()
    client.session.cookie_jar.clear(lambda morsel: morsel.key == "aioshop-access")
    later = await client.get("/account")  # the shared successor keeps working
    assert later.status == 200 and "ada@example.com" in await later.text()


async def test_account_page_redirects_anonymous_visitors_to_sign_in(client) -> None:
    resp = await client.get("/account?tab=1", allow_redirects=False)
    location = URL(resp.headers["Location"])
    assert resp.status == 303 and location.path == "/login"
    assert location.query["next"] == "/account?tab=1"


async def test_logout_ends_the_session_on_the_server(client) -> None:
    await sign_up(client)
    refresh = cookie(client, "aioshop-refresh")
    resp = await post_form(client, "/logout", {})
    assert resp.status == 303
    assert not cookie(client, "aioshop-access")
    # The old refresh token no longer works even if someone kept a copy.
    api = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert api.status == 401


async def test_password_reset_through_the_pages(client, fresh_db) -> None:
    await sign_up(client)
    client.session.cookie_jar.clear()
    sent = await post_form(client, "/forgot-password", {"email": "nobody@example.com"})
    assert "a reset link is on its way" in await sent.text()
    token = await emailed_token(fresh_db, 1, "password_reset")
    weak = await post_form(client, f"/reset-password?token={token}", {"new_password": "short"})
    assert weak.status == 422 and 'id="e-new_password"' in await weak.text()
    done = await post_form(
        client, f"/reset-password?token={token}", {"new_password": "a brand new secret"}
    )
    assert done.status == 303 and done.headers["Location"] == "/login?reset=1"
    login = await post_form(
        client, "/login", {"email": "ada@example.com", "password": "a brand new secret"}
    )
    assert login.status == 303


async def test_verify_email_link(client, fresh_db) -> None:
    await sign_up(client)
    token = await emailed_token(fresh_db, 1, "verify_email")
    assert (await client.get("/verify-email?token=" + "x" * 43)).status == 400
    page = await client.get(f"/verify-email?token={token}")
    assert page.status == 200 and "Your email is verified" in await page.text()
    assert "verified</span>" in await (await client.get("/account")).text()


async def test_addresses_on_the_account_page(client) -> None:
    await sign_up(client)
    bad = await post_form(
        client,
        "/account/addresses",
        {
            "full_name": "Ada",
            "line1": "1 Row",
            "city": "London",
            "postal_code": "N1",
            "country": "England",
        },
    )
    assert bad.status == 422 and 'id="e-country"' in await bad.text()
    ok = await post_form(
        client,
        "/account/addresses",
        {
            "full_name": "Ada",
            "line1": "1 Row",
            "city": "London",
            "postal_code": "N1",
            "country": "GB",
        },
    )
    assert ok.status == 303
    html = await (await client.get("/account")).text()
    address_id = re.search(r"/account/addresses/(\d+)/delete", html).group(1)  # type: ignore[union-attr]
    # Another shopper cannot remove it ...
    await sign_up(client, name="Bob", email="bob@example.com")
    theirs = await post_form(client, f"/account/addresses/{address_id}/delete", {})
    assert theirs.status == 404
    # ... its owner can.
    await post_form(client, "/login", {"email": "ada@example.com", "password": PASSWORD})
    removed = await post_form(client, f"/account/addresses/{address_id}/delete", {})
    assert removed.status == 303
    missing = await post_form(client, f"/account/addresses/{address_id}/delete", {})
    assert missing.status == 404


async def test_over_https_the_cookies_are_secure_and_host_prefixed(
    aiohttp_client, fresh_db, settings_for
) -> None:
    from web.app import create_app

    app = create_app(settings_for(fresh_db, trust_forwarded_headers=True))
    client = await aiohttp_client(app)
    try:
        https = {"X-Forwarded-Proto": "https"}
        page = await client.get("/login", headers=https)
        token = re.search(r'name="csrf_token" value="([^"]+)"', await page.text()).group(1)  # type: ignore[union-attr]
        # Secure cookies are not sent back over the test's plain HTTP: send the CSRF one by hand.
        resp = await client.post(
            "/register",
            data={
                "name": "Ada",
                "email": "ada@example.com",
                "password": PASSWORD,
                "csrf_token": token,
            },
            headers={**https, "Cookie": f"__Host-aioshop-csrf={token}"},
            allow_redirects=False,
        )
        assert resp.status == 303, await resp.text()
        cookies = resp.headers.getall("Set-Cookie")
        names = {header.split("=", 1)[0] for header in cookies}
        assert {"__Host-aioshop-access", "__Host-aioshop-refresh"} <= names
        for header in cookies:
            assert "Secure" in header and "HttpOnly" in header and "Path=/" in header
            assert "Domain" not in header
    finally:
        await client.close()
