"""Staff product pages: the list, create, edit (with the variant table), publish and unpublish.

A save writes the product and all its variant rows in one transaction, with the outbox event
that has the search actor rebuild the product's document; the catalog cache moves after the
commit, so the next read anywhere shows the change. A refused save rolls everything back and
shows the form again as typed, each error beside its field (422).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from storage import attributes, catalog_admin, categories, products, transaction
from storage.attributes import ProductType
from storage.catalog_admin import VariantNotFound
from storage.database import Executor
from storage.errors import (
    CategoryNotFound,
    DuplicateSku,
    DuplicateSlug,
    ProductNotFound,
    ProductTypeNotFound,
)
from storage.products import Product
from web.admin import messages, product_form, product_merge
from web.admin.common import flatten, saved
from web.admin.product_form import ProductForm
from web.catalog import catalog_changed, product_changed
from web.fields import BIGINT_MAX, whole_number
from web.forms import safe_next
from web.keys import DB, MIN_LSN, SETTINGS
from web.params import path_id, posted_form
from web.render import render

BLANK_ROWS_NEW = 2
BLANK_ROWS_EDIT = 1
MAX_BLANK_ROWS = 20


class Refused(Exception):
    """A save that must roll back; `errors` are shown beside their fields."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def shop_currency(request: web.Request) -> str:
    """The currency new variants are priced in (SHOP_CURRENCY)."""
    return request.config_dict[SETTINGS].shop_currency


def product_id_of(request: web.Request) -> int:
    """The {id} of the path; 404 unless it is a bigint id."""
    return path_id(request)


def _int_or_none(value: str | None) -> int | None:
    return whole_number(value, 1, BIGINT_MAX) if value else None


async def category_options(executor: Any) -> list[tuple[int, str]]:
    """Every category as (id, name indented by depth), in tree order, for a <select>."""
    flat = flatten(await categories.tree(executor))
    return [(node.id, "\u2014 " * depth + node.name) for node, depth in flat]


async def _reader(request: web.Request) -> Executor:
    """The replica once it has this client's last write, else the primary."""
    return await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))


async def new_product_page(request: web.Request) -> web.Response:
    """The create form; the product type (fixed once created) is chosen first, by ?type=."""
    db = request.config_dict[DB]
    product_type = await _chosen_type(db.primary, request.query.get("type"))
    rows = product_form.variant_rows(
        [], _blank_rows(request, BLANK_ROWS_NEW), shop_currency(request)
    )
    form = ProductForm(values={}, rows=rows)
    return await render_editor(request, form, product=None, product_type=product_type)


async def _chosen_type(executor: Any, raw: str | None) -> ProductType | None:
    type_id = _int_or_none(raw)
    if type_id is None:
        return None
    try:
        return await attributes.get_product_type(executor, type_id)
    except ProductTypeNotFound:
        raise web.HTTPNotFound(text="No such product type.") from None


def _blank_rows(request: web.Request, default: int) -> int:
    wanted = _int_or_none(request.query.get("rows"))
    return default if wanted is None else min(wanted, MAX_BLANK_ROWS)


async def create_product(request: web.Request) -> web.Response:
    """Create a product with its variants in one transaction; 303 to its edit page."""
    db = request.config_dict[DB]
    posted = await posted_form(request)
    raw_type = posted.get("product_type_id")
    product_type = await _chosen_type(db.primary, raw_type if isinstance(raw_type, str) else None)
    form = product_form.parse(posted, product_type, creating=True, currency=shop_currency(request))
    fields = form.product
    if fields is not None:

        async def insert(conn: Any) -> int:
            type_id = product_type.id if product_type else None
            created = await catalog_admin.create_product(conn, fields, product_type_id=type_id)
            return created.id

        await _save(request, form, insert)
    return await render_editor(request, form, product=None, product_type=product_type, status=422)


async def _save(
    request: web.Request, form: ProductForm, write: Callable[[Any], Awaitable[int]]
) -> None:
    """In one transaction: `write` the product (returns its id), its variant rows and its search
    event; then 303 to its edit page. A refusal rolls back and lands in `form.errors`."""
    try:
        async with transaction(request.config_dict[DB]) as conn:
            product_id = await write(conn)
            await _save_variants(conn, product_id, form)
            await product_changed(conn, request, product_id)
    except Refused as exc:
        form.errors.update(exc.errors)
    except DuplicateSlug:
        form.errors["slug"] = "Another product has this slug."
    except CategoryNotFound:
        form.errors["category_id"] = "This category no longer exists."
    except ProductTypeNotFound:
        form.errors["form"] = "This product type no longer exists."
    except ProductNotFound:
        raise web.HTTPNotFound(text="No such product.") from None
    else:
        await catalog_changed(request)
        raise web.HTTPSeeOther(f"/admin/products/{product_id}?saved=1")


