"""The staff product form: a product, its attribute values and its variant rows, from one POST.

The form is flat HTML, usable without JavaScript: variant row i posts `v-i-sku`, `v-i-price`...,
attribute values post `attr-<slug>` (product level) and `v-i-attr-<slug>` (variant level). Every
field keeps its posted text, so a refused form is shown again as it was typed, each error beside
the field it is about (errors are keyed by the field's name).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from multidict import MultiDict, MultiDictProxy
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from domain.money import EXPONENTS
from storage.attributes import Attribute, Level, ProductType, validate_values
from storage.catalog_admin import ProductFields, VariantRow
from storage.errors import InvalidAttributeValues
from storage.products import Product, Variant
from web.bodies import field_errors
from web.fields import CurrencyCode, Sku, Slug

MAX_ROWS = 100
ROW_KEY = re.compile(r"^v-(\d{1,3})-")
ROW_FIELDS = ("id", "sku", "name", "price", "currency", "stock")
ORIGINAL = "original"  # the hidden field holding snapshot()
PRODUCT_EDITABLE = ("slug", "name", "description", "category_id", "is_published")
ROW_EDITABLE = ("sku", "name", "price", "currency", "stock")


class ProductIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    slug: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=10_000)] = ""
    category_id: int | None = Field(default=None, ge=1, lt=2**63)  # a bigint


class VariantIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    id: int | None = Field(default=None, ge=1, lt=2**63)  # a bigint
    sku: Sku
    name: Annotated[str, StringConstraints(max_length=200)] = ""
    currency: CurrencyCode  # before price: it checks
    price: Decimal = Field(ge=0, le=Decimal(10**10), allow_inf_nan=False)
    stock: int = Field(ge=0, le=10**9)

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


# pydantic's wording for the patterns above is a regular expression; say it for people.
FRIENDLY = {
    "slug": "Use lowercase letters and digits, words joined by single hyphens (e.g. blue-mug).",
    "sku": "Use capital letters, digits, '.', '_' or '-' (up to 64, e.g. MUG-BLUE-1).",
    "currency": "Use a three-letter ISO code such as EUR.",
}


def _friendly(errors: dict[str, str]) -> dict[str, str]:
    return {
        key: FRIENDLY[key] if key in FRIENDLY and "pattern" in message else message
        for key, message in errors.items()
    }


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
    exponent = EXPONENTS.get(currency, 2)
    if exponent == 0:
        return str(amount)
    major, minor = divmod(amount, 10**exponent)
    return f"{major}.{minor:0{exponent}d}"


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
        try:
            number = float(text) if re.search(r"[.eE]", text) else int(text)
        except ValueError:
            raise ValueError("must be a number") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    if attribute.kind == "boolean":
        if text not in ("true", "false"):
            raise ValueError("must be yes or no")
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
) -> ProductForm:
    """Validate a posted product form. Pure: no I/O (the caller saves `product` and `variants`)."""
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
    try:
        data = ProductIn.model_validate(
            {k: v for k, v in values.items() if k in ProductIn.model_fields and v != ""}
        )
    except ValidationError as exc:
        errors.update(_friendly(field_errors(exc)))
        data = None
    attributes = _attribute_values(product_type, "product", values, "attr-", errors)
    _parse_rows(form, product_type, creating=creating)
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


def _parse_rows(form: ProductForm, product_type: ProductType | None, *, creating: bool) -> None:
    skus: dict[str, int] = {}
    currency: str | None = None
    for row in form.rows:
        prefix = f"v-{row['index']}-"
        # A blank row comes with the currency filled in: only the other fields say it is used.
        blank = not any(row.get(name, "").strip() for name in ("sku", "name", "price", "stock"))
        if row.get("id") and row.get("remove") == "on":
            if row["id"].isdecimal() and len(row["id"]) < 19 and not creating:
                form.removed.append(int(row["id"]))
            continue
        if blank and not row.get("id"):
            continue  # an unused empty row
        errors: dict[str, str] = {}
        try:
            data = VariantIn.model_validate(
                {
                    k: row[k].upper() if k in ("sku", "currency") else row[k]
                    for k in ROW_FIELDS
                    if row.get(k, "").strip() != ""
                }
            )
        except ValidationError as exc:
            errors.update(_friendly(field_errors(exc)))
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


def variant_rows(variants: list[Variant], blank: int) -> list[dict[str, str]]:
    """Stored variants, then `blank` empty rows to add new ones, as the form's field texts."""
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
    currency = variants[0].currency if variants else "EUR"
    start = len(rows)
    rows += [{"index": str(start + i), "currency": currency} for i in range(blank)]
    return rows


