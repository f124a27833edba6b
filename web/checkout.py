"""Checkout, the request side: what the API and the storefront share to place an order.

It reads top to bottom: validate the card and the address, tokenize the card, then run the
one transaction (storage/checkout.py: lock, take stock, totals, write the order and its events).

The card goes to the payment gateway's `tokenize` and no further; the order keeps the token,
the brand and the last four digits. An Idempotency-Key (the API's header, or the storefront
form's hidden token) is scoped to the customer (or the guest's cart) and bound to a keyed digest
of the request, so a retry returns the same order and the same key with another body is refused.

A guest placing an order through the API is given an order token (an opaque token of
auth.tokens), shown once: the order keeps its digest (storage.order_tokens), and the token, sent
as ORDER_TOKEN_HEADER, lets the app read the order and pay it again. Browsers keep their guest
orders in a signed cookie instead.

Paying again after a decline (`pay_again`, the storefront's order pages and the API's
`POST /orders/{number}/payment`) takes the same road for the new card: its rules, `tokenize`, and
a key scoped to the order and bound to the card's digest (storage/payments.py's transaction).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Counter
from pydantic import SecretStr

from auth.tokens import digest
from domain.payments import decline_message, parse_card
from storage import addresses, payments, transaction, users
from storage.checkout import Idempotency, NewOrder, Placed
from storage.checkout import place_order as place_in_transaction
from storage.database import retrying_transaction
from storage.errors import EmptyCart
from storage.orders import Order, OrderDetail
from storage.payments import NewAttempt, Retried
from web import carts as web_carts
from web.catalog_json import money_json
from web.keys import DB, GATEWAY, PRINCIPAL, REQUEST_ID, SETTINGS

IDEMPOTENCY_KEY_MAX = 200
ORDER_TOKEN_HEADER = "X-Order-Token"  # noqa: S105 - a header's name, not a secret


class InvalidIdempotencyKey(ValueError):
    """An Idempotency-Key that is empty, too long or not printable ASCII."""


@dataclass(frozen=True)
class Checkout:
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


@dataclass(frozen=True)
class NewCard:
    """Another card for an order whose card was declined."""

    card_number: str
    card_expiry: str
    card_cvc: str
    idempotency_key: str | None = None

    def digest(self, secret: bytes, order_number: str) -> bytes:
        """A keyed digest of the request, bound to the order (the number never leaves as
        itself)."""
        body = orjson.dumps([order_number, self.card_number, self.card_expiry, self.card_cvc])
        return hmac.new(secret, b"pay-again\x00" + body, hashlib.sha256).digest()


def check_idempotency_key(key: str | None) -> str | None:
    """The key as given, or None; raises InvalidIdempotencyKey."""
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise InvalidIdempotencyKey(
            f"an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        )
    return key


ORDERS_PLACED = Counter(
    "aioshop_orders_placed_total",
    "Orders placed (not a retry's earlier order), by channel: api (/api/v1/) or store.",
    ["channel"],
)


def channel(request: web.Request) -> str:
    """Where the order came from: "api" or "store" (a label: never anything else)."""
    return "api" if request.path.startswith("/api/") else "store"


async def place_order(
    request: web.Request, checkout: Checkout, *, order_token: str | None = None
) -> Placed:
    """Place the order of the request's cart; a guest's order keeps `order_token`'s digest.

    Raises EmptyCart, OutOfStock, ShippingMethodNotFound, AddressNotFound, InvalidCard,
    IdempotencyKeyReused, MixedCurrencies and ValueError (no address or email for a guest),
    every one of them before anything is written.
    """
    settings = request.config_dict[SETTINGS]
    today = datetime.now(UTC).date()
    card = parse_card(checkout.card_number, checkout.card_expiry, checkout.card_cvc, today=today)
    cart_id = await web_carts.cart_id(request)
    if cart_id is None:
        raise EmptyCart()
    # An empty cart is the transaction's to refuse, after the Idempotency-Key: the cart of a
    # retried request was emptied by the order it is asking for.
    principal = request.get(PRINCIPAL)
    user_id = principal.user_id if principal is not None else None
    address = await _shipping_address(request, checkout, user_id)
    email = checkout.email or (await _account_email(request, user_id))
    payment = await request.config_dict[GATEWAY].tokenize(card)
    new = NewOrder(
        cart_id=cart_id,
        user_id=user_id,
        email=email,
        shipping_address=address,
        shipping_method=checkout.shipping_method,
        payment=payment,
        tax_rate_bps=settings.tax_rate_bps,
        low_stock_threshold=settings.low_stock_threshold,
        request_id=request.get(REQUEST_ID),
        idempotency=_idempotency(checkout, user_id, cart_id, settings.secret_key),
        actor="customer" if user_id is not None else "guest",
        guest_token_hash=(
            digest(order_token) if order_token is not None and user_id is None else None
        ),
    )
    db = request.config_dict[DB]
    placed = await retrying_transaction(db, lambda conn: place_in_transaction(conn, new))
    if placed.created:
        ORDERS_PLACED.labels(channel(request)).inc()
    return placed


async def pay_again(request: web.Request, order: Order, card: NewCard) -> Retried:
    """Start a new capture attempt of `order` (its owner's or its guest's: the caller checked)
    with another card, through the outbox and the capture actor.

    Raises InvalidCard before anything is written, then IdempotencyKeyReused or OrderNotPayable
    (paid, cancelled, or a capture still running). Without a key every request is an attempt of
    its own; a second one while the first is being captured is OrderNotPayable ("processing")."""
    settings = request.config_dict[SETTINGS]
    today = datetime.now(UTC).date()
    parsed = parse_card(card.card_number, card.card_expiry, card.card_cvc, today=today)
    secret = settings.secret_key.get_secret_value().encode()
    new = NewAttempt(
        payment=await request.config_dict[GATEWAY].tokenize(parsed),
        idempotency_key=card.idempotency_key or f"unkeyed-{secrets.token_urlsafe(18)}",
        digest=card.digest(secret, order.number),
        request_id=request.get(REQUEST_ID),
    )
    async with transaction(request.config_dict[DB]) as conn:
        retried = await payments.retry_payment(conn, order.id, new)
    if retried.created:
        PAYMENT_RETRIES.labels(channel(request)).inc()
    return retried


PAYMENT_RETRIES = Counter(
    "aioshop_payment_retries_total",
    "New capture attempts with another card after a decline, by channel: api or store.",
    ["channel"],
)


async def _shipping_address(
    request: web.Request, checkout: Checkout, user_id: int | None
) -> dict[str, str]:
    """The address typed in, or the customer's saved one; raises AddressNotFound."""
    if checkout.address is not None:
        return dict(checkout.address)
    if user_id is None or checkout.address_id is None:
        raise ValueError("a guest gives the address itself")
    saved = await addresses.get(request.config_dict[DB].primary, user_id, checkout.address_id)
    return {k: v for k, v in saved.__dict__.items() if k != "id"}


