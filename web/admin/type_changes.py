"""Staff change a product type or an attribute that products use: preview, then confirm.

A change is posted with its `action` (rename, declare, undeclare on a type; rename, add_choices,
rename_choice, remove_choice on an attribute). Without `confirm=yes` the answer is a page that
says what the change will do, with counts (web.admin.type_effects), and a form carrying the same
fields in hidden inputs with the CSRF token. With it, the change is applied in one transaction on
the primary (storage.type_changes checks again under its locks), the products whose pages change
get a search event in the same transaction, and the catalog cache moves after the commit.
Refusals (bad input, a name taken, a choice still in use) show beside the field, with the
summary atop the page, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from domain.events import INDEX_PRODUCT
from storage import attributes, outbox, transaction, type_changes
from storage.attributes import Attribute, Kind, Level, ProductType
from storage.errors import (
    AttributeAlreadyDeclared,
    AttributeNotDeclared,
    AttributeNotFound,
    ChoiceInUse,
    ChoiceNotFound,
    DuplicateName,
    DuplicateSlug,
    InvalidAttribute,
    ProductTypeNotFound,
)
from web.admin import messages, type_effects
from web.admin.common import saved
from web.admin.types import parse_choices
from web.catalog import catalog_changed
from web.cookies import CSRF_FIELD
from web.fields import MULTI_LINE, FormId, Line60
from web.forms import Form
from web.keys import DB, MIN_LSN, REQUEST_ID
from web.params import path_id, posted_form
from web.render import render

Apply = Callable[[asyncpg.Connection], Awaitable[Sequence[int]]]
Choices = Annotated[str, StringConstraints(min_length=1, max_length=20_000), MULTI_LINE]


class NameIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: Line60


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


class ChoicesIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    choices: Choices


class ChoiceNameIn(NameIn):
    choice_id: FormId


class ChoiceIdIn(BaseModel):
    choice_id: FormId


@dataclass(frozen=True)
class Plan:
    """A checked change: what it will do, and how to apply it (returns products to reindex)."""

    effect: str
    apply: Apply
    name_field: str = "name"  # where a name taken meanwhile is said


class Refused(Exception):
    """A change that cannot be made: the message goes beside `field` ("form": atop the form)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


# Product types


async def type_page(
    request: web.Request, *, form_key: str = "", form: Form[Any] | None = None, status: int = 200
) -> web.Response:
    """One product type: rename it, add an attribute, remove one."""
    reader = await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))
    product_type = await _type(reader, path_id(request))
    declared = {each.attribute.id for each in product_type.attributes}
    errors = form.errors if form else {}
    context = {
        "product_type": product_type,
        "addable": [a for a in await attributes.list_attributes(reader) if a.id not in declared],
        "kinds": attributes.KINDS,
        "form_key": form_key,
        "form": form,
        "summary": messages.summary(errors, TYPE_FIELDS, _anchors(form_key)),
        "saved": saved(request, status),
    }
    return render(request, "admin/type.html", context, status=status)


TYPE_FIELDS = [
    ("name", "Name"),
    ("attribute_id", "Attribute"),
    ("new_name", "New attribute's name"),
    ("new_slug", "New attribute's slug"),
    ("new_kind", "New attribute's kind"),
    ("new_choices", "New attribute's choices"),
    ("level", "Where the value lives"),
    ("choices", "New choices"),
    ("choice_id", "Choice"),
]


def _anchors(form_key: str) -> dict[str, str]:
    """Inputs of a per-row form have the row in their id (f-name-<choice id>)."""
    if form_key.startswith("choice-"):
        return {"name": f"f-name-{form_key.removeprefix('choice-')}"}
    return {}


async def _type(executor: Any, type_id: int) -> ProductType:
    try:
        return await attributes.get_product_type(executor, type_id)
    except ProductTypeNotFound:
        raise web.HTTPNotFound(text="No such product type.") from None