# Two people editing one product, or an editor and the shop selling it: a save writes only what
# its editor changed since opening the form, and refuses a field that someone else changed too.
#
# The form carries the stored product as it showed it (`original`, snapshot()). At the save, in
# the transaction that locks the product and its variants, merge() compares three texts per
# field: posted (this editor), original (what they saw) and current (stored now):
#   posted == original             untouched here: the current value stays (someone else's
#                                  change, or a sale's stock decrement, is kept)
#   current == original or posted  changed only here (or both made the same change): posted
#   otherwise                      changed here and there: a conflict, shown beside the field;
#                                  saving again writes the posted value (original moves on)


@dataclass(frozen=True)
class Merged:
    values: dict[str, str]
    rows: list[dict[str, str]]
    conflicts: dict[str, str]  # field name -> the message beside it

    def posted(self) -> MultiDict[str]:
        """The merged form as a POST would carry it (what parse() reads)."""
        fields: MultiDict[str] = MultiDict(self.values)
        for row in self.rows:
            prefix = f"v-{row['index']}-"
            fields.extend({prefix + k: v for k, v in row.items() if k != "index"})
        return fields


def snapshot(values: dict[str, str], rows: list[dict[str, str]]) -> str:
    """The stored product's editable field texts (product_values(), variant_rows()) as the
    hidden `original` field."""
    return json.dumps(
        {
            "values": {k: v for k, v in values.items() if _editable(k, PRODUCT_EDITABLE)},
            "rows": {
                row["id"]: {k: v for k, v in row.items() if _editable(k, ROW_EDITABLE)}
                for row in rows
                if row.get("id")
            },
        },
        separators=(",", ":"),
    )


def merge(
    form: ProductForm, current_values: dict[str, str], current_rows: list[dict[str, str]]
) -> Merged | None:
    """The posted form merged with the product as stored now (see above); None when the form
    has no readable `original` (then it is saved as posted: the last save wins)."""
    try:
        original = json.loads(form.original)
        original_values, original_rows = original["values"], original["rows"]
        if not isinstance(original_values, dict) or not isinstance(original_rows, dict):
            return None
    except (ValueError, TypeError, KeyError):
        return None
    conflicts: dict[str, str] = {}
    values = dict(form.values)
    _merge_fields(values, original_values, current_values, PRODUCT_EDITABLE, "", conflicts)
    stored = {row["id"]: row for row in current_rows if row.get("id")}
    rows = []
    for posted_row in form.rows:
        row = dict(posted_row)
        variant_id = row.get("id", "")
        was, now = original_rows.get(variant_id), stored.get(variant_id)
        if isinstance(was, dict) and now is not None and row.get("remove") != "on":
            _merge_fields(row, was, now, ROW_EDITABLE, f"v-{row['index']}-", conflicts)
        rows.append(row)
    return Merged(values, rows, conflicts)


def _editable(key: str, names: tuple[str, ...]) -> bool:
    return key in names or key.startswith("attr-")


def _merge_fields(
    posted: dict[str, str],
    original: dict[str, Any],
    current: dict[str, str],
    names: tuple[str, ...],
    prefix: str,
    conflicts: dict[str, str],
) -> None:
    """Merge one product's or one variant row's fields into `posted`, in place."""
    keys = {k for k in (*posted, *original, *current) if _editable(k, names)}
    for key in sorted(keys):
        mine, was, now = posted.get(key, ""), str(original.get(key, "")), current.get(key, "")
        if mine == was:
            posted[key] = now
        elif now not in (was, mine):
            conflicts[prefix + key] = _changed_meanwhile(now)


def _changed_meanwhile(now: str) -> str:
    # (A checkbox never gets here: with two states, both sides changing it agree.)
    if now == "":
        return "Someone else cleared this field meanwhile. Save again to keep your value."
    return f"Someone else changed this to “{now}” meanwhile. Save again to keep your value."
