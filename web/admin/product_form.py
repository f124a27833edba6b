"""The staff product form: a product, its attribute values and its variant rows, from one POST.

The form is flat HTML, usable without JavaScript: variant row i posts `v-i-sku`, `v-i-price`...,
attribute values post `attr-<slug>` (product level) and `v-i-attr-<slug>` (variant level). Every
field keeps its posted text, so a refused form is shown again as it was typed, each error beside
the field it is about (errors are keyed by the field's name).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from multidict import MultiDict, MultiDictProxy
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from domain.money import EXPONENTS, Money
from storage.attributes import Attribute, Level, ProductType, validate_values
from storage.catalog_admin import ProductFields, VariantRow
from storage.errors import InvalidAttributeValues
from storage.products import Product, Variant
from web.admin.messages import SHAPE, plain
from web.fields import (
    BIGINT_MAX,
    CurrencyCode,
    Description,
    FormId,
    FormPrice,
    FormStock,
    Line200,
    OptionalLine200,
    Sku,
    Slug,
    whole_number,
)

MAX_ROWS = 100
ROW_KEY = re.compile(r"^v-([0-9]{1,3})-")
NUMBER = re.compile(r"-?[0-9]{1,16}(?:\.[0-9]{1,16})?(?:[eE][-+]?[0-9]{1,3})?")
ROW_FIELDS = ("id", "sku", "name", "price", "currency", "stock")
ORIGINAL = "original"  # the hidden field holding snapshot()
FRIENDLY = SHAPE  # the categories and types pages say a bad slug the same way (web.admin.messages)


class ProductIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    slug: Slug
    name: Line200
    description: Description = ""
    category_id: FormId | None = None


class VariantIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    id: FormId | None = None
    sku: Sku
    name: OptionalLine200 = ""
    currency: CurrencyCode  # before price: it checks
    price: FormPrice
    stock: FormStock

    @field_validator("price")
    @classmethod
    def _fits_currency(cls, price: Decimal, info: ValidationInfo) -> Decimal:
        currency = info.data.get("currency")
        if currency is not None:
            try:
                minor_units(price, currency)
            except ValueError as exc:
                raise PydanticCustomError("price_decimals", str(exc)) from None
        return price


@dataclass
class ProductForm:
    """What was posted (`values`, as text), the errors per field, and the valid parts."""

    values: dict[str, str]
    rows: list[dict[str, str]]  # per variant row: "index", "id", "sku", ..., "attr-<slug>"
    errors: dict[str, str] = field(default_factory=dict)
    product: ProductFields | None = None
    variants: list[tuple[str, VariantRow]] = field(default_factory=list)  # (row index, row)
    removed: list[int] = field(default_factory=list)  # ids of variants to delete
    # The stored product as this form showed it (snapshot()), posted back in a hidden field so
    # that a save changes only what this editor changed (merge()). "" for a new product.
    original: str = ""


def money_text(amount: int, currency: str) -> str:
    """Minor units as the decimal staff type: 1250 EUR -> "12.50"."""
    return Money(amount, currency).decimal_text()


def minor_units(price: Decimal, currency: str) -> int:
    """A decimal price in minor units; ValueError when it has more decimals than the currency."""
    exponent = EXPONENTS.get(currency, 2)
    scaled = price * (10**exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{currency} prices have at most {exponent} decimal places.")
    return int(scaled)


def value_text(value: object) -> str:
    """An attribute value as its form field shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _parse_value(attribute: Attribute, text: str) -> object:
    """Form text -> the attribute's value; ValueError says why it cannot be."""
    if attribute.kind == "number":
        # ASCII only: float() and int() also read '١٢٣' and '1_000'.
        if NUMBER.fullmatch(text) is None:
            raise ValueError("enter a number such as 12 or 0.5")
        number = float(text) if re.search(r"[.eE]", text) else int(text)
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError("enter a number such as 12 or 0.5")
        return number
    if attribute.kind == "boolean":
        if text not in ("true", "false"):
            raise ValueError("choose yes or no")
        return text == "true"
    return text


def _attribute_values(
    product_type: ProductType | None,
    level: Level,
    posted: dict[str, str],
    prefix: str,
    errors: dict[str, str],
) -> dict[str, Any]:
    """The type's attribute values at `level` from fields named prefix + slug; blank: unset."""
    if product_type is None:
        return {}
    values: dict[str, object] = {}
    for declared in product_type.attributes:
        if declared.level != level:
            continue
        slug = declared.attribute.slug
        text = posted.get(prefix + slug, "").strip()
        if not text:
            continue
        try:
            values[slug] = _parse_value(declared.attribute, text)
        except ValueError as exc:
            errors[prefix + slug] = str(exc).capitalize() + "."
    try:
        return validate_values(product_type, level, values)
    except InvalidAttributeValues as exc:
        for key, message in exc.errors.items():
            errors[prefix + key] = message.capitalize() + "."
        return {}