async def _attribute(executor: Any, attribute_id: int) -> Attribute:
    for attribute in await attributes.list_attributes(executor):
        if attribute.id == attribute_id:
            return attribute
    raise web.HTTPNotFound(text="No such attribute.")


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
    if plan is None:
        return await type_page(request, form_key=key, form=form, status=422)
    return await _preview_or_apply(
        request,
        plan,
        f"/admin/types/{product_type.id}",
        lambda: type_page(request, form_key=key, form=form, status=409),
        form,
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
        await type_changes.lock_attribute_names(conn)
        if await type_changes.attribute_name_taken(conn, new.new_name):
            raise DuplicateName(new.new_name)
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
        return await _attribute(reader, attribute_id)
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


# Attributes


async def attribute_page(
    request: web.Request, *, form_key: str = "", form: Form[Any] | None = None, status: int = 200
) -> web.Response:
    """One attribute: rename it, add choices, rename or remove a choice."""
    reader = await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))
    attribute = await _attribute(reader, path_id(request))
    errors = form.errors if form else {}
    context = {
        "attribute": attribute,
        "effect": await type_changes.effect_of_attribute_change(reader, attribute.id),
        "form_key": form_key,
        "form": form,
        "summary": messages.summary(errors, TYPE_FIELDS, _anchors(form_key)),
        "saved": saved(request, status),
    }
    return render(request, "admin/attribute.html", context, status=status)


async def change_attribute(request: web.Request) -> web.Response:
    """Preview (no `confirm`) or apply one change to an attribute or its choices."""
    reader = await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))
    attribute = await _attribute(reader, path_id(request))
    posted = await posted_form(request)
    action = posted.get("action")
    key = str(action)
    form: Form[Any]
    plan: Plan | None = None
    try:
        if action == "rename":
            form = await messages.read(request, NameIn)
            if form.data is not None:
                plan = await _rename_attribute(reader, attribute, form.data.name)
        elif action == "add_choices":
            form = await messages.read(request, ChoicesIn)
            if form.data is not None:
                plan = await _add_choices(reader, attribute, form.data.choices)
        elif action in ("rename_choice", "remove_choice"):
            model = ChoiceNameIn if action == "rename_choice" else ChoiceIdIn
            form = await messages.read(request, model)
            choice_id = whole_choice_id(posted.get("choice_id"))
            key = f"choice-{choice_id}"
            if form.data is not None:
                plan = await _choice_change(reader, attribute, form.data)
        else:
            raise web.HTTPBadRequest(text="Unknown change.")
    except Refused as exc:
        form.fail(exc.field, exc.message)
        plan = None
    if plan is None:
        return await attribute_page(request, form_key=key, form=form, status=422)
    return await _preview_or_apply(
        request,
        plan,
        f"/admin/attributes/{attribute.id}",
        lambda: attribute_page(request, form_key=key, form=form, status=409),
        form,
    )


def whole_choice_id(value: object) -> str:
    """The posted choice id as the page's row key ("" when it is not a number)."""
    return value if isinstance(value, str) and value.isdigit() and len(value) < 20 else ""


async def _rename_attribute(reader: Any, attribute: Attribute, name: str) -> Plan:
    if await type_changes.attribute_name_taken(reader, name, attribute.id):
        raise Refused("name", "Another attribute has this name.")
    effect = await type_changes.effect_of_attribute_change(reader, attribute.id)

    async def apply(conn: asyncpg.Connection) -> Sequence[int]:
        return await type_changes.rename_attribute(conn, attribute.id, name)

    return Plan(type_effects.rename_attribute(attribute, name, effect), apply)


async def _add_choices(reader: Any, attribute: Attribute, text: str) -> Plan:
    if attribute.kind != "choice":
        raise Refused(
            "choices", f"{attribute.name} is a {attribute.kind} attribute: it has no choices."
        )
    try:
        choices = parse_choices(text)
    except ValueError as exc:
        raise Refused("choices", str(exc)) from None
    if not choices:
        raise Refused("choices", "Enter at least one choice, one a line.")
    taken = {c.slug for c in attribute.choices} & {slug for slug, _, _ in choices}
    if taken:
        raise Refused(
            "choices", f"{attribute.name} already has a choice {', '.join(sorted(taken))}."
        )
    existing = {c.name.lower() for c in attribute.choices}
    repeated = [name for _, name, _ in choices if name.lower() in existing]
    if repeated:
        raise Refused("choices", f"{attribute.name} already has a choice named {repeated[0]}.")
    effect = await type_changes.effect_of_attribute_change(reader, attribute.id)

    async def apply(conn: asyncpg.Connection) -> Sequence[int]:
        await type_changes.add_choices(conn, attribute.id, choices)
        return ()

    names = [name for _, name, _ in choices]
    return Plan(type_effects.add_choices(attribute, names, effect), apply)


