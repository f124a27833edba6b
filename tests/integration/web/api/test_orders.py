"""The orders API's payment retry: a declined order says why in its resource, and another card
(`POST /api/v1/orders/{number}/payment`, an Idempotency-Key per attempt) pays it; refusals are
problem+json. The capture is the real order actor, called with real resources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from actors.resources import Resources, open_resources
from configs.settings import Settings
from tests.integration.web.api.test_checkout import ADDRESS, PROBLEM, expect
from tests.support.accounts import register
from tests.support.db import sql
from tests.support.orders import run_captures, stocked_product

DECLINED = {"number": "4000 0000 0000 0002", "expiry": "12/39", "cvc": "123"}
INSUFFICIENT = DECLINED | {"number": "4000 0000 0000 9995"}
GOOD = DECLINED | {"number": "4242 4242 4242 4242"}


@pytest.fixture
async def res(settings: Settings) -> AsyncIterator[Resources]:
    async with AsyncExitStack() as stack:
        yield await open_resources(settings, stack)


async def declined_order(client: Any, res: Resources, dsn: str, ada: dict[str, str]) -> str:
    """Ada's order, its card declined; its URL."""
    await stocked_product(dsn, "mug", {"MUG": 5}, price=900)
    await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG"}, headers=ada), 201)
    body = {"shipping_address": ADDRESS, "shipping_method": "standard", "card": DECLINED}
    order = await expect(await client.post("/api/v1/checkout", json=body, headers=ada), 201)
    assert order["payment"]["retry_url"] is None  # not declined yet: the capture decides first
    await run_captures(res, dsn)
    return str(order["url"])


async def test_a_declined_order_says_why_and_another_card_pays_it(client, res, fresh_db) -> None:
    ada = await register(client, "ada@example.com")
    url = await declined_order(client, res, fresh_db, ada)
    order = await expect(await client.get(url, headers=ada), 200)
    assert order["status"] == "pending"
    assert order["payment"] == {
        "brand": "visa",
        "last4": "0002",
        "status": "declined",
        "attempt": 1,
        "decline_code": "card_declined",
        "decline_reason": "Your card was declined by its bank.",
        "retry_url": f"{url}/payment",
    }
    headers = ada | {"Idempotency-Key": "pay-again-1"}
    first, second = await asyncio.gather(  # sent twice at once: one attempt
        client.post(f"{url}/payment", json={"card": GOOD}, headers=headers),
        client.post(f"{url}/payment", json={"card": GOOD}, headers=headers),
    )
    assert sorted([first.status, second.status]) == [202, 202]
    replayed = [r.headers.get("Idempotent-Replayed") for r in (first, second)]
    assert replayed.count("true") == 1
    original = first if replayed[0] is None else second
    retried = await original.json()
    assert original.headers["Location"] == url
    assert (retried["payment"]["status"], retried["payment"]["attempt"]) == ("pending", 2)
    assert retried["payment"]["retry_url"] is None
    assert await run_captures(res, fresh_db) == 1
    paid = await expect(await client.get(url, headers=ada), 200)
    assert (paid["status"], paid["payment"]["status"]) == ("confirmed", "captured")
    assert paid["payment"]["last4"] == "4242" and paid["payment"]["decline_reason"] is None

    # Paid: another card is a 409 problem that says so.
    resp = await client.post(f"{url}/payment", json={"card": GOOD}, headers=ada)
    problem = await expect(resp, 409)
    assert resp.content_type == PROBLEM
    assert problem["type"] == "/problems/order-not-payable" and problem["reason"] == "paid"
    assert problem["detail"] == "This order is already paid."


async def test_refusals_are_problems(client, res, fresh_db) -> None:
    ada = await register(client, "ada@example.com")
    bob = await register(client, "bob@example.com")
    url = await declined_order(client, res, fresh_db, ada)
    # Someone else's order does not exist for them, nor for anyone without a credential.
    await expect(await client.post(f"{url}/payment", json={"card": GOOD}, headers=bob), 404)
    await expect(await client.post(f"{url}/payment", json={"card": GOOD}), 404)
    await expect(await client.get(url), 404)
    bad = {"number": "4242 4242 4242 4241", "expiry": "01/20", "cvc": "x"}
    problem = await expect(
        await client.post(f"{url}/payment", json={"card": bad}, headers=ada), 422
    )
    assert set(problem["errors"]) == {"card_number", "card_expiry", "card_cvc"}
    key = ada | {"Idempotency-Key": "k-1"}
    await expect(await client.post(f"{url}/payment", json={"card": INSUFFICIENT}, headers=key), 202)
    # The same key with another card; another card while the capture runs.
    problem = await expect(
        await client.post(f"{url}/payment", json={"card": GOOD}, headers=key), 422
    )
    assert problem["type"] == "/problems/idempotency-key-reused"
    problem = await expect(
        await client.post(f"{url}/payment", json={"card": GOOD}, headers=ada), 409
    )
    assert problem["reason"] == "processing"
    await run_captures(res, fresh_db)
    order = await expect(await client.get(url, headers=ada), 200)
    assert order["payment"]["decline_reason"] == "Your card has insufficient funds."
    assert order["payment"]["retry_url"] == f"{url}/payment"  # still payable
    await expect(await client.post(f"{url}/cancel", json={}, headers=ada), 200)
    problem = await expect(
        await client.post(f"{url}/payment", json={"card": GOOD}, headers=ada), 409
    )
    assert problem["reason"] == "cancelled"
    assert await sql(fresh_db, "SELECT stock_on_hand FROM variants WHERE sku = 'MUG'") == 5


