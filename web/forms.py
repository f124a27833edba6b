"""Storefront forms: validate a posted form with the API's pydantic models, errors per field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from web.cookies import CSRF_FIELD
from web.params import posted_form

M = TypeVar("M", bound=BaseModel)

# Never echo these back into a re-rendered form.
SECRET_FIELDS = frozenset({"password", "current_password", "new_password", "token", CSRF_FIELD})


@dataclass
class Form(Generic[M]):
    """A submitted form: the valid model, or the values to show again with an error per field."""

    values: dict[str, str]
    data: M | None = None
    errors: dict[str, str] = field(default_factory=dict)

    def fail(self, name: str, message: str) -> Form[M]:
        """Attach an error to one field (or to "form" for the whole form)."""
        self.errors[name] = message
        self.data = None
        return self


async def read_form(
    request: web.Request,
    model: type[M],
    *,
    blank_as_none: bool = False,
    explain: Callable[[ValidationError], dict[str, str]] | None = None,
) -> Form[M]:
    """Validate the posted form against `model` (unknown fields, like the CSRF token, ignored);
    `explain` turns pydantic's errors into the messages shown beside the fields (by default
    `form_errors`)."""
    posted = await posted_form(request)
    values = {k: v for k, v in posted.items() if isinstance(v, str) and k != CSRF_FIELD}
    fields = set(model.model_fields)
    data = {k: v for k, v in values.items() if k in fields and not (blank_as_none and v == "")}
    shown = {k: v for k, v in values.items() if k not in SECRET_FIELDS}
    # Whatever a model's field types say, no NUL reaches PostgreSQL (it refuses them in text).
    nul = {k: "must not contain a NUL character" for k, v in data.items() if "\x00" in v}
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        return Form(values=shown, errors=(explain or form_errors)(exc) | nul)
    if nul:
        return Form(values=shown, errors=nul)
    return Form(values=shown, data=validated)


def form_errors(exc: ValidationError) -> dict[str, str]:
    """pydantic's errors as {"field": "message"} in the words a form shows beside its fields
    (the API keeps pydantic's own, web.bodies.field_errors)."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "form"
        errors.setdefault(path, in_words(error))
    return errors


def in_words(error: ErrorDetails) -> str:
    """One pydantic error as a person reads it: what to do, in a sentence."""
    kind, limits = error["type"], error.get("ctx") or {}
    if error["loc"] and error["loc"][-1] == "country":
        return "Choose a country from the list."
    if kind == "missing" or (kind == "string_too_short" and limits.get("min_length") == 1):
        return "Fill this in."
    if kind == "string_too_short":
        return f"Use at least {limits['min_length']} characters."
    if kind == "string_too_long":
        return f"Use at most {limits['max_length']} characters."
    if kind == "value_error":  # our validators' own words ("value is not a valid email ...: X")
        message = str(error["msg"]).removeprefix("Value error, ").rpartition(": ")[2]
        return message[:1].upper() + message[1:]
    return str(error["msg"])


def safe_next(value: str | None, default: str = "/account") -> str:
    """A redirect target on this site only: a path, never `//host` or `scheme:`."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in value):
        return default
    return value
