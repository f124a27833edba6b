"""The cart of a request, for the API and the storefront alike, and its JSON shape.

A signed-in customer's cart is theirs (one per user). A guest's cart is found by a token: the
`aioshop_cart` cookie (HttpOnly) for browsers, the `X-Cart-Token` header for apps (the API
returns the token once, as `cart_token`, when it makes the cart). Only the token's digest is
stored. When a request carries both a signed-in user and a guest token (the first request after
signing in), the guest cart is merged into the user's (quantities added, capped at the stock)
and the cookie is dropped: a shopper who signs up during checkout keeps what they picked.

Cart reads and writes use the primary: the cart decides what is ordered.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from auth.tokens import digest, new_opaque_token
from domain.checkout import Line as TotalsLine
from domain.checkout import MixedCurrencies, Totals, totals
from domain.money import Money
from storage import carts, transaction
from storage.carts import CartLine
from storage.database import Executor
from storage.orders import ShippingMethod
from web.catalog_json import money_json
from web.keys import DB, MIN_LSN, PRINCIPAL, SETTINGS
from web.params import opaque

CART_COOKIE = "aioshop_cart"
CART_HEADER = "X-Cart-Token"
CART_COOKIE_MAX_AGE = 30 * 24 * 3600
NEW_CART_TOKEN = web.RequestKey("new_cart_token", str)
FORGET_CART_TOKEN = web.RequestKey("forget_cart_token", bool)


@dataclass(frozen=True)
class Cart:
    id: int | None  # None: no cart yet (an empty one)
    user_id: int | None
    lines: list[CartLine]

    @property
    def count(self) -> int:
        return sum(line.quantity for line in self.lines)


def _token(request: web.Request) -> str | None:
    token = (
        request.get(NEW_CART_TOKEN)
        or request.headers.get(CART_HEADER)
        or request.cookies.get(CART_COOKIE)
    )
    return opaque(token, max_length=100)


async def cart_id(request: web.Request, conn: asyncpg.Connection | None = None) -> int | None:
    """The request's cart id, or None when it has none. Merges a guest cart into a signed-in
    user's (the first cart access after signing in).

    With `conn` (the caller's transaction), everything runs on that connection: a unit of work
    holding a connection never waits for a second one of the same pool.
    """
    db = request.config_dict[DB]
    executor: Executor = conn if conn is not None else db.primary
    principal = request.get(PRINCIPAL)
    token = _token(request)
    if principal is not None:
        if token is None:
            return await carts.find(executor, user_id=principal.user_id)
        if conn is not None:
            merged = await carts.merge_guest_cart(conn, digest(token), principal.user_id)
        else:
            async with transaction(db) as own:
                merged = await carts.merge_guest_cart(own, digest(token), principal.user_id)
        request[FORGET_CART_TOKEN] = True
        return merged
    if token is None:
        return None
    return await carts.find(executor, token_hash=digest(token))


async def ensure_cart(conn: asyncpg.Connection, request: web.Request) -> int:
    """The request's cart id, made in the caller's transaction if there is none (a guest gets a
    new token, which `finish` sends once the transaction committed and the response is ready).
    Reads through `conn` only."""
    found = await cart_id(request, conn)
    if found is not None:
        return found
    principal = request.get(PRINCIPAL)
    if principal is not None:
        return await carts.create_for_user(conn, principal.user_id)
    token = new_opaque_token()
    made = await carts.create_for_guest(conn, digest(token))
    request[NEW_CART_TOKEN] = token
    return made


async def current(request: web.Request) -> Cart:
    """The request's cart with its lines (an empty cart when it has none)."""
    found = await cart_id(request)
    principal = request.get(PRINCIPAL)
    user_id = principal.user_id if principal is not None else None
    if found is None:
        return Cart(None, user_id, [])
    return Cart(found, user_id, await carts.lines(request.config_dict[DB].primary, found))


class UnitCounts:
    """Signed-in users' cart unit counts (the header's), kept by this process for `seconds`.

    Counting was a query (two round trips with the pool's reset) on every page a signed-in
    shopper opened. A count is kept with the WAL position it was read at and used only by
    requests whose own last write (read-your-writes, MIN_LSN) is not later: a shopper's own
    cart change shows on their next page at once; a change made in another browser shows
    within `seconds`.
    """

    def __init__(self, seconds: float = 2.0, size: int = 10_000) -> None:
        self.seconds = seconds
        self.size = size
        self._known: OrderedDict[int, tuple[int, int, float]] = OrderedDict()

    def get(self, user_id: int, min_lsn: int | None) -> int | None:
        """The kept count, unless it is too old for this request (None: count again)."""
        known = self._known.get(user_id)
        if known is None:
            return None
        count, lsn, read_at = known
        if time.monotonic() - read_at >= self.seconds or (min_lsn is not None and min_lsn > lsn):
            return None
        return count

    def put(self, user_id: int, count: int, lsn: int) -> None:
        self._known[user_id] = (count, lsn, time.monotonic())
        self._known.move_to_end(user_id)
        if len(self._known) > self.size:
            self._known.popitem(last=False)


UNIT_COUNTS = web.AppKey("cart_unit_counts", UnitCounts)


async def unit_count(request: web.Request) -> int:
    """How many units the request's cart holds (the header's count): one query, except on the
    first request after signing in with a guest cart, which merges it first (as `cart_id`).
    A signed-in shopper's count may come from this process's UnitCounts."""
    principal = request.get(PRINCIPAL)
    token = _token(request)
    if principal is not None and token is not None:
        return (await current(request)).count
    primary = request.config_dict[DB].primary
    if principal is not None:
        counts = request.config_dict[UNIT_COUNTS]
        known = counts.get(principal.user_id, request.get(MIN_LSN))
        if known is not None:
            return known
        count, lsn = await carts.count_user_units_at(primary, principal.user_id)
        counts.put(principal.user_id, count, lsn)
        return count
    if token is not None:
        return await carts.count_units(primary, token_hash=digest(token))
    return 0


def finish(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Set the cookie of a cart made by this request, or drop a merged guest cart's."""
    token = request.get(NEW_CART_TOKEN)
    if token is not None:
        response.set_cookie(
            CART_COOKIE,
            token,
            max_age=CART_COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=request.secure,
            path="/",
        )
    elif request.get(FORGET_CART_TOKEN) and CART_COOKIE in request.cookies:
        response.del_cookie(CART_COOKIE, path="/")
    return response


def cart_totals(cart: Cart, request: web.Request, shipping: ShippingMethod | None) -> Totals | None:
    """The cart's totals by domain.checkout (None when it is empty or mixes currencies)."""
    if not cart.lines:
        return None
    lines = [TotalsLine(Money(ln.price_amount, ln.currency), ln.quantity) for ln in cart.lines]
    try:
        return totals(
            lines,
            shipping.rate if shipping is not None else None,
            tax_rate_bps=request.config_dict[SETTINGS].tax_rate_bps,
        )
    except MixedCurrencies:
        return None


def line_problem(line: CartLine) -> str | None:
    """Why a line cannot be ordered as it is, for people (None when it can)."""
    if not line.is_published or line.stock_on_hand == 0:
        return "Sold out"
    if line.quantity > line.stock_on_hand:
        return f"Only {line.stock_on_hand} left"
    return None


def cart_json(
    cart: Cart, request: web.Request, shipping: ShippingMethod | None = None
) -> dict[str, Any]:
    sums = cart_totals(cart, request, shipping)
    locale = request.config_dict[SETTINGS].shop_locale
    body: dict[str, Any] = {
        "items": [
            {
                "variant_id": line.variant_id,
                "sku": line.sku,
                "product": {
                    "slug": line.product_slug,
                    "name": line.product_name,
                    "url": f"/products/{line.product_slug}",
                },
                "variant_name": line.variant_name,
                "attributes": line.attributes,
                "unit_price": money_json(line.price_amount, line.currency, locale),
                "quantity": line.quantity,
                "line_total": money_json(line.price_amount * line.quantity, line.currency, locale),
                "stock": line.stock_on_hand,
                "problem": line_problem(line),
            }
            for line in cart.lines
        ],
        "count": cart.count,
        "totals": totals_json(sums, locale) if sums is not None else None,
    }
    token = request.get(NEW_CART_TOKEN)
    if token is not None:
        body["cart_token"] = token
    return body


def totals_json(sums: Totals, locale: str) -> dict[str, Any]:
    return {
        "subtotal": money_json(sums.subtotal.amount, sums.subtotal.currency, locale),
        "shipping": money_json(sums.shipping.amount, sums.shipping.currency, locale),
        "tax": money_json(sums.tax.amount, sums.tax.currency, locale),
        "total": money_json(sums.total.amount, sums.total.currency, locale),
        "tax_rate_bps": sums.tax_rate_bps,
    }
