"""Storefront order pages: the payment's outcome after checkout, and the customer's orders.

After "Place order" the shopper lands on the order's payment page (`/orders/{number}/thanks`):
"waiting for your payment" while the capture runs (static/js/checkout.js asks for the page
again every two seconds; without JavaScript, a "Check again" link does the same), then "thank
you" once paid, or "Payment declined: <why>" with a form to pay with another card
(`POST /orders/{number}/pay`: web.checkout.pay_again, its hidden token the attempt's
Idempotency-Key, so a double submit is one attempt). The order keeps its items (stock held)
until UNPAID_ORDER_MINUTES after it was placed. The cart was emptied when the order was placed
and stays so: the order, not the cart, is what the shopper pays again; a second order from a
refilled cart would take the stock twice.

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
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from domain.checkout import address_lines
from domain.money import format_money
from domain.orders import IllegalTransition, can_cancel
from domain.payments import InvalidCard, decline_message
from storage import Executor, catalog_reads, order_payments, orders, transaction
from storage.catalog_reads import Thumbnail
from storage.errors import IdempotencyKeyReused, OrderNotFound, OrderNotPayable
from storage.orders import Order, OrderDetail
from web.catalog_json import thumbnail_json
from web.checkout import InvalidIdempotencyKey, NewCard, check_idempotency_key, pay_again
from web.cookies import cookie_name, is_secure
from web.forms import Form
from web.keys import DB, PRINCIPAL, REQUEST_ID, SETTINGS
from web.params import keyset, keyset_text, opaque, posted_form
from web.render import page
from web.store.account import require_user
from web.store.catalog import not_found

GUEST_ORDERS = "aioshop-orders"
GUEST_ORDERS_MAX = 10
GUEST_ORDERS_MAX_AGE = 30 * 24 * 3600
NUMBER = re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$")
PAGE_SIZE = 20
TOO_LATE_TO_CANCEL = "This order can no longer be cancelled: it has left the warehouse or ended."

CARD_FIELDS = ("card_number", "card_expiry", "card_cvc")
CARD_LABELS = {
    "card_number": "Card number",
    "card_expiry": "Expiry date",
    "card_cvc": "Security code",
}
CARD_MISSING = {
    "card_number": "Enter the card number.",
    "card_expiry": "Enter the expiry date as MM/YY.",
    "card_cvc": "Enter the 3 or 4 digit security code.",
}
PAGE_EXPIRED = "This page has expired. Enter the card again."
KEY_REUSED = "This page already sent another card. Check the order's payment below, then try again."
STATUS_LABELS = {
    "pending": "Payment processing",
    "confirmed": "Confirmed",
    "shipped": "Shipped",
    "delivered": "Delivered",
    "cancelled": "Cancelled",
}
# A pending order whose card was declined: it waits for another card (the order page's form).
DECLINED_LABEL = "Payment declined — pay with another card"
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
    note: str  # why it reached its status, when the shop said ("not paid within 30 minutes")
    history: list[StepView]
    can_cancel: bool
    # "waiting" (paying), "declined" (waiting for another card), else the order's status.
    state: str = ""
    decline_reason: str | None = None  # "Your card was declined by its bank."
    held_until: datetime | None = None  # when a declined order is cancelled unless paid


async def order_images(executor: Executor, detail: OrderDetail) -> dict[int, Thumbnail]:
    """Each line's picture by line number (see storage.catalog_reads.line_images)."""
    lines = [(line.line, line.variant_id, line.product_id) for line in detail.lines]
    return await catalog_reads.line_images(executor, lines)


def order_view(
    detail: OrderDetail,
    locale: str,
    images: Mapping[int, Thumbnail] | None = None,
    unpaid_order_minutes: int = 30,
) -> OrderView:
    """What the payment page and the account's order page show of `detail` (`images`: each
    line's picture by line number)."""
    order = detail.order
    images = images or {}

    def money(amount: int) -> str:
        return format_money(amount, order.currency, locale)

    payment = detail.payment
    latest = [t for t in detail.transitions if t.to_status == order.status]
    declined = order.status == "pending" and payment is not None and payment.awaiting_customer
    state: str = order.status
    if order.status == "pending":
        state = "declined" if declined else "waiting"
    return OrderView(
        number=order.number,
        status=order.status,
        status_label=DECLINED_LABEL if declined else STATUS_LABELS.get(order.status, order.status),
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
        state=state,
        decline_reason=decline_message(payment.decline_code) if declined and payment else None,
        held_until=order.placed_at + timedelta(minutes=unpaid_order_minutes) if declined else None,
    )


async def view_of(request: web.Request, detail: OrderDetail) -> OrderView:
    """`order_view` with the lines' pictures and this shop's unpaid-order expiry."""
    images = await order_images(request.config_dict[DB].replica, detail)
    settings = request.config_dict[SETTINGS]
    return order_view(detail, settings.shop_locale, images, settings.unpaid_order_minutes)


