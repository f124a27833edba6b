"""Placing an order from the request's cart: what the API and the storefront checkout share.

The card goes to the payment gateway's `tokenize` and no further; the order keeps the token,
the brand and the last four digits. An Idempotency-Key (the API's header, or the storefront
form's hidden token) is scoped to the customer (or the guest's cart) and bound to a keyed digest
of the request, so a retry returns the same order and the same key with another body is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from domain.payments import parse_card
from storage import addresses, users
from storage.database import retrying_transaction
from storage.errors import EmptyCart
from storage.orders import Checkout, Idempotency, OrderDetail, Placed, place
from web import carts as web_carts
from web.catalog_json import money_json
from web.keys import DB, GATEWAY, PRINCIPAL, REQUEST_ID, SETTINGS

IDEMPOTENCY_KEY_MAX = 200


class InvalidIdempotencyKey(ValueError):
    """An Idempotency-Key that is empty, too long or not printable ASCII."""


@dataclass(frozen=True)
class CheckoutRequest:
    """What a shopper asks for; `address` is a new address, else `address_id` a saved one."""

    email: str | None
    address_id: int | None
    address: dict[str, str] | None
    shipping_method: str
    card_number: str
    card_expiry: str
    card_cvc: str
    idempotency_key: str | None = None

    def digest(self, secret: bytes) -> bytes:
        """A keyed digest of the request (the card number never leaves as itself)."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        fields.pop("idempotency_key")
        body = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        return hmac.new(secret, body, hashlib.sha256).digest()


def check_idempotency_key(key: str | None) -> str | None:
    """The key as given, or None; raises InvalidIdempotencyKey."""
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise InvalidIdempotencyKey(
            f"an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        )
    return key


async def place_order(request: web.Request, wanted: CheckoutRequest) -> Placed:
    """Place the order of the request's cart.

    Raises EmptyCart, OutOfStock, ShippingMethodNotFound, AddressNotFound, InvalidCard,
    IdempotencyKeyReused, MixedCurrencies and ValueError (no address or email for a guest),
    every one of them before anything is written.
    """
    settings = request.config_dict[SETTINGS]
    db = request.config_dict[DB]
    card = parse_card(
        wanted.card_number, wanted.card_expiry, wanted.card_cvc, today=datetime.now(UTC).date()
    )
    cart_id = await web_carts.cart_id(request)
    if cart_id is None:
        raise EmptyCart()
    # An empty cart is storage.orders.place's to refuse, after the Idempotency-Key: the cart
    # of a retried request was emptied by the order it is asking for.
    principal = request.get(PRINCIPAL)
    user_id = principal.user_id if principal is not None else None
    scope = f"user:{user_id}" if user_id is not None else f"cart:{cart_id}"
    if wanted.address is not None:
        address = dict(wanted.address)
    else:
        if user_id is None or wanted.address_id is None:
            raise ValueError("a guest gives the address itself")
        saved = await addresses.get(db.primary, user_id, wanted.address_id)
        address = {k: v for k, v in saved.__dict__.items() if k != "id"}
    email = wanted.email or (await _account_email(request, user_id))
    payment = await request.config_dict[GATEWAY].tokenize(card)
    key = wanted.idempotency_key
    secret = settings.secret_key.get_secret_value().encode()
    checkout = Checkout(
        cart_id=cart_id,
        user_id=user_id,
        email=email,
        shipping_address=address,
        shipping_method=wanted.shipping_method,
        payment=payment,
        tax_rate_bps=settings.tax_rate_bps,
        request_id=request.get(REQUEST_ID),
        idempotency=Idempotency(scope, key, wanted.digest(secret)) if key else None,
        actor="customer" if user_id is not None else "guest",
    )
    return await retrying_transaction(db, lambda conn: place(conn, checkout))


async def _account_email(request: web.Request, user_id: int | None) -> str:
    if user_id is None:
        raise ValueError("a guest gives an email address")
    return (await users.get(request.config_dict[DB].primary, user_id)).email


def order_json(detail: OrderDetail, *, staff: bool = False) -> dict[str, Any]:
    """An order as the API shows it (to staff, also who made each change)."""
    order = detail.order
    currency = order.currency
    body: dict[str, Any] = {
        "number": order.number,
        "status": order.status,
        "placed_at": order.placed_at.isoformat(),
        "email": order.email,
        "lines": [
            {
                "sku": line.sku,
                "name": line.name,
                "quantity": line.quantity,
                "unit_price": money_json(line.unit_amount, currency),
                "line_total": money_json(line.line_amount, currency),
            }
            for line in detail.lines
        ],
        "totals": {
            "subtotal": money_json(order.subtotal_amount, currency),
            "shipping": money_json(order.shipping_amount, currency),
            "tax": money_json(order.tax_amount, currency),
            "total": money_json(order.total_amount, currency),
            "tax_rate_bps": order.tax_rate_bps,
        },
        "shipping_method": order.shipping_method,
        "shipping_address": order.shipping_address,
        "tracking_number": order.tracking_number,
        "payment": {
            "brand": detail.payment.card_brand,
            "last4": detail.payment.card_last4,
            "status": detail.payment.status,
        }
        if detail.payment is not None
        else None,
        "history": [
            {
                "from": t.from_status,
                "to": t.to_status,
                "at": t.created_at.isoformat(),
                "note": t.note,
                **({"by": t.actor_email or t.actor} if staff else {}),
            }
            for t in detail.transitions
        ],
        "url": f"/api/v1/orders/{order.number}",
    }
    return body
