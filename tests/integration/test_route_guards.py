"""Every staff route refuses anonymous visitors and customers, found by walking the app's routes.

A new route under /admin or /ops, or a new staff operation in the API, is covered here without
anyone remembering to add a test for it.
"""

from __future__ import annotations

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


async def test_there_are_staff_routes_to_check(settings) -> None:
    routes = staff_routes(settings)
    assert ("GET", "/admin/") in routes and ("GET", "/ops/") in routes
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


async def test_customers_are_refused_every_staff_route(client, settings, fresh_db) -> None:
    bearer = await signed_in(client, role="customer", fresh_db=fresh_db)
    for method, path in staff_routes(settings):
        if path.startswith("/api/"):
            resp = await client.request(method, concrete(path), headers=bearer, json={})
        else:
            resp = await client.request(method, concrete(path), allow_redirects=False)
        assert resp.status == 403, (method, path, resp.status)


async def test_staff_can_open_the_staff_pages(client, fresh_db) -> None:
    bearer = await signed_in(client, role="staff", fresh_db=fresh_db)
    for path in ("/admin/", "/ops/", "/ops/mailbox"):
        page = await client.get(path)
        assert page.status == 200, path
    created = await client.post(
        "/api/v1/products",
        json={"slug": "s", "name": "S", "price_amount": 1, "price_currency": "EUR"},
        headers=bearer,
    )
    assert created.status == 201