def _thumbnail(image: Thumbnail | None, name: str) -> dict[str, Any] | None:
    return None if image is None else thumbnail_json(image, name)


# -- the confirmation --------------------------------------------------------------------------


async def thanks_page(
    request: web.Request,
    *,
    status: int = 200,
    form: Form[Any] | None = None,
    error: str | None = None,
) -> web.Response:
    """/orders/{number}/thanks: the order's payment as it stands (waiting, declined with a form
    to pay with another card, paid, cancelled), for its owner or the guest's browser."""
    order = await _payable_by_shopper(request)
    if order is None:
        return await not_found(request, "order")
    db = request.config_dict[DB]
    view = await view_of(request, await orders.detail(db.primary, order))  # primary: just written
    principal = request.get(PRINCIPAL)
    context = {
        "order": view,
        "signed_in": order.user_id is not None and principal is not None,
        "pay_form": form or new_card_form(),
        "pay_error": error,
    }
    return await page(request, "store/thanks.html", context, status=status)


def new_card_form() -> Form[Any]:
    """The empty "pay with another card" form, with a new attempt's token."""
    return Form(values={"idempotency_key": secrets.token_urlsafe(24)})


async def pay_submit(request: web.Request) -> web.Response:
    """POST /orders/{number}/pay: pay a declined order with another card (its owner, or the
    browser that placed it as a guest); back to the payment page, which waits for the outcome.
    """
    order = await _payable_by_shopper(request)
    if order is None:
        return await not_found(request, "order")
    posted = await posted_form(request)
    values = {
        name: str(posted.get(name, "")).strip()[:300] for name in (*CARD_FIELDS, "idempotency_key")
    }
    kept = {"idempotency_key": values["idempotency_key"], "card_expiry": values["card_expiry"]}
    form: Form[Any] = Form(values=kept)
    try:
        key = check_idempotency_key(values["idempotency_key"] or None)
    except InvalidIdempotencyKey:
        key = None
    if key is None:
        form.values["idempotency_key"] = secrets.token_urlsafe(24)
        return await thanks_page(request, status=422, form=form.fail("form", PAGE_EXPIRED))
    try:
        card = NewCard(
            values["card_number"], values["card_expiry"], values["card_cvc"], idempotency_key=key
        )
        await pay_again(request, order, card)
    except InvalidCard as exc:
        for name, message in exc.errors.items():
            form.fail(name, CARD_MISSING[name] if not values.get(name) else message)
        return await thanks_page(request, status=422, form=form)
    except OrderNotPayable as exc:
        return await thanks_page(request, status=409, error=str(exc))
    except IdempotencyKeyReused:
        return await thanks_page(request, status=409, error=KEY_REUSED)
    raise web.HTTPSeeOther(f"/orders/{order.number}/thanks")


async def _payable_by_shopper(request: web.Request) -> Order | None:
    """The order of the path, if the request's shopper may see and pay it: its signed-in
    owner, or the browser that placed it as a guest (its signed cookie). Read on the primary:
    the order, or its payment, changed a moment ago."""
    number = request.match_info["number"].upper()
    if not NUMBER.fullmatch(number):
        return None
    db = request.config_dict[DB]
    principal = request.get(PRINCIPAL)
    order: Order | None = None
    if principal is not None:
        order = await _find(db.primary, number, principal.user_id)
    if order is None and number in guest_orders(request):
        order = await _find(db.primary, number, None)
    return order


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
    declined = await order_payments.awaiting_card(
        request.config_dict[DB].primary, [o.id for o in found]
    )
    locale = request.config_dict[SETTINGS].shop_locale
    rows = [
        {
            "number": o.number,
            "placed_at": o.placed_at,
            # A declined order's row goes to its "Pay with another card" form.
            "status": "declined" if o.id in declined else o.status,
            "status_label": (
                DECLINED_LABEL if o.id in declined else STATUS_LABELS.get(o.status, o.status)
            ),
            "url": f"/account/orders/{o.number}" + ("#pay" if o.id in declined else ""),
            "total": format_money(o.total_amount, o.currency, locale),
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
    view = await view_of(request, await orders.detail(db.primary, order))
    if confirm and not view.can_cancel:
        error = TOO_LATE_TO_CANCEL
    context = {
        "order": view,
        "error": error,
        "cancelled": request.query.get("cancelled") == "1",
        "confirm_cancel": confirm,
        "pay_form": new_card_form(),
        "pay_error": None,
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
    router.add_post("/orders/{number}/pay", pay_submit, name="order_pay")
    router.add_get("/account/orders", orders_page, name="account_orders")
    router.add_get("/account/orders/{number}", order_page, name="account_order")
    router.add_get("/account/orders/{number}/cancel", cancel_page)
    router.add_post("/account/orders/{number}/cancel", cancel_submit)
