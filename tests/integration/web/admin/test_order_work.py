"""Staff refunds, shipments of some lines, notes and the timeline on the order page, through
HTTP against real PostgreSQL: a partial refund then the rest, over-refunds refused with their
reason and nothing written, a double submit that is one refund, parcels with their tracking
numbers, append-only notes, and everything in time order."""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any

import asyncpg
import pytest

from storage import order_payments, orders
from storage.database import connect
from tests.support.admin import error_of, post
from tests.support.browser import csrf_of, signed_in
from tests.support.db import fetch
from tests.support.orders import order_in_status, stock_of, stocked_product

STAFF_EMAIL = "ada@example.com"  # who tests.support.browser.signed_in registers


async def paid_order(dsn: str, quantity: int = 3, stock: int = 20) -> tuple[orders.Order, int]:
    """A confirmed order of `quantity` mugs at €10.00 (and €4.95 shipping) whose payment is
    captured; the order and the mug's variant id."""
    variants = await stocked_product(dsn, "blue-mug", {"MUG-1": stock}, price=1000)
    order = await order_in_status(dsn, variants["MUG-1"], quantity, status="confirmed")
    conn = await connect(dsn)
    try:
        await order_payments.set_payment(conn, order.id, "captured", reference="ch_test")
    finally:
        await conn.close()
    return order, variants["MUG-1"]


def refund_form(**fields: str) -> dict[str, str]:
    return {"request_key": str(uuid.uuid4()), **fields}


async def counts(dsn: str) -> dict[str, Any]:
    [row] = await fetch(
        dsn,
        "SELECT (SELECT count(*) FROM refunds) AS refunds,"
        " (SELECT count(*) FROM refund_lines) AS refund_lines,"
        " (SELECT count(*) FROM outbox WHERE actor_name = 'orders.make_refund') AS events,"
        " (SELECT refunded_amount FROM payments) AS refunded,"
        " (SELECT refunded_quantity FROM order_lines) AS units",
    )
    return dict(row)


async def test_a_partial_refund_then_the_rest(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, mug = await paid_order(fresh_db)
    assert order.total_amount == 3495
    conn = await connect(fresh_db)
    try:
        assert await stock_of(conn, mug) == 17
        path = f"/admin/orders/{order.number}/refunds"
        resp = await post(client, path, refund_form(qty_1="1", restock="true", reason="Chipped"))
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == f"/admin/orders/{order.number}#refunds"
        assert await stock_of(conn, mug) == 18  # the refunded mug is back on the shelf
        [first] = await conn.fetch("SELECT amount, restock, reason, actor_email FROM refunds")
        assert tuple(first) == (1000, True, "Chipped", STAFF_EMAIL)
        # The rest, as an amount: the two other mugs and the shipping.
        resp = await post(client, path, refund_form(amount="24.95"))
        assert resp.status == 303, await resp.text()
        assert await counts(fresh_db) == {
            "refunds": 2,
            "refund_lines": 1,
            "events": 2,
            "refunded": 3495,
            "units": 1,
        }
        assert await stock_of(conn, mug) == 18  # an amount puts nothing back
        page = await (await client.get(f"/admin/orders/{order.number}")).text()
        left = re.search(r'id="left-to-refund">([^<]*)<', page)
        assert left and left.group(1) == "€0.00"
        assert 'action="/admin/orders/' + order.number + '/refunds"' not in page  # nothing left
    finally:
        await conn.close()


async def test_an_over_refund_is_refused_with_its_reason_and_nothing_is_written(
    client, fresh_db
) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, mug = await paid_order(fresh_db)
    path = f"/admin/orders/{order.number}/refunds"
    before = await counts(fresh_db)
    resp = await post(client, path, refund_form(qty_1="4", restock="true"))
    assert resp.status == 409
    assert error_of(await resp.text(), "qty_1") == "Only 3 of this line can still be refunded."
    resp = await post(client, path, refund_form(amount="34.96"))
    assert resp.status == 409
    assert error_of(await resp.text(), "amount") == (
        "At most €34.95 is left to refund: the refunds would exceed the payment."
    )
    assert (
        await counts(fresh_db)
        == before
        == {
            "refunds": 0,
            "refund_lines": 0,
            "events": 0,
            "refunded": 0,
            "units": 0,
        }
    )
    # After a refund of €30.00, €5.00 is too much: the refunds would exceed the capture.
    assert (await post(client, path, refund_form(qty_1="3", restock="true"))).status == 303
    resp = await post(client, path, refund_form(amount="5.00"))
    assert resp.status == 409
    assert "At most €4.95 is left to refund" in error_of(await resp.text(), "amount")
    assert (await counts(fresh_db))["refunds"] == 1
    conn = await connect(fresh_db)
    try:
        assert await stock_of(conn, mug) == 20
    finally:
        await conn.close()


async def test_the_database_refuses_refunds_beyond_the_capture(fresh_db) -> None:
    variants = await stocked_product(fresh_db, "blue-mug", {"MUG-1": 5}, price=1000)
    order = await order_in_status(fresh_db, variants["MUG-1"], 1, status="confirmed")
    conn = await connect(fresh_db)
    insert = (
        "INSERT INTO refunds (order_id, request_key, amount, currency, actor)"
        " VALUES ($1, $2, $3, 'EUR', 'staff')"
    )
    try:
        # Not captured: no refund at all.
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, order.id, uuid.uuid4(), 1)
        await order_payments.set_payment(conn, order.id, "captured", reference="ch_x")
        await conn.execute(insert, order.id, uuid.uuid4(), order.total_amount - 1)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, order.id, uuid.uuid4(), 2)
        await conn.execute(insert, order.id, uuid.uuid4(), 1)
        payment = await order_payments.payment_of(conn, order.id)
        assert payment is not None and payment.refunded_amount == order.total_amount
        with pytest.raises(asyncpg.CheckViolationError):  # and no line beyond its quantity
            await conn.execute(
                "INSERT INTO refund_lines (refund_id, order_id, line, quantity)"
                " VALUES ((SELECT min(id) FROM refunds), $1, 1, 2)",
                order.id,
            )
        with pytest.raises(asyncpg.RestrictViolationError):  # a refund's amount is never changed
            await conn.execute("UPDATE refunds SET amount = 1")
    finally:
        await conn.close()


