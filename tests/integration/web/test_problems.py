"""Every API error is problem+json with a stable type; nothing is half-written."""

from __future__ import annotations

import io
import json

from storage.database import connect

PROBLEM = "application/problem+json"
GOOD = {"slug": "a-mug", "name": "A mug", "price_amount": 900, "price_currency": "EUR"}


async def count_products(dsn: str) -> int:
    conn = await connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM products"))
    finally:
        await conn.close()


async def test_unknown_api_path_is_404_problem(client) -> None:
    resp = await client.get("/api/v1/nothing-here")
    assert resp.status == 404
    assert resp.content_type == PROBLEM
    body = await resp.json()
    assert body["type"] == "about:blank"
    assert body["status"] == 404


async def test_missing_product_is_404_problem(client) -> None:
    resp = await client.get("/api/v1/products/999999")
    assert resp.status == 404
    assert resp.content_type == PROBLEM
    assert (await resp.json())["type"] == "/problems/not-found"


async def test_wrong_method_is_405_problem_with_allow(client) -> None:
    resp = await client.delete("/api/v1/products")
    assert resp.status == 405
    assert resp.content_type == PROBLEM
    assert "GET" in resp.headers["Allow"]


async def test_malformed_json_is_400(client, staff_headers, fresh_db) -> None:
    resp = await client.post(
        "/api/v1/products",
        data=b'{"slug": ',
        headers={**staff_headers, "Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert resp.content_type == PROBLEM
    assert await count_products(fresh_db) == 0


async def test_body_that_is_not_json_is_415(client, staff_headers) -> None:
    resp = await client.post("/api/v1/products", data="slug=x", headers=staff_headers)
    assert resp.status == 415
    assert resp.content_type == PROBLEM


async def test_body_over_the_limit_is_413(client, staff_headers, fresh_db) -> None:
    huge = json.dumps({**GOOD, "description": "x" * (2 * 1024 * 1024)}).encode()
    resp = await client.post(
        "/api/v1/products",
        data=io.BytesIO(huge),
        headers={**staff_headers, "Content-Type": "application/json"},
    )
    assert resp.status == 413
    assert resp.content_type == PROBLEM
    assert await count_products(fresh_db) == 0


async def test_invalid_fields_are_422_naming_each_field(client, staff_headers, fresh_db) -> None:
    bad = {"slug": "Not A Slug", "name": "", "price_amount": -5, "price_currency": "euro"}
    resp = await client.post("/api/v1/products", json=bad, headers=staff_headers)
    assert resp.status == 422
    assert resp.content_type == PROBLEM
    body = await resp.json()
    assert body["type"] == "/problems/invalid-input"
    assert set(body["errors"]) == {"slug", "name", "price_amount", "price_currency"}
    assert await count_products(fresh_db) == 0


async def test_price_as_float_or_string_is_refused(client, staff_headers) -> None:
    for price in (9.99, "999", True):
        resp = await client.post(
            "/api/v1/products", json={**GOOD, "price_amount": price}, headers=staff_headers
        )
        assert resp.status == 422, price
        assert "price_amount" in (await resp.json())["errors"]


async def test_duplicate_slug_is_409_and_writes_nothing_more(
    client, staff_headers, fresh_db
) -> None:
    assert (await client.post("/api/v1/products", json=GOOD, headers=staff_headers)).status == 201
    resp = await client.post("/api/v1/products", json=GOOD, headers=staff_headers)
    assert resp.status == 409
    assert (await resp.json())["slug"] == "a-mug"
    conn = await connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 1  # the failed write left none
    finally:
        await conn.close()


async def test_anonymous_write_is_401_and_customer_write_is_403(client, settings) -> None:
    from auth.tokens import SigningKeys, issue_access_token

    resp = await client.post("/api/v1/products", json=GOOD)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    keys = SigningKeys.from_secrets(settings.secret_key.get_secret_value())
    customer = {"Authorization": f"Bearer {issue_access_token(keys, 2, 'customer')}"}
    resp = await client.post("/api/v1/products", json=GOOD, headers=customer)
    assert resp.status == 403
    assert (await resp.json())["type"] == "/problems/forbidden"


async def test_garbage_token_is_401(client) -> None:
    resp = await client.get("/api/v1/products", headers={"Authorization": "Bearer not.a.jwt"})
    assert resp.status == 401
    assert (await resp.json())["type"] == "/problems/invalid-token"


async def test_server_error_is_500_problem_that_leaks_nothing(client, fresh_db) -> None:
    conn = await connect(fresh_db)
    try:
        await conn.execute("DROP TABLE products CASCADE")  # a real failure inside the handler
    finally:
        await conn.close()
    resp = await client.get("/api/v1/products")
    assert resp.status == 500
    assert resp.content_type == PROBLEM
    body = await resp.json()
    assert body == {"type": "about:blank", "title": "Internal Server Error", "status": 500}
    assert "X-Request-ID" in resp.headers