def _idempotency(
    checkout: Checkout, user_id: int | None, cart_id: int, secret: SecretStr
) -> Idempotency | None:
    """The request's Idempotency-Key, scoped to the customer (or the guest's cart)."""
    if not checkout.idempotency_key:
        return None
    scope = f"user:{user_id}" if user_id is not None else f"cart:{cart_id}"
    digest = checkout.digest(secret.get_secret_value().encode())
    return Idempotency(scope, checkout.idempotency_key, digest)


async def _account_email(request: web.Request, user_id: int | None) -> str:
    if user_id is None:
        raise ValueError("a guest gives an email address")
    return (await users.get(request.config_dict[DB].primary, user_id)).email


def order_json(detail: OrderDetail, locale: str, *, staff: bool = False) -> dict[str, Any]:
    """An order as the API shows it (to staff, also who made each change); `formatted` money in
    the shop's `locale`."""
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
                "unit_price": money_json(line.unit_amount, currency, locale),
                "line_total": money_json(line.line_amount, currency, locale),
            }
            for line in detail.lines
        ],
        "totals": {
            "subtotal": money_json(order.subtotal_amount, currency, locale),
            "shipping": money_json(order.shipping_amount, currency, locale),
            "tax": money_json(order.tax_amount, currency, locale),
            "total": money_json(order.total_amount, currency, locale),
            "tax_rate_bps": order.tax_rate_bps,
        },
        "shipping_method": order.shipping_method,
        "shipping_address": order.shipping_address,
        "tracking_number": order.tracking_number,
        "payment": payment_json(detail),
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


def payment_json(detail: OrderDetail) -> dict[str, Any] | None:
    """The order's payment: its card, status and, while the order waits for another card after
    a decline, why it was declined in plain words and where to pay again."""
    payment = detail.payment
    if payment is None:
        return None
    declined = payment.status == "declined"
    awaiting = declined and detail.order.status == "pending"
    return {
        "brand": payment.card_brand,
        "last4": payment.card_last4,
        "status": payment.status,
        "attempt": payment.attempt,
        "decline_code": payment.decline_code if declined else None,
        "decline_reason": decline_message(payment.decline_code) if declined else None,
        "retry_url": f"/api/v1/orders/{detail.order.number}/payment" if awaiting else None,
    }
