"""/api/v1/products: product lists, product detail by slug, and staff creation."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from domain.identifiers import SKU_MAX_LENGTH
from storage import products, transaction
from storage.products import NewVariant
from web import catalog
from web.api import schemas
from web.api.routing import Operation
from web.catalog import json_response
from web.catalog_json import product_json
from web.fields import CurrencyCode, Description, Line200, MinorUnits, Sku, Slug, Stock
from web.keys import DB, SETTINGS
from web.listing import LISTING_PARAMETERS, parse_listing, query_text_problem
from web.params import InvalidParameters, query_int


class NewProduct(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slug: Slug
    name: Line200
    description: Description = ""
    price_amount: MinorUnits
    price_currency: CurrencyCode
    sku: Sku | None = None
    stock_on_hand: Stock = 0


async def list_products(request: web.Request) -> web.Response:
    """Published products with filters, a sort and a cursor (no facets: see /search)."""
    listing = parse_listing(request.query)
    return json_response(request, await catalog.listing_page(request, listing, facets=False))


async def search_products(request: web.Request) -> web.Response:
    """Search with relevance, facet counts, a total and "did you mean"."""
    listing = parse_listing(request.query)
    return json_response(request, await catalog.listing_page(request, listing, facets=True))


async def suggest(request: web.Request) -> web.Response:
    """Autocomplete: up to `limit` (default 8, at most 20) product names for `q`."""
    unknown = set(request.query) - {"q", "limit"}
    errors = dict.fromkeys(unknown, "unknown parameter")
    text = request.query.get("q", "")
    if problem := query_text_problem(text, 100):
        errors["q"] = problem
    limit = query_int(request.query, "limit", 1, 20, errors)
    if errors:
        raise InvalidParameters(errors)
    cached = await catalog.suggestions(request, text, limit or 8)
    return json_response(request, cached, cache_control="public, max-age=60")


async def get_product(request: web.Request) -> web.Response:
    """One published product by slug, with its variants, options and images; 404 otherwise."""
    return json_response(request, await catalog.product_detail(request, request.match_info["slug"]))


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
                    sku=body.sku or body.slug.upper().replace("-", "_")[:SKU_MAX_LENGTH],
                    price_amount=body.price_amount,
                    currency=body.price_currency,
                    stock_on_hand=body.stock_on_hand,
                )
            ],
        )
        await catalog.product_changed(conn, request, product.id)
    await catalog.catalog_changed(request)
    location = request.app.router["product"].url_for(slug=product.slug)
    return web.json_response(
        product_json(product, request.config_dict[SETTINGS].shop_locale),
        status=201,
        headers={"Location": str(location)},
    )


SUGGEST_PARAMETERS = (
    {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 100}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 20}},
)

OPERATIONS = (
    Operation(
        "GET",
        "/products",
        list_products,
        "Products with filters, a sort and a cursor",
        name="products",
        response=schemas.ProductPage,
        tag="catalog",
        parameters=LISTING_PARAMETERS,
        problems=(304,),
    ),
    Operation(
        "POST",
        "/products",
        create_product,
        "Create a product",
        auth="staff",
        body=NewProduct,
        response=schemas.CreatedProduct,
        status=201,
        tag="catalog",
        problems=(409,),
        response_headers=("Location",),
        example={
            "slug": "linen-shirt",
            "name": "Linen shirt",
            "price_amount": 4900,
            "price_currency": "EUR",
            "stock_on_hand": 20,
        },
    ),
    Operation(
        "GET",
        "/products/{slug}",
        get_product,
        "One product by slug",
        name="product",
        response=schemas.ProductDetail,
        tag="catalog",
        problems=(304,),
    ),
    Operation(
        "GET",
        "/search",
        search_products,
        "Search with facets and did-you-mean",
        name="search",
        response=schemas.SearchPage,
        tag="catalog",
        parameters=LISTING_PARAMETERS,
        problems=(304,),
    ),
    Operation(
        "GET",
        "/search/suggest",
        suggest,
        "Autocomplete product names",
        name="suggest",
        response=schemas.Suggestions,
        tag="catalog",
        parameters=SUGGEST_PARAMETERS,
        problems=(304,),
    ),
)
