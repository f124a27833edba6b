"""/api/v1/checkout and /api/v1/orders: placing orders, the customer's orders, paying again
with another card after a decline, staff moves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from auth.tokens import digest, new_opaque_token
from domain.identifiers import SLUG_PATTERN
from domain.orders import Status
from storage import order_tokens, orders, transaction
from storage.errors import OrderNotFound
from storage.orders import Order
from web import carts as web_carts
from web.api import schemas
from web.api.routing import Operation, principal_of
from web.bodies import AddressIn
from web.catalog_json import money_json
from web.checkout import (
    ORDER_TOKEN_HEADER,
    Checkout,
    InvalidIdempotencyKey,
    NewCard,
    check_idempotency_key,
    order_json,
    pay_again,
    place_order,
)
from web.fields import SINGLE_LINE, Email, Id, Line100, Note, one_of
from web.keys import DB, PRINCIPAL, REQUEST_ID, SETTINGS
from web.params import InvalidParameters, keyset, keyset_text, opaque, path_order_number
from web.problems import InvalidInput

IDEMPOTENCY_HEADER = "Idempotency-Key"
ORDER_TOKEN_MAX = 100
PAGE_MAX = 50
BEFORE_PARAMETER = {
    "name": "before",
    "in": "query",
    "description": "next_before of the previous page",
    "schema": {"type": "string"},
}


class CardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: Annotated[str, StringConstraints(min_length=1, max_length=30), SINGLE_LINE]
    expiry: Annotated[str, StringConstraints(min_length=1, max_length=7), SINGLE_LINE]  # MM/YY
    cvc: Annotated[str, StringConstraints(min_length=1, max_length=4), SINGLE_LINE]


class CheckoutBody(BaseModel):
    """A guest gives an email and an address; a customer may use a saved address instead."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=one_of("shipping_address", "shipping_address_id")
    )
    email: Email | None = None
    shipping_address_id: Id | None = None
    shipping_address: AddressIn | None = None
    shipping_method: Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=50)]
    card: CardIn

    @model_validator(mode="after")
    def _one_address(self) -> CheckoutBody:
        if (self.shipping_address is None) == (self.shipping_address_id is None):
            raise ValueError("give either shipping_address or shipping_address_id")
        return self


class NewCardBody(BaseModel):
    """Another card for an order whose card was declined."""

    model_config = ConfigDict(extra="forbid")
    card: CardIn


class Shipment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tracking_number: Line100


class Cancellation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: Note = ""


async def checkout(request: web.Request, body: CheckoutBody) -> web.StreamResponse:
    """Place an order from the cart; send an Idempotency-Key so a retry cannot order twice.

    409 when the stock cannot cover the cart (naming each SKU) or the cart is empty; 422 for a
    bad card, address or shipping method. A retry with the same key answers with the same order
    (`Idempotent-Replayed: true`); the same key with another body is a 422.
    """
    try:
        key = check_idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    except InvalidIdempotencyKey as exc:
        raise InvalidInput({IDEMPOTENCY_HEADER: str(exc)}) from None
    principal = request.get(PRINCIPAL)
    errors: dict[str, str] = {}
    if principal is None and body.email is None:
        errors["email"] = "a guest checkout needs an email address"
    if principal is None and body.shipping_address_id is not None:
        errors["shipping_address_id"] = "sign in to use a saved address"
    if errors:
        raise InvalidInput(errors)
    checkout = Checkout(
        email=str(body.email) if body.email is not None else None,
        address_id=body.shipping_address_id,
        address=body.shipping_address.model_dump() if body.shipping_address else None,
        shipping_method=body.shipping_method,
        card_number=body.card.number,
        card_expiry=body.card.expiry,
        card_cvc=body.card.cvc,
        idempotency_key=key,
    )
    token = new_opaque_token() if principal is None else None
    placed = await place_order(request, checkout, order_token=token)
    detail = placed.detail or await orders.detail(request.config_dict[DB].primary, placed.order)
    headers = {"Location": f"/api/v1/orders/{placed.order.number}"}
    if not placed.created:
        headers["Idempotent-Replayed"] = "true"
    answer = order_json(detail, _locale(request)) | {"order_token": token}
    response = web.json_response(answer, status=201, headers=headers)
    return web_carts.finish(request, response)


