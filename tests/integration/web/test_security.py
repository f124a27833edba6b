"""Security headers on every response and `private, no-store` on everything personal, checked
over every route of the app (walked, so a route added later is covered), for anonymous
visitors, a signed-in customer and staff, plus the error pages no route answers."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tests.support.browser import csrf_of, signed_in
from tests.support.orders import stocked_product
from tests.support.routes import all_routes, concrete
from web.app import create_app
from web.store.page_cache import PUBLIC_PAGE

# Catalog reads, the same for everyone: cached publicly on purpose (web.catalog).
PUBLIC_READS = {
    ("GET", "/api/v1/products"),
    ("GET", "/api/v1/products/{slug}"),
    ("GET", "/api/v1/categories"),
    ("GET", "/api/v1/search"),
    ("GET", "/api/v1/search/suggest"),
    # What crawlers read (web.store.sitemaps).
    ("GET", "/robots.txt"),
    ("GET", "/sitemap.xml"),
    ("GET", "/sitemaps/categories.xml"),
    ("GET", "/sitemaps/products-{number}.xml"),
    ("GET", "/favicon.ico"),
}
# Storefront pages that anonymous visitors share (web.store.page_cache): public for them only.
SHARED_PAGES = {
    ("GET", "/"),
    ("GET", "/c/{slug}"),
    ("GET", "/search"),
    ("GET", "/products/{slug}"),
}
# Personal answers: each of these prefixes must have routes, and each of them is private.
PERSONAL_PREFIXES = (
    "/api/v1/me",
    "/api/v1/cart",
    "/api/v1/orders",
    "/api/v1/auth",
    "/api/v1/checkout",
    "/account",
    "/cart",
    "/checkout",
    "/orders",
    "/login",
    "/register",
    "/admin",
    "/ops",
)
FILES = {"/static": "/static/js/api.js", "/media": "/media/missing.webp"}


def directives(policy: str) -> dict[str, str]:
    parts = (part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    return {part[0]: part[1] if len(part) > 1 else "" for part in parts}


def assert_secure(what: Any, resp: Any) -> None:
    """The headers every response carries (a page's policy, or the sandbox of uploads)."""
    headers = resp.headers
    policy = directives(headers.get("Content-Security-Policy", ""))
    if str(resp.url.path).startswith("/media/"):
        assert "sandbox" in policy and policy["default-src"] == "'none'", what
    else:
        assert policy.get("script-src") == "'self'", (what, policy)  # no inline, no eval
        assert policy.get("default-src") == "'none'", what
        assert policy.get("frame-ancestors") == "'none'", what
        assert policy.get("object-src") == "'none'" and policy.get("base-uri") == "'none'", what
    assert headers.get("X-Frame-Options") == "DENY", what
    assert headers.get("X-Content-Type-Options") == "nosniff", what
    assert headers.get("Referrer-Policy") == "strict-origin-when-cross-origin", what
    assert "camera=()" in headers.get("Permissions-Policy", ""), what
    assert "Strict-Transport-Security" not in headers, what  # plain HTTP here


async def walk(client: Any, settings: Any, headers: dict[str, str]) -> list[tuple[Any, Any]]:
    """Request every route once; (what, response) pairs. Sign-outs go last."""
    routes = sorted(set(all_routes(create_app(settings))), key=lambda r: ("logout" in r[1], r))
    seen = []
    for method, pattern in routes:
        path = FILES.get(pattern, concrete(pattern))
        body: dict[str, Any] = {"json": {}} if method not in ("GET", "HEAD") else {}
        resp = await client.request(method, path, headers=headers, allow_redirects=False, **body)
        await resp.read()
        seen.append(((method, pattern, resp.status), resp))
    return seen


def assert_walk(seen: list[tuple[Any, Any]], *, anonymous: bool = False) -> int:
    """Check every response of a walk; returns how many were HTML pages. Shared pages are
    public only in an `anonymous` walk (and then always, at least the ones before any cart)."""
    pages = 0
    for (method, pattern, status), resp in seen:
        what = (method, pattern, status)
        assert_secure(what, resp)
        if resp.content_type == "text/html":
            pages += 1
        if pattern.startswith(("/static", "/media")):
            continue
        cache = resp.headers.get("Cache-Control")
        if (method, pattern) in PUBLIC_READS and status in (200, 304):
            assert cache is not None and cache.startswith("public"), what
            assert "Set-Cookie" not in resp.headers, what
        elif (method, pattern) in SHARED_PAGES and anonymous and status == 200:
            assert cache == PUBLIC_PAGE, what
            assert "Set-Cookie" not in resp.headers, what
        else:
            assert cache == "private, no-store", (what, cache)
    return pages


async def test_every_route_sends_security_headers_and_keeps_personal_answers_private(
    client, settings, fresh_db
) -> None:
    await stocked_product(fresh_db, "1", {"TEE-1": 3})  # so /products/1 and its API answer 200
    routes = {pattern for _, pattern in all_routes(create_app(settings))}
    for prefix in PERSONAL_PREFIXES:
        assert any(route.startswith(prefix) for route in routes), prefix

    csrf = {"X-CSRF-Token": await csrf_of(client)}
    anonymous = await walk(client, settings, csrf)
    assert assert_walk(anonymous, anonymous=True) >= 10

    await signed_in(client, role="customer", fresh_db=fresh_db)
    customer = await walk(client, settings, {"X-CSRF-Token": await csrf_of(client)})
    bearer = await signed_in(client, role="customer", fresh_db=fresh_db)  # the walk signed out
    customer_api = await walk(client, settings, {**bearer, "X-CSRF-Token": await csrf_of(client)})
    assert assert_walk(customer) >= 10
    assert_walk(customer_api)
    ok = {what[:2] for what, _ in customer_api if what[2] == 200}
    assert {("GET", "/api/v1/me"), ("GET", "/api/v1/cart"), ("GET", "/api/v1/orders")} <= ok

    await signed_in(client, role="admin", fresh_db=fresh_db)
    staff = await walk(client, settings, {"X-CSRF-Token": await csrf_of(client)})
    staff_pages = [what for what, resp in staff if resp.content_type == "text/html"]
    assert assert_walk(staff) >= 10
    assert ("GET", "/admin/", 200) in staff_pages and ("GET", "/ops/", 200) in staff_pages


async def test_error_pages_no_route_answers_carry_the_headers(aiohttp_client, settings) -> None:
    app = create_app(settings)

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    async def public_with_cookie(request: web.Request) -> web.Response:
        response = web.json_response({}, headers={"Cache-Control": "public, max-age=60"})
        response.set_cookie("someone", "else")
        return response

    app.router.add_get("/test-broken", broken)
    app.router.add_get("/test-public-cookie", public_with_cookie)
    client = await aiohttp_client(app)
    try:
        for path, status, kind in [
            ("/no-such-page", 404, "text/html"),  # the shop's 404 page
            ("/api/v1/no-such-thing", 404, "application/problem+json"),
            ("/admin/no-such-page", 303, None),
            ("/test-broken", 500, None),  # aiohttp's own error page
        ]:
            resp = await client.get(path, allow_redirects=False)
            assert resp.status == status, path
            assert kind is None or resp.content_type == kind, path
            assert_secure(path, resp)
            assert resp.headers["Cache-Control"] == "private, no-store", path
        resp = await client.get("/test-public-cookie")
        assert resp.headers["Cache-Control"] == "private, no-store"  # a cookie is personal
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("trusted", "headers", "hsts"),
    [
        (True, {"X-Forwarded-Proto": "https"}, True),
        (True, {"X-Forwarded-Proto": "http"}, False),
        (False, {"X-Forwarded-Proto": "https"}, False),  # anyone can send the header
        (True, {}, False),
    ],
)
async def test_hsts_only_over_https(
    aiohttp_client, fresh_db, settings_for, trusted, headers, hsts
) -> None:
    settings = settings_for(fresh_db, trust_forwarded_headers=trusted)
    client = await aiohttp_client(create_app(settings))
    try:
        for path in ("/", "/api/v1/products", "/login"):
            resp = await client.get(path, headers=headers)
            assert resp.status == 200, path
            assert ("Strict-Transport-Security" in resp.headers) is hsts, path
            if hsts:
                assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        await client.close()
