"""Every kind of page, on a phone and on a laptop, checked by axe-core (WCAG 2.1 A and AA and best
practices): the storefront, a customer's account, the staff pages and the operators' pages.

The check itself is the `context` fixture's (tests/support/axe.py), which runs on every document
any e2e test loads; this file only makes sure each kind of page is loaded at least once, with
data in it, even where no flow of another test goes. A page that answers with an error would be
checked as an error page, so each visit also asserts the status it expects.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page

from storage.database import connect
from tests.support.axe import AxeWatch
from tests.support.browser import sign_in_chromium
from tests.support.catalog import add_tee, build_catalog
from tests.support.orders import order_in_status, place_order

WIDTHS = [375, 1280]
HEIGHT = 812
UNNAMED_IMAGE = (
    '<!doctype html><html lang="en"><title>A page</title>'
    '<main><h1>A page</h1>{form}<img src="/picture.png"></main></html>'
)


async def visit(page: Page, path: str, status: int = 200) -> None:
    response = await page.goto(path)
    assert response is not None and response.status == status, (path, response)


async def catalog(dsn: str) -> int:
    """The shared test catalog plus the tee; returns the tee's product id."""
    await build_catalog(dsn)
    return await add_tee(dsn)


async def variant_of(dsn: str, sku: str) -> int:
    conn = await connect(dsn)
    try:
        variant_id: int = await conn.fetchval("SELECT id FROM variants WHERE sku = $1", sku)
        return variant_id
    finally:
        await conn.close()


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_storefront_pages(page: Page, fresh_db: str, width: int) -> None:
    await catalog(fresh_db)
    await page.set_viewport_size({"width": width, "height": HEIGHT})
    for path in (
        "/",
        "/c/shoes",
        "/c/shoes?attr.colour=red&sort=price_asc",
        "/products/field-tee",
        "/products/field-tee?colour=blue&size=m",
        "/search?q=shoe",
        "/search?q=nothing-like-this",
        "/register",
        "/login",
        "/forgot-password",
        "/cart",
    ):
        await visit(page, path)
    await visit(page, "/products/no-such-thing", 404)
    await visit(page, "/c/shoes?attr.weight=3", 400)
    # A cart with a line in it.
    await visit(page, "/products/field-tee?colour=red&size=s")
    await page.get_by_role("button", name="Add to cart").click()
    await page.wait_for_url("**/cart")


@pytest.mark.parametrize("width", WIDTHS)
async def test_a_customers_pages(page: Page, fresh_db: str, width: int) -> None:
    await catalog(fresh_db)
    await page.set_viewport_size({"width": width, "height": HEIGHT})
    user_id = await sign_in_chromium(
        page, fresh_db, "ada@example.com", role="customer", landing="/account"
    )
    variant = await variant_of(fresh_db, "TEE-R-S")
    shipped = await order_in_status(fresh_db, variant, 2, status="shipped", user_id=user_id)
    conn = await connect(fresh_db)
    try:
        pending = await place_order(conn, [(variant, 1)], user_id=user_id)
    finally:
        await conn.close()
    for path in (
        "/account",
        "/account/orders",
        f"/account/orders/{shipped.number}",
        f"/account/orders/{pending.number}",
        f"/account/orders/{pending.number}/cancel",
        f"/orders/{pending.number}/thanks",
        "/products/field-tee?colour=red&size=s",
    ):
        await visit(page, path)
    await page.get_by_role("button", name="Add to cart").click()
    await page.wait_for_url("**/cart")
    await visit(page, "/checkout")
    await visit(page, "/admin/", 403)


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_staff_pages(page: Page, fresh_db: str, width: int) -> None:
    tee = await catalog(fresh_db)
    await page.set_viewport_size({"width": width, "height": HEIGHT})
    await sign_in_chromium(page, fresh_db, "staff@example.com", role="staff", landing="/admin/")
    conn = await connect(fresh_db)
    try:
        customer: int = await conn.fetchval(
            "INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3) RETURNING id",
            "grace@example.com",
            "Grace",
            "not a hash: this customer never signs in",
        )
    finally:
        await conn.close()
    variant = await variant_of(fresh_db, "TEE-R-S")
    order = await order_in_status(
        fresh_db, variant, 2, status="confirmed", user_id=customer, email="grace@example.com"
    )
    for path in (
        "/admin/",
        "/admin/products",
        "/admin/products?sort=name&q=shoe",
        "/admin/products/new",
        f"/admin/products/{tee}",
        "/admin/categories",
        "/admin/types",
        "/admin/orders",
        f"/admin/orders/{order.number}",
        "/admin/customers",
        f"/admin/customers/{customer}",
    ):
        await visit(page, path)


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_operators_pages(page: Page, fresh_db: str, width: int) -> None:
    await page.set_viewport_size({"width": width, "height": HEIGHT})
    await sign_in_chromium(page, fresh_db, "ops@example.com", role="ops", landing="/ops/")
    for path in (
        "/ops/",
        "/ops/workers",
        "/ops/queues",
        "/ops/queues/orders",
        "/ops/queues/orders/dead/purge",
        "/ops/dead-letters",
        "/ops/outbox",
        "/ops/emails",
    ):
        await visit(page, path)


async def test_the_check_finds_violations_on_load_and_after_a_form_and_its_redirect(
    browser: Browser, aiohttp_server: Any
) -> None:
    """The watch itself, on a little site whose every page has an image without a name: the
    first page, and the page a form's POST is redirected to, are each reported, and so is what a
    script added to the last page after it loaded (found at teardown)."""

    async def first(request: web.Request) -> web.Response:
        form = '<form method="post" action="/submit"><button>Go</button></form>'
        return web.Response(text=UNNAMED_IMAGE.format(form=form), content_type="text/html")

    async def submit(request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/done")

    async def done(request: web.Request) -> web.Response:
        return web.Response(text=UNNAMED_IMAGE.format(form=""), content_type="text/html")

    app = web.Application()
    app.router.add_get("/first", first)
    app.router.add_post("/submit", submit)
    app.router.add_get("/done", done)
    server = await aiohttp_server(app)
    context = await browser.new_context(base_url=str(server.make_url("")))
    watch = await AxeWatch.attach(context)
    try:
        page = await context.new_page()
        await page.goto("/first")
        await page.get_by_role("button", name="Go").click()
        await page.wait_for_url("**/done")
        # A script changes the page after its check on load: teardown checks it again.
        await page.evaluate(
            "document.querySelector('main').append(document.createElement('input'))"
        )
        await watch.finish(context)
    finally:
        await context.close()
    found = {(urlsplit(v.url).path, v.rule, v.target) for v in watch.violations}
    assert found == {
        ("/first", "image-alt", "img"),
        ("/done", "image-alt", "img"),
        ("/done", "label", "input"),
    }, watch.report()
