"""/api/v1/products: product lists, product detail by slug, and staff creation."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.money import Money
from storage import outbox, products, transaction
from storage.products import NewVariant, Product, Variant
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


def money_json(amount: int | None, currency: str | None) -> dict[str, Any] | None:
    """A price as the API shows it: minor units, currency, and text for people."""
    if amount is None or currency is None:
        return None
    money = Money(amount, currency)
    return {"amount": money.amount, "currency": money.currency, "formatted": money.format()}


def product_json(product: Product) -> dict[str, Any]:
    """The API's view of a product in a list."""
    return {
        "id": product.id,
        "slug": product.slug,
        "name": product.name,
        "description": product.description,
        "price": money_json(product.price_min, product.currency),
        "price_max": money_json(product.price_max, product.currency),
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


def variant_json(variant: Variant) -> dict[str, Any]:
    """A variant: what can be bought, at what price, and whether it can be had now."""
    return {
        "sku": variant.sku,
        "name": variant.name,
        "price": money_json(variant.price_amount, variant.currency),
        "attributes": variant.attributes,
        "in_stock": variant.stock_on_hand > 0,
        "stock": variant.stock_on_hand,
    }


def options_json(variants: list[Variant]) -> dict[str, list[dict[str, Any]]]:
    """For a variant picker: each variant attribute's values, and whether any is in stock."""
    options: dict[str, dict[str, bool]] = {}
    for variant in variants:
        for name, value in variant.attributes.items():
            seen = options.setdefault(name, {})
            key = str(value)
            seen[key] = seen.get(key, False) or variant.stock_on_hand > 0
    return {
        name: [{"value": value, "in_stock": stocked} for value, stocked in values.items()]
        for name, values in options.items()
    }


async def get_product(request: web.Request) -> web.Response:
    """One published product by slug, with its variants and images; 404 otherwise."""
    slug = request.match_info["slug"]
    if len(slug) > 120:
        raise web.HTTPNotFound()
    db = request.config_dict[DB]
    reader = await db.replica.fresh_for(request.get(MIN_LSN))
    product = await products.get_published_by_slug(reader, slug)
    variants = await products.variants_of(reader, product.id)
    images = await products.images_of(reader, product.id)
    body = {
        **product_json(product),
        "attributes": product.attributes,
        "variants": [variant_json(v) for v in variants],
        "options": options_json(variants),
        "images": [
            {
                "url": f"/media/{image.path}",
                "width": image.width,
                "height": image.height,
                "alt": image.alt,
                "renditions": {w: f"/media/{p}" for w, p in image.renditions.items()},
            }
            for image in images
        ],
    }
    return web.json_response(body)


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
    location = request.app.router["product"].url_for(slug=product.slug)
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
        "GET", "/products/{slug}", get_product, "One product by slug", name="product", tag="catalog"
    ),
)
