"""Every write endpoint under more concurrent requests than the pool has connections.

With DATABASE_POOL_SIZE=2, each endpoint that changes something (every POST, PUT, PATCH and
DELETE route of the app's router, API and storefront forms alike) gets 3 x 2 requests at once.
Each must be answered within a bounded time: a non-5xx, or a 503 with Retry-After. A handler
that holds a connection and waits for a second one of the same pool (the add-to-cart deadlock)
hangs here, or fails at once with NestedAcquire; a wait for a connection that never ends hangs.
"""

# ruff: noqa: E731  (one small request builder per route reads best as a lambda)
from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image

from auth.tokens import SigningKeys, issue_access_token
from configs.settings import Settings
from storage import attributes, categories
from storage.database import connect
from tests.conftest import TEST_SECRET
from tests.support.admin import form_of
from tests.support.browser import CREDENTIALS, csrf_of
from tests.support.catalog import add_image
from tests.support.orders import ADDRESS, order_in_status, stocked_product
from web.keys import DB

POOL_SIZE = 2
AT_ONCE = 3 * POOL_SIZE
CLIENT_TIMEOUT = 30.0  # per request: far above what an answer takes, far below "hangs"
ACQUIRE_TIMEOUT = 1.0
CARD = {"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"}
FORM_CARD = {"card_number": "4242 4242 4242 4242", "card_expiry": "12/39", "card_cvc": "123"}
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "database_pool_size": POOL_SIZE,
        "database_acquire_timeout_seconds": ACQUIRE_TIMEOUT,
        "catalog_cache_seconds": 0,  # every read reaches the database
    }


def write_routes(app: web.Application) -> Iterator[tuple[str, str]]:
    """(method, path pattern) of every route that changes something, sub-apps included."""
    for resource in app.router.resources():
        sub_app = getattr(resource, "_app", None)
        if isinstance(sub_app, web.Application):
            yield from write_routes(sub_app)
            continue
        for route in resource:
            if route.method in WRITE_METHODS:
                yield route.method, resource.canonical