async def test_a_double_submit_is_one_refund(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, mug = await paid_order(fresh_db)
    token = await csrf_of(client, "/admin/")
    form = refund_form(qty_1="1", restock="true") | {"csrf_token": token}

    async def submit() -> int:
        resp = await client.post(
            f"/admin/orders/{order.number}/refunds", data=form, allow_redirects=False
        )
        return int(resp.status)

    assert await asyncio.gather(submit(), submit(), submit()) == [303, 303, 303]
    assert await counts(fresh_db) == {
        "refunds": 1,
        "refund_lines": 1,
        "events": 1,
        "refunded": 1000,
        "units": 1,
    }
    conn = await connect(fresh_db)
    try:
        assert await stock_of(conn, mug) == 18  # put back once
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"qty_1": "one"}, "qty_1", "Enter a whole number from 0 to 3."),
        ({"qty_1": "-1"}, "qty_1", "Enter a whole number from 0 to 3."),
        ({"amount": "1.234"}, "amount", "EUR amounts have at most 2 decimal places."),
        ({"amount": "12,50"}, "amount", "Enter an amount such as 12.50"),
        ({"amount": "0"}, "amount", "Enter an amount above zero."),
    ],
)
async def test_a_refund_form_that_cannot_be_read_is_refused_beside_its_field(
    client, fresh_db, fields, field, message
) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, _ = await paid_order(fresh_db)
    resp = await post(client, f"/admin/orders/{order.number}/refunds", refund_form(**fields))
    assert resp.status in (409, 422)
    assert error_of(await resp.text(), field).startswith(message)
    assert (await counts(fresh_db))["refunds"] == 0


