"""Request bodies: the pydantic models that API bodies and storefront forms share, and reading
them (JSON only, bounded, validated into InvalidInput)."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from auth.passwords import MAX_LENGTH
from web.fields import Email
from web.problems import InvalidInput

M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, model: type[M]) -> M:
    """The body as `model`; 415 unless JSON, 400 when malformed, 413 when too large, 422 invalid."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send the body as application/json")
    raw = await request.read()  # client_max_size bounds this (413)
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise web.HTTPBadRequest(text=f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput({"body": "must be a JSON object"})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from None


def field_errors(exc: ValidationError) -> dict[str, str]:
    """pydantic's errors as {"field.path": "message"}."""
    errors: dict[str, str] = {}
    for error in exc.errors():
        path = ".".join(str(part) for part in error["loc"]) or "body"
        errors.setdefault(path, error["msg"])
    return errors


Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LENGTH)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
OpaqueToken = Annotated[str, StringConstraints(min_length=10, max_length=200)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterBody(Body):
    email: Email
    password: Password
    name: Name


class LoginBody(Body):
    email: Email
    password: Password


class RefreshBody(Body):
    refresh_token: OpaqueToken | None = None  # omitted by browsers: the cookie is used


class EmailBody(Body):
    email: Email


class ResetBody(Body):
    token: OpaqueToken
    new_password: Password


class TokenBody(Body):
    token: OpaqueToken


def _text(min_length: int, max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


Text100 = Annotated[str, _text(1, 100)]
Text200 = Annotated[str, _text(1, 200)]
Line2 = Annotated[str, _text(0, 200)]
PostalCode = Annotated[str, _text(1, 20)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^[0-9+() -]{0,30}$")]


class ProfileChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Password
    new_password: Password


class AddressIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full_name: Text100
    line1: Text200
    line2: Line2 = ""
    city: Text100
    postal_code: PostalCode
    country: Country
    phone: Phone = ""


class AddressChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full_name: Text100 | None = None
    line1: Text200 | None = None
    line2: Line2 | None = None
    city: Text100 | None = None
    postal_code: PostalCode | None = None
    country: Country | None = None
    phone: Phone | None = None
