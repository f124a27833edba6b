"""Request bodies: the pydantic models that API bodies and storefront forms share, and reading
them (JSON only, bounded, validated into InvalidInput)."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from auth.passwords import MAX_LENGTH, MIN_LENGTH
from web.fields import (
    FILLED_LINE,
    SINGLE_LINE,
    Country,
    Email,
    Line100,
    Line200,
    OpaqueToken,
    OptionalLine200,
)
from web.params import json_problems, load_json
from web.problems import InvalidInput

M = TypeVar("M", bound=BaseModel)


async def read_body(request: web.Request, model: type[M]) -> M:
    """The body as `model`; 415 unless JSON, 400 when malformed, 413 when too large, 422 invalid."""
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(text="send the body as application/json")
    raw = await request.read()  # client_max_size bounds this (413)
    data: Any = load_json(raw)  # 400 when malformed or nested too deep
    if not isinstance(data, dict):
        raise InvalidInput({"body": "must be a JSON object"})
    if problems := json_problems(data):  # NUL and numbers past 64 bits, wherever they are
        raise InvalidInput(problems)
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
# A password being chosen: auth.passwords.check_new_password says the rest (not a common one).
NewPassword = Annotated[str, StringConstraints(min_length=MIN_LENGTH, max_length=MAX_LENGTH)]
Name = Line100


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterBody(Body):
    email: Email
    password: NewPassword
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
    new_password: NewPassword


class TokenBody(Body):
    token: OpaqueToken


Text100 = Line100
Text200 = Line200
Line2 = OptionalLine200
PostalCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=20),
    SINGLE_LINE,
    FILLED_LINE,
]
Phone = Annotated[str, StringConstraints(pattern=r"^[0-9+() -]{0,30}$")]


class ProfileChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Password
    new_password: NewPassword


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
