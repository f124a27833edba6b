"""Message arguments as operators may see them: secrets hidden, long values cut.

A message's arguments are events' ids and kinds today, but a page that shows arguments must not
become the place where a future actor's token or card number leaks: any mapping key or keyword
argument whose name looks like a secret is replaced by REDACTED, at any depth, and every string
is cut to VALUE_CHARS. A positional argument has no name, so only its nested keys are checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[redacted]"
VALUE_CHARS = 80
MAX_ITEMS = 20  # of one list or mapping; the rest is summed up
MAX_DEPTH = 4
# Matched anywhere in a name, case-insensitively: "password", "api_key", "X-Authorization"...
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|token|secret|card|cvc|cvv|iban|authori[sz]ation|auth\b|bearer|"
    r"cookie|session|signature|credential|private|key",
    re.IGNORECASE,
)


def is_secret(name: str) -> bool:
    """Whether a key or argument called `name` may hold a secret."""
    return SECRET_NAME.search(name) is not None


def redact(value: Any, depth: int = 0) -> Any:
    """`value` with the values of secret-looking keys replaced and long strings cut."""
    if depth >= MAX_DEPTH:
        return "…"
    if isinstance(value, str):
        return value if len(value) <= VALUE_CHARS else value[: VALUE_CHARS - 1] + "…"
    if isinstance(value, Mapping):
        items = list(value.items())
        shown: dict[str, Any] = {
            str(key): REDACTED if is_secret(str(key)) else redact(item, depth + 1)
            for key, item in items[:MAX_ITEMS]
        }
        if len(items) > MAX_ITEMS:
            shown["…"] = f"{len(items) - MAX_ITEMS} more"
        return shown
    if isinstance(value, list | tuple):
        shown_items = [redact(item, depth + 1) for item in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            shown_items.append(f"… {len(value) - MAX_ITEMS} more")
        return shown_items
    return value


def arguments(args: Any, kwargs: Any) -> str:
    """A message's arguments as one line: positional ones, then name=value, secrets hidden."""
    parts = [repr(redact(arg)) for arg in (args if isinstance(args, list | tuple) else [args])]
    if isinstance(kwargs, Mapping):
        parts += [
            f"{name}={REDACTED if is_secret(str(name)) else repr(redact(value))}"
            for name, value in kwargs.items()
        ]
    return ", ".join(parts)
