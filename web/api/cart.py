"""/api/v1/cart: the shopper's cart (signed in, or a guest with a cart token)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, model_validator

from storage import carts, orders, transaction
from web import carts as web_carts
from web.api import schemas
from web.api.routing import Operation
from web.catalog_json import money_json
from web.fields import Id, Quantity, QuantityOrZero, Sku, one_of
from web.keys import DB, SETTINGS
from web.params import path_id


class NewItem(BaseModel):
    """A variant by id or by SKU, and how many more units of it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=one_of("variant_id", "sku"))
    variant_id: Id | None = None
    sku: Sku | None = None
    quantity: Quantity = 1

    @model_validator(mode="after")
    def _one_variant(self) -> NewItem:
        if (self.variant_id is None) == (self.sku is None):
            raise ValueError("give either variant_id or sku")
        return self


class QuantityChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quantity: QuantityOrZero  # 0 removes the line


def _variant_id(request: web.Request) -> int:
    return path_id(request, "variant_id")


async def respond(request: web.Request, status: int = 200) -> web.StreamResponse:
    """The request's cart as JSON (with its cookie, when the request made the cart)."""
    cart = await web_carts.current(request)
    return web_carts.finish(
        request, web.json_response(web_carts.cart_json(cart, request), status=status)
    )


async def get_cart(request: web.Request) -> web.StreamResponse:
    """The cart: lines with current prices and stock, each line's problem, and the totals."""
    return await respond(request)


async def add_item(request: web.Request, body: NewItem) -> web.StreamResponse:
    """Add units of a variant (409 when the stock cannot cover the line)."""
    async with transaction(request.config_dict[DB]) as conn:
        cart_id = await web_carts.ensure_cart(conn, request)
        await carts.add(
            conn, cart_id, quantity=body.quantity, variant_id=body.variant_id, sku=body.sku
        )
    return await respond(request, status=201)


async def change_item(request: web.Request, body: QuantityChange) -> web.StreamResponse:
    """Set a line's quantity (0 removes it)."""
    cart_id = await web_carts.cart_id(request)
    variant_id = _variant_id(request)
    if cart_id is None:
        raise web.HTTPNotFound(text="the cart is empty")
    async with transaction(request.config_dict[DB]) as conn:
        await carts.set_quantity(conn, cart_id, variant_id, body.quantity)
    return await respond(request)


async def remove_item(request: web.Request) -> web.StreamResponse:
    """Remove a line."""
    cart_id = await web_carts.cart_id(request)
    variant_id = _variant_id(request)
    if cart_id is None:
        raise web.HTTPNotFound(text="the cart is empty")
    async with transaction(request.config_dict[DB]) as conn:
        await carts.remove(conn, cart_id, variant_id)
    return await respond(request)


async def list_shipping_methods(request: web.Request) -> web.Response:
    """The shipping methods a checkout can choose, with their prices."""
    methods = await orders.shipping_methods(request.config_dict[DB].replica)
    locale = request.config_dict[SETTINGS].shop_locale
    return web.json_response(
        {
            "items": [
                {
                    "code": m.code,
                    "name": m.name,
                    "price": money_json(m.price_amount, m.currency, locale),
                    "free_from": money_json(m.free_from_amount, m.currency, locale),
                }
                for m in methods
            ]
        }
    )


OPERATIONS = (
    Operation(
        "GET",
        "/cart",
        get_cart,
        "The cart",
        name="cart",
        response=schemas.Cart,
        tag="cart",
        cart_token=True,
    ),
    Operation(
        "POST",
        "/cart/items",
        add_item,
        "Add to the cart",
        body=NewItem,
        response=schemas.Cart,
        status=201,
        tag="cart",
        problems=(404, 409),
        cart_token=True,
        example={"sku": "LINEN_SHIRT_M", "quantity": 1},
    ),
    Operation(
        "PATCH",
        "/cart/items/{variant_id}",
        change_item,
        "Change a line's quantity",
        body=QuantityChange,
        response=schemas.Cart,
        tag="cart",
        problems=(409,),
        cart_token=True,
        example={"quantity": 2},
    ),
    Operation(
        "DELETE",
        "/cart/items/{variant_id}",
        remove_item,
        "Remove a line",
        response=schemas.Cart,
        tag="cart",
        cart_token=True,
    ),
    Operation(
        "GET",
        "/shipping-methods",
        list_shipping_methods,
        "Shipping methods",
        response=schemas.ShippingMethods,
        tag="checkout",
    ),
)
