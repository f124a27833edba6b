"""The shapes of the catalog's identifiers, one definition each (the tables CHECK the same).

slug   lower-case words joined by single hyphens: "trail-running-shoe"
SKU    upper-case letters, digits and ._- after a letter or digit, at most 64
"""

from __future__ import annotations

import re

SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
SKU_PATTERN = r"^[A-Z0-9][A-Z0-9._-]{0,63}$"  # SKU_MAX_LENGTH in all
SLUG_MAX_LENGTH = 120  # URLs; product types and attributes use shorter ones
SKU_MAX_LENGTH = 64

SLUG = re.compile(SLUG_PATTERN)
SKU = re.compile(SKU_PATTERN)


def is_slug(text: str, max_length: int = SLUG_MAX_LENGTH) -> bool:
    """Whether `text` is a slug no longer than `max_length` (a cheap check before any query)."""
    return len(text) <= max_length and SLUG.fullmatch(text) is not None