async def test_a_refund_without_a_form_key_or_of_nothing_is_refused(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, _ = await paid_order(fresh_db)
    path = f"/admin/orders/{order.number}/refunds"
    resp = await post(client, path, {"qty_1": "1"})
    assert resp.status == 422
    assert "This form is out of date. Reload the page and try again." in await resp.text()
    resp = await post(client, path, refund_form())
    assert resp.status == 409
    assert "Choose the units to refund, or type an amount." in await resp.text()
    assert (await counts(fresh_db))["refunds"] == 0


async def test_an_unpaid_order_is_not_refunded(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    variants = await stocked_product(fresh_db, "blue-mug", {"MUG-1": 5}, price=1000)
    order = await order_in_status(fresh_db, variants["MUG-1"], 1, status="confirmed")
    page = await (await client.get(f"/admin/orders/{order.number}")).text()
    assert f"/admin/orders/{order.number}/refunds" not in page
    resp = await post(client, f"/admin/orders/{order.number}/refunds", refund_form(qty_1="1"))
    assert resp.status == 409 and "Only a captured payment can be refunded." in await resp.text()
    assert (await counts(fresh_db))["refunds"] == 0


async def test_cancelling_after_a_restocked_refund_returns_only_the_rest(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, mug = await paid_order(fresh_db)
    path = f"/admin/orders/{order.number}/refunds"
    assert (await post(client, path, refund_form(qty_1="1", restock="true"))).status == 303
    assert (await post(client, f"/admin/orders/{order.number}/cancel", {})).status == 303
    conn = await connect(fresh_db)
    try:
        assert await stock_of(conn, mug) == 20  # 17 + 1 restocked + 2 on cancelling
    finally:
        await conn.close()


async def test_shipping_some_lines_then_the_rest_ships_the_order(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, _ = await paid_order(fresh_db)
    path = f"/admin/orders/{order.number}/shipments"
    key = str(uuid.uuid4())
    first = {"request_key": key, "ship_1": "1", "tracking_number": "PARCEL-1"}
    assert (await post(client, path, first)).status == 303
    assert (await post(client, path, first)).status == 303  # submitted twice: one parcel
    [row] = await fetch(fresh_db, "SELECT status, tracking_number FROM orders")
    assert tuple(row) == ("confirmed", None)  # two mugs still to ship
    resp = await post(
        client,
        path,
        {"request_key": str(uuid.uuid4()), "ship_1": "3", "tracking_number": "PARCEL-2"},
    )
    assert resp.status == 409
    assert error_of(await resp.text(), "ship_1") == "Only 2 of this line are left to ship."
    resp = await post(
        client,
        path,
        {"request_key": str(uuid.uuid4()), "ship_1": "2", "tracking_number": "PARCEL-2"},
    )
    assert resp.status == 303
    [row] = await fetch(fresh_db, "SELECT status, tracking_number FROM orders")
    assert tuple(row) == ("shipped", "PARCEL-2")
    parcels = await fetch(
        fresh_db,
        "SELECT s.tracking_number, l.quantity, s.actor_email FROM shipments s"
        " JOIN shipment_lines l ON l.shipment_id = s.id ORDER BY s.id",
    )
    assert [tuple(p) for p in parcels] == [
        ("PARCEL-1", 1, STAFF_EMAIL),
        ("PARCEL-2", 2, STAFF_EMAIL),
    ]
    shipped = await fetch(
        fresh_db, "SELECT count(*) FROM outbox WHERE payload->>'kind' = 'shipped'"
    )
    assert shipped[0][0] == 1  # the customer hears of it once, when it is all on its way
    resp = await post(
        client, path, {"request_key": str(uuid.uuid4()), "ship_1": "1", "tracking_number": "X"}
    )
    assert resp.status == 409  # a shipped order has nothing left to ship


async def test_refunded_units_are_not_shipped(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, _ = await paid_order(fresh_db)
    refunds = f"/admin/orders/{order.number}/refunds"
    assert (await post(client, refunds, refund_form(qty_1="1"))).status == 303
    resp = await post(
        client,
        f"/admin/orders/{order.number}/shipments",
        {"request_key": str(uuid.uuid4()), "ship_1": "2", "tracking_number": "P-1"},
    )
    assert resp.status == 303
    [row] = await fetch(fresh_db, "SELECT status FROM orders")
    assert row["status"] == "shipped"


async def test_a_bad_shipment_form_is_a_422(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, _ = await paid_order(fresh_db)
    path = f"/admin/orders/{order.number}/shipments"
    resp = await post(client, path, {"request_key": str(uuid.uuid4()), "ship_1": "1"})
    assert resp.status == 422 and "tracking number" in error_of(
        await resp.text(), "tracking_number"
    )
    resp = await post(
        client, path, {"request_key": str(uuid.uuid4()), "ship_1": "x", "tracking_number": "T"}
    )
    assert resp.status == 422 and error_of(await resp.text(), "ship_1").startswith("Enter")
    assert (await fetch(fresh_db, "SELECT count(*) FROM shipments"))[0][0] == 0


async def test_notes_are_appended_with_who_and_when_and_never_changed(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, _ = await paid_order(fresh_db)
    path = f"/admin/orders/{order.number}/notes"
    assert (await post(client, path, {"body": "Called: <b>leave at door</b>"})).status == 303
    resp = await post(client, path, {"body": "   "})
    assert resp.status == 422 and error_of(await resp.text(), "body") == "Write the note first."
    resp = await post(client, path, {"body": "x" * 501})
    assert resp.status == 422
    page = await (await client.get(f"/admin/orders/{order.number}")).text()
    notes = re.search(r'id="notes".*?</section>', page, re.S)
    assert notes and "Called: &lt;b&gt;leave at door&lt;/b&gt;" in notes.group(0)
    assert STAFF_EMAIL in notes.group(0)
    conn = await connect(fresh_db)
    try:
        with pytest.raises(asyncpg.RestrictViolationError):
            await conn.execute("UPDATE order_notes SET body = 'rewritten'")
        assert await conn.fetchval("SELECT count(*) FROM order_notes") == 1
    finally:
        await conn.close()


async def test_the_timeline_puts_everything_in_time_order(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, _ = await paid_order(fresh_db)
    number = order.number
    assert (await post(client, f"/admin/orders/{number}/notes", {"body": "First note"})).status
    await post(
        client,
        f"/admin/orders/{number}/shipments",
        {"request_key": str(uuid.uuid4()), "ship_1": "1", "tracking_number": "P-1"},
    )
    await post(client, f"/admin/orders/{number}/refunds", refund_form(qty_1="1"))
    await post(client, f"/admin/orders/{number}/notes", {"body": "Last note"})
    # An email the order's customer was sent, as the email actor logs it.
    [event] = await fetch(
        fresh_db,
        "SELECT event_id FROM outbox WHERE actor_name = 'email.send_order_email'"
        " AND payload->>'kind' = 'placed'",
    )
    await fetch(
        fresh_db,
        "INSERT INTO email_deliveries (at, kind, recipient, subject, result, attempt,"
        " event_name, event_id) VALUES (now() + interval '1 hour', 'order_placed',"
        " 'bob@example.com', 'Your order', 'sent', 1, 'email.send_order_email', $1)",
        event["event_id"],
    )
    page = await (await client.get(f"/admin/orders/{number}")).text()
    timeline = re.search(r'<ol class="timeline">.*?</ol>', page, re.S)
    assert timeline
    titles = re.findall(r"<strong>([^<]*)</strong>", timeline.group(0))
    assert titles == [
        "Order placed",
        "Payment captured",
        "Note",
        "Shipped 1 unit, tracking P-1",
        "Refund of €10.00 asked",
        "Note",
        "Email sent: Your order",
    ]
    assert timeline.group(0).index("First note") < timeline.group(0).index("Last note")


async def test_shipping_the_whole_order_records_its_parcel(client, fresh_db) -> None:
    await signed_in(client, role="staff", fresh_db=fresh_db)
    order, _ = await paid_order(fresh_db)
    await post(client, f"/admin/orders/{order.number}/refunds", refund_form(qty_1="1"))
    resp = await post(client, f"/admin/orders/{order.number}/ship", {"tracking_number": "ALL-1"})
    assert resp.status == 303
    parcels = await fetch(
        fresh_db,
        "SELECT s.tracking_number, l.quantity, s.actor_email FROM shipments s"
        " JOIN shipment_lines l ON l.shipment_id = s.id",
    )
    assert [tuple(p) for p in parcels] == [("ALL-1", 2, STAFF_EMAIL)]  # the refunded one stays
    page = await (await client.get(f"/admin/orders/{order.number}")).text()
    assert "Shipped 2 units, tracking ALL-1" in page
