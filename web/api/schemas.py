"""The shapes of the API's success answers, for its OpenAPI document only.

Handlers build their JSON with web.catalog_json, web.carts and web.checkout; these models say
what those dicts hold, so that apps (and schemathesis, which checks every answer against them)
know it. Fields that are always present are required; a field that may be null says so.
Unknown extra fields are allowed: an app must ignore fields it does not know.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Doc(BaseModel):
    """A documented answer (never used to build one). JSON Schema lets an object hold more
    properties than it lists, so the API may add fields without breaking an app."""


class Money(Doc):
    """An amount in minor units (cents), its ISO 4217 currency, and text for people."""

    amount: int = Field(examples=[1999])
    currency: str = Field(examples=["EUR"])
    formatted: str = Field(examples=["€19.99"])


class Image(Doc):
    """An image: the original and its renditions by width (for srcset)."""

    url: str
    width: int | None
    height: int | None
    alt: str
    renditions: dict[str, str]
    srcset: str


class ProductHit(Doc):
    """A product in a list or a search result."""

    id: int
    slug: str
    name: str
    url: str
    price: Money | None
    price_max: Money | None
    in_stock: bool
    image: Image | None


class ProductPage(Doc):
    """A page of products; `next_cursor` (null on the last page) asks for the next one."""

    items: list[ProductHit]
    next_cursor: str | None


class CategoryFacet(Doc):
    id: int
    slug: str
    name: str
    count: int


class AttributeValueFacet(Doc):
    value: str
    label: str
    swatch: str | None
    count: int
    selected: bool


class AttributeFacet(Doc):
    slug: str
    name: str
    values: list[AttributeValueFacet]


class PriceRangeFacet(Doc):
    label: str
    min: int | None
    max: int | None
    count: int


class Facets(Doc):
    categories: list[CategoryFacet]
    attributes: list[AttributeFacet]
    price_ranges: list[PriceRangeFacet]


class SearchPage(ProductPage):
    """A page of search results with the total, facet counts and a spelling suggestion (the
    facets and total are absent when the search backend answered without them)."""

    total: int | None = None
    did_you_mean: str | None = None
    facets: Facets | None = None


class Suggestion(Doc):
    name: str
    slug: str
    url: str


class Suggestions(Doc):
    """Autocomplete: product names starting with, or close to, the text typed."""

    items: list[Suggestion]


class Variant(Doc):
    """What can be bought: one SKU at one price."""

    sku: str
    name: str
    price: Money | None
    attributes: dict[str, Any]
    in_stock: bool
    stock: int


class OptionValue(Doc):
    value: str
    label: str
    swatch: str | None
    in_stock: bool


class CategoryRef(Doc):
    id: int
    slug: str
    name: str


class CreatedProduct(Doc):
    """The product just created (not published yet)."""

    id: int
    slug: str
    name: str
    description: str
    price: Money | None
    price_max: Money | None
    in_stock: bool
    created_at: datetime
    indexed_at: datetime | None


class ProductDetail(CreatedProduct):
    """A published product with its variants, picker options, images and breadcrumbs."""

    attributes: dict[str, Any]
    attribute_names: dict[str, str]
    variants: list[Variant]
    options: dict[str, list[OptionValue]]
    images: list[Image]
    breadcrumbs: list[CategoryRef]


class CategoryNode(Doc):
    id: int
    slug: str
    name: str
    children: list[CategoryNode]


class CategoryTree(Doc):
    """Every category, nested, in display order."""

    items: list[CategoryNode]


class CartProduct(Doc):
    slug: str
    name: str
    url: str


class CartLine(Doc):
    """A line of the cart at today's price and stock; `problem` says why it cannot be ordered
    as it is (sold out, fewer left), or is null."""

    variant_id: int
    sku: str
    product: CartProduct
    variant_name: str
    attributes: dict[str, Any]
    unit_price: Money | None
    quantity: int
    line_total: Money | None
    stock: int
    problem: str | None


class Totals(Doc):
    subtotal: Money | None
    shipping: Money | None
    tax: Money | None
    total: Money | None
    tax_rate_bps: int = Field(description="the tax rate in basis points (2000 is 20%)")


class Cart(Doc):
    """The cart. `cart_token` is present once, on the answer that made a guest's cart: keep it
    and send it back as the X-Cart-Token header."""

    items: list[CartLine]
    count: int
    totals: Totals | None
    cart_token: str | None = None


class ShippingMethod(Doc):
    code: str
    name: str
    price: Money | None
    free_from: Money | None = Field(description="orders from this subtotal ship free")


class ShippingMethods(Doc):
    items: list[ShippingMethod]


class OrderLine(Doc):
    sku: str
    name: str
    quantity: int
    unit_price: Money | None
    line_total: Money | None


class Payment(Doc):
    brand: str | None
    last4: str | None
    status: str
    attempt: int = Field(
        description="1 for the checkout's card; each card given after a decline adds one"
    )
    decline_code: str | None = Field(
        description="the provider's code when the last card was declined"
    )
    decline_reason: str | None = Field(description="that decline in plain words, for the customer")
    retry_url: str | None = Field(
        description="where to POST another card while the order waits for one (else null)"
    )


class Transition(Doc):
    """One change of the order's status (staff also see who made it, as `by`)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: str | None = Field(alias="from")
    to: str
    at: datetime
    note: str | None


class Order(Doc):
    """An order: its lines and totals as placed, its payment and its history."""

    number: str = Field(examples=["7K2M-9QXD-4TBA"])
    status: str = Field(
        description="pending, confirmed, shipped, delivered or cancelled", examples=["confirmed"]
    )
    placed_at: datetime
    email: str
    lines: list[OrderLine]
    totals: Totals
    shipping_method: str | None
    shipping_address: dict[str, Any] | None
    tracking_number: str | None
    payment: Payment | None
    history: list[Transition]
    url: str


class PlacedOrder(Order):
    """The order just placed (or an earlier request's with the same Idempotency-Key)."""

    order_token: str | None = Field(
        description=(
            "A guest's order token, shown only here (a retry's answer has a new one, which "
            "replaces it): send it as X-Order-Token to read the order and pay it again. Null "
            "for a signed-in customer's order."
        ),
        examples=["pTq3vZ0w7c1YbS4mK8nR2eXh5uJ9aLdG6oFiWjNtQ0s"],
    )


class OrderSummary(Doc):
    number: str
    status: str
    placed_at: datetime
    total: Money | None
    url: str


class OrderPage(Doc):
    """The customer's orders, newest first; `next_before` (null on the last page) pages on."""

    items: list[OrderSummary]
    next_before: str | None


class Address(Doc):
    id: int
    full_name: str
    line1: str
    line2: str
    city: str
    postal_code: str
    country: str
    phone: str


class Addresses(Doc):
    items: list[Address]


class SessionsEnded(Doc):
    sessions_ended: int = Field(description="how many sessions ended")


class Sent(Doc):
    sent: bool = Field(description="false when the address was verified already")


class Accepted(Doc):
    detail: str
