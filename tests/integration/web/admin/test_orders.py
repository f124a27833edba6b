"""Staff order and customer pages: filters, keyset paging, the detail with its history, ship,
deliver and cancel through storage.orders.transition, refusals beside their fields, and the
customers list and profile."""

from __future__ import annotations

import asyncio
import functools
import html
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from storage import users
from storage.database import connect
from tests.support.admin import error_of, post
from tests.support.browser import csrf_of, signed_in
from tests.support.db import fetch
from tests.support.orders import order_in_status, stock_of, stocked_product
from web.admin import customers as customer_pages
from web.admin import orders as order_pages

STAFF_EMAIL = "ada@example.com"  # who test_route_guards.signed_in registers


async def staff(client, fresh_db: str) -> int:  # type: ignore[no-untyped-def]
    """Sign in as staff; returns the staff user's id."""
    await signed_in(client, role="staff", fresh_db=fresh_db)
    [row] = await fetch(fresh_db, "SELECT id FROM users WHERE email = $1", STAFF_EMAIL)
    return int(row["id"])


async def customer(dsn: str, email: str, name: str = "Bob") -> int:
    """A customer account (not signed in); returns its id."""
    conn = await connect(dsn)
    try:
        created = await users.create(conn, email=email, name=name, password_hash="x")
    finally:
        await conn.close()
    return created.id


# Bob's order, unless a test names another customer.
customer_order = functools.partial(order_in_status, email="bob@example.com")


async def product(dsn: str, stock: int = 20) -> int:
    """A published product with one variant of `stock` units at €10.00; its variant id."""
    variants = await stocked_product(dsn, "blue-mug", {"MUG-1": stock}, price=1000)
    return variants["MUG-1"]


def numbers_in(page: str) -> set[str]:
    """The order numbers the page links to."""
    return set(re.findall(r'href="/admin/orders/([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})"', page))


async def get_text(client, path: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    resp = await client.get(path, allow_redirects=False)
    return resp.status, await resp.text()


async def order_row(dsn: str, order_id: int) -> Any:
    [row] = await fetch(dsn, "SELECT status, tracking_number FROM orders WHERE id = $1", order_id)
    return row


async def transitions_of(dsn: str, order_id: int) -> list[tuple[Any, ...]]:
    rows = await fetch(
        dsn,
        "SELECT from_status, to_status, actor, actor_id, note FROM order_transitions"
        " WHERE order_id = $1 ORDER BY id",
        order_id,
    )
    return [tuple(row) for row in rows]


async def test_the_list_filters_by_status_customer_and_placing_day(client, fresh_db) -> None:
    await staff(client, fresh_db)
    mug = await product(fresh_db)
    march = {day: datetime(2024, 3, day, 12, tzinfo=UTC) for day in (1, 10, 11)}
    bob = await customer_order(fresh_db, mug, email="bob@example.com", placed_at=march[1])
    carol = await customer_order(
        fresh_db, mug, email="carol@shop.test", status="confirmed", placed_at=march[10]
    )
    dave = await customer_order(
        fresh_db, mug, email="dave@shop.test", status="cancelled", placed_at=march[11]
    )
    status, page = await get_text(client, "/admin/orders")
    assert status == 200 and numbers_in(page) == {bob.number, carol.number, dave.number}
    assert "€14.95" in page  # €10.00 and €4.95 shipping, formatted with domain.money
    assert "bob@example.com" in page and "2024-03-01 12:00 UTC" in page
    status, page = await get_text(client, "/admin/orders?status=confirmed")
    assert status == 200 and numbers_in(page) == {carol.number}
    assert '<option value="confirmed" selected>' in page
    _, page = await get_text(client, "/admin/orders?customer=BOB@")
    assert numbers_in(page) == {bob.number}
    _, page = await get_text(client, "/admin/orders?customer=shop.test&status=cancelled")
    assert numbers_in(page) == {dave.number}
    _, page = await get_text(client, f"/admin/orders?customer={carol.number.lower()}")
    assert numbers_in(page) == {carol.number}
    # Both days included: the 10th (from) through the 11th (to).
    _, page = await get_text(client, "/admin/orders?from=2024-03-10&to=2024-03-11")
    assert numbers_in(page) == {carol.number, dave.number}
    _, page = await get_text(client, "/admin/orders?to=2024-03-10")
    assert numbers_in(page) == {bob.number, carol.number}
    status, page = await get_text(client, "/admin/orders?from=0001-01-01&to=9999-12-31")
    assert status == 200 and len(numbers_in(page)) == 3  # the calendar's ends: no overflow
    _, page = await get_text(client, "/admin/orders?from=2024-03-12")
    assert numbers_in(page) == set() and "No orders match." in page


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("from=2024-13-01", "from", "YYYY-MM-DD"),
        ("to=31/03/2024", "to", "YYYY-MM-DD"),
        ("from=20240301", "from", "YYYY-MM-DD"),
        ("from=2024-03-10&to=2024-03-01", "to", "before the start date"),
        ("status=lost", "status", "Choose one of the statuses"),
        ("customer=" + "x" * 255, "customer", "at most 254"),
    ],
)
async def test_a_bad_filter_is_a_400_with_the_message_beside_its_field(
    client, fresh_db, query: str, field: str, message: str
) -> None:
    await staff(client, fresh_db)
    status, page = await get_text(client, f"/admin/orders?{query}")
    assert status == 400
    assert message in error_of(page, field)


