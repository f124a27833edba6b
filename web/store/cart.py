"""Storefront cart pages: the cart, adding from a product page, changing and removing lines.

Every POST here has passed the CSRF check in `web.cookies.browser_session`. A change that works
redirects (303) to /cart, so a reload never repeats it; one that cannot be made renders the cart
again with the message beside the line: 409 when the stock cannot cover it, 404 when the variant
or the line is not there, 422 for a quantity that is not one. Every response goes through
`web.carts.finish`: adding may have made a guest's cart (its cookie is set), and the first cart
access after signing in merges the guest cart (its cookie goes).

The header's cart link shows the item count (`cart_count`, a middleware): read on GET pages only,
and only when there can be a cart (a cart cookie or a signed-in user), so a first visit costs
nothing; a signed-in shopper's count is kept a moment by the process (web.carts.UnitCounts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from domain.checkout import MAX_QUANTITY
from domain.identifiers import SKU, is_slug
from domain.money import format_money
from storage import carts, catalog_reads, transaction
from storage.carts import CartLine
from storage.catalog_reads import Thumbnail
from storage.errors import CartItemNotFound, NotEnoughStock, ProductNotFound, VariantNotFound
from web import carts as web_carts
from web import catalog
from web.carts import CART_COOKIE, NEW_CART_TOKEN, Cart
from web.catalog_json import attribute_text, thumbnail_json
from web.cookies import NO_SILENT_REFRESH
from web.fields import whole_number
from web.keys import DB, PRINCIPAL, SETTINGS
from web.params import path_id, posted_form
from web.render import page

CART_COUNT = web.RequestKey("cart_count", int)  # the header's item count


@dataclass(frozen=True)
class Row:
    """A cart line as the page shows it."""

    line: CartLine
    description: str  # the variant's name, or its option values
    unit_price: str
    total: str
    quantity: str  # what the quantity field shows (as typed, after a refused change)
    problem: str | None  # why it cannot be ordered as it is ("Only 2 left", "Sold out")
    error: str | None  # why the change just asked for was refused
    image: dict[str, Any] | None = None  # the line's thumbnail (web.catalog_json.thumbnail_json)


@dataclass(frozen=True)
class Back:
    """Where a refused add came from: the product page."""

    url: str
    name: str


@web.middleware
async def cart_count(request: web.Request, handler: Any) -> web.StreamResponse:
    """Read the cart for the header's count on GET pages that can have one (see the docstring).

    Must run inside `browser_session` (it needs the signed-in principal).
    """
    if (
        request.method != "GET"
        or request.path.startswith(NO_SILENT_REFRESH)
        or (request.get(PRINCIPAL) is None and CART_COOKIE not in request.cookies)
    ):
        response: web.StreamResponse = await handler(request)
        return response
    request[CART_COUNT] = await web_carts.unit_count(request)  # merges a new sign-in's cart
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _finish(request, exc)
        raise
    return _finish(request, response)


def header_count(request: web.Request) -> int | None:
    """Jinja global: the item count for the header's cart link (None: not read, or empty)."""
    return request.get(CART_COUNT) or None


