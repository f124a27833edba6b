"""Staff change an attribute that products use: rename it, add choices, rename a choice, remove
one no product uses. Each change is previewed with its effects, then confirmed
(web.admin.change_confirm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from storage import type_changes
from storage.attributes import Attribute
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
from web.fields import MULTI_LINE, FormId
from web.forms import Form
from web.keys import DB, MIN_LSN
from web.params import path_id, posted_form
from web.render import render

Choices = Annotated[str, StringConstraints(min_length=1, max_length=20_000), MULTI_LINE]


class ChoicesIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    choices: Choices


class ChoiceNameIn(NameIn):
    choice_id: FormId


class ChoiceIdIn(BaseModel):
    choice_id: FormId


async def attribute_page(
    request: web.Request, *, form_key: str = "", form: Form[Any] | None = None, status: int = 200
) -> web.Response:
    """One attribute: rename it, add choices, rename or remove a choice."""
    reader = await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))
    attribute = await attribute_or_404(reader, path_id(request))
    context = {
        "attribute": attribute,
        "effect": await type_changes.effect_of_attribute_change(reader, attribute.id),
        **form_context(request, form_key, form, status),
    }
    return render(request, "admin/attribute.html", context, status=status)


async def change_attribute(request: web.Request) -> web.Response:
    """Preview (no `confirm`) or apply one change to an attribute or its choices."""
    reader = await request.config_dict[DB].replica.fresh_for(request.get(MIN_LSN))
    attribute = await attribute_or_404(reader, path_id(request))
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
    return await preview_or_apply(
        request,
        plan,
        form,
        f"/admin/attributes/{attribute.id}",
        lambda status: attribute_page(request, form_key=key, form=form, status=status),
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


def add_routes(app: web.Application) -> None:
    """The attribute page and its changes on the /admin application."""
    app.router.add_get("/attributes/{id:[0-9]{1,19}}", attribute_page, name="admin_attribute")
    app.router.add_post("/attributes/{id:[0-9]{1,19}}", change_attribute)
