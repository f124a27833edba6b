"""Pydantic field types for the identifiers that API bodies, staff and storefront forms share."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

from domain.emails import MAX_LENGTH as EMAIL_MAX_LENGTH
from domain.emails import InvalidEmail, normalize_email
from domain.identifiers import SKU_PATTERN, SLUG_MAX_LENGTH, SLUG_PATTERN
from domain.money import CURRENCY_PATTERN

Slug = Annotated[
    str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=SLUG_MAX_LENGTH)
]
ShortSlug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=60)]
Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
CurrencyCode = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN.pattern)]


def _email(value: str) -> str:
    try:
        return normalize_email(value)
    except InvalidEmail as exc:
        # pydantic's own wording for EmailStr, which this type replaces.
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(exc)}
        ) from None


# The shop's one email rule (domain.emails), normalised; never pydantic's EmailStr, which also
# takes "Name <address>" and so differs from what createadmin and the checkout form accept.
Email = Annotated[
    str,
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": EMAIL_MAX_LENGTH}),
]