def _finish(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    return response if response.prepared else web_carts.finish(request, response)


def _see_cart(request: web.Request) -> web.HTTPSeeOther:
    redirect = web.HTTPSeeOther("/cart")
    web_carts.finish(request, redirect)
    return redirect


# -- pages -------------------------------------------------------------------------------------


async def cart_page(request: web.Request) -> web.StreamResponse:
    """The cart: lines with their problems, quantities to change, totals, the way to checkout."""
    return await render_cart(request)


async def render_cart(
    request: web.Request,
    cart: Cart | None = None,
    *,
    status: int = 200,
    errors: dict[int, str] | None = None,
    typed: dict[int, str] | None = None,
    message: str | None = None,
    back: Back | None = None,
) -> web.StreamResponse:
    """The cart page (read now unless given), with `errors` beside lines and a `message`."""
    if cart is None:
        cart = await web_carts.current(request)
    request[CART_COUNT] = cart.count
    rows = cart_rows(
        cart,
        request.config_dict[SETTINGS].shop_locale,
        errors=errors,
        typed=typed,
        images=await cart_images(request, cart),
        labels=await attribute_labels(request),
    )
    context = {
        "rows": rows,
        "totals": web_carts.cart_totals(cart, request, None),
        "blocked": any(row.problem for row in rows),
        "message": message,
        "back": back,
    }
    response = await page(request, "store/cart.html", context, status=status)
    return web_carts.finish(request, response)


async def cart_images(request: web.Request, cart: Cart) -> dict[int, Thumbnail]:
    """Each line's picture by variant id (the variant's colour where the product has one)."""
    variant_ids = [line.variant_id for line in cart.lines]
    return await catalog_reads.variant_images(request.config_dict[DB].replica, variant_ids)


async def attribute_labels(request: web.Request) -> dict[str, Any]:
    """What attribute values read as (web.catalog.attribute_labels, cached), for lines' names."""
    labels: dict[str, Any] = catalog.loads(await catalog.attribute_labels(request))["items"]
    return labels


def cart_rows(
    cart: Cart,
    locale: str,
    *,
    labels: Mapping[str, Any] | None = None,
    errors: dict[int, str] | None = None,
    typed: dict[int, str] | None = None,
    images: Mapping[int, Thumbnail] | None = None,
) -> list[Row]:
    """The cart's lines as the cart and checkout pages show them (`images` by variant id)."""
    errors, typed, images, labels = errors or {}, typed or {}, images or {}, labels or {}
    return [
        Row(
            line=line,
            description=variant_text(line.variant_name, line.attributes, labels),
            unit_price=format_money(line.price_amount, line.currency, locale),
            total=format_money(line.price_amount * line.quantity, line.currency, locale),
            quantity=typed.get(line.variant_id, str(line.quantity)),
            problem=web_carts.line_problem(line),
            error=errors.get(line.variant_id),
            image=_thumbnail(images.get(line.variant_id), line.product_name),
        )
        for line in cart.lines
    ]


def _thumbnail(image: Thumbnail | None, name: str) -> dict[str, Any] | None:
    return None if image is None else thumbnail_json(image, name)


def variant_text(name: str, attributes: dict[str, Any], labels: Mapping[str, Any]) -> str:
    """A variant for people: its name, else its option values by option as people read them
    ("Red / 42", choices by name, booleans Yes/No; `labels`: attribute_labels)."""
    if name:
        return name
    values = [attribute_text(labels, slug, value) for slug, value in sorted(attributes.items())]
    return " / ".join(value[:1].upper() + value[1:] for value in values)


# -- changes -----------------------------------------------------------------------------------


async def add_item(request: web.Request) -> web.StreamResponse:
    """Add units of a variant (by SKU) from a product page, then show the cart."""
    posted = await posted_form(request)
    sku = _text(posted, "sku")
    quantity = _quantity(_text(posted, "quantity") or "1", minimum=1)
    slug = _text(posted, "product")
    if not sku or SKU.fullmatch(sku) is None:
        back = await _back(request, slug, None)
        message = "Choose an option on the product page first."
        return await render_cart(request, status=422, message=message, back=back)
    if quantity is None:
        back = await _back(request, slug, sku)
        message = f"Choose a quantity from 1 to {MAX_QUANTITY}."
        return await render_cart(request, status=422, message=message, back=back)
    try:
        async with transaction(request.config_dict[DB]) as conn:
            cart_id = await web_carts.ensure_cart(conn, request)
            await carts.add(conn, cart_id, quantity=quantity, sku=sku)
    except NotEnoughStock as exc:
        request.pop(NEW_CART_TOKEN, None)  # a cart made for this add was rolled back with it
        cart = await web_carts.current(request)
        back = await _back(request, slug, sku)
        name = back.name if back is not None else sku
        held = next((line.quantity for line in cart.lines if line.sku == sku), 0)
        return await render_cart(
            request, cart, status=409, message=_short_of(name, exc.available, held), back=back
        )
    except VariantNotFound:
        request.pop(NEW_CART_TOKEN, None)
        message = "Sorry, that option is not on sale any more."
        back = await _back(request, slug, None)
        return await render_cart(request, status=404, message=message, back=back)
    raise _see_cart(request)


def _short_of(name: str, available: int, held: int) -> str:
    if available == 0:
        return f"Sorry, {name} is sold out."
    text = f"Sorry, we have only {available} of {name}"
    return text + (f", and your cart has {held} already." if held else ".")


async def change_item(request: web.Request) -> web.StreamResponse:
    """Set a line's quantity (0 removes it), then show the cart."""
    variant_id = _variant_id(request)
    posted = await posted_form(request)
    raw = _text(posted, "quantity")
    quantity = _quantity(raw, minimum=0)
    if quantity is None:
        return await render_cart(
            request,
            status=422,
            errors={variant_id: f"Enter a quantity from 0 to {MAX_QUANTITY}."},
            typed={variant_id: raw[:10]},
        )
    cart_id = await web_carts.cart_id(request)
    try:
        if cart_id is None:
            raise CartItemNotFound(variant_id)
        async with transaction(request.config_dict[DB]) as conn:
            await carts.set_quantity(conn, cart_id, variant_id, quantity)
    except NotEnoughStock as exc:
        left = "Sold out: remove it." if exc.available == 0 else f"Only {exc.available} left."
        return await render_cart(
            request, status=409, errors={variant_id: left}, typed={variant_id: str(quantity)}
        )
    except CartItemNotFound:
        message = "That item is not in your cart any more."
        return await render_cart(request, status=404, message=message)
    raise _see_cart(request)


async def remove_item(request: web.Request) -> web.StreamResponse:
    """Remove a line (one already gone is removed too), then show the cart."""
    variant_id = _variant_id(request)
    cart_id = await web_carts.cart_id(request)
    if cart_id is not None:
        try:
            async with transaction(request.config_dict[DB]) as conn:
                await carts.remove(conn, cart_id, variant_id)
        except CartItemNotFound:
            pass  # removed in another tab: what the shopper wants is true already
    raise _see_cart(request)


# -- helpers -----------------------------------------------------------------------------------


def _text(posted: MultiDictProxy[Any], name: str) -> str:
    value = posted.get(name)
    return value.strip() if isinstance(value, str) else ""


def _quantity(raw: str, *, minimum: int) -> int | None:
    return whole_number(raw, minimum, MAX_QUANTITY)


def _variant_id(request: web.Request) -> int:
    return path_id(request, "variant_id")


async def _back(request: web.Request, slug: str, sku: str | None) -> Back | None:
    """The product page a refused add came from, and the variant's name for the message."""
    if not is_slug(slug):
        return None
    try:
        detail = catalog.loads(await catalog.product_detail(request, slug))
    except ProductNotFound:
        return None
    name = str(detail["name"])
    variant = next((v for v in detail["variants"] if v["sku"] == sku), None)
    if variant is not None:
        labels = await attribute_labels(request)
        extra = variant_text(str(variant["name"] or ""), variant["attributes"], labels)
        name = f"{name} ({extra})" if extra else name
    return Back(f"/products/{slug}", name)


def add_routes(app: web.Application) -> None:
    """The cart pages."""
    app.router.add_get("/cart", cart_page, name="cart")
    app.router.add_post("/cart/items", add_item)
    app.router.add_post("/cart/items/{variant_id}", change_item)
    app.router.add_post("/cart/items/{variant_id}/remove", remove_item)
