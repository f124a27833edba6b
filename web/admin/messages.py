"""Validation messages on the staff pages, written for people, and the summary atop a form.

pydantic says "Input should be a valid decimal" or "String should match pattern '^[a-z0-9]+'";
staff read "Enter a price such as 12.50". `plain` turns a ValidationError into one sentence per
field, from the error's type and what the field is (FIELD_KINDS: the field name without its
variant-row prefix). `summary` lists a form's errors in the order its fields appear, each with
the id of the input it is about, for the box at the top of the form (admin/_errors.html).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from web.forms import Form, read_form

ROW_PREFIX = re.compile(r"^v-[0-9]{1,3}-")
# What to ask for when a field is empty or unreadable, by field.
ASK = {
    "name": "Enter a name.",
    "slug": "Enter a slug such as blue-mug: lowercase letters and digits, joined by hyphens.",
    "sku": "Enter a SKU such as MUG-BLUE-1: capital letters, digits, '.', '_' or '-'.",
    "price": "Enter a price such as 12.50.",
    "stock": "Enter the number in stock, a whole number such as 12.",
    "currency": "Enter a three-letter currency code such as EUR.",
    "category_id": "Choose a category from the list.",
    "alt": "Describe the image in a few words.",
    "new_name": "Enter a name.",
    "new_slug": "Enter a slug such as shoe_size: lowercase letters and digits, joined by _.",
    "choices": "Enter at least one choice, one a line.",
    "attribute_id": "Choose an attribute from the list.",
    "choice_id": "Choose a choice from the list.",
}
# The same field, when the value is there but has the wrong shape.
SHAPE = {
    "slug": "Use lowercase letters and digits, words joined by single hyphens (e.g. blue-mug).",
    "sku": "Use capital letters, digits, '.', '_' or '-', up to 64 (e.g. MUG-BLUE-1).",
    "currency": "Use a three-letter currency code such as EUR.",
    "new_slug": "Use lowercase letters and digits, words joined by _ (e.g. shoe_size).",
}
TOO_LOW = {
    "price": "A price cannot be below 0.",
    "stock": "Stock cannot be below 0.",
}
TOO_HIGH = {
    "price": "Enter a price of at most 10,000,000,000.",
    "stock": "Enter a stock of at most 1,000,000,000.",
}
EMPTY = {"missing", "string_too_short"}
WRONG_NUMBER = {
    "decimal_parsing",
    "decimal_type",
    "int_parsing",
    "int_type",
    "int_from_float",
    "float_parsing",
    "finite_number",
    "decimal_max_digits",
    "decimal_whole_digits",
}


M = TypeVar("M", bound=BaseModel)
NUL = "must not contain a NUL character"


def _kind(field: str) -> str:
    return ROW_PREFIX.sub("", field)


def sentence(field: str, error_type: str, context: Mapping[str, Any], fallback: str) -> str:
    """One error as staff should read it; `fallback` is the validator's own message."""
    kind = _kind(field)
    if error_type in EMPTY:
        return ASK.get(kind, "Fill in this field.")
    if error_type == "string_pattern_mismatch":
        return SHAPE.get(kind, "Use only the characters this field allows.")
    if error_type in WRONG_NUMBER:
        return ASK.get(kind, "Enter a number such as 12.")
    if error_type == "string_too_long":
        return f"Use at most {context.get('max_length')} characters."
    if error_type in ("greater_than_equal", "greater_than"):
        if kind in TOO_LOW or kind in ASK:
            return TOO_LOW.get(kind) or ASK[kind]
        return f"Enter {context.get('ge', context.get('gt'))} or more."
    if error_type in ("less_than_equal", "less_than"):
        if kind in TOO_HIGH or kind in ASK:
            return TOO_HIGH.get(kind) or ASK[kind]
        return f"Enter {_number(context.get('le', context.get('lt')))} or less."
    if error_type == "control_character":
        return f"The text {fallback.rstrip('.')}."
    if error_type in ("extra_forbidden", "model_type", "dict_type"):
        return "This form has a field the shop does not know. Reload the page."
    if error_type == "price_decimals":  # ours, already a sentence
        return fallback
    if error_type in ("bool_parsing", "enum", "literal_error"):
        return "Choose one of the options."
    return "Check this value: the shop cannot read it."


def _number(value: object) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def plain(exc: ValidationError) -> dict[str, str]:
    """pydantic's errors as {"field": "sentence"} (the first error of each field)."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "form"
        message = sentence(field, error["type"], error.get("ctx") or {}, error["msg"])
        errors.setdefault(field, message)
    return errors


@dataclass(frozen=True)
class Problem:
    """One line of the error summary: the field's label and message, and where it is."""

    target: str | None  # the input's id (f-<name>), None for a form-wide message
    label: str
    message: str


def summary(
    errors: Mapping[str, str],
    fields: Iterable[tuple[str, str]],
    anchors: Mapping[str, str] | None = None,
) -> list[Problem]:
    """The errors in the form's order: `fields` are (name, label) as the form shows them; a
    form-wide error ("form") comes first, and any error of an unlisted field last. The link goes
    to the input f-<name>, or to anchors[name] for an error about a part of the form."""
    anchors = anchors or {}
    problems = [Problem(None, "", errors["form"])] if "form" in errors else []
    listed: set[str] = {"form"}
    for name, label in fields:
        if name in errors and name not in listed:
            problems.append(Problem(anchors.get(name, f"f-{name}"), label, errors[name]))
            listed.add(name)
    problems += [
        Problem(f"f-{name}", name, message)
        for name, message in errors.items()
        if name not in listed
    ]
    return problems


async def read(request: web.Request, model: type[M], *, blank_as_none: bool = False) -> Form[M]:
    """web.forms.read_form with the messages written for staff (`plain`), NUL included."""
    form = await read_form(request, model, blank_as_none=blank_as_none, explain=plain)
    for name, message in form.errors.items():
        if message == NUL:
            form.errors[name] = sentence(name, "control_character", {}, NUL)
    return form


# The order page's forms (web/admin/orders.py, admin/order_work.html), in the page's order; the
# per-line unit fields are named <prefix><line number>.
ORDER_FIELDS = [
    ("amount", "Amount"),
    ("reason", "Reason"),
    ("tracking_number", "Tracking number"),
    ("note", "Why"),
    ("body", "Note"),
]
LINE_FIELDS = {"qty_": "Units to refund, line {}", "ship_": "Units to ship, line {}"}


def page_summary(
    forms: Mapping[str, Form[Any]], fields: Iterable[tuple[str, str]]
) -> list[Problem]:
    """The summary of a page with several forms: the refused one's errors (a page shows one
    refusal at a time), per-line fields labelled by their line."""
    errors: Mapping[str, str] = next((f.errors for f in forms.values() if f.errors), {})
    lines = [
        (name, template.format(name.removeprefix(prefix)))
        for name in errors
        for prefix, template in LINE_FIELDS.items()
        if name.startswith(prefix)
    ]
    return summary(errors, [*fields, *sorted(lines)])
