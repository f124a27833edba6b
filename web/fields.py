"""Pydantic field types for the identifiers that API bodies and staff forms share."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from domain.identifiers import SKU_PATTERN, SLUG_MAX_LENGTH, SLUG_PATTERN
from domain.money import CURRENCY_PATTERN

Slug = Annotated[
    str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=SLUG_MAX_LENGTH)
]
ShortSlug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=60)]
Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
CurrencyCode = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN.pattern)]
