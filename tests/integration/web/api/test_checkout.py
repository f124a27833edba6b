"""The cart and checkout API: guest and customer carts, placing orders, concurrency, retries."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import aiohttp
import pytest

from storage.database import connect
from tests.support.accounts import register
from tests.support.db import sql
from tests.support.orders import ADDRESS, stocked_product
from web.app import create_app

CARD = {"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}
PROBLEM = "application/problem+json"


def order_body(**changes: Any) -> dict[str, Any]:
    body = {
        "email": "guest@example.com",
        "shipping_address": ADDRESS,
        "shipping_method": "standard",
        "card": CARD,
    }
    return body | changes


async def expect(resp: aiohttp.ClientResponse, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


@pytest.fixture
async def shopper(client):  # type: ignore[no-untyped-def]
    """A session with no cookie jar: each shopper here carries its own X-Cart-Token."""
    async with aiohttp.ClientSession(
        str(client.make_url("")), cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session


async def guest_with(session: aiohttp.ClientSession, sku: str, quantity: int = 1) -> str:
    body = await expect(
        await session.post("/api/v1/cart/items", json={"sku": sku, "quantity": quantity}), 201
    )
    return str(body["cart_token"])


async def test_a_guest_fills_a_cart_and_checks_out(client, fresh_db) -> None:
    skus = await stocked_product(fresh_db, "tee", {"TEE-S": 3, "TEE-M": 1}, price=1500)
    cart = await expect(
        await client.post("/api/v1/cart/items", json={"sku": "TEE-S", "quantity": 2}), 201
    )
    assert "aioshop_cart" in client.session.cookie_jar.filter_cookies(client.make_url("/"))
    cart = await expect(
        await client.post("/api/v1/cart/items", json={"variant_id": skus["TEE-M"]}), 201
    )
    assert [(i["sku"], i["quantity"]) for i in cart["items"]] == [("TEE-S", 2), ("TEE-M", 1)]
    assert cart["count"] == 3 and cart["totals"]["subtotal"]["amount"] == 4500
    problem = await expect(
        await client.patch(f"/api/v1/cart/items/{skus['TEE-S']}", json={"quantity": 4}), 409
    )
    assert problem["sku"] == "TEE-S" and problem["available"] == 3
    assert problem["detail"] == "only 3 units of TEE-S in stock"
    cart = await expect(
        await client.patch(f"/api/v1/cart/items/{skus['TEE-S']}", json={"quantity": 3}), 200
    )
    assert cart["totals"]["subtotal"]["amount"] == 6000
    problem = await expect(await client.post("/api/v1/checkout", json=order_body(email=None)), 422)
    assert "email" in problem["errors"]
    bad_card = {"number": "4242 4242 4242 4241", "expiry": "01/20", "cvc": "x"}
    problem = await expect(
        await client.post("/api/v1/checkout", json=order_body(card=bad_card)), 422
    )
    assert set(problem["errors"]) == {"card_number", "card_expiry", "card_cvc"}
    resp = await client.post("/api/v1/checkout", json=order_body())
    order = await expect(resp, 201)
    assert resp.headers["Location"] == f"/api/v1/orders/{order['number']}"
    assert order["status"] == "pending" and order["payment"] == {
        "brand": "visa",
        "last4": "4242",
        "status": "pending",
        "attempt": 1,
        "decline_code": None,
        "decline_reason": None,
        "retry_url": None,
    }
    assert order["totals"]["total"]["amount"] == 6000  # free shipping from 50.00
    assert "4242424242424242" not in str(
        await sql(fresh_db, "SELECT row_to_json(p)::text FROM payments p")
    )
    assert (await expect(await client.get("/api/v1/cart"), 200))["items"] == []
    assert await sql(fresh_db, "SELECT sum(stock_on_hand) FROM variants") == 0
    # A guest reads the order back with its order token only (shown once, kept as a digest).
    url = f"/api/v1/orders/{order['number']}"
    token = order["order_token"]
    assert isinstance(token, str) and len(token) >= 43
    assert await sql(fresh_db, "SELECT octet_length(guest_token_hash) FROM orders") == 32
    assert token not in str(await sql(fresh_db, "SELECT row_to_json(o)::text FROM orders o"))
    read = await expect(await client.get(url, headers={"X-Order-Token": token}), 200)
    assert read["number"] == order["number"] and "order_token" not in read
    for wrong in (
        {},
        {"X-Order-Token": token[:-1]},
        {"X-Order-Token": "bad token"},
        {"X-Order-Token": token * 3},
    ):
        problem = await expect(await client.get(url, headers=wrong), 404)
        assert problem["type"] == "/problems/not-found"


async def test_customers_see_their_own_orders_only(client, fresh_db) -> None:
    await stocked_product(fresh_db, "mug", {"MUG": 5}, price=900)
    ada = await register(client, "ada@example.com")
    bob = await register(client, "bob@example.com")
    await expect(await client.post("/api/v1/me/addresses", json=ADDRESS, headers=ada), 201)
    address_id = (await expect(await client.get("/api/v1/me/addresses", headers=ada), 200))[
        "items"
    ][0]["id"]
    await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG"}, headers=ada), 201)
    body = {"shipping_address_id": address_id, "shipping_method": "express", "card": CARD}
    order = await expect(await client.post("/api/v1/checkout", json=body, headers=ada), 201)
    assert order["email"] == "ada@example.com" and order["shipping_address"]["city"] == "London"
    assert order["totals"]["shipping"]["amount"] == 1295
    # The answer to the POST (built from what was written) is what reading it back gives, less
    # the order token, which a customer's order has none of.
    assert order.pop("order_token") is None
    assert await expect(await client.get(order["url"], headers=ada), 200) == order
    listed = await expect(await client.get("/api/v1/orders", headers=ada), 200)
    assert [o["number"] for o in listed["items"]] == [order["number"]]
    assert (await expect(await client.get("/api/v1/orders", headers=bob), 200))["items"] == []
    problem = await expect(await client.get(f"/api/v1/orders/{order['number']}", headers=bob), 404)
    assert problem["type"] == "/problems/not-found"
    await expect(
        await client.post(f"/api/v1/orders/{order['number']}/cancel", json={}, headers=bob), 404
    )
    # Bob cannot use Ada's address either.
    await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG"}, headers=bob), 201)
    await expect(await client.post("/api/v1/checkout", json=body, headers=bob), 404)
    cancelled = await expect(
        await client.post(
            f"/api/v1/orders/{order['number']}/cancel", json={"note": "oops"}, headers=ada
        ),
        200,
    )
    assert cancelled["status"] == "cancelled" and cancelled["history"][-1]["note"] == "oops"
    problem = await expect(
        await client.post(f"/api/v1/orders/{order['number']}/cancel", json={}, headers=ada), 409
    )
    assert problem["current"] == "cancelled"


async def test_the_guest_cart_joins_the_customers_cart_at_sign_in(client, fresh_db) -> None:
    skus = await stocked_product(fresh_db, "sock", {"SOCK": 4})
    await stocked_product(fresh_db, "hat", {"HAT": 2})
    ada = await register(client, "ada@example.com")
    await expect(
        await client.post("/api/v1/cart/items", json={"sku": "SOCK", "quantity": 3}, headers=ada),
        201,
    )
    jar = aiohttp.CookieJar(unsafe=True)  # it keeps cookies from 127.0.0.1
    async with aiohttp.ClientSession(str(client.make_url("")), cookie_jar=jar) as browser:
        await expect(
            await browser.post("/api/v1/cart/items", json={"sku": "SOCK", "quantity": 2}), 201
        )
        await expect(await browser.post("/api/v1/cart/items", json={"sku": "HAT"}), 201)
        token = browser.cookie_jar.filter_cookies(client.make_url("/"))["aioshop_cart"].value
    merged = await expect(
        await client.get("/api/v1/cart", headers=ada | {"X-Cart-Token": token}), 200
    )
    assert {(i["sku"], i["quantity"]) for i in merged["items"]} == {("SOCK", 4), ("HAT", 1)}
    assert await sql(fresh_db, "SELECT count(*) FROM carts") == 1
    assert skus


async def test_two_hundred_buyers_for_the_last_ten_units(client, fresh_db, shopper) -> None:
    await stocked_product(fresh_db, "hot", {"HOT": 200})
    tokens = [await guest_with(shopper, "HOT") for _ in range(200)]
    await sql(fresh_db, "UPDATE variants SET stock_on_hand = 10 WHERE sku = 'HOT'")

    async def buy(token: str) -> int:
        resp = await shopper.post(
            "/api/v1/checkout", json=order_body(), headers={"X-Cart-Token": token}
        )
        if resp.status == 409:
            assert (await resp.json())["shortages"] == {"HOT": 0}
        return resp.status

    statuses = Counter(await asyncio.gather(*(buy(t) for t in tokens)))
    assert statuses == {201: 10, 409: 190}
    assert await sql(fresh_db, "SELECT stock_on_hand FROM variants WHERE sku = 'HOT'") == 0
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 10


async def test_one_idempotency_key_sent_twenty_times_at_once_makes_one_order(
    client, fresh_db, shopper
) -> None:
    await stocked_product(fresh_db, "mug", {"MUG": 50})
    token = await guest_with(shopper, "MUG", 2)
    headers = {"X-Cart-Token": token, "Idempotency-Key": "order-attempt-1"}

    async def attempt() -> tuple[int, str]:
        resp = await shopper.post("/api/v1/checkout", json=order_body(), headers=headers)
        body = await resp.json()
        return resp.status, body.get("number", body)

    results = await asyncio.gather(*(attempt() for _ in range(20)))
    assert {status for status, _ in results} == {201} and len({n for _, n in results}) == 1
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 1
    assert await sql(fresh_db, "SELECT stock_on_hand FROM variants WHERE sku = 'MUG'") == 48
    capture = "SELECT count(*) FROM outbox WHERE actor_name = 'orders.capture_payment'"
    assert await sql(fresh_db, capture) == 1
    resp = await shopper.post(
        "/api/v1/checkout", json=order_body(email="other@example.com"), headers=headers
    )
    problem = await expect(resp, 422)
    assert problem["type"] == "/problems/idempotency-key-reused"
    resp = await shopper.post("/api/v1/checkout", json=order_body(), headers=headers)
    assert resp.status == 201 and resp.headers["Idempotent-Replayed"] == "true"
    await expect(
        await shopper.post(
            "/api/v1/checkout",
            json=order_body(),
            headers={"X-Cart-Token": token, "Idempotency-Key": "é"},
        ),
        422,
    )


async def test_bad_cart_and_checkout_input_is_a_clear_4xx(client, fresh_db) -> None:
    await stocked_product(fresh_db, "mug", {"MUG": 0})
    problem = await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG"}), 409)
    assert problem["detail"] == "MUG is sold out"
    await expect(await client.post("/api/v1/cart/items", json={"sku": "NOPE"}), 404)
    await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG", "variant_id": 1}), 422)
    await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG", "quantity": 0}), 422)
    await expect(await client.patch("/api/v1/cart/items/abc", json={"quantity": 1}), 404)
    problem = await expect(await client.post("/api/v1/checkout", json=order_body()), 409)
    assert problem["type"] == "/problems/empty-cart"
    await sql(fresh_db, "UPDATE variants SET stock_on_hand = 5")
    await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG"}), 201)
    problem = await expect(
        await client.post("/api/v1/checkout", json=order_body(shipping_method="teleport")), 422
    )
    assert problem["code"] == "teleport"
    await expect(await client.post("/api/v1/checkout", json={"card": CARD}), 422)
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == 0


async def test_five_hundred_carts_of_several_skus_never_oversell(client, fresh_db, shopper) -> None:
    stock = {f"SKU-{n}": 20 + 7 * n for n in range(8)}  # 20 .. 69 units
    await stocked_product(fresh_db, "mixed", stock)
    rng = random.Random(5)
    tokens = []
    for _ in range(500):
        picks = rng.sample(sorted(stock), rng.randint(2, 4))
        picks.append(picks[0])  # the same SKU added twice: one line, its quantities added
        token = await guest_with(shopper, picks[0], rng.randint(1, 2))
        for sku in picks[1:]:
            await expect(
                await shopper.post(
                    "/api/v1/cart/items",
                    json={"sku": sku, "quantity": rng.randint(1, 2)},
                    headers={"X-Cart-Token": token},
                ),
                201,
            )
        tokens.append(token)

    async def buy(token: str) -> int:
        resp = await shopper.post(
            "/api/v1/checkout", json=order_body(), headers={"X-Cart-Token": token}
        )
        return resp.status

    statuses = Counter(await asyncio.gather(*(buy(t) for t in tokens)))
    assert set(statuses) <= {201, 409} and statuses[201] > 0 and statuses[409] > 0, statuses
    conn = await connect(fresh_db)
    try:
        sold = dict(await conn.fetch("SELECT sku, sum(quantity) FROM order_lines GROUP BY sku"))
        left = dict(await conn.fetch("SELECT sku, stock_on_hand FROM variants"))
    finally:
        await conn.close()
    for sku, units in stock.items():
        assert sold.get(sku, 0) <= units and left[sku] == units - sold.get(sku, 0) >= 0, sku
    assert await sql(fresh_db, "SELECT count(*) FROM orders") == statuses[201]


async def test_checkout_works_with_redis_stopped_and_never_reads_the_cache(
    aiohttp_client, settings_for, fresh_db, client
) -> None:
    await stocked_product(fresh_db, "mug", {"MUG": 5}, price=1000)
    # With Redis up, the catalog cache holds the product at 10.00 with stock...
    cached = await expect(await client.get("/api/v1/products/mug"), 200)
    assert cached["variants"][0]["price"]["amount"] == 1000
    # ...then the price and stock change behind its back (no cache invalidation at all).
    await sql(fresh_db, "UPDATE variants SET price_amount = 1250, stock_on_hand = 1")
    assert (await expect(await client.get("/api/v1/products/mug"), 200)) == cached
    await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG", "quantity": 2}), 409)
    cart = await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG"}), 201)
    assert cart["items"][0]["unit_price"]["amount"] == 1250
    order = await expect(await client.post("/api/v1/checkout", json=order_body()), 201)
    assert order["lines"][0]["unit_price"]["amount"] == 1250
    # Redis stopped (nothing listens on its port): a guest still fills a cart and checks out.
    await sql(fresh_db, "UPDATE variants SET stock_on_hand = 3")
    no_redis = await aiohttp_client(
        create_app(settings_for(fresh_db, redis_url="redis://127.0.0.1:9/0"))
    )
    await expect(await no_redis.post("/api/v1/cart/items", json={"sku": "MUG", "quantity": 2}), 201)
    order = await expect(await no_redis.post("/api/v1/checkout", json=order_body()), 201)
    assert order["totals"]["subtotal"]["amount"] == 2500
    assert await sql(fresh_db, "SELECT stock_on_hand FROM variants") == 1