class World:
    """What the requests name: a signed-in staff member (who also shops), a product with stock,
    an image, categories, an address and orders."""

    def __init__(self, client: TestClient, dsn: str) -> None:
        self.client = client
        self.dsn = dsn
        self.ids: dict[str, Any] = {}
        self.bearer: dict[str, str] = {}
        self.csrf = ""
        self.orders: dict[str, str] = {}

    @property
    def csrf_header(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    async def address(self) -> int:
        """A new saved address of the signed-in staff member."""
        resp = await self.client.post("/api/v1/me/addresses", json=ADDRESS, headers=self.bearer)
        assert resp.status == 201, await resp.text()
        address_id: int = (await resp.json())["id"]
        return address_id

    async def build(self) -> None:
        resp = await self.client.post("/api/v1/auth/register", json=CREDENTIALS | {"name": "Staff"})
        assert resp.status == 201, await resp.text()
        conn = await connect(self.dsn)
        try:
            user_id = await conn.fetchval("UPDATE users SET role = 'admin' RETURNING id")
            variants = await stocked_product(self.dsn, "tee", {"TEE-S": 10_000, "TEE-M": 10_000})
            product_id = await conn.fetchval("SELECT id FROM products WHERE slug = 'tee'")
            for position in range(3):
                await add_image(
                    self.dsn,
                    product_id,
                    f"p/{position}.jpg",
                    width=10,
                    height=10,
                    position=position,
                )
            image_ids = [r["id"] for r in await conn.fetch("SELECT id FROM product_images")]
            top = await categories.create(conn, slug="top", name="Top")
            leaf = (await categories.create(conn, slug="leaf", name="Leaf", parent_id=top.id)).id
        finally:
            await conn.close()
        # Session-less tokens: the logout routes below cannot end them for the later routes.
        token = issue_access_token(SigningKeys.from_secrets(TEST_SECRET), user_id, "staff")
        self.bearer = {"Authorization": f"Bearer {token}"}
        self.client.session.cookie_jar.update_cookies({"aioshop-access": token})
        self.csrf = await csrf_of(self.client, "/")
        address = await self.client.post("/api/v1/me/addresses", json=ADDRESS, headers=self.bearer)
        assert address.status == 201, await address.text()
        self.ids = {
            "user_id": user_id,
            "variant_id": variants["TEE-S"],
            "product_id": product_id,
            "image_id": image_ids[0],
            "category_id": leaf,
            "address_id": (await address.json())["id"],
        }

        # Orders for the routes that move them, placed before any route unpublishes the product.
        self.orders = {
            route: await self._order(
                status,
                mine=route.startswith(("/account", "/orders/"))
                or ("/staff" not in route and route.startswith("/api")),
            )
            for route, status in ORDERS.items()
        }

    async def _order(self, status: str, *, mine: bool) -> str:
        declined = status == "declined"  # pending, its card declined: it takes another card
        order = await order_in_status(
            self.dsn, self.ids["variant_id"], status="pending" if declined else status
        )
        conn = await connect(self.dsn)
        try:
            if mine:
                await conn.execute(
                    "UPDATE orders SET user_id = $1 WHERE id = $2", self.ids["user_id"], order.id
                )
            if declined:
                await conn.execute(
                    "UPDATE payments SET status = 'declined', decline_code = 'card_declined'"
                    " WHERE order_id = $1",
                    order.id,
                )
        finally:
            await conn.close()
        return order.number


ORDERS = {  # route: the status its order starts in
    "/account/orders/{number}/cancel": "pending",
    "/api/v1/orders/{number}/cancel": "pending",
    "/api/v1/orders/{number}/payment": "declined",
    "/orders/{number}/pay": "declined",
    "/api/v1/staff/orders/{number}/ship": "confirmed",
    "/api/v1/staff/orders/{number}/deliver": "shipped",
    "/api/v1/staff/orders/{number}/cancel": "pending",
    "/admin/orders/{number}/ship": "confirmed",
    "/admin/orders/{number}/deliver": "shipped",
    "/admin/orders/{number}/cancel": "pending",
    "/admin/orders/{number}/refunds": "confirmed",
    "/admin/orders/{number}/shipments": "confirmed",
    "/admin/orders/{number}/notes": "confirmed",
}
Request = tuple[str, dict[str, Any]]  # (path, keyword arguments of client.request)


def form(world: World, data: dict[str, str]) -> dict[str, Any]:
    return {"data": {**data, "csrf_token": world.csrf}, "allow_redirects": False}


def upload(world: World) -> dict[str, Any]:
    """A staff image upload: a small real PNG as multipart/form-data."""
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 60)).save(buffer, "PNG")
    data = FormData()
    data.add_field("csrf_token", world.csrf)
    data.add_field("alt", "A red square")
    data.add_field("image", buffer.getvalue(), filename="red.png", content_type="image/png")
    return {"data": data, "allow_redirects": False}


