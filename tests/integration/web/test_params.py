"""Bad input anywhere (path, query, JSON body, form, header, cookie) is a 4xx, never a 500, and
writes nothing: NUL and control characters, numbers past 64 bits, digits that are not ASCII,
forged cursors and page positions, deep or huge JSON, bytes that are not UTF-8."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any
from urllib.parse import quote

import pytest

from storage.database import connect
from tests.support.admin import error_of, post, product_form, variant
from tests.support.browser import csrf_of, signed_in
from tests.support.catalog import build_catalog
from tests.support.db import fetch, sql
from web.app import create_app

PROBLEM = "application/problem+json"
NUL = "a\x00b"
CONTROL = "a\x07b"
PAST_BIGINT = str(2**63)
PAST_64_BITS = "9" * 25
ARABIC_DIGITS = "١٢٣"  # int() reads 123; a person did not type it into a number field
SUPERSCRIPT = "²"  # str.isdigit() says yes, int() says no
ODD_VALUES = (NUL, CONTROL, PAST_BIGINT, PAST_64_BITS, ARABIC_DIGITS, SUPERSCRIPT, "-1", "x" * 5000)


def cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


FORGED_CURSORS = (
    cursor(["newest", ["newest", "2024-W01-1", 1]]),  # Python reads it; PostgreSQL does not
    cursor(["newest", ["newest", "2024-01-01T00:00:00+00:00", 2**70]]),
    cursor(["newest", ["newest", "0001-01-01T00:00:00+14:00", 1]]),
    cursor(["price_asc", ["price_asc", 2**70, 1]]),
    cursor(["name", ["name", NUL, 1]]),
    cursor(["name", ["name", "mug", True]]),
    cursor(["newest", [[[[[[["newest"]]]]]]]]),
    "A" * 5000,
)
FORGED_POSITIONS = (
    "2024-W01-1,1",
    "20240101T000000+0000,1",
    "0001-01-01T00:00:00+14:00,1",  # before year 1 once in UTC
    f"2024-01-01T00:00:00+00:00,{PAST_64_BITS}",
    f"2024-01-01T00:00:00+00:00,{ARABIC_DIGITS}",
    NUL,
)


@pytest.fixture
async def staff_client(client, fresh_db):  # type: ignore[no-untyped-def]
    """A client signed in as admin (both /admin and /ops; cookies) over a small catalog; its
    bearer header on it."""
    await build_catalog(fresh_db)
    client.bearer = await signed_in(client, role="admin", fresh_db=fresh_db)
    return client


async def no_server_error(client, method: str, path: str, **kwargs: Any) -> list[str]:  # type: ignore[no-untyped-def]
    resp = await client.request(method, path, allow_redirects=False, **kwargs)
    body = await resp.text()
    if resp.status >= 500:
        return [f"{method} {path!r}: {resp.status} {body[:200]}"]
    if path.startswith("/api/") and resp.status >= 400 and resp.content_type != PROBLEM:
        return [f"{method} {path!r}: {resp.status} is not problem+json"]
    return []


async def test_odd_values_in_paths_and_queries_are_never_a_server_error(staff_client) -> None:
    client = staff_client
    api = {"headers": client.bearer}
    templates = (
        ("/api/v1/products?q={}", api),
        ("/api/v1/products?price_min={}", api),
        ("/api/v1/products?limit={}", api),
        ("/api/v1/products?attr.colour={}", api),
        ("/api/v1/search?q={}", api),
        ("/api/v1/search/suggest?limit={}", api),
        ("/api/v1/products/{}", api),
        ("/api/v1/orders/{}", api),
        ("/api/v1/orders?before={}", api),
        ("/api/v1/me/addresses/{}", api),
        ("/api/v1/cart/items/{}", {"method": "DELETE", **api}),
        ("/c/{}", {}),
        ("/search?q={}", {}),
        ("/products/{}", {}),
        ("/products/run-shoe?colour={}", {}),
        ("/account/orders?before={}", {}),
        ("/account/orders/{}", {}),
        ("/orders/{}/thanks", {}),
        ("/reset-password?token={}", {}),
        ("/login?next={}", {}),
        ("/admin/products?q={}", {}),
        ("/admin/products?page={}", {}),
        ("/admin/products?category={}", {}),
        ("/admin/products?sort={}", {}),
        ("/admin/products?done=publish&count={}", {}),
        ("/admin/products/bulk?action=publish&id={}", {}),
        ("/admin/products/bulk?id=1&action={}", {}),
        ("/admin/products/bulk?id=1&action=publish&next={}", {}),
        ("/admin/products/new?type={}", {}),
        ("/admin/products/{}", {}),
        ("/admin/orders?before={}", {}),
        ("/admin/orders?customer={}", {}),
        ("/admin/orders?from={}", {}),
        ("/admin/orders/{}", {}),
        ("/admin/customers?email={}", {}),
        ("/admin/customers?before={}", {}),
        ("/admin/customers/{}", {}),
        ("/ops/dead-letters?requeued={}", {}),
    )
    failures: list[str] = []
    for template, options in templates:
        options = dict(options)
        method = options.pop("method", "GET")
        for value in ODD_VALUES + FORGED_POSITIONS:
            path = template.format(quote(value, safe=""))
            failures += await no_server_error(client, method, path, **options)
    for value in FORGED_CURSORS:
        for path in (
            "/api/v1/products?cursor=",
            "/api/v1/search?q=shoe&cursor=",
            "/search?cursor=",
        ):
            failures += await no_server_error(client, "GET", path + value, **api)
    assert not failures, "\n".join(failures)


async def test_refusals_name_what_is_wrong(staff_client) -> None:
    client = staff_client
    resp = await client.get(f"/api/v1/products?cursor={FORGED_CURSORS[0]}")
    assert resp.status == 400 and (await resp.json())["errors"] == {
        "cursor": "not a cursor from this API"
    }
    resp = await client.get("/api/v1/orders?before=2024-W01-1,1", headers=client.bearer)
    assert resp.status == 400 and "before" in (await resp.json())["errors"]
    resp = await client.get(f"/api/v1/search/suggest?q=mu&limit={SUPERSCRIPT}")
    assert resp.status == 400 and "limit" in (await resp.json())["errors"]
    for path in (f"/api/v1/me/addresses/{SUPERSCRIPT}", f"/api/v1/cart/items/{PAST_BIGINT}"):
        resp = await client.request("DELETE", path, headers=client.bearer)
        assert resp.status == 404 and resp.content_type == PROBLEM, path
    resp = await client.get(f"/admin/orders?customer={quote(NUL)}")
    assert resp.status == 400 and "control characters" in error_of(await resp.text(), "customer")


async def test_json_bodies_past_what_a_column_holds_are_refused(staff_client, fresh_db) -> None:
    client = staff_client
    staff = {**client.bearer, "Content-Type": "application/json"}
    product = {"slug": "a-mug", "name": "A mug", "price_amount": 900, "price_currency": "EUR"}
    refused = {
        "name": {**product, "name": NUL},
        "description": {**product, "description": f"line\n{NUL}"},
        "price_amount": {**product, "price_amount": 2**63},
        "stock_on_hand": {**product, "stock_on_hand": 2**31},
    }
    for field, body in refused.items():
        resp = await client.post("/api/v1/products", json=body, headers=client.bearer)
        assert resp.status == 422, (field, await resp.text())
        assert field in (await resp.json())["errors"], field
    for raw in (
        b'{"slug": "a-mug", "price_amount": 1' + b"0" * 5000 + b"}",  # a 5001-digit number
        b'{"slug": "a-mug", "price_amount": 1e400}',
        b"[" * 100 + b"]" * 100,
        b'{"a":' * 100 + b"1" + b"}" * 100,
        b'{"slug": "\\ud800"}',  # half a UTF-16 pair
    ):
        resp = await client.post("/api/v1/products", data=raw, headers=staff)
        assert resp.status in (400, 422) and resp.content_type == PROBLEM, raw[:40]
    for body in (
        {"variant_id": 2**63},
        {"variant_id": 2**70},
        {"sku": "MUG-1", "quantity": 2**70},
        {"sku": NUL},
    ):
        resp = await client.post("/api/v1/cart/items", json=body, headers=client.bearer)
        assert resp.status == 422, body
    address = {"full_name": NUL, "line1": "x", "city": "x", "postal_code": "1", "country": "GB"}
    for method, path, body in (
        ("POST", "/api/v1/me/addresses", address),
        ("PATCH", "/api/v1/me", {"name": CONTROL}),
        ("POST", "/api/v1/staff/orders/AAAA-AAAA-AAAA/ship", {"tracking_number": NUL}),
        ("POST", "/api/v1/orders/AAAA-AAAA-AAAA/cancel", {"note": NUL}),
        ("POST", "/api/v1/auth/verify-email", {"token": NUL * 10}),
    ):
        resp = await client.request(method, path, json=body, headers=client.bearer)
        assert resp.status == 422, (path, await resp.text())
    checkout = {
        "email": "ada@example.com",
        "shipping_method": NUL,
        "shipping_address_id": 2**70,
        "card": {"number": "4242424242424242", "expiry": "12/39", "cvc": "123"},
    }
    resp = await client.post("/api/v1/checkout", json=checkout, headers=client.bearer)
    assert resp.status == 422
    assert await sql(fresh_db, "SELECT count(*) FROM products WHERE slug = 'a-mug'") == 0
    assert await sql(fresh_db, "SELECT count(*) FROM addresses") == 0
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 0


async def test_forms_refuse_bad_input_beside_the_field(staff_client, fresh_db) -> None:
    client = staff_client
    huge = PAST_64_BITS
    cases = (
        ("/admin/categories", {"name": NUL, "slug": "mugs"}, "name"),
        (
            "/admin/categories",
            {"name": "Mugs", "slug": "mugs", "parent_id": ARABIC_DIGITS},
            "parent-new",
        ),
        (
            "/admin/attributes",
            {"slug": "weight", "name": CONTROL, "kind": "number"},
            "attribute-name",
        ),
        ("/admin/types", {"slug": "mug", "name": NUL}, "name"),
        ("/admin/products/new", product_form(variant("MUG-9"), name=NUL), "name"),
        ("/admin/products/new", product_form(variant("MUG-9"), description=NUL), "description"),
        ("/admin/products/new", product_form(variant("MUG-9", name=NUL)), "v-0-name"),
        ("/admin/products/new", product_form(variant("MUG-9", stock=SUPERSCRIPT)), "v-0-stock"),
        ("/admin/products/new", product_form(variant("MUG-9", price=ARABIC_DIGITS)), "v-0-price"),
        ("/admin/products/new", product_form(variant("MUG-9"), category_id=huge), "category_id"),
    )
    for path, data, field in cases:
        resp = await post(client, path, data)
        assert resp.status == 422, (path, field, resp.status)
        assert error_of(await resp.text(), field), (path, field)
    assert await fetch(fresh_db, "SELECT id FROM categories WHERE slug = 'mugs'") == []
    assert await fetch(fresh_db, "SELECT id FROM products WHERE slug = 'blue-mug'") == []
    # The edit form's hidden snapshot of the product, forged: too deep, or not JSON.
    [shoe] = await fetch(fresh_db, "SELECT id FROM products WHERE slug = 'run-shoe'")
    for original in ("[" * 100_000, "{" + NUL, '{"values": 1e400}'):
        form = product_form(variant("RS-R-42"), slug="run-shoe", original=original)
        resp = await post(client, f"/admin/products/{shoe['id']}", form)
        assert resp.status in (303, 409, 422), resp.status
    token = await csrf_of(client, "/account")
    for path, data in (
        ("/account/profile", {"name": NUL}),
        ("/account/addresses", {"full_name": NUL, "line1": "x", "city": "x", "postal_code": "1"}),
        (f"/account/addresses/{SUPERSCRIPT}/delete", {}),
        (f"/cart/items/{PAST_64_BITS}", {"quantity": "1"}),
        ("/cart/items", {"sku": "MUG-1", "quantity": SUPERSCRIPT}),
        ("/checkout", {"full_name": NUL, "address_id": PAST_64_BITS, "card_number": NUL}),
        ("/ops/dead-letters/search/requeue", {"message_id": NUL}),
    ):
        resp = await client.post(
            quote(path, safe="/"), data={**data, "csrf_token": token}, allow_redirects=False
        )
        assert 300 <= resp.status < 500 and resp.status != 403, (path, resp.status)
    assert await sql(fresh_db, "SELECT count(*) FROM addresses") == 0


async def test_form_bodies_that_are_not_text_are_refused(staff_client) -> None:
    client = staff_client
    token = await csrf_of(client, "/admin/")
    multipart = (
        b'--xx\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\xfe\r\n'
        + b'--xx\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        + token.encode()
        + b"\r\n--xx--\r\n"
    )
    bodies = (
        ("application/x-www-form-urlencoded", b"name=\xff\xfe&csrf_token=" + token.encode()),
        ("application/x-www-form-urlencoded; charset=no-such-charset", b"name=Ada"),
        ("multipart/form-data; boundary=xx", multipart),
    )
    for path in ("/login", "/cart/items", "/account/profile", "/admin/categories"):
        for content_type, body in bodies:
            # The CSRF check reads the form for its token; with the header, the handler does.
            for extra in ({}, {"X-CSRF-Token": token}):
                headers = {"Content-Type": content_type, **extra}
                resp = await client.post(path, data=body, headers=headers, allow_redirects=False)
                assert resp.status == 400, (path, content_type, extra, resp.status)


async def test_headers_and_cookies_the_shop_reads_never_fail(aiohttp_server, settings) -> None:
    """Raw bytes that are not UTF-8 (aiohttp hands them over as lone surrogates) and control
    characters, in every header and cookie the shop reads."""
    server = await aiohttp_server(create_app(settings))
    headers = (
        b"X-Cart-Token: \xff\xfe\x80abc",
        b"X-Cart-Token: a\x01b",
        b"Cookie: aioshop_cart=\xff\xfeabcdef",
        b"Cookie: aioshop-access=\xff\xfe; aioshop-refresh=\xff\xfe",
        b"Cookie: aioshop-csrf=\xff",
        b"Cookie: aioshop-orders=\xff:\xff",
        b"Cookie: aioshop_lsn=\xd9\xa1",
        b"Authorization: Bearer \xff\xfe.abc.def",
        b"Idempotency-Key: \xff\xfe",
        b"X-Request-ID: \xff\xfeabcdefgh",
        b'If-None-Match: \xff"x"',
        b"X-Aioshop-Lsn: \xc2\xb2",
        b"X-CSRF-Token: \xff",
        b"User-Agent: \xff\x01",
    )
    requests = (
        b"GET /api/v1/cart",
        b"GET /cart",
        b"GET /",
        b"GET /orders/AAAA-AAAA-AAAA/thanks",
        b"POST /api/v1/auth/register",
        b"POST /api/v1/checkout",
        b"GET /api/v1/products/%ff",
        b"GET /search?q=%ff%fe",
    )
    body = b'{"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}'
    failures = []
    for request in requests:
        for header in headers:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                request
                + b" HTTP/1.1\r\nHost: shop\r\nConnection: close\r\nContent-Type: application/json"
                + b"\r\n"
                + header
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            await writer.drain()
            answer = await reader.read()
            writer.close()
            status = answer.split(b" ", 2)[1] if answer else b"none"
            if not status.startswith((b"2", b"3", b"4")):
                failures.append((request, header, status))
    assert not failures


async def test_a_number_attribute_past_64_bits_cannot_break_the_product_page(
    staff_client, fresh_db
) -> None:
    client = staff_client
    conn = await connect(fresh_db)
    try:
        # As saved before numbers were bounded: the page must show whatever is stored.
        await conn.execute(
            "UPDATE products SET attributes = attributes || $1::jsonb WHERE slug = 'run-shoe'",
            {"weight": 10**30},
        )
    finally:
        await conn.close()
    assert (await client.get("/api/v1/products/run-shoe")).status == 200
    assert (await client.get("/products/run-shoe")).status == 200
    resp = await post(
        client, "/admin/attributes", {"slug": "weight", "name": "Weight", "kind": "number"}
    )
    assert resp.status == 303
    [weight] = await fetch(fresh_db, "SELECT id FROM attributes WHERE slug = 'weight'")
    data = {"slug": "heavy", "name": "Heavy", f"level-{weight['id']}": "product"}
    assert (await post(client, "/admin/types", data)).status == 303
    [heavy] = await fetch(fresh_db, "SELECT id FROM product_types WHERE slug = 'heavy'")
    for number in (str(10**20), "1e400", ARABIC_DIGITS):
        form = product_form(
            variant("HEAVY-1"),
            slug="anvil",
            product_type_id=str(heavy["id"]),
            **{"attr-weight": number},
        )
        resp = await post(client, "/admin/products/new", form)
        assert resp.status == 422, number
        assert error_of(await resp.text(), "attr-weight"), number
    assert await fetch(fresh_db, "SELECT id FROM products WHERE slug = 'anvil'") == []