async def test_a_malformed_keyset_is_a_400(client, fresh_db) -> None:
    await staff(client, fresh_db)
    for before in (
        "x",
        "2024-03-01T00:00:00,abc",
        "2024-03-01T00:00:00,1",
        ",1",
        "2024-99-01T00:00:00+00:00,1",
    ):
        status, page = await get_text(client, f"/admin/orders?before={before}")
        assert status == 400, before
        assert "link is broken" in page, before


async def test_older_orders_page_on_by_keyset_and_keep_the_filters(client, fresh_db) -> None:
    size = order_pages.PAGE_SIZE
    await staff(client, fresh_db)
    mug = await product(fresh_db, stock=size + 2)
    same_time = datetime(2024, 3, 1, 12, tzinfo=UTC)  # ties are broken by id
    placed = [await customer_order(fresh_db, mug, placed_at=same_time) for _ in range(size + 1)]
    other = await customer_order(fresh_db, mug, email="zed@example.com", placed_at=same_time)
    _, page = await get_text(client, "/admin/orders?customer=bob")
    newest_first = sorted(placed, key=lambda o: o.id, reverse=True)
    assert numbers_in(page) == {o.number for o in newest_first[:size]}
    match = re.search(r'<a href="([^"]+)">Older orders</a>', page)
    assert match
    older = html.unescape(match.group(1))
    query = parse_qs(urlsplit(older).query)
    assert query["customer"] == ["bob"]
    assert query["before"] == [f"{same_time.isoformat()},{newest_first[size - 1].id}"]
    status, page = await get_text(client, older)
    assert status == 200 and numbers_in(page) == {newest_first[size].number}
    assert other.number not in page and "Older orders" not in page


async def test_the_detail_shows_lines_totals_address_payment_and_history(client, fresh_db) -> None:
    await staff(client, fresh_db)
    mug = await product(fresh_db)
    order = await customer_order(fresh_db, mug, 3, status="confirmed")
    status, page = await get_text(client, f"/admin/orders/{order.number.lower()}")
    assert status == 200
    assert "MUG-1" in page and "Blue Mug - MUG-1" in page
    assert "€10.00" in page and "€30.00" in page  # unit price and line total
    totals = re.search(r"<tfoot>.*?</tfoot>", page, re.S)
    assert totals and "€4.95" in totals.group(0)  # standard shipping: free only from €50
    assert order.total_amount == 3495 and "€34.95" in totals.group(0)
    assert "Ada Lovelace" in page and "12 Analytical Row" in page and "N1 7AA" in page
    payment = re.search(r'id="payment".*?</section>', page, re.S)
    assert payment and "visa" in payment.group(0) and "ending 4242" in payment.group(0)
    assert "<dd>test</dd>" in payment.group(0) and "<dd>pending</dd>" in payment.group(0)
    history = re.search(r'id="history".*?</ol>', page, re.S)
    assert history
    placed, paid = (
        history.group(0).index("Order placed"),
        history.group(0).index("Payment captured"),
    )
    assert placed < paid  # the timeline, oldest first
    assert "by guest" in history.group(0) and "by system" in history.group(0)
    # A confirmed order can be shipped or cancelled, not delivered.
    assert f'action="/admin/orders/{order.number}/ship"' in page
    assert f'action="/admin/orders/{order.number}/cancel"' in page
    assert f'action="/admin/orders/{order.number}/deliver"' not in page


