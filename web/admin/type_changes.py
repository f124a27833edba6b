"""Staff change a product type that products use: rename it, add an attribute (an existing one
or a new one), remove one with its values. Each change is previewed with its effects, then
confirmed (web.admin.change_confirm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from storage import attributes, type_changes
from storage.attributes import Attribute, Kind, Level, ProductType
from storage.errors import (
    ProductTypeNotFound,
)
from web.admin import messages, type_effects
from web.admin.change_confirm import (
    NameIn,
    Plan,
    Refused,
    attribute_or_404,
    form_context,
    preview_or_apply,
)
from web.admin.types import parse_choices
from web.fields import MULTI_LINE, FormId, Line60
from web.forms import Form
from web.keys import DB, MIN_LSN
from web.params import path_id, posted_form
from web.render import render


class DeclareIn(BaseModel):
    attribute_id: FormId | None = None  # blank: a new attribute, from the new_* fields
    level: Level


class NewAttributeIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    new_name: Line60
    new_slug: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(_[a-z0-9]+)*$", max_length=60)]
    new_kind: Kind
    new_choices: Annotated[str, StringConstraints(max_length=20_000), MULTI_LINE] = ""


class AttributeIdIn(BaseModel):
    attribute_id: FormId


async def type_page(
    request: web.Request, *, form_key: str = "", form: Form[Any] | None = None, status: int = 200
) -> web.Response:
    """One product type: rename it, add an attribute, remove one."""
    reader = await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))
    product_type = await _type(reader, path_id(request))
    declared = {each.attribute.id for each in product_type.attributes}
    context = {
        "product_type": product_type,
        "addable": [a for a in await attributes.list_attributes(reader) if a.id not in declared],
        "kinds": attributes.KINDS,
        **form_context(request, form_key, form, status),
    }
    return render(request, "admin/type.html", context, status=status)


async def _type(executor: Any, type_id: int) -> ProductType:
    try:
        return await attributes.get_product_type(executor, type_id)
    except ProductTypeNotFound:
        raise web.HTTPNotFound(text="No such product type.") from None


async def change_type(request: web.Request) -> web.Response:
    """Preview (no `confirm`) or apply one change to a product type."""
    reader = await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))
    product_type = await _type(reader, path_id(request))
    posted = await posted_form(request)
    action = posted.get("action")
    form: Form[Any]
    plan: Plan | None = None
    try:
        if action == "rename":
            form = await messages.read(request, NameIn)
            if form.data is not None:
                plan = await _rename_type(reader, product_type, form.data)
        elif action == "declare":
            form = await messages.read(request, DeclareIn, blank_as_none=True)
            plan = await _declare(request, reader, product_type, form)
        elif action == "undeclare":
            form = await messages.read(request, AttributeIdIn)
            if form.data is not None:
                plan = await _undeclare(reader, product_type, form.data.attribute_id)
        else:
            raise web.HTTPBadRequest(text="Unknown change.")
    except Refused as exc:
        form.fail(exc.field, exc.message)
        plan = None
    key = str(action)
    return await preview_or_apply(
        request,
        plan,
        form,
        f"/admin/types/{product_type.id}",
        lambda status: type_page(request, form_key=key, form=form, status=status),
    )


async def _rename_type(reader: Any, product_type: ProductType, data: NameIn) -> Plan:
    if await type_changes.type_name_taken(reader, data.name, product_type.id):
        raise Refused("name", "Another product type has this name.")
    effect = await type_changes.effect_of_type_change(reader, product_type.id)

    async def apply(conn: asyncpg.Connection) -> Sequence[int]:
        await type_changes.rename_type(conn, product_type.id, data.name)
        return ()

    return Plan(type_effects.rename_type(product_type, data.name, effect), apply)


async def _declare(
    request: web.Request, reader: Any, product_type: ProductType, form: Form[DeclareIn]
) -> Plan | None:
    data = form.data
    if data is None:
        return None
    effect = await type_changes.effect_of_type_change(reader, product_type.id)
    if data.attribute_id is not None:
        attribute_id = data.attribute_id
        attribute = await _attribute_or_refuse(reader, attribute_id)
        if any(each.attribute.id == attribute_id for each in product_type.attributes):
            raise Refused("attribute_id", f"{product_type.name} already has {attribute.name}.")

        async def apply(conn: asyncpg.Connection) -> Sequence[int]:
            await type_changes.declare(conn, product_type.id, attribute_id, data.level)
            return ()

        sentence = type_effects.declare(product_type, attribute.name, data.level, effect, new=False)
        return Plan(sentence, apply)
    new_form = await messages.read(request, NewAttributeIn)
    form.errors.update(new_form.errors)
    new = new_form.data
    if new is None:
        form.data = None
        return None
    try:
        choices = parse_choices(new.new_choices) if new.new_kind == "choice" else []
    except ValueError as exc:
        raise Refused("new_choices", str(exc)) from None
    if new.new_kind == "choice" and not choices:
        raise Refused("new_choices", "Enter at least one choice, one a line.")
    if await type_changes.attribute_name_taken(reader, new.new_name):
        raise Refused("new_name", "Another attribute has this name.")

    async def create_and_apply(conn: asyncpg.Connection) -> Sequence[int]:
        await type_changes.claim_attribute_name(conn, new.new_name)
        created = await attributes.create_attribute(
            conn,
            slug=new.new_slug,
            name=new.new_name,
            kind=new.new_kind,
            is_filterable=new.new_kind == "choice",
            choices=choices,
        )
        await type_changes.declare(conn, product_type.id, created.id, data.level)
        return ()

    sentence = type_effects.declare(product_type, new.new_name, data.level, effect, new=True)
    return Plan(sentence, create_and_apply, name_field="new_name")


async def _attribute_or_refuse(reader: Any, attribute_id: int) -> Attribute:
    try:
        return await attribute_or_404(reader, attribute_id)
    except web.HTTPNotFound:
        raise Refused("attribute_id", "This attribute no longer exists.") from None


async def _undeclare(reader: Any, product_type: ProductType, attribute_id: int) -> Plan:
    found = next((d for d in product_type.attributes if d.attribute.id == attribute_id), None)
    if found is None:
        raise Refused("form", "This type no longer has that attribute.")
    effect = await type_changes.effect_of_undeclaring(reader, product_type.id, attribute_id)

    async def apply(conn: asyncpg.Connection) -> Sequence[int]:
        return await type_changes.undeclare(conn, product_type.id, attribute_id)

    sentence = type_effects.undeclare(product_type, found.attribute, found.level, effect)
    return Plan(sentence, apply)


def add_routes(app: web.Application) -> None:
    """The product type page and its changes on the /admin application."""
    app.router.add_get("/types/{id:[0-9]{1,19}}", type_page, name="admin_type")
    app.router.add_post("/types/{id:[0-9]{1,19}}", change_type)
