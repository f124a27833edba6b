"""Storefront checkout: one page (contact, address, shipping, payment, review) and one POST.

The page works without JavaScript: "Update totals" posts the form back (action=update) and the
page comes again with the totals for the chosen shipping method; static/js/checkout.js swaps the
totals in place instead and disables "Place order" after the first click. The page carries an
idempotency token made when it is rendered: a second submit of the same page (a double click,
a retry after a lost answer) returns the order the first one made, never a second order.

A refused order comes back with every message beside its field (422), or the SKUs the stock
cannot cover (409), with what was typed kept except the card number and the security code.
An order placed goes to its confirmation (303); a guest's browser remembers its number
(web.store.orders), so the confirmation can be shown to it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from pydantic import ValidationError

from domain.checkout import MixedCurrencies, Totals
from domain.emails import InvalidEmail, normalize_email
from domain.money import format_money
from domain.payments import InvalidCard, parse_card
from storage import addresses, orders, transaction, users
from storage.addresses import EDITABLE
from storage.errors import (
    AddressNotFound,
    EmptyCart,
    IdempotencyKeyReused,
    OutOfStock,
    ShippingMethodNotFound,
)
from storage.orders import ShippingMethod
from web import carts as web_carts
from web.bodies import AddressIn, field_errors
from web.carts import Cart
from web.checkout import (
    Checkout,
    InvalidIdempotencyKey,
    check_idempotency_key,
    place_order,
)
from web.fields import BIGINT_MAX, whole_number
from web.forms import Form
from web.keys import DB, PRINCIPAL, SETTINGS
from web.params import posted_form
from web.render import page
from web.store.cart import CART_COUNT, attribute_labels, cart_images, cart_rows
from web.store.orders import remember_guest_order

log = structlog.get_logger(__name__)

CARD_FIELDS = ("card_number", "card_expiry", "card_cvc")
FIELDS = (
    "email",
    "address_id",
    *EDITABLE,
    "save_address",
    "shipping_method",
    *CARD_FIELDS,
    "idempotency_key",
)
NOT_KEPT = frozenset({"card_number", "card_cvc"})  # never written back into a page

LABELS = {
    "email": "Email",
    "address_id": "Shipping address",
    "full_name": "Full name",
    "line1": "Address",
    "line2": "Address line 2",
    "city": "City",
    "postal_code": "Postal code",
    "country": "Country",
    "phone": "Phone",
    "shipping_method": "Shipping method",
    "card_number": "Card number",
    "card_expiry": "Expiry date",
    "card_cvc": "Security code",
}
MISSING = {
    "email": "Enter your email address: your receipt goes there.",
    "full_name": "Enter the name of the person the parcel is for.",
    "line1": "Enter the street and house number.",
    "city": "Enter the town or city.",
    "postal_code": "Enter the postal code.",
    "country": "Choose the country the parcel goes to.",
    "card_number": "Enter the card number.",
    "card_expiry": "Enter the expiry date as MM/YY.",
    "card_cvc": "Enter the 3 or 4 digit security code.",
}
INVALID = {
    "email": "This is not an email address we can write to (e.g. ada@example.com).",
    "country": "Choose a country from the list.",
    "phone": "Use digits, spaces and + ( ) - only.",
}
EXPIRED = "This page has expired. Check the details and place the order again."


@dataclass(frozen=True)
class MethodChoice:
    """A shipping method as the page offers it, priced for this cart."""

    code: str
    name: str
    cost: str  # for this cart: "€4.95", or "Free"
    free_from: str | None  # the subtotal from which it is free
    short_by: str | None  # how much more the cart needs to ship free
    checked: bool


# -- the page ----------------------------------------------------------------------------------


async def checkout_page(request: web.Request) -> web.StreamResponse:
    """The checkout page for the cart (an empty cart goes back to /cart)."""
    cart = await web_carts.current(request)
    if not cart.lines:
        raise _see_other(request, "/cart")
    return await _page(request, cart, values={})


async def _page(
    request: web.Request,
    cart: Cart,
    *,
    values: Mapping[str, str],
    errors: Mapping[str, str] | None = None,
    status: int = 200,
    new_token: bool = False,
) -> web.StreamResponse:
    """The page for `cart` with the kept `values` and `errors` beside their fields."""
    db = request.config_dict[DB]
    locale = request.config_dict[SETTINGS].shop_locale
    principal = request.get(PRINCIPAL)
    request[CART_COUNT] = cart.count
    methods = await orders.shipping_methods(db.replica)
    saved: list[addresses.Address] = []
    account_email = None
    if principal is not None:
        # primary: the shopper's own data, possibly changed a moment ago.
        saved = await addresses.list_for(db.primary, principal.user_id)
        account_email = (await users.get(db.primary, principal.user_id)).email
    kept = {name: value for name, value in values.items() if name not in NOT_KEPT}
    choices = {str(a.id) for a in saved} | {"new"}
    if kept.get("address_id") not in choices:
        kept["address_id"] = str(saved[0].id) if saved else "new"
    codes = [m.code for m in methods]
    if kept.get("shipping_method") not in codes and codes:
        kept["shipping_method"] = codes[0]
    token = kept.get("idempotency_key", "")
    if new_token or not _valid_key(token):
        kept["idempotency_key"] = secrets.token_urlsafe(24)
    sums = {m.code: web_carts.cart_totals(cart, request, m) for m in methods}
    chosen = sums.get(kept.get("shipping_method", ""))
    if chosen is None:
        chosen = web_carts.cart_totals(cart, request, None)
    form: Form[Any] = Form(values=kept, errors=dict(errors or {}))
    context = {
        "form": form,
        "summary_fields": list(LABELS.items()),  # the form's order
        "rows": cart_rows(
            cart,
            locale,
            images=await cart_images(request, cart),
            labels=await attribute_labels(request),
        ),
        "saved": saved,
        "account_email": account_email,
        "methods": _choices(methods, sums, kept.get("shipping_method"), locale),
        "totals": chosen,
        "totals_by_method": {
            code: _sums_json(found, locale) for code, found in sums.items() if found is not None
        },
        "show_tax": chosen is not None and chosen.tax_rate_bps > 0,
    }
    response = await page(request, "store/checkout.html", context, status=status)
    return web_carts.finish(request, response)


def _choices(
    methods: Sequence[ShippingMethod],
    sums: Mapping[str, Totals | None],
    chosen: str | None,
    locale: str,
) -> list[MethodChoice]:
    made = []

    def money(amount: int) -> str:
        return format_money(amount, method.currency, locale)

    for method in methods:
        found = sums.get(method.code)
        free_from = method.free_from_amount
        short_by = None
        if found is not None and free_from is not None and found.subtotal.amount < free_from:
            short_by = money(free_from - found.subtotal.amount)
        free_now = found is not None and found.shipping.amount == 0
        made.append(
            MethodChoice(
                code=method.code,
                name=method.name,
                cost="Free" if free_now else money(method.price_amount),
                free_from=money(free_from) if free_from is not None else None,
                short_by=short_by,
                checked=method.code == chosen,
            )
        )
    return made


def _sums_json(sums: Totals, locale: str) -> dict[str, str]:
    """The totals for one method, as checkout.js swaps them in."""
    return {
        "subtotal": sums.subtotal.format(locale),
        "shipping": "Free" if sums.shipping.amount == 0 else sums.shipping.format(locale),
        "tax": sums.tax.format(locale),
        "total": sums.total.format(locale),
    }


# -- placing the order -------------------------------------------------------------------------


async def checkout_submit(request: web.Request) -> web.StreamResponse:
    """Place the order (or, with action=update, show the totals for the chosen method)."""
    posted = await posted_form(request)
    values = {name: str(posted.get(name, "")).strip()[:300] for name in FIELDS}
    cart = await web_carts.current(request)
    if posted.get("action") == "update":
        if not cart.lines:
            raise _see_other(request, "/cart")
        return await _page(request, cart, values=values)
    methods = await orders.shipping_methods(request.config_dict[DB].replica)
    errors, checkout = _validate(request, values, methods)
    if checkout is None:
        return await _page(request, cart, values=values, errors=errors, status=422)
    try:
        placed = await place_order(request, checkout)
    except InvalidCard as exc:  # parse_card agreed above; kept for a gateway that differs
        return await _page(request, cart, values=values, errors=exc.errors, status=422)
    except ShippingMethodNotFound:  # retired between the page and the POST
        errors = {"shipping_method": "That shipping method is not offered any more."}
        return await _page(request, cart, values=values, errors=errors, status=422)
    except AddressNotFound:
        errors = {"address_id": "Choose one of your addresses."}
        return await _page(request, cart, values=values, errors=errors, status=422)
    except OutOfStock as exc:
        errors = {"form": _shortages(cart, exc.shortages)}
        return await _page(request, cart, values=values, errors=errors, status=409)
    except MixedCurrencies:
        errors = {"form": "Your cart mixes currencies: check out the items of one currency."}
        return await _page(request, cart, values=values, errors=errors, status=409)
    except IdempotencyKeyReused:
        errors = {
            "form": "An order was already placed from this page with other details. "
            "Check your email or your orders before ordering again."
        }
        return await _page(request, cart, values=values, errors=errors, status=409, new_token=True)
    except EmptyCart:
        raise _see_other(request, "/cart") from None
    number = placed.order.number
    log.info("checkout.placed", order_number=number, replayed=not placed.created)
    user_id = placed.order.user_id
    if placed.created and user_id is not None and checkout.address and values["save_address"]:
        await _save_address(request, user_id, checkout.address)
    redirect = _see_other(request, f"/orders/{number}/thanks")
    if user_id is None:
        remember_guest_order(request, redirect, number)
    raise redirect


async def _save_address(request: web.Request, user_id: int, address: Mapping[str, Any]) -> None:
    """Keep a new address of a placed order in the customer's account, unless it is there
    already or the account has as many as it may keep. The order stands whatever happens here."""
    entered = {name: address.get(name) or "" for name in EDITABLE}
    try:
        async with transaction(request.config_dict[DB]) as conn:
            for known in await addresses.list_for(conn, user_id):
                if {name: getattr(known, name) or "" for name in EDITABLE} == entered:
                    return
            await addresses.create(conn, user_id, entered)
    except addresses.TooManyAddresses:
        log.info("checkout.address_not_saved", reason="too_many_addresses", user_id=user_id)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        # The order is committed: a failure here must not turn its confirmation into an error.
        log.warning("checkout.address_not_saved", reason="error", user_id=user_id, error=repr(exc))


def _validate(
    request: web.Request, values: Mapping[str, str], methods: Sequence[ShippingMethod]
) -> tuple[dict[str, str], Checkout | None]:
    """Every field's error, or the request to place (never both)."""
    errors: dict[str, str] = {}
    signed_in = request.get(PRINCIPAL) is not None
    email = None
    if not signed_in:
        try:
            email = normalize_email(values["email"])
        except InvalidEmail:
            errors["email"] = MISSING["email"] if not values["email"].strip() else INVALID["email"]
    address_id = None
    address = None
    choice = values["address_id"] or "new"
    if signed_in and choice != "new":
        address_id = whole_number(choice, 1, BIGINT_MAX)
        if address_id is None:
            errors["address_id"] = "Choose one of your addresses, or a new one."
    else:
        data = {name: values[name] for name in EDITABLE}
        data["country"] = data["country"].upper()
        try:
            address = AddressIn.model_validate(data).model_dump()
        except ValidationError as exc:
            for name, message in field_errors(exc).items():
                given = data.get(name, "")
                errors[name] = (
                    MISSING.get(name, message) if not given else INVALID.get(name, message)
                )
    if values["shipping_method"] not in {m.code for m in methods}:
        errors["shipping_method"] = "Choose a shipping method."
    card = {name: values[name] for name in CARD_FIELDS}
    try:
        parse_card(*card.values(), today=datetime.now(UTC).date())
    except InvalidCard as exc:
        for name, message in exc.errors.items():
            errors[name] = MISSING[name] if not card.get(name) else message
    if not _valid_key(values["idempotency_key"]):
        errors["form"] = EXPIRED
    if errors:
        return errors, None
    return {}, Checkout(
        email=email,
        address_id=address_id,
        address=address,
        shipping_method=values["shipping_method"],
        card_number=card["card_number"],
        card_expiry=card["card_expiry"],
        card_cvc=card["card_cvc"],
        idempotency_key=values["idempotency_key"],
    )


def _valid_key(key: str) -> bool:
    try:
        return check_idempotency_key(key or None) is not None
    except InvalidIdempotencyKey:
        return False


def _shortages(cart: Cart, shortages: Mapping[str, int]) -> str:
    """Which lines the stock cannot cover, by name and SKU."""
    names = {line.sku: line.product_name for line in cart.lines}
    parts = [
        f"{names.get(sku, sku)} ({sku}): " + ("sold out" if left == 0 else f"only {left} left")
        for sku, left in sorted(shortages.items())
    ]
    if not parts:  # a variant deleted since it was added: nothing to name but the cart
        return "Some items in your cart are not on sale any more. Check your cart."
    return "Not enough stock for " + "; ".join(parts) + ". Change your cart, then try again."


def _see_other(request: web.Request, location: str) -> web.HTTPSeeOther:
    redirect = web.HTTPSeeOther(location)
    web_carts.finish(request, redirect)
    return redirect


def add_routes(app: web.Application) -> None:
    """The checkout page."""
    app.router.add_get("/checkout", checkout_page, name="checkout")
    app.router.add_post("/checkout", checkout_submit)