async def test_a_guest_pays_again_with_the_order_token_only(client, res, fresh_db) -> None:
    await stocked_product(fresh_db, "mug", {"MUG": 5}, price=900)
    await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG"}), 201)  # cookie
    body = {
        "email": "grace@example.com",
        "shipping_address": ADDRESS,
        "shipping_method": "standard",
        "card": DECLINED,
    }
    placed = await expect(await client.post("/api/v1/checkout", json=body), 201)
    token, url = placed["order_token"], placed["url"]
    await run_captures(res, fresh_db)
    guest = {"X-Order-Token": token}
    order = await expect(await client.get(url, headers=guest), 200)
    assert order["payment"]["retry_url"] == f"{url}/payment"
    # A customer's bearer token, a wrong token or none: the order does not exist.
    ada = await register(client, "ada@example.com")
    for headers in (ada, {}, {"X-Order-Token": "x" * 43}, ada | {"X-Order-Token": "nope"}):
        resp = await client.post(f"{url}/payment", json={"card": GOOD}, headers=headers)
        problem = await expect(resp, 404)
        assert resp.content_type == PROBLEM and problem["type"] == "/problems/not-found"
    retried = await expect(
        await client.post(f"{url}/payment", json={"card": GOOD}, headers=guest), 202
    )
    assert (retried["payment"]["status"], retried["payment"]["attempt"]) == ("pending", 2)
    assert await run_captures(res, fresh_db) == 1
    paid = await expect(await client.get(url, headers=guest), 200)
    assert (paid["status"], paid["payment"]["status"]) == ("confirmed", "captured")


async def test_an_order_token_opens_its_own_order_only(client, fresh_db) -> None:
    await stocked_product(fresh_db, "mug", {"MUG": 5}, price=900)
    placed = []
    for email in ("grace@example.com", "alan@example.com"):
        client.session.cookie_jar.clear()  # a guest of their own
        await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG"}), 201)
        body = {
            "email": email,
            "shipping_address": ADDRESS,
            "shipping_method": "standard",
            "card": GOOD,
        }
        placed.append(await expect(await client.post("/api/v1/checkout", json=body), 201))
    grace, alan = placed
    await expect(
        await client.get(alan["url"], headers={"X-Order-Token": grace["order_token"]}), 404
    )
    await expect(await client.get(alan["url"], headers={"X-Order-Token": alan["order_token"]}), 200)
    # A customer's order has no token, and takes none.
    ada = await register(client, "ada@example.com")
    await expect(await client.post("/api/v1/cart/items", json={"sku": "MUG"}, headers=ada), 201)
    body = {"shipping_address": ADDRESS, "shipping_method": "standard", "card": GOOD}
    mine = await expect(await client.post("/api/v1/checkout", json=body, headers=ada), 201)
    assert mine["order_token"] is None
    await expect(
        await client.get(mine["url"], headers={"X-Order-Token": grace["order_token"]}), 404
    )


async def test_the_operation_is_documented_with_its_problems(client) -> None:
    document = await expect(await client.get("/api/v1/openapi.json"), 200)
    operation = document["paths"]["/api/v1/orders/{number}/payment"]["post"]
    assert {"202", "404", "409", "422"} <= set(operation["responses"])
    assert any(
        p["in"] == "header" and p["name"] == "Idempotency-Key" for p in operation["parameters"]
    )
    assert {"orderToken": []} in operation["security"]
    scheme = document["components"]["securitySchemes"]["orderToken"]
    assert (scheme["in"], scheme["name"]) == ("header", "X-Order-Token")
    placed = document["paths"]["/api/v1/checkout"]["post"]["responses"]["201"]
    assert placed["content"]["application/json"]["schema"]["$ref"].endswith("/PlacedOrder")
