"""/api/v1/products: the skeleton's product endpoints (the catalog issue replaces them)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.money import Money
from storage import outbox, products, transaction
from storage.products import NewVariant, Product
from web.api.routing import Operation
from web.keys import DB, MIN_LSN, REQUEST_ID

Slug = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", min_length=1, max_length=120)
]


class NewProduct(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slug: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=10_000)] = ""
    price_amount: int = Field(ge=0, le=10**12, strict=True)
    price_currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    sku: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9._-]{0,63}$")] | None = None
    stock_on_hand: int = Field(default=0, ge=0, le=10**9, strict=True)


def product_json(product: Product) -> dict[str, Any]:
    """The API's view of a product."""
    price = None
    if product.price_min is not None and product.currency is not None:
        low = Money(product.price_min, product.currency)
        price = {"amount": low.amount, "currency": low.currency, "formatted": low.format()}
    return {
        "id": product.id,
        "slug": product.slug,
        "name": product.name,
        "description": product.description,
        "price": price,
        "in_stock": product.in_stock,
        "created_at": product.created_at.isoformat(),
        "indexed_at": product.indexed_at.isoformat() if product.indexed_at else None,
    }


async def list_products(request: web.Request) -> web.Response:
    """The newest published products, from the replica (or the primary after this client wrote)."""
    db = request.config_dict[DB]
    reader = await db.replica.fresh_for(request.get(MIN_LSN))
    items = await products.list_newest(reader)
    return web.json_response({"items": [product_json(p) for p in items]})


async def get_product(request: web.Request) -> web.Response:
    """One product by id; 404 problem when it does not exist."""
    try:
        product_id = int(request.match_info["product_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    db = request.config_dict[DB]
    reader = await db.replica.fresh_for(request.get(MIN_LSN))
    return web.json_response(product_json(await products.get(reader, product_id)))


async def create_product(request: web.Request, body: NewProduct) -> web.Response:
    """Staff: create a product; the search actor builds its search document (via the outbox)."""
    async with transaction(request.config_dict[DB]) as conn:
        product = await products.create(
            conn,
            slug=body.slug,
            name=body.name,
            description=body.description,
            variants=[
                NewVariant(
                    sku=body.sku or body.slug.upper().replace("-", "_"),
                    price_amount=body.price_amount,
                    currency=body.price_currency,
                    stock_on_hand=body.stock_on_hand,
                )
            ],
        )
        await outbox.add(
            conn, "search.index_product", request_id=request[REQUEST_ID], product_id=product.id
        )
    location = request.app.router["product"].url_for(product_id=str(product.id))
    return web.json_response(product_json(product), status=201, headers={"Location": str(location)})


OPERATIONS = (
    Operation("GET", "/products", list_products, "Newest products", name="products", tag="catalog"),
    Operation(
        "POST",
        "/products",
        create_product,
        "Create a product",
        auth="staff",
        body=NewProduct,
        status=201,
        tag="catalog",
    ),
    Operation(
        "GET", "/products/{product_id}", get_product, "One product", name="product", tag="catalog"
    ),
)
