"""Reading what search engines and link previews read from a page: its <head> tags (with lxml)
and its JSON-LD and Open Graph (with extruct, as a crawler would)."""

from __future__ import annotations

from typing import Any

import extruct
import lxml.html


def head_tags(page: str) -> dict[str, list[str]]:
    """`canonical`, `robots`, `description`, `og:*` and `twitter:*` -> their values, in order."""
    head = lxml.html.fromstring(page).find("head")
    assert head is not None
    found: dict[str, list[str]] = {}
    for link in head.iterfind("link"):
        if link.get("rel") == "canonical":
            found.setdefault("canonical", []).append(link.get("href", ""))
    for meta in head.iterfind("meta"):
        key = meta.get("property") or meta.get("name")
        if key and (key in ("robots", "description") or key.startswith(("og:", "twitter:"))):
            found.setdefault(key, []).append(meta.get("content", ""))
    return found


def one(tags: dict[str, list[str]], key: str) -> str:
    """The value of a tag a page must have exactly once."""
    values = tags.get(key, [])
    assert len(values) == 1, (key, values)
    return values[0]


def structured_data(page: str, url: str) -> dict[str, Any]:
    """extruct's reading of the page: {"json-ld": [...], "opengraph": [{"properties": ...}]}."""
    data: dict[str, Any] = extruct.extract(page, base_url=url, syntaxes=["json-ld", "opengraph"])
    return data
