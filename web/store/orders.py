"""Storefront order pages: the confirmation after checkout, and the customer's orders.

Who may see an order here: its signed-in owner, always; a guest only in the browser that placed
it, which keeps the last GUEST_ORDERS_MAX order numbers in a signed cookie (HMAC-SHA256 with
SECRET_KEY; older keys in PREVIOUS_SECRET_KEYS still verify). Anyone else gets the same 404 as
for a number that does not exist, so numbers cannot be probed. Orders are read from the primary:
the confirmation is shown a moment after the order is written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from domain.checkout import address_lines
from domain.money import Money
from domain.orders import IllegalTransition, can_cancel
from storage import Executor, catalog_reads, orders, transaction
from storage.catalog_reads import Thumbnail
from storage.errors import OrderNotFound
from storage.orders import Order, OrderDetail
from web.catalog_json import thumbnail_json
from web.cookies import cookie_name, is_secure
from web.keys import DB, PRINCIPAL, REQUEST_ID, SETTINGS
from web.params import keyset, keyset_text, opaque
from web.render import page
from web.store.account import require_user
from web.store.catalog import not_found

GUEST_ORDERS = "aioshop-orders"
GUEST_ORDERS_MAX = 10
GUEST_ORDERS_MAX_AGE = 30 * 24 * 3600
NUMBER = re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$")
PAGE_SIZE = 20
TOO_LATE_TO_CANCEL = "This order can no longer be cancelled: it has left the warehouse or ended."

STATUS_LABELS = {
    "pending": "Payment processing",
    "confirmed": "Confirmed",
    "shipped": "Shipped",
    "delivered": "Delivered",
    "cancelled": "Cancelled",
}
ACTORS = {"customer": "you", "guest": "you", "staff": "the shop", "system": "the shop"}


# -- the guest's cookie ------------------------------------------------------------------------


def _signature(secret: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), b"guest-orders\x00" + payload.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def guest_orders(request: web.Request) -> list[str]:
    """The order numbers this browser placed as a guest (none when the cookie is not ours)."""
    raw = opaque(request.cookies.get(cookie_name(request, GUEST_ORDERS)), max_length=400) or ""
    payload, _, signature = raw.rpartition(":")
    if not payload or len(raw) > 400:
        return []
    settings = request.config_dict[SETTINGS]
    for secret in (settings.secret_key.get_secret_value(), *settings.previous_secrets):
        if hmac.compare_digest(_signature(secret, payload), signature):
            return payload.split(".")
    return []


def remember_guest_order(request: web.Request, response: web.StreamResponse, number: str) -> None:
    """Add `number` to the browser's guest orders (the newest GUEST_ORDERS_MAX are kept)."""
    numbers = [n for n in guest_orders(request) if n != number] + [number]
    payload = ".".join(numbers[-GUEST_ORDERS_MAX:])
    secret = request.config_dict[SETTINGS].secret_key.get_secret_value()
    response.set_cookie(
        cookie_name(request, GUEST_ORDERS),
        f"{payload}:{_signature(secret, payload)}",
        max_age=GUEST_ORDERS_MAX_AGE,
        path="/",
        httponly=True,
        secure=is_secure(request),
        samesite="Lax",
    )


# -- what the pages show -----------------------------------------------------------------------


@dataclass(frozen=True)
class LineView:
    name: str
    sku: str
    quantity: int
    unit_price: str
    total: str
    image: dict[str, Any] | None = None  # web.catalog_json.thumbnail_json


@dataclass(frozen=True)
class StepView:
    """One change of status in the order's history."""

    status: str
    at: datetime
    by: str
    note: str


@dataclass(frozen=True)
class OrderView:
    """An order as the storefront shows it: money formatted, the address as lines."""

    number: str
    status: str
    status_label: str
    placed_at: datetime
    email: str
    lines: list[LineView]
    subtotal: str
    shipping_method: str
    shipping: str
    tax: str | None  # None: no tax charged, and no tax line
    total: str
    address: list[str]
    payment: str | None  # "Visa ending in 4242"
    tracking_number: str | None
    note: str  # why it reached its status, when the shop said ("The card was declined.")
    history: list[StepView]
    can_cancel: bool


async def order_images(executor: Executor, detail: OrderDetail) -> dict[int, Thumbnail]:
    """Each line's picture by line number (see storage.catalog_reads.line_images)."""
    lines = [(line.line, line.variant_id, line.product_id) for line in detail.lines]
    return await catalog_reads.line_images(executor, lines)


def order_view(detail: OrderDetail, images: Mapping[int, Thumbnail] | None = None) -> OrderView:
    """What the confirmation and the account's order page show of `detail` (`images`: each
    line's picture by line number)."""
    order = detail.order
    images = images or {}

    def money(amount: int) -> str:
        return Money(amount, order.currency).format()

    payment = detail.payment
    latest = [t for t in detail.transitions if t.to_status == order.status]
    return OrderView(
        number=order.number,
        status=order.status,
        status_label=STATUS_LABELS.get(order.status, order.status),
        placed_at=order.placed_at,
        email=order.email,
        lines=[
            LineView(
                line.name,
                line.sku,
                line.quantity,
                money(line.unit_amount),
                money(line.line_amount),
                _thumbnail(images.get(line.line), line.name),
            )
            for line in detail.lines
        ],
        subtotal=money(order.subtotal_amount),
        shipping_method=order.shipping_method,
        shipping=money(order.shipping_amount) if order.shipping_amount else "Free",
        tax=money(order.tax_amount) if order.tax_amount > 0 else None,
        total=money(order.total_amount),
        address=address_lines(order.shipping_address, phone=True),
        payment=(
            f"{payment.card_brand.capitalize()} ending in {payment.card_last4}"
            if payment is not None
            else None
        ),
        tracking_number=order.tracking_number,
        note=latest[-1].note if latest and order.status != "pending" else "",
        history=[
            StepView(
                STATUS_LABELS.get(t.to_status, t.to_status) if t.from_status else "Placed",
                t.created_at,
                ACTORS.get(t.actor, "the shop"),
                t.note[:1].upper() + t.note[1:],
            )
            for t in detail.transitions
        ],
        can_cancel=can_cancel(order.status),
    )


