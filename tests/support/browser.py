"""Driving the server-rendered pages from a test client (CSRF tokens, forms, cookies, sign-in)
and from Playwright (sign-in, the checkout form)."""

from __future__ import annotations

import re
from typing import Any

from storage.database import connect

PASSWORD = "correct horse battery staple"
CREDENTIALS = {"email": "ada@example.com", "password": PASSWORD}


BROWSER_PASSWORD = "a very long test secret"


async def csrf_of(client: Any, path: str = "/login") -> str:
    """The CSRF token the page at `path` carries (its form field, or its meta tag)."""
    html = await (await client.get(path)).text()
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert match, html
    return match.group(1)


async def post_form(client: Any, path: str, data: dict[str, str], **kwargs: Any) -> Any:
    """POST a form with a valid CSRF token, not following the redirect."""
    token = await csrf_of(client)
    return await client.post(
        path, data={**data, "csrf_token": token}, allow_redirects=False, **kwargs
    )


def cookie(client: Any, name: str) -> str | None:
    """The value of the client's cookie `name`, if it has one."""
    for morsel in client.session.cookie_jar:
        if morsel.key == name:
            return str(morsel.value)
    return None


async def signed_in(client: Any, *, role: str, fresh_db: str) -> dict[str, str]:
    """Register through the API (a bearer token) and sign in through the form (cookies)."""
    if role != "customer":
        await client.post("/api/v1/auth/register", json=CREDENTIALS | {"name": "Staff"})
        conn = await connect(fresh_db)
        try:
            await conn.execute("UPDATE users SET role = $1", role)
        finally:
            await conn.close()
    else:
        await client.post("/api/v1/auth/register", json=CREDENTIALS | {"name": "Ada"})
    # The role is in the access token, so sign in after any change of role.
    resp = await client.post("/api/v1/auth/login", json=CREDENTIALS)
    bearer = {"Authorization": f"Bearer {(await resp.json())['access_token']}"}
    assert (await post_form(client, "/login", CREDENTIALS)).status == 303
    return bearer


async def sign_in_chromium(page: Any, dsn: str, email: str, *, role: str, landing: str) -> int:
    """In a Playwright `page`: register `email` through the storefront, be given `role`, sign in
    again (the role is in the access token) and land on `landing`; returns the user id."""
    await page.goto("/register?next=/")
    await page.fill("#f-name", "Operator")
    await page.fill("#f-email", email)
    await page.fill("#f-password", BROWSER_PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url("**/")
    conn = await connect(dsn)
    try:
        user_id: int = await conn.fetchval(
            "UPDATE users SET role = $2 WHERE email = $1 RETURNING id", email, role
        )
    finally:
        await conn.close()
    await page.context.clear_cookies()
    await page.goto(f"/login?next={landing}")
    await page.fill("#f-email", email)
    await page.fill("#f-password", BROWSER_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"**{landing}")
    return user_id


async def fill_address(
    page: Any,
    *,
    name: str,
    line1: str,
    postal_code: str,
    city: str,
    country: str,
    email: str | None = None,
) -> None:
    """In a Playwright `page` at /checkout: the delivery address (and a guest's `email`)."""
    if email is not None:
        await page.get_by_label("Email").fill(email)
    await page.get_by_label("Full name").fill(name)
    await page.get_by_label("Address", exact=True).fill(line1)
    await page.get_by_label("Postal code").fill(postal_code)
    await page.get_by_label("City").fill(city)
    await page.get_by_label("Country").select_option(country)


async def fill_card(page: Any, number: str) -> None:
    """In a Playwright `page` with a card form (checkout, pay again): `number`, 12/34, 123."""
    await page.get_by_label("Card number").fill(number)
    await page.get_by_label("Expiry date (MM/YY)").fill("12/34")
    await page.get_by_label("Security code").fill("123")