async def _save_variants(conn: Any, product_id: int, form: ProductForm) -> None:
    """Remove, then update and insert the form's variant rows; Refused names the failing row.

    The SKU index is checked row by row, so variants of this product that swap SKUs are first
    parked on unique temporary SKUs.
    """
    gone = Refused({"form": "A variant was removed meanwhile. Reload the page."})
    for variant_id in form.removed:
        try:
            await catalog_admin.delete_variant(conn, product_id, variant_id)
        except VariantNotFound:
            raise gone from None
    held = {v.sku: v.id for v in await products.variants_of(conn, product_id)}
    changing = [v for _, v in form.variants if v.id is not None and held.get(v.sku) != v.id]
    if any(held.get(v.sku) not in (None, v.id) for _, v in form.variants):
        for variant in changing:
            parked = replace(variant, sku=f"SWAP.{uuid.uuid4().hex.upper()}")
            try:
                await catalog_admin.save_variant(conn, product_id, parked, 0)
            except VariantNotFound:
                raise gone from None
    for position, (index, variant) in enumerate(form.variants):
        try:
            await catalog_admin.save_variant(conn, product_id, variant, position)
        except DuplicateSku:
            if variant.sku in held:
                message = f"Another variant of this product keeps the SKU {variant.sku}."
            else:
                message = f"The SKU {variant.sku} is already used by another product's variant."
            raise Refused({f"v-{index}-sku": message}) from None
        except VariantNotFound:
            raise gone from None


async def edit_product_page(request: web.Request) -> web.Response:
    """The edit form: the product, its variant table (quick price and stock fixes), images."""
    reader = await _reader(request)
    product = await product_or_404(reader, product_id_of(request))
    return await editor_for(request, product, reader=reader)


async def editor_for(
    request: web.Request,
    product: Product,
    *,
    image_errors: dict[str, str] | None = None,
    status: int = 200,
    reader: Executor | None = None,
) -> web.Response:
    """The edit page of a stored product as it is now (the image handlers show errors here)."""
    if reader is None:
        reader = await _reader(request)
    variants = await products.variants_of(reader, product.id)
    values = product_form.product_values(product)
    rows = product_form.variant_rows(
        variants, _blank_rows(request, BLANK_ROWS_EDIT), shop_currency(request)
    )
    form = ProductForm(values=values, rows=rows, original=product_merge.snapshot(values, rows))
    product_type = await _type_of(reader, product)
    return await render_editor(
        request,
        form,
        product=product,
        product_type=product_type,
        image_errors=image_errors,
        status=status,
        reader=reader,
    )


async def product_or_404(executor: Any, product_id: int) -> Product:
    """The product, or a 404 page."""
    try:
        return await products.get(executor, product_id)
    except ProductNotFound:
        raise web.HTTPNotFound(text="No such product.") from None


async def _type_of(executor: Any, product: Product, *, lock: bool = False) -> ProductType | None:
    if product.product_type_id is None:
        return None
    return await attributes.get_product_type(executor, product.product_type_id, lock=lock)


async def save_product(request: web.Request) -> web.Response:
    """Save what the editor changed of the product and its variant rows, in one transaction;
    303 back to the edit page. A field someone else changed meanwhile too is refused (422, the
    message beside it); their other changes are kept (product_merge.merge)."""
    db = request.config_dict[DB]
    product = await product_or_404(db.primary, product_id_of(request))
    product_type = await _type_of(db.primary, product)
    form = product_form.parse(
        await posted_form(request), product_type, creating=False, currency=shop_currency(request)
    )
    if form.product is not None:

        async def update(conn: Any) -> int:
            # The type's rules as they stand until the save commits (locked before the product,
            # the order a type change takes them in): the form was checked against them.
            if await _type_of(conn, product, lock=True) != product_type:
                raise Refused(
                    {
                        "form": "This product's type changed while you were editing it."
                        " Reload the page to edit its attributes as they are now."
                    }
                )
            await _merge_with_stored(conn, form, product.id, product_type, shop_currency(request))
            assert form.product is not None
            await catalog_admin.update_product(conn, product.id, form.product)
            return product.id

        await _save(request, form, update)
    return await render_editor(
        request, form, product=product, product_type=product_type, status=422
    )


