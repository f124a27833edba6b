"""Staff pages for attributes (size, colour...) and the product types that declare them.

Attributes are created with their kind, unit, filterability and, for choice attributes, their
choices with optional colour swatches. A product type chooses, for each attribute it uses,
whether products or their variants carry the value. Neither changes a product, so no search
event; the catalog cache moves because facets list the filterable attributes.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from storage import attributes, transaction, type_changes
from storage.attributes import Kind, Level
from storage.errors import (
    AttributeNotFound,
    DuplicateName,
    DuplicateSlug,
    InvalidAttribute,
    InvalidProductType,
)
from web.admin import messages
from web.admin.common import saved
from web.catalog import catalog_changed
from web.fields import BIGINT_MAX, MULTI_LINE, SINGLE_LINE, Line60, ShortSlug, whole_number
from web.forms import Form
from web.keys import DB, MIN_LSN
from web.params import posted_form
from web.render import render

MAX_CHOICES = 200
ATTRIBUTE_SLUG = "Use lowercase letters and digits, words joined by _ (e.g. shoe_size)."
# The create forms' fields in the page's order; the attribute form's name and slug inputs carry
# its name in their ids (the type form above has a name and a slug too).
FIELDS = {
    "type": [("name", "Name"), ("slug", "Slug")],
    "attribute": [
        ("name", "Name"),
        ("slug", "Slug"),
        ("kind", "Kind"),
        ("unit", "Unit"),
        ("choices", "Choices"),
    ],
}
ANCHORS = {"attribute": {"name": "f-attribute-name", "slug": "f-attribute-slug"}}


class AttributeIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    slug: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(_[a-z0-9]+)*$", max_length=60)]
    name: Line60
    kind: Kind
    unit: Annotated[str, StringConstraints(max_length=10), SINGLE_LINE] = ""
    is_filterable: bool = False
    choices: Annotated[str, StringConstraints(max_length=20_000), MULTI_LINE] = ""


class ProductTypeIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    slug: ShortSlug
    name: Line60


def parse_choices(text: str) -> list[tuple[str, str, str | None]]:
    """One choice a line: `slug | Name | #rrggbb` (name and swatch optional); ValueError why not."""
    choices: list[tuple[str, str, str | None]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|")]
        if len(parts) > 3 or not parts[0]:
            raise ValueError(f"Line {number}: write slug | Name | #rrggbb.")
        slug = parts[0].lower()
        name = parts[1] if len(parts) > 1 and parts[1] else slug.replace("-", " ").capitalize()
        swatch = parts[2].lower() if len(parts) > 2 and parts[2] else None
        choices.append((slug, name, swatch))
    if len(choices) > MAX_CHOICES:
        raise ValueError(f"At most {MAX_CHOICES} choices.")
    return choices


async def types_page(
    request: web.Request, *, forms: dict[str, Form[Any]] | None = None, status: int = 200
) -> web.Response:
    """Attributes and product types, with a form to create each."""
    db = request.config_dict[DB]
    reader = await db.replica.fresh_for(request.get(MIN_LSN))
    refused = [
        messages.summary(form.errors, FIELDS[key], ANCHORS.get(key))
        for key, form in (forms or {}).items()
        if form.errors
    ]
    context = {
        "summary": refused[0] if refused else [],
        "attributes": await attributes.list_attributes(reader),
        "product_types": await attributes.list_product_types(reader),
        "kinds": attributes.KINDS,
        "forms": forms or {},
        "saved": saved(request, status),
    }
    return render(request, "admin/types.html", context, status=status)


async def create_attribute(request: web.Request) -> web.Response:
    """Create an attribute (with its choices, for kind "choice")."""
    form = await messages.read(request, AttributeIn)
    if form.errors.get("slug") == messages.SHAPE["slug"]:
        form.errors["slug"] = ATTRIBUTE_SLUG
    choices: list[tuple[str, str, str | None]] = []
    try:
        choices = parse_choices(form.values.get("choices", ""))
    except ValueError as exc:
        form.fail("choices", str(exc))
    if form.data is not None:
        try:
            async with transaction(request.config_dict[DB]) as conn:
                await type_changes.claim_attribute_name(conn, form.data.name)
                await attributes.create_attribute(
                    conn,
                    slug=form.data.slug,
                    name=form.data.name,
                    kind=form.data.kind,
                    unit=form.data.unit,
                    is_filterable=form.data.is_filterable,
                    choices=choices,
                )
        except DuplicateSlug:
            form.fail("slug", "Another attribute has this slug.")
        except DuplicateName:
            form.fail("name", "Another attribute has this name.")
        except InvalidAttribute as exc:
            form.fail(
                "choices" if "choice" in str(exc) or "swatch" in str(exc) else "form", str(exc)
            )
        else:
            await catalog_changed(request)
            raise web.HTTPSeeOther("/admin/types?saved=1")
    return await types_page(request, forms={"attribute": form}, status=422)


async def create_product_type(request: web.Request) -> web.Response:
    """Create a product type; `level-<attribute id>` says where each chosen attribute lives."""
    form = await messages.read(request, ProductTypeIn)
    posted = await posted_form(request)
    declared: list[tuple[int, Level]] = []
    for key, value in posted.items():
        attribute_id = whole_number(key.removeprefix("level-"), 1, BIGINT_MAX)
        if key.startswith("level-") and attribute_id and value in ("product", "variant"):
            declared.append((attribute_id, "product" if value == "product" else "variant"))
    if form.data is not None:
        try:
            async with transaction(request.config_dict[DB]) as conn:
                await type_changes.claim_type_name(conn, form.data.name)
                await attributes.create_product_type(
                    conn, slug=form.data.slug, name=form.data.name, attributes=declared
                )
        except DuplicateSlug:
            form.fail("slug", "Another product type has this slug.")
        except DuplicateName:
            form.fail("name", "Another product type has this name.")
        except (InvalidProductType, AttributeNotFound) as exc:
            form.fail("form", str(exc).capitalize() + ".")
        else:
            raise web.HTTPSeeOther("/admin/types?saved=1")
    form.values.update(
        {k: v for k, v in posted.items() if k.startswith("level-") and isinstance(v, str)}
    )
    return await types_page(request, forms={"type": form}, status=422)


def add_routes(app: web.Application) -> None:
    """The attribute and product type routes on the /admin application."""
    app.router.add_get("/types", types_page, name="admin_types")
    app.router.add_post("/attributes", create_attribute)
    app.router.add_post("/types", create_product_type)
