"""Preview, then confirm: the shared steps of a staff change to a product type or an attribute.

A change is posted with its `action`. Without `confirm=yes` the answer is a page that says what
the change will do, with counts (web.admin.type_effects), and a form carrying the same fields in
hidden inputs with the CSRF token. With it, the change is applied in one transaction on the
primary (storage.type_changes checks again under its locks), the products whose pages change get
a search event in the same transaction, and the catalog cache moves after the commit. Refusals
(bad input, a name taken, a choice still in use) show beside the field, with the summary atop
the page, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict

from domain.events import INDEX_PRODUCT
from storage import attributes, outbox, transaction
from storage.attributes import Attribute
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
from web.admin import messages
from web.admin.common import saved
from web.catalog import catalog_changed
from web.cookies import CSRF_FIELD
from web.fields import Line60
from web.forms import Form
from web.keys import DB, REQUEST_ID
from web.params import posted_form
from web.render import render

Apply = Callable[[asyncpg.Connection], Awaitable[Sequence[int]]]


class NameIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)

    name: Line60


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


# The fields of the type and attribute pages' forms, in the pages' order, for the error summary.
FIELDS = [
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


def anchors(form_key: str) -> dict[str, str]:
    """Inputs of a per-row form have the row in their id (f-name-<choice id>)."""
    if form_key.startswith("choice-"):
        return {"name": f"f-name-{form_key.removeprefix('choice-')}"}
    return {}


def form_context(
    request: web.Request, form_key: str, form: Form[Any] | None, status: int
) -> dict[str, Any]:
    """What a type or attribute page needs to show a refused form (`form_key` says which form),
    its summary and the "saved" notice."""
    errors = form.errors if form else {}
    return {
        "form_key": form_key,
        "form": form,
        "summary": messages.summary(errors, FIELDS, anchors(form_key)),
        "saved": saved(request, status),
    }


async def attribute_or_404(executor: Any, attribute_id: int) -> Attribute:
    """The attribute with its choices; 404 when there is none."""
    try:
        return await attributes.get_attribute(executor, attribute_id)
    except AttributeNotFound:
        raise web.HTTPNotFound(text="No such attribute.") from None


async def preview_or_apply(
    request: web.Request,
    plan: Plan | None,
    form: Form[Any],
    back: str,
    page: Callable[[int], Awaitable[web.Response]],
) -> web.Response:
    """The page again with the form's errors (no plan: 422; refused by the apply: 409), the
    confirmation (no `confirm`), or the change applied and a 303 to `back`."""
    if plan is None:
        return await page(422)
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
        field, message = refusal(exc, plan.name_field)
        form.fail(field, message)
        return await page(409)
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


def refusal(exc: Exception, name_field: str) -> tuple[str, str]:
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