async def _merge_with_stored(
    conn: Any,
    form: ProductForm,
    product_id: int,
    product_type: ProductType | None,
    currency: str,
) -> None:
    """Lock the product and its variants, and make `form` what its save writes: the posted
    changes over the product as stored now. Raises Refused on conflicts, after setting the
    form to show the merge with the stored product as its new `original`."""
    stored, variants = await catalog_admin.lock_for_edit(conn, product_id)
    current_values = product_form.product_values(stored)
    current_rows = product_form.variant_rows(variants, 0)
    merged = product_merge.merge(form, current_values, current_rows)
    if merged is None:
        return  # no original to compare with: saved as posted
    if merged.conflicts:
        form.values, form.rows = merged.values, merged.rows
        form.original = product_merge.snapshot(current_values, current_rows)
        raise Refused(
            {
                "form": "Someone else saved this product while you were editing it. Their"
                " changes are shown, except where you changed the same field (marked).",
                **merged.conflicts,
            }
        )
    again = product_form.parse(merged.posted(), product_type, creating=False, currency=currency)
    if again.product is None or again.errors:
        raise Refused(again.errors or {"form": "This product changed meanwhile. Reload it."})
    form.product, form.variants, form.removed = again.product, again.variants, again.removed


async def render_editor(
    request: web.Request,
    form: ProductForm,
    *,
    product: Product | None,
    product_type: ProductType | None,
    image_errors: dict[str, str] | None = None,
    status: int = 200,
    reader: Executor | None = None,
) -> web.Response:
    """The create/edit page for `form` (also used by the upload handlers to show their errors)."""
    if reader is None:
        reader = await _reader(request)
    context = {
        "form": form,
        "summary": messages.summary(form.errors, _form_order(form, product_type), ANCHORS),
        "image_summary": messages.summary(image_errors or {}, IMAGE_FIELDS, IMAGE_ANCHORS),
        "currency": form.rows[0].get("currency") if form.rows else shop_currency(request),
        "product": product,
        "product_type": product_type,
        "product_types": [] if product else await attributes.list_product_types(reader),
        "categories": await category_options(reader),
        "images": await products.images_of(reader, product.id) if product else [],
        "image_errors": image_errors or {},
        "saved": saved(request, status),
    }
    return render(request, "admin/product_edit.html", context, status=status)


PRODUCT_FIELDS = [
    ("name", "Name"),
    ("slug", "Slug"),
    ("description", "Description"),
    ("category_id", "Category"),
]
ROW_FIELDS = [("sku", "SKU"), ("name", "name"), ("price", "price"), ("stock", "stock")]
IMAGE_FIELDS = [("order", "Image order"), ("alt", "Alt text"), ("image", "Images")]
ANCHORS = {"variants": "variants"}
IMAGE_ANCHORS = {"order": "image-list"}


def _form_order(form: ProductForm, product_type: ProductType | None) -> list[tuple[str, str]]:
    """The form's fields as (name, label) in the order the page shows them."""
    declared = product_type.attributes if product_type else []
    order = list(PRODUCT_FIELDS)
    order += [
        (f"attr-{d.attribute.slug}", d.attribute.name) for d in declared if d.level == "product"
    ]
    order.append(("variants", "Variants"))
    for number, row in enumerate(form.rows, start=1):
        prefix = f"v-{row['index']}-"
        order += [(prefix + key, f"Variant {number} {label}") for key, label in ROW_FIELDS]
        order += [
            (f"{prefix}attr-{d.attribute.slug}", f"Variant {number} {d.attribute.name}")
            for d in declared
            if d.level == "variant"
        ]
    return order


async def _set_published(request: web.Request, published: bool) -> web.Response:
    db = request.config_dict[DB]
    product_id = product_id_of(request)
    try:
        async with transaction(db) as conn:
            await catalog_admin.set_published(conn, product_id, published)
            await product_changed(conn, request, product_id)
    except ProductNotFound:
        raise web.HTTPNotFound(text="No such product.") from None
    await catalog_changed(request)
    posted = await posted_form(request)
    back = posted.get("next")
    raise web.HTTPSeeOther(
        safe_next(back if isinstance(back, str) else None, f"/admin/products/{product_id}")
    )


async def publish(request: web.Request) -> web.Response:
    """One click: the product shows in the shop (after the commit, on the next read)."""
    return await _set_published(request, True)


async def unpublish(request: web.Request) -> web.Response:
    """One click: the product disappears from the shop and the API (404 by slug)."""
    return await _set_published(request, False)


def add_routes(app: web.Application) -> None:
    """The product pages on the /admin application."""
    app.router.add_get("/products/new", new_product_page, name="admin_product_new")
    app.router.add_post("/products/new", create_product)
    app.router.add_get("/products/{id:[0-9]{1,19}}", edit_product_page, name="admin_product")
    app.router.add_post("/products/{id:[0-9]{1,19}}", save_product)
    app.router.add_post("/products/{id:[0-9]{1,19}}/publish", publish)
    app.router.add_post("/products/{id:[0-9]{1,19}}/unpublish", unpublish)
