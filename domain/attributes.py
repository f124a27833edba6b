"""What attribute values read as for people: Yes/No for booleans, a choice's name for its slug,
a number with its unit."""

from __future__ import annotations

from collections.abc import Mapping


def yes_no(value: object) -> str:
    """`Yes` or `No`: a boolean for people."""
    return "Yes" if value else "No"


def value_text(
    value: object, *, kind: str, unit: str = "", choices: Mapping[str, str] | None = None
) -> str:
    """`value` of an attribute of `kind` for people: a boolean as Yes/No, a choice by its name
    (`choices`: {slug: name}; a slug with no choice as it is), a number with `unit`, a list of
    values joined by commas."""
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v, kind=kind, unit=unit, choices=choices) for v in value)
    if isinstance(value, str) and kind == "boolean":  # a facet's or a form's "true"/"false"
        return yes_no(value.strip().lower() in ("true", "1", "yes"))
    if kind == "boolean" or isinstance(value, bool):
        return yes_no(value)
    if kind == "choice":
        return (choices or {}).get(str(value), str(value))
    if kind == "number" and unit:
        return f"{value} {unit}"
    return str(value)