def _thumbnail(image: Thumbnail | None, name: str) -> dict[str, Any] | None:
    return None if image is None else thumbnail_json(image, name)


# -- the confirmation --------------------------------------------------------------------------


async def thanks_page(request: web.Request) -> web.Response:
    """/orders/{number}/thanks: the order just placed, for its owner or the guest's browser."""
    number = request.match_info["number"].upper()
    db = request.config_dict[DB]
    principal = request.get(PRINCIPAL)
    order: Order | None = None
    if NUMBER.fullmatch(number):
        # primary: the order was written a moment ago.
        if principal is not None:
            order = await _find(db.primary, number, principal.user_id)
        if order is None and number in guest_orders(request):
            order = await _find(db.primary, number, None)
    if order is None:
        return await not_found(request, "order")
    detail = await orders.detail(db.primary, order)
    view = order_view(detail, await order_images(db.replica, detail))
    context = {"order": view, "signed_in": order.user_id is not None and principal is not None}
    return await page(request, "store/thanks.html", context)


async def _find(executor: Executor, number: str, user_id: int | None) -> Order | None:
    try:
        return await orders.find(executor, number, user_id=user_id)
    except OrderNotFound:
        return None


# -- the account's orders ----------------------------------------------------------------------


async def orders_page(request: web.Request) -> web.Response:
    """/account/orders: the customer's orders, newest first, PAGE_SIZE a page."""
    principal = require_user(request)
    found = await orders.list_for_customer(
        request.config_dict[DB].primary,  # primary: the customer's own orders, maybe just placed
        principal.user_id,
        limit=PAGE_SIZE + 1,
        before=_before(request.query.get("before", "")),
    )
    older = None
    if len(found) > PAGE_SIZE:
        found = found[:PAGE_SIZE]
        older = keyset_text(found[-1].placed_at, found[-1].id)
    rows = [
        {
            "number": o.number,
            "placed_at": o.placed_at,
            "status": o.status,
            "status_label": STATUS_LABELS.get(o.status, o.status),
            "total": Money(o.total_amount, o.currency).format(),
        }
        for o in found
    ]
    context = {"orders": rows, "older": older, "first_page": "before" not in request.query}
    return await page(request, "account/orders.html", context)


def _before(raw: str) -> tuple[datetime, int] | None:
    """The keyset position of `?before=`; a position this page did not make starts over."""
    try:
        return keyset(raw)
    except ValueError:
        return None


async def order_page(
    request: web.Request, *, status: int = 200, error: str | None = None, confirm: bool = False
) -> web.Response:
    """/account/orders/{number}: one of the customer's orders with its history (else 404);
    with `confirm`, it asks whether to cancel the order (while it can be)."""
    principal = require_user(request)
    db = request.config_dict[DB]
    order = await _customer_order(request, principal.user_id)
    if order is None:
        return await not_found(request, "order")
    detail = await orders.detail(db.primary, order)
    view = order_view(detail, await order_images(db.replica, detail))
    if confirm and not view.can_cancel:
        error = TOO_LATE_TO_CANCEL
    context = {
        "order": view,
        "error": error,
        "cancelled": request.query.get("cancelled") == "1",
        "confirm_cancel": confirm,
    }
    return await page(request, "account/order.html", context, status=status)


async def cancel_page(request: web.Request) -> web.Response:
    """/account/orders/{number}/cancel: the order, asking to confirm its cancellation; the
    order page's "Cancel order" leads here, so one tap cannot cancel an order by mistake."""
    return await order_page(request, confirm=True)


async def cancel_submit(request: web.Request) -> web.Response:
    """Cancel one's own order while the shop allows it (pending or confirmed); stock goes back."""
    if request.get(PRINCIPAL) is None:  # come back to the order, not to this POST-only URL
        number = quote(request.match_info["number"], safe="")  # a header: no CR, LF, NUL
        raise web.HTTPSeeOther(f"/login?next=/account/orders/{number}")
    principal = require_user(request)
    order = await _customer_order(request, principal.user_id)
    if order is None:
        return await not_found(request, "order")
    try:
        async with transaction(request.config_dict[DB]) as conn:
            await orders.transition(
                conn,
                order.id,
                "cancelled",
                actor="customer",
                actor_id=principal.user_id,
                request_id=request.get(REQUEST_ID),
            )
    except IllegalTransition:
        return await order_page(request, status=409, error=TOO_LATE_TO_CANCEL)
    raise web.HTTPSeeOther(f"/account/orders/{order.number}?cancelled=1")


async def _customer_order(request: web.Request, user_id: int) -> Order | None:
    number = request.match_info["number"].upper()
    if not NUMBER.fullmatch(number):
        return None
    return await _find(request.config_dict[DB].primary, number, user_id)


def add_routes(app: web.Application) -> None:
    """The confirmation page and the account's order pages."""
    router = app.router
    router.add_get("/orders/{number}/thanks", thanks_page, name="order_thanks")
    router.add_get("/account/orders", orders_page, name="account_orders")
    router.add_get("/account/orders/{number}", order_page, name="account_order")
    router.add_get("/account/orders/{number}/cancel", cancel_page)
    router.add_post("/account/orders/{number}/cancel", cancel_submit)