def api(world: World, body: dict[str, Any] | None = None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": world.bearer}
    if body is not None:
        kwargs["json"] = body
    return kwargs


async def requests_for(world: World, method: str, pattern: str) -> list[Request]:
    """AT_ONCE requests for one route, as valid as the route allows (each its own where a
    repeat would only be refused)."""
    ids = world.ids
    product = f"/admin/products/{ids['product_id']}"
    image = f"{product}/images/{ids['image_id']}"
    category = f"/admin/categories/{ids['category_id']}"
    variant = ids["variant_id"]
    each: Callable[[int], Request]
    match method, pattern:
        case "POST", "/register":
            each = lambda i: (
                "/register",
                form(world, {"email": f"r{i}@example.com", "name": "R", "password": "x" * 20}),
            )
        case "POST", "/login":
            each = lambda i: ("/login", form(world, CREDENTIALS))
        case "POST", "/logout":
            each = lambda i: ("/logout", form(world, {}))
        case "POST", "/forgot-password":
            each = lambda i: ("/forgot-password", form(world, {"email": CREDENTIALS["email"]}))
        case "POST", "/reset-password":
            each = lambda i: (
                "/reset-password",
                form(world, {"token": "x" * 43, "new_password": "y" * 20}),
            )
        case "POST", "/account/profile":
            each = lambda i: ("/account/profile", form(world, {"name": f"Name {i}"}))
        case "POST", "/account/password":
            each = lambda i: (
                "/account/password",
                form(
                    world, {"current_password": CREDENTIALS["password"], "new_password": "z" * 20}
                ),
            )
        case "POST", "/account/addresses":
            each = lambda i: ("/account/addresses", form(world, ADDRESS))
        case "POST", "/account/addresses/{address_id}/delete":
            each = lambda i: (
                f"/account/addresses/{ids['address_id']}/delete",
                form(world, {}),
            )
        case "POST", "/account/verify-email" | "/account/logout-everywhere":
            each = lambda i: (pattern, form(world, {}))
        case "POST", "/cart/items":
            each = lambda i: ("/cart/items", form(world, {"sku": "TEE-S", "quantity": "1"}))
        case "POST", "/cart/items/{variant_id}":
            each = lambda i: (f"/cart/items/{variant}", form(world, {"quantity": "2"}))
        case "POST", "/cart/items/{variant_id}/remove":
            each = lambda i: (f"/cart/items/{variant}/remove", form(world, {}))
        case "POST", "/checkout":
            await world.client.post("/api/v1/cart/items", json={"sku": "TEE-M"}, **api(world))
            data = {
                "address_id": str(await world.address()),
                "shipping_method": "standard",
                **FORM_CARD,
            }
            each = lambda i: ("/checkout", form(world, {**data, "idempotency_key": f"k-{i}"}))
        case "POST", "/account/orders/{number}/cancel":
            number = world.orders[pattern]
            each = lambda i: (f"/account/orders/{number}/cancel", form(world, {}))
        case "POST", "/api/v1/products":
            each = lambda i: (
                pattern,
                api(
                    world,
                    {"slug": f"p-{i}", "name": "P", "price_amount": 100, "price_currency": "EUR"},
                ),
            )
        case "POST", "/api/v1/auth/register":
            each = lambda i: (
                pattern,
                {
                    "headers": world.csrf_header,
                    "json": {"email": f"a{i}@example.com", "name": "A", "password": "x" * 20},
                },
            )
        case "POST", "/api/v1/auth/login":
            each = lambda i: (pattern, {"headers": world.csrf_header, "json": CREDENTIALS})
        case "POST", "/api/v1/auth/refresh":
            each = lambda i: (
                pattern,
                {"headers": world.csrf_header, "json": {"refresh_token": "x" * 43}},
            )
        case "POST", "/api/v1/auth/logout" | "/api/v1/auth/logout-everywhere":
            each = lambda i: (pattern, api(world))
        case "POST", "/api/v1/auth/password-reset":
            each = lambda i: (
                pattern,
                {"headers": world.csrf_header, "json": {"email": CREDENTIALS["email"]}},
            )
        case "POST", "/api/v1/auth/password-reset/confirm":
            each = lambda i: (
                pattern,
                {
                    "headers": world.csrf_header,
                    "json": {"token": "x" * 43, "new_password": "y" * 20},
                },
            )
        case "POST", "/api/v1/auth/verify-email":
            each = lambda i: (pattern, {"headers": world.csrf_header, "json": {"token": "x" * 43}})
        case "POST", "/api/v1/auth/verify-email/resend":
            each = lambda i: (pattern, api(world))
        case "PATCH", "/api/v1/me":
            each = lambda i: (pattern, api(world, {"name": f"N{i}"}))
        case "POST", "/api/v1/me/password":
            # after /account/password (sorted before it) changed it to "z" * 20
            body = {"current_password": "z" * 20, "new_password": "w" * 20}
            each = lambda i: (pattern, api(world, body))
        case "POST", "/api/v1/me/addresses":
            each = lambda i: (pattern, api(world, ADDRESS))
        case "PATCH", "/api/v1/me/addresses/{address_id}":
            path = f"/api/v1/me/addresses/{await world.address()}"
            each = lambda i: (path, api(world, {"city": f"City {i}"}))
        case "DELETE", "/api/v1/me/addresses/{address_id}":
            path = f"/api/v1/me/addresses/{await world.address()}"
            each = lambda i: (path, api(world))
        case "POST", "/api/v1/cart/items":
            each = lambda i: (pattern, api(world, {"variant_id": variant, "quantity": 1}))
        case "PATCH", "/api/v1/cart/items/{variant_id}":
            path = f"/api/v1/cart/items/{variant}"
            each = lambda i: (path, api(world, {"quantity": 3}))
        case "DELETE", "/api/v1/cart/items/{variant_id}":
            each = lambda i: (f"/api/v1/cart/items/{variant}", api(world))
        case "POST", "/api/v1/checkout":
            await world.client.post("/api/v1/cart/items", json={"sku": "TEE-M"}, **api(world))
            body = {
                "shipping_address_id": await world.address(),
                "shipping_method": "standard",
                "card": CARD,
            }
            each = lambda i: (
                pattern,
                {"json": body, "headers": {**world.bearer, "Idempotency-Key": f"api-{i}"}},
            )
        case "POST", "/orders/{number}/pay":
            number = world.orders[pattern]
            data = {**FORM_CARD}
            each = lambda i: (
                f"/orders/{number}/pay",
                form(world, {**data, "idempotency_key": f"p{i}"}),
            )
        case "POST", "/api/v1/orders/{number}/payment":
            number = world.orders[pattern]
            path = f"/api/v1/orders/{number}/payment"
            each = lambda i: (
                path,
                {"json": {"card": CARD}, "headers": {**world.bearer, "Idempotency-Key": f"a{i}"}},
            )
        case "POST", "/api/v1/orders/{number}/cancel":
            number = world.orders[pattern]
            each = lambda i: (f"/api/v1/orders/{number}/cancel", api(world, {}))
        case "POST", "/api/v1/staff/orders/{number}/ship":
            number = world.orders[pattern]
            path = f"/api/v1/staff/orders/{number}/ship"
            each = lambda i: (path, api(world, {"tracking_number": f"T{i}"}))
        case "POST", "/api/v1/staff/orders/{number}/deliver":
            number = world.orders[pattern]
            each = lambda i: (f"/api/v1/staff/orders/{number}/deliver", api(world))
        case "POST", "/api/v1/staff/orders/{number}/cancel":
            number = world.orders[pattern]
            each = lambda i: (f"/api/v1/staff/orders/{number}/cancel", api(world, {}))
        case "POST", "/admin/products/new":
            each = lambda i: (
                pattern,
                form(
                    world,
                    {
                        "name": "New",
                        "slug": f"new-{i}",
                        "v-0-sku": f"NEW-{i}",
                        "v-0-price": "1.00",
                        "v-0-currency": "EUR",
                        "v-0-stock": "1",
                    },
                ),
            )
        case "POST", "/admin/products/{id}":
            shown = form_of(await (await world.client.get(product)).text(), product)
            each = lambda i: (product, form(world, {**shown, "name": f"Tee {i}"}))
        case "POST", "/admin/products/{id}/publish" | "/admin/products/{id}/unpublish":
            path = product + pattern.rpartition("/")[2].join(["/", ""])
            each = lambda i: (path, form(world, {}))
        case "POST", "/admin/products/{id}/images":
            each = lambda i: (f"{product}/images", upload(world))
        case "POST", "/admin/products/{id}/images/order":
            path = f"{product}/images/order"
            first = ids["image_id"] + 1  # the first is deleted by the delete route's requests
            each = lambda i: (path, form(world, {f"position-{first}": str(1 + i % 2)}))
        case "POST", "/admin/products/bulk":
            product_id = str(ids["product_id"])
            action = ("publish", "unpublish")
            each = lambda i: (pattern, form(world, {"action": action[i % 2], "id": product_id}))
        case "POST", "/admin/products/{id}/images/{image_id}/delete":
            each = lambda i: (f"{image}/delete", form(world, {}))
        case "POST", "/admin/products/{id}/images/{image_id}/move":
            image_id = ids["image_id"] + 1
            path = f"{product}/images/{image_id}/move"
            each = lambda i: (path, form(world, {"direction": "down"}))
        case "POST", "/admin/categories":
            each = lambda i: (pattern, form(world, {"name": f"C{i}", "slug": f"c-{i}"}))
        case "POST", "/admin/categories/{id}/rename":
            each = lambda i: (f"{category}/rename", form(world, {"name": f"L{i}", "slug": "leaf"}))
        case "POST", "/admin/categories/{id}/move":
            each = lambda i: (f"{category}/move", form(world, {"parent_id": ""}))
        case "POST", "/admin/categories/{id}/delete":
            each = lambda i: (f"{category}/delete", form(world, {}))
        case "POST", "/admin/categories/{id}/{direction}":
            each = lambda i: (f"{category}/{'up' if i % 2 else 'down'}", form(world, {}))
        case "POST", "/admin/attributes":
            each = lambda i: (
                pattern,
                form(world, {"slug": f"a_{i}", "name": f"A{i}", "kind": "text"}),
            )
        case "POST", "/admin/types":
            each = lambda i: (pattern, form(world, {"slug": f"t_{i}", "name": f"T{i}"}))
        case "POST", "/admin/types/{id}":
            type_id = (await pool_taxonomy(world))["type"]
            each = lambda i: (
                f"/admin/types/{type_id}",
                form(world, {"action": "rename", "name": f"Renamed {i}", "confirm": "yes"}),
            )
        case "POST", "/admin/attributes/{id}":
            made = await pool_taxonomy(world)
            each = lambda i: (
                f"/admin/attributes/{made['attribute']}",
                form(
                    world,
                    {
                        "action": "rename_choice",
                        "choice_id": str(made["choice"]),
                        "name": f"Shade {i}",
                        "confirm": "yes",
                    },
                ),
            )
        case "POST", "/admin/orders/{number}/ship":
            number = world.orders[pattern]
            path = f"/admin/orders/{number}/ship"
            each = lambda i: (path, form(world, {"tracking_number": f"T{i}"}))
        case "POST", "/admin/orders/{number}/deliver":
            number = world.orders[pattern]
            each = lambda i: (f"/admin/orders/{number}/deliver", form(world, {}))
        case "POST", "/admin/orders/{number}/cancel":
            number = world.orders[pattern]
            each = lambda i: (f"/admin/orders/{number}/cancel", form(world, {}))
        case "POST", "/admin/orders/{number}/refunds":
            number = world.orders[pattern]
            conn = await connect(world.dsn)
            try:  # paid, so that each refund is written (a cent each)
                await conn.execute(
                    "UPDATE payments SET status = 'captured', reference = 'ch_pool'"
                    " WHERE order_id = (SELECT id FROM orders WHERE number = $1)",
                    number,
                )
            finally:
                await conn.close()
            each = lambda i: (
                f"/admin/orders/{number}/refunds",
                form(world, {"request_key": str(uuid.uuid4()), "amount": "0.01"}),
            )
        case "POST", "/admin/orders/{number}/shipments":
            number = world.orders[pattern]
            each = lambda i: (
                f"/admin/orders/{number}/shipments",
                form(
                    world,
                    {"request_key": str(uuid.uuid4()), "ship_1": "1", "tracking_number": f"P{i}"},
                ),
            )
        case "POST", "/admin/orders/{number}/notes":
            number = world.orders[pattern]
            each = lambda i: (f"/admin/orders/{number}/notes", form(world, {"body": f"Note {i}"}))
        case "POST", "/ops/dead-letters/{queue}/requeue":
            each = lambda i: ("/ops/dead-letters/search/requeue", form(world, {}))
        case "POST", "/ops/queues/{queue}/{part}/{action}":
            # Nothing to purge: each request still reaches the broker and writes its audit row.
            each = lambda i: ("/ops/queues/search/dead/purge", form(world, {}))
        case "POST", "/ops/queues/{queue}/{part}/messages/{message_id}/{action}":
            message_id = uuid.UUID(int=2)
            each = lambda i: (
                f"/ops/queues/search/dead/messages/{message_id}/retry",
                form(world, {}),
            )
        case "POST", "/ops/outbox/{event_id}/{action}":
            # No row is parked: each request still reads and locks the outbox to find that out.
            event_id = uuid.UUID(int=1)
            each = lambda i: (f"/ops/outbox/{event_id}/retry", form(world, {}))
        case _:
            pytest.fail(f"no requests written for {method} {pattern}: add them here")
    return [each(i) for i in range(AT_ONCE)]


async def pool_taxonomy(world: World) -> dict[str, int]:
    """A choice attribute on a product type that the product "tee" has (made once)."""
    if "pool_type" not in world.ids:
        conn = await connect(world.dsn)
        try:
            colour = await attributes.create_attribute(
                conn,
                slug="pool_colour",
                name="Pool colour",
                kind="choice",
                choices=[("red", "Red", None)],
            )
            made = await attributes.create_product_type(
                conn, slug="pool-type", name="Pool type", attributes=[(colour.id, "product")]
            )
            await conn.execute(
                'UPDATE products SET product_type_id = $1, attributes = \'{"pool_colour": "red"}\''
                " WHERE id = $2",
                made.id,
                world.ids["product_id"],
            )
        finally:
            await conn.close()
        world.ids |= {
            "pool_type": made.id,
            "pool_attribute": colour.id,
            "pool_choice": colour.choices[0].id,
        }
    return {
        "type": world.ids["pool_type"],
        "attribute": world.ids["pool_attribute"],
        "choice": world.ids["pool_choice"],
    }


async def answered(client: TestClient, method: str, path: str, kwargs: dict[str, Any]) -> Any:
    """(status, Retry-After, body start) of one request, or ("hung", ...) past the bound."""
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT):
            resp = await client.request(method, path, **kwargs)
            text = await resp.text()
    except TimeoutError:
        return "hung", None, ""
    return resp.status, resp.headers.get("Retry-After"), text[:300]


