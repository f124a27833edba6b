"""Storefront forms: validate a posted form with the API's pydantic models, errors per field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ValidationError

from web.bodies import field_errors
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
    explain: Callable[[ValidationError], dict[str, str]] = field_errors,
) -> Form[M]:
    """Validate the posted form against `model` (unknown fields, like the CSRF token, ignored);
    `explain` turns pydantic's errors into the messages shown beside the fields."""
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
        return Form(values=shown, errors=explain(exc) | nul)
    if nul:
        return Form(values=shown, errors=nul)
    return Form(values=shown, data=validated)


def safe_next(value: str | None, default: str = "/account") -> str:
    """A redirect target on this site only: a path, never `//host` or `scheme:`."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(ch) < 32 for ch in value):
        return default
    return value