def _before(request: web.Request) -> tuple[datetime, int] | None:
    raw = request.query.get("before")
    if raw is None:
        return None
    try:
        return keyset(raw)
    except ValueError:
        raise InvalidParameters({"before": "not a position this list gave"}) from None


def _page(items: list[Order], limit: int) -> str | None:
    if len(items) < limit:
        return None
    last = items[-1]
    return keyset_text(last.placed_at, last.id)


def _locale(request: web.Request) -> str:
    return request.config_dict[SETTINGS].shop_locale


def _summary(order: Order, locale: str) -> dict[str, object]:
    return {
        "number": order.number,
        "status": order.status,
        "placed_at": order.placed_at.isoformat(),
        "total": money_json(order.total_amount, order.currency, locale),
        "url": f"/api/v1/orders/{order.number}",
    }


async def list_my_orders(request: web.Request) -> web.Response:
    """The signed-in customer's orders, newest first (`before` pages on)."""
    user_id = principal_of(request).user_id
    found = await orders.list_for_customer(
        request.config_dict[DB].primary, user_id, limit=PAGE_MAX, before=_before(request)
    )
    return web.json_response(
        {
            "items": [_summary(o, _locale(request)) for o in found],
            "next_before": _page(found, PAGE_MAX),
        }
    )


async def _my_order(request: web.Request) -> Order:
    """The path's order, for the holder of its guest order token (X-Order-Token) or else for its
    signed-in owner. Raises OrderNotFound (a 404 problem) for anyone else, a wrong token or none:
    the answer never says whether the number exists."""
    db = request.config_dict[DB]
    number = path_order_number(request)
    if ORDER_TOKEN_HEADER in request.headers:
        token = opaque(request.headers[ORDER_TOKEN_HEADER], max_length=ORDER_TOKEN_MAX)
        if token is None:
            raise OrderNotFound(number)
        return await order_tokens.find(db.primary, number, digest(token))
    principal = request.get(PRINCIPAL)
    if principal is None:
        raise OrderNotFound(number)
    return await orders.find(db.primary, number, user_id=principal.user_id)


async def get_my_order(request: web.Request) -> web.Response:
    """One of the customer's orders, or a guest's with its `X-Order-Token`; another customer's
    number, a wrong token or none is a 404."""
    order = await _my_order(request)
    detail = await orders.detail(request.config_dict[DB].primary, order)
    return web.json_response(order_json(detail, _locale(request)))


async def cancel_my_order(request: web.Request, body: Cancellation) -> web.Response:
    """Cancel one's own order while it is pending or confirmed (409 after that)."""
    principal = principal_of(request)
    db = request.config_dict[DB]
    order = await orders.find(db.primary, path_order_number(request), user_id=principal.user_id)
    return await _move(request, order, "cancelled", actor="customer", note=body.note)


async def pay_my_order(request: web.Request, body: NewCardBody) -> web.Response:
    """Pay one's own order (a guest's: with its `X-Order-Token`) with another card after its
    card was declined (the order's `payment.retry_url` while it waits for one): a new capture
    attempt, answered 202 with the order, its payment pending again; poll the order for the
    outcome. 404 for another customer's order, a wrong token or none; 409 when the order is
    paid, cancelled or its last capture is still running; 422 for a bad card.
    """
    try:
        key = check_idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    except InvalidIdempotencyKey as exc:
        raise InvalidInput({IDEMPOTENCY_HEADER: str(exc)}) from None
    db = request.config_dict[DB]
    order = await _my_order(request)
    card = NewCard(body.card.number, body.card.expiry, body.card.cvc, idempotency_key=key)
    retried = await pay_again(request, order, card)
    detail = await orders.detail(db.primary, retried.order)  # primary: the attempt just written
    headers = {"Location": f"/api/v1/orders/{order.number}"}
    if not retried.created:
        headers["Idempotent-Replayed"] = "true"
    return web.json_response(order_json(detail, _locale(request)), status=202, headers=headers)