async def _choice_change(
    reader: Any, attribute: Attribute, data: ChoiceIdIn | ChoiceNameIn
) -> Plan:
    choice = next((c for c in attribute.choices if c.id == data.choice_id), None)
    if choice is None:
        raise Refused("form", "This choice no longer exists.")
    effect = await type_changes.effect_of_choice_change(reader, attribute.id, choice.id)
    if isinstance(data, ChoiceNameIn):
        name = data.name
        if any(c.name.lower() == name.lower() and c.id != choice.id for c in attribute.choices):
            raise Refused("name", f"{attribute.name} already has a choice named {name}.")

        async def rename(conn: asyncpg.Connection) -> Sequence[int]:
            return await type_changes.rename_choice(conn, attribute.id, choice.id, name)

        return Plan(type_effects.rename_choice(attribute, choice.name, name, effect), rename)
    if effect.products:
        raise Refused("form", type_effects.in_use(choice.name, effect))
    if len(attribute.choices) == 1:
        raise Refused("form", f"{attribute.name} needs at least one choice: add another first.")

    async def remove(conn: asyncpg.Connection) -> Sequence[int]:
        await type_changes.remove_choice(conn, attribute.id, choice.id)
        return ()

    return Plan(type_effects.remove_choice(attribute, choice.name), remove)


# Preview and apply


async def _preview_or_apply(
    request: web.Request,
    plan: Plan,
    back: str,
    refused_page: Callable[[], Awaitable[web.Response]],
    form: Form[Any],
) -> web.Response:
    posted = await posted_form(request)
    if posted.get("confirm") != "yes":
        hidden = [
            (name, value)
            for name, value in posted.items()
            if isinstance(value, str) and name not in (CSRF_FIELD, "confirm")
        ]
        context = {"effect": plan.effect, "hidden": hidden, "action": request.path, "back": back}
        return render(request, "admin/type_change.html", context)
    try:
        async with transaction(request.config_dict[DB]) as conn:
            changed = await plan.apply(conn)
            if changed:
                events = [outbox.new_event(INDEX_PRODUCT, product_id=i) for i in changed]
                await outbox.add_all(conn, events, request.get(REQUEST_ID))
    except REFUSALS as exc:
        field, message = _refusal(exc, plan.name_field)
        form.fail(field, message)
        return await refused_page()
    await catalog_changed(request)
    raise web.HTTPSeeOther(f"{back}?saved=1")


# What the apply may refuse, having checked again under its locks.
REFUSALS = (
    DuplicateName,
    DuplicateSlug,
    ChoiceInUse,
    AttributeAlreadyDeclared,
    AttributeNotDeclared,
    ChoiceNotFound,
    AttributeNotFound,
    ProductTypeNotFound,
    InvalidAttribute,
)


def _refusal(exc: Exception, name_field: str) -> tuple[str, str]:
    """What a change refused at apply time says, and beside which field."""
    match exc:
        case DuplicateName():
            return name_field, f"The name '{exc.name}' is taken meanwhile: choose another name."
        case DuplicateSlug():
            return "new_slug", "Another attribute has this slug."
        case ChoiceInUse():
            return "form", (
                f"Products started using this choice meanwhile ({exc.products} products,"
                f" {exc.variants} variants): nothing was removed."
            )
        case AttributeAlreadyDeclared():
            return "attribute_id", "The type has this attribute already."
        case AttributeNotDeclared():
            return "form", "This type no longer has that attribute: nothing was changed."
        case InvalidAttribute():
            return "form", str(exc).capitalize() + "."
    return "form", "It was removed meanwhile: nothing was changed."


def add_routes(app: web.Application) -> None:
    """The product type and attribute pages on the /admin application."""
    app.router.add_get("/types/{id:[0-9]{1,19}}", type_page, name="admin_type")
    app.router.add_post("/types/{id:[0-9]{1,19}}", change_type)
    app.router.add_get("/attributes/{id:[0-9]{1,19}}", attribute_page, name="admin_attribute")
    app.router.add_post("/attributes/{id:[0-9]{1,19}}", change_attribute)