async def test_the_actions_offered_follow_the_status(client, fresh_db) -> None:
    await staff(client, fresh_db)
    mug = await product(fresh_db)
    offered = {}
    for status in ("pending", "shipped", "cancelled"):
        order = await customer_order(fresh_db, mug, status=status)
        _, page = await get_text(client, f"/admin/orders/{order.number}")
        found = set(re.findall(rf"/admin/orders/{order.number}/(\w+)", page))
        offered[status] = found & set(order_pages.ACTIONS)
    assert offered == {"pending": {"cancel"}, "shipped": {"deliver"}, "cancelled": set()}


async def test_staff_ship_a_confirmed_order_and_the_move_is_recorded_with_them(
    client, fresh_db
) -> None:
    staff_id = await staff(client, fresh_db)
    mug = await product(fresh_db)
    order = await customer_order(fresh_db, mug, status="confirmed")
    resp = await post(
        client, f"/admin/orders/{order.number}/ship", {"tracking_number": "  1Z999AA10123456784 "}
    )
    assert resp.status == 303 and resp.headers["Location"] == f"/admin/orders/{order.number}"
    row = await order_row(fresh_db, order.id)
    assert (row["status"], row["tracking_number"]) == ("shipped", "1Z999AA10123456784")
    assert (await transitions_of(fresh_db, order.id))[-1] == (
        "confirmed",
        "shipped",
        "staff",
        staff_id,
        "",
    )
    emails = await fetch(
        fresh_db,
        "SELECT payload FROM outbox WHERE actor_name = 'email.send_order_email'"
        " AND payload->>'kind' = 'shipped'",
    )
    assert [e["payload"]["order_id"] for e in emails] == [order.id]
    _, page = await get_text(client, f"/admin/orders/{order.number}")
    assert "1Z999AA10123456784" in page and f"by {STAFF_EMAIL}" in page
    # Shipped: the next step is delivery.
    resp = await post(client, f"/admin/orders/{order.number}/deliver", {})
    assert resp.status == 303
    assert (await order_row(fresh_db, order.id))["status"] == "delivered"


async def test_a_missing_or_long_tracking_number_is_a_422_beside_the_field(
    client, fresh_db
) -> None:
    await staff(client, fresh_db)
    mug = await product(fresh_db)
    order = await customer_order(fresh_db, mug, status="confirmed")
    for typed in ({}, {"tracking_number": "   "}, {"tracking_number": "x" * 101}):
        resp = await post(client, f"/admin/orders/{order.number}/ship", typed)
        assert resp.status == 422, typed
        assert "tracking number" in error_of(await resp.text(), "tracking_number")
    row = await order_row(fresh_db, order.id)
    assert (row["status"], row["tracking_number"]) == ("confirmed", None)
    assert len(await transitions_of(fresh_db, order.id)) == 2


async def test_delivering_a_pending_order_is_a_409_and_changes_nothing(client, fresh_db) -> None:
    await staff(client, fresh_db)
    mug = await product(fresh_db)
    order = await customer_order(fresh_db, mug)
    resp = await post(client, f"/admin/orders/{order.number}/deliver", {})
    page = await resp.text()
    assert resp.status == 409
    problem = re.search(r'<p class="form-error" role="alert" id="problem">([^<]*)</p>', page)
    assert problem and "is pending now, so it cannot become delivered" in html.unescape(
        problem.group(1)
    )
    assert (await order_row(fresh_db, order.id))["status"] == "pending"
    assert len(await transitions_of(fresh_db, order.id)) == 1