async def _move(
    request: web.Request,
    order: Order,
    to: Status,
    *,
    actor: Literal["customer", "staff"],
    note: str = "",
    tracking_number: str | None = None,
) -> web.Response:
    db = request.config_dict[DB]
    async with transaction(db) as conn:
        moved = await orders.transition(
            conn,
            order.id,
            to,
            actor=actor,
            actor_id=principal_of(request).user_id,
            note=note,
            tracking_number=tracking_number,
            request_id=request.get(REQUEST_ID),
        )
    detail = await orders.detail(db.primary, moved)
    return web.json_response(order_json(detail, _locale(request), staff=actor == "staff"))


async def _staff_order(request: web.Request) -> Order:
    return await orders.find(
        request.config_dict[DB].primary, path_order_number(request), user_id=None
    )


async def ship_order(request: web.Request, body: Shipment) -> web.Response:
    """Staff: a confirmed order leaves with a tracking number."""
    order = await _staff_order(request)
    return await _move(
        request, order, "shipped", actor="staff", tracking_number=body.tracking_number
    )


async def deliver_order(request: web.Request) -> web.Response:
    """Staff: a shipped order arrived."""
    return await _move(request, await _staff_order(request), "delivered", actor="staff")


async def staff_cancel_order(request: web.Request, body: Cancellation) -> web.Response:
    """Staff: cancel a pending or confirmed order; its stock goes back."""
    order = await _staff_order(request)
    return await _move(request, order, "cancelled", actor="staff", note=body.note)


OPERATIONS = (
    Operation(
        "POST",
        "/checkout",
        checkout,
        "Place an order",
        body=CheckoutBody,
        response=schemas.PlacedOrder,
        status=201,
        tag="checkout",
        problems=(404, 409),
        request_headers=(IDEMPOTENCY_HEADER,),
        response_headers=("Location", "Idempotent-Replayed"),
        cart_token=True,
        example={
            "email": "ada@example.com",
            "shipping_address": {
                "full_name": "Ada Lovelace",
                "line1": "12 St James's Square",
                "city": "London",
                "postal_code": "SW1Y 4JH",
                "country": "GB",
            },
            "shipping_method": "standard",
            "card": {"number": "4242424242424242", "expiry": "12/30", "cvc": "123"},
        },
    ),
    Operation(
        "GET",
        "/orders",
        list_my_orders,
        "My orders",
        auth="user",
        response=schemas.OrderPage,
        tag="orders",
        parameters=(BEFORE_PARAMETER,),
    ),
    Operation(
        "GET",
        "/orders/{number}",
        get_my_order,
        "One of my orders",
        response=schemas.Order,
        tag="orders",
        order_token=True,
    ),
    Operation(
        "POST",
        "/orders/{number}/payment",
        pay_my_order,
        "Pay my order with another card",
        order_token=True,
        body=NewCardBody,
        response=schemas.Order,
        status=202,
        tag="orders",
        problems=(404, 409),
        request_headers=(IDEMPOTENCY_HEADER,),
        response_headers=("Location", "Idempotent-Replayed"),
    ),
    Operation(
        "POST",
        "/orders/{number}/cancel",
        cancel_my_order,
        "Cancel my order",
        auth="user",
        body=Cancellation,
        response=schemas.Order,
        tag="orders",
        problems=(409,),
    ),
    Operation(
        "POST",
        "/staff/orders/{number}/ship",
        ship_order,
        "Ship an order",
        auth="staff",
        body=Shipment,
        response=schemas.Order,
        tag="staff",
        problems=(409,),
    ),
    Operation(
        "POST",
        "/staff/orders/{number}/deliver",
        deliver_order,
        "Mark an order delivered",
        auth="staff",
        response=schemas.Order,
        tag="staff",
        problems=(409,),
    ),
    Operation(
        "POST",
        "/staff/orders/{number}/cancel",
        staff_cancel_order,
        "Cancel an order",
        auth="staff",
        body=Cancellation,
        response=schemas.Order,
        tag="staff",
        problems=(409,),
    ),
)