async def test_every_write_endpoint_answers_three_times_more_requests_than_connections(
    client: TestClient, settings: Settings
) -> None:
    world = World(client, settings.database_url.unicode_string())
    await world.build()
    routes = list(write_routes(client.app))
    assert len(routes) > 50, routes  # the enumeration reaches the sub-apps
    # The routes that end the shared session or change its password go last.
    routes.sort(key=lambda route: ("password" in route[1], "logout" in route[1]))
    failures = []
    summary: dict[str, list[Any]] = {}
    started = time.monotonic()
    for method, pattern in routes:
        batch = await requests_for(world, method, pattern)
        results = await asyncio.gather(
            *(answered(client, method, path, kwargs) for path, kwargs in batch)
        )
        for (path, _), (status, retry_after, body) in zip(batch, results, strict=True):
            summary.setdefault(f"{method} {pattern}", []).append(status)
            if status == "hung" or (status >= 500 and not (status == 503 and retry_after)):
                failures.append((method, path, status, body))
    assert not failures, (failures, summary)
    assert client.app[DB].primary.get_idle_size() >= 0
    assert time.monotonic() - started < 240


async def test_a_held_connection_cannot_starve_a_request_of_its_answer(
    client: TestClient, settings: Settings
) -> None:
    """With every primary connection held (here by the test itself, as by stuck requests),
    a write gets 503 with Retry-After within the acquire timeout, as problem+json from the API
    and as a page from the storefront; once they are free, the same write works."""
    world = World(client, settings.database_url.unicode_string())
    await world.build()
    primary = client.app[DB].primary
    held = [await primary.acquire() for _ in range(POOL_SIZE)]
    try:
        started = time.monotonic()
        status, retry_after, _ = await answered(
            client,
            "POST",
            "/api/v1/cart/items",
            api(world, {"variant_id": world.ids["variant_id"]}),
        )
        assert (status, retry_after) == (503, "1")
        assert time.monotonic() - started < ACQUIRE_TIMEOUT * 4
        resp = await client.post("/cart/items", **form(world, {"sku": "TEE-S", "quantity": "1"}))
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert "text/html" in resp.headers["Content-Type"]
        assert "very busy" in await resp.text()
        api_resp = await client.patch("/api/v1/me", **api(world, {"name": "X"}))
        assert api_resp.status == 503
        assert api_resp.headers["Content-Type"].startswith("application/problem+json")
        assert (await api_resp.json())["type"] == "/problems/busy"
    finally:
        for conn in held:
            await primary.release(conn)
    resp = await client.post(
        "/api/v1/cart/items", **api(world, {"variant_id": world.ids["variant_id"]})
    )
    assert resp.status == 201, await resp.text()


async def test_a_task_holding_a_connection_cannot_wait_for_a_second_one(
    client: TestClient,
) -> None:
    """The pattern itself fails at once, whatever the load: no second acquire from a pool
    while holding one of its connections."""
    from storage.database import NestedAcquire, transaction

    db = client.app[DB]
    async with transaction(db) as conn:
        assert await conn.fetchval("SELECT 1") == 1
        started = time.monotonic()
        with pytest.raises(NestedAcquire):
            await db.primary.fetchval("SELECT 1")
        with pytest.raises(NestedAcquire):
            async with db.primary.acquire():
                pass
        assert time.monotonic() - started < ACQUIRE_TIMEOUT
    assert await db.primary.fetchval("SELECT 2") == 2  # released: the pool works on