async def test_two_staff_shipping_at_once_get_one_success_and_one_409(client, fresh_db) -> None:
    await staff(client, fresh_db)
    mug = await product(fresh_db)
    order = await customer_order(fresh_db, mug, status="confirmed")
    token = await csrf_of(client, "/admin/")

    async def ship(tracking: str) -> int:
        resp = await client.post(
            f"/admin/orders/{order.number}/ship",
            data={"tracking_number": tracking, "csrf_token": token},
            allow_redirects=False,
        )
        return int(resp.status)

    assert sorted(await asyncio.gather(ship("A-1"), ship("B-2"))) == [303, 409]
    shipped = [t for t in await transitions_of(fresh_db, order.id) if t[1] == "shipped"]
    assert len(shipped) == 1


async def test_cancelling_puts_the_stock_back_and_keeps_the_note(client, fresh_db) -> None:
    staff_id = await staff(client, fresh_db)
    mug = await product(fresh_db, stock=5)
    order = await customer_order(fresh_db, mug, 2, status="confirmed")
    conn = await connect(fresh_db)
    try:
        assert await stock_of(conn, mug) == 3
        resp = await post(
            client, f"/admin/orders/{order.number}/cancel", {"note": "Customer <b>called</b>"}
        )
        assert resp.status == 303
        assert await stock_of(conn, mug) == 5
    finally:
        await conn.close()
    assert (await order_row(fresh_db, order.id))["status"] == "cancelled"
    assert (await transitions_of(fresh_db, order.id))[-1] == (
        "confirmed",
        "cancelled",
        "staff",
        staff_id,
        "Customer <b>called</b>",
    )
    _, page = await get_text(client, f"/admin/orders/{order.number}")
    assert "Customer &lt;b&gt;called&lt;/b&gt;" in page and "<b>called" not in page
    # Cancelling again is refused: the stock is not returned twice.
    resp = await post(client, f"/admin/orders/{order.number}/cancel", {})
    assert resp.status == 409
    conn = await connect(fresh_db)
    try:
        assert await stock_of(conn, mug) == 5
    finally:
        await conn.close()


async def test_a_form_without_the_csrf_token_is_refused(client, fresh_db) -> None:
    await staff(client, fresh_db)
    mug = await product(fresh_db)
    order = await customer_order(fresh_db, mug, status="confirmed")
    for action, data in (("ship", {"tracking_number": "T-1"}), ("cancel", {})):
        resp = await client.post(
            f"/admin/orders/{order.number}/{action}", data=data, allow_redirects=False
        )
        assert resp.status == 403, action
    assert (await order_row(fresh_db, order.id))["status"] == "confirmed"


async def test_an_unknown_order_is_a_404(client, fresh_db) -> None:
    await staff(client, fresh_db)
    assert (await client.get("/admin/orders/AAAA-BBBB-CCCC")).status == 404
    assert (await client.get("/admin/orders/not-a-number")).status == 404
    resp = await post(client, "/admin/orders/AAAA-BBBB-CCCC/ship", {"tracking_number": "T"})
    assert resp.status == 404


async def test_anonymous_visitors_and_customers_are_refused(client, fresh_db) -> None:
    mug = await product(fresh_db)
    order = await customer_order(fresh_db, mug, status="confirmed")
    pages = ["/admin/orders", f"/admin/orders/{order.number}", "/admin/customers"]
    actions = [f"/admin/orders/{order.number}/{a}" for a in ("ship", "deliver", "cancel")]
    token = await csrf_of(client)
    for path in pages:
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login?next="), path
    for path in actions:
        resp = await client.post(
            path, data={"csrf_token": token, "tracking_number": "T"}, allow_redirects=False
        )
        assert resp.status == 303, path
    await signed_in(client, role="customer", fresh_db=fresh_db)
    token = await csrf_of(client)
    for path in pages:
        assert (await client.get(path, allow_redirects=False)).status == 403, path
    for path in actions:
        resp = await client.post(
            path, data={"csrf_token": token, "tracking_number": "T"}, allow_redirects=False
        )
        assert resp.status == 403, path
    assert (await order_row(fresh_db, order.id))["status"] == "confirmed"


