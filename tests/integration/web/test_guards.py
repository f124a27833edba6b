"""Who may use which staff route, found by walking the app's routes: /admin is for staff and
admin, /ops for ops and admin, the API's staff operations for staff and admin.

A new route under /admin or /ops, or a new staff operation in the API, is covered here without
anyone remembering to add a test for it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.browser import csrf_of, signed_in
from tests.support.routes import all_routes, concrete
from web.api.app import OPERATIONS, PREFIX
from web.app import create_app

STAFF_PREFIXES = ("/admin", "/ops")


def staff_routes(settings) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    app = create_app(settings)
    pages = [(m, p) for m, p in all_routes(app) if p.startswith(STAFF_PREFIXES)]
    api = [(op.method, PREFIX + op.path) for op in OPERATIONS if op.auth == "staff"]
    return pages + api


async def request(client: Any, method: str, path: str, bearer: dict[str, str]) -> Any:
    """One request as the signed-in browser would (cookies), or with the bearer under /api/."""
    if path.startswith("/api/"):
        return await client.request(method, concrete(path), headers=bearer, json={})
    return await client.request(method, concrete(path), allow_redirects=False)


async def test_there_are_staff_routes_to_check(settings) -> None:
    routes = staff_routes(settings)
    assert ("GET", "/admin/") in routes and ("GET", "/ops/") in routes
    assert ("GET", "/ops/emails") in routes
    assert ("POST", "/ops/outbox/{event_id}/{action}") in routes
    assert ("POST", "/api/v1/products") in routes


async def test_anonymous_visitors_are_refused_every_staff_route(client, settings) -> None:
    # With a valid CSRF token, so that it is the staff guard that refuses unsafe requests too.
    headers = {"X-CSRF-Token": await csrf_of(client)}
    for method, path in staff_routes(settings):
        resp = await client.request(
            method, concrete(path), allow_redirects=False, json={}, headers=headers
        )
        if path.startswith("/api/"):
            assert resp.status == 401, (method, path, resp.status)
        else:
            assert resp.status == 303, (method, path, resp.status)
            assert resp.headers["Location"].startswith("/login?next="), (method, path)


@pytest.mark.parametrize(
    ("role", "refused"),
    [
        ("customer", ("/admin", "/ops", "/api/")),
        ("staff", ("/ops",)),
        ("ops", ("/admin", "/api/")),
    ],
)
async def test_each_role_is_refused_the_staff_routes_not_meant_for_it(
    client, settings, fresh_db, role: str, refused: tuple[str, ...]
) -> None:
    bearer = await signed_in(client, role=role, fresh_db=fresh_db)
    checked = 0
    for method, path in staff_routes(settings):
        if not path.startswith(refused):
            continue
        resp = await request(client, method, path, bearer)
        assert resp.status == 403, (role, method, path, resp.status)
        checked += 1
    assert checked >= 10, checked


@pytest.mark.parametrize(("role", "area"), [("staff", "/ops/"), ("ops", "/admin/")])
async def test_the_refusal_is_a_page_naming_the_role_needed(
    client, fresh_db, role: str, area: str
) -> None:
    await signed_in(client, role=role, fresh_db=fresh_db)
    resp = await client.get(area, allow_redirects=False)
    page = await resp.text()
    assert resp.status == 403 and resp.content_type == "text/html"
    assert f"you are signed in with the role <strong>{role}</strong>" in page
    needed = "ops or admin" if area == "/ops/" else "staff or admin"
    assert f"the role <strong>{needed}</strong>" in page
    assert resp.headers["Cache-Control"] == "private, no-store"


@pytest.mark.parametrize(
    ("role", "pages", "api"),
    [
        ("staff", ("/admin/", "/admin/orders"), True),
        ("ops", ("/ops/", "/ops/outbox", "/ops/emails", "/ops/dead-letters"), False),
        ("admin", ("/admin/", "/admin/orders", "/ops/", "/ops/outbox", "/ops/emails"), True),
    ],
)
async def test_each_role_opens_its_own_pages(
    client, fresh_db, role: str, pages: tuple[str, ...], api: bool
) -> None:
    bearer = await signed_in(client, role=role, fresh_db=fresh_db)
    for path in pages:
        page = await client.get(path, allow_redirects=False)
        assert page.status == 200, (role, path, page.status)
    created = await client.post(
        "/api/v1/products",
        json={"slug": "s", "name": "S", "price_amount": 1, "price_currency": "EUR"},
        headers=bearer,
    )
    assert created.status == (201 if api else 403), await created.text()