def parse(
    posted: MultiDictProxy[Any] | MultiDict[Any],
    product_type: ProductType | None,
    *,
    creating: bool,
    currency: str = "EUR",
) -> ProductForm:
    """Validate a posted product form. Pure: no I/O (the caller saves `product` and `variants`).
    A variant row that posts no currency is priced in `currency` (the shop's, SHOP_CURRENCY)."""
    text = {key: value for key, value in posted.items() if isinstance(value, str)}
    values = {key: value for key, value in text.items() if not key.startswith("v-")}
    indexes = sorted({int(m.group(1)) for key in text if (m := ROW_KEY.match(key))})[:MAX_ROWS]
    rows = [
        {
            "index": str(i),
            **{k[len(f"v-{i}-") :]: v for k, v in text.items() if k.startswith(f"v-{i}-")},
        }
        for i in indexes
    ]
    form = ProductForm(values=values, rows=rows, original=values.pop(ORIGINAL, ""))
    errors = form.errors
    # Every field, attribute values included: PostgreSQL refuses a NUL in text and in jsonb.
    errors.update(
        {key: "Must not contain a NUL character." for key, value in text.items() if "\x00" in value}
    )
    try:
        data = ProductIn.model_validate(
            {k: v for k, v in values.items() if k in ProductIn.model_fields and v != ""}
        )
    except ValidationError as exc:
        errors.update(plain(exc))
        data = None
    attributes = _attribute_values(product_type, "product", values, "attr-", errors)
    _parse_rows(form, product_type, creating=creating, shop_currency=currency)
    if data is not None and not errors:
        form.product = ProductFields(
            slug=data.slug,
            name=data.name,
            description=data.description,
            category_id=data.category_id,
            attributes=attributes,
            is_published=values.get("is_published") == "on",
        )
    return form


def _parse_rows(
    form: ProductForm, product_type: ProductType | None, *, creating: bool, shop_currency: str
) -> None:
    skus: dict[str, int] = {}
    currency: str | None = None
    for row in form.rows:
        prefix = f"v-{row['index']}-"
        # A blank row comes with the currency filled in: only the other fields say it is used.
        blank = not any(row.get(name, "").strip() for name in ("sku", "name", "price", "stock"))
        if row.get("id") and row.get("remove") == "on":
            removed = whole_number(row["id"], 1, BIGINT_MAX)
            if removed is not None and not creating:
                form.removed.append(removed)
            continue
        if blank and not row.get("id"):
            continue  # an unused empty row
        errors: dict[str, str] = {}
        try:
            data = VariantIn.model_validate(
                {"currency": shop_currency}
                | {
                    k: row[k].upper() if k in ("sku", "currency") else row[k]
                    for k in ROW_FIELDS
                    if row.get(k, "").strip() != ""
                }
            )
        except ValidationError as exc:
            errors.update(plain(exc))
            data = None
        attributes = _attribute_values(product_type, "variant", row, "attr-", errors)
        if data is not None:
            if data.sku in skus:
                errors["sku"] = "Another row of this form has the same SKU."
            skus.setdefault(data.sku, int(row["index"]))
            currency = currency or data.currency
            if data.currency != currency:
                errors["currency"] = f"All variants of a product use one currency ({currency})."
        if data is not None and creating and data.id is not None:
            errors["form"] = "A new product has no variants to edit yet."
        if errors.pop("id", None) is not None:  # a hidden field: no input to show it beside
            form.errors["form"] = "A variant of this form does not exist. Reload the page."
        form.errors.update({prefix + key: message for key, message in errors.items()})
        if data is not None and not errors:
            form.variants.append(
                (
                    row["index"],
                    VariantRow(
                        id=data.id,
                        sku=data.sku,
                        name=data.name,
                        price_amount=minor_units(data.price, data.currency),
                        currency=data.currency,
                        stock_on_hand=data.stock,
                        attributes=attributes,
                    ),
                )
            )
    if not form.variants and not form.errors:
        form.errors["variants"] = "A product needs at least one variant (SKU, price, stock)."


def product_values(product: Product) -> dict[str, str]:
    """A stored product as the form's field texts."""
    values = {
        "slug": product.slug,
        "name": product.name,
        "description": product.description,
        "category_id": "" if product.category_id is None else str(product.category_id),
        "is_published": "on" if product.is_published else "",
    }
    values.update({f"attr-{k}": value_text(v) for k, v in product.attributes.items()})
    return values


def variant_rows(
    variants: list[Variant], blank: int, currency: str = "EUR"
) -> list[dict[str, str]]:
    """Stored variants, then `blank` empty rows to add new ones, as the form's field texts; new
    rows are priced in the product's currency, or `currency` (the shop's) for its first."""
    rows = [
        {
            "index": str(i),
            "id": str(v.id),
            "sku": v.sku,
            "name": v.name,
            "price": money_text(v.price_amount, v.currency),
            "currency": v.currency,
            "stock": str(v.stock_on_hand),
            **{f"attr-{k}": value_text(value) for k, value in v.attributes.items()},
        }
        for i, v in enumerate(variants)
    ]
    currency = variants[0].currency if variants else currency
    start = len(rows)
    rows += [{"index": str(start + i), "currency": currency} for i in range(blank)]
    return rows