async def test_customers_list_searches_by_email_with_order_counts(client, fresh_db) -> None:
    await staff(client, fresh_db)
    mug = await product(fresh_db)
    bob = await customer(fresh_db, "bob@example.com", "Bob")
    cleo = await customer(fresh_db, "cleo_x@shop.test", "Cleo <Admin>")
    await customer_order(fresh_db, mug, user_id=bob, placed_at=datetime(2024, 3, 1, 9, tzinfo=UTC))
    await customer_order(fresh_db, mug, user_id=bob, placed_at=datetime(2024, 3, 5, 9, tzinfo=UTC))
    status, page = await get_text(client, "/admin/customers")
    assert status == 200
    ids = re.findall(r'href="/admin/customers/(\d+)"', page)
    assert ids == [str(cleo), str(bob)]  # newest first; the staff account is not listed
    assert STAFF_EMAIL not in page
    bob_row = re.search(rf'customers/{bob}".*?</tr>', page, re.S)
    assert bob_row and "<td>2</td>" in bob_row.group(0)
    assert "2024-03-05 09:00 UTC" in bob_row.group(0)
    assert "Cleo &lt;Admin&gt;" in page and "<Admin>" not in page
    _, page = await get_text(client, "/admin/customers?email=BOB")
    assert re.findall(r'href="/admin/customers/(\d+)"', page) == [str(bob)]
    # An underscore is a character, not a LIKE wildcard.
    _, page = await get_text(client, "/admin/customers?email=o_x")
    assert re.findall(r'href="/admin/customers/(\d+)"', page) == [str(cleo)]
    _, page = await get_text(client, "/admin/customers?email=b_b")
    assert re.findall(r'href="/admin/customers/(\d+)"', page) == []


async def test_customers_page_on_by_keyset(client, fresh_db) -> None:
    size = customer_pages.PAGE_SIZE
    await staff(client, fresh_db)
    made = [await customer(fresh_db, f"c{n}@example.com", f"C{n}") for n in range(size + 1)]
    _, page = await get_text(client, "/admin/customers?email=example")
    newest_first = [str(made[n]) for n in reversed(range(1, size + 1))]
    assert re.findall(r'href="/admin/customers/(\d+)"', page) == newest_first
    match = re.search(r'<a href="([^"]+)">Older customers</a>', page)
    assert match
    status, page = await get_text(client, html.unescape(match.group(1)))
    assert status == 200
    assert re.findall(r'href="/admin/customers/(\d+)"', page) == [str(made[0])]
    status, _ = await get_text(client, "/admin/customers?before=abc")
    assert status == 400


async def test_a_customer_page_lists_their_orders_linking_to_the_order_pages(
    client, fresh_db
) -> None:
    staff_id = await staff(client, fresh_db)
    mug = await product(fresh_db)
    bob = await customer(fresh_db, "bob@example.com", "Bob Builder")
    mine = [await customer_order(fresh_db, mug, user_id=bob) for _ in range(2)]
    someone_else = await customer_order(fresh_db, mug, email="zed@example.com")
    status, page = await get_text(client, f"/admin/customers/{bob}")
    assert status == 200 and "Bob Builder" in page and "bob@example.com" in page
    assert numbers_in(page) == {o.number for o in mine}
    assert someone_else.number not in page
    status, _ = await get_text(client, f"/admin/customers/{staff_id}")  # staff: not a customer
    assert status == 404
    assert (await client.get("/admin/customers/999999")).status == 404
    status, _ = await get_text(client, f"/admin/customers/{bob}?before=garbage")
    assert status == 400
