"""Staff pages in tests: sign in as staff, post forms with their CSRF token, read errors, and
build the product form's fields."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

from tests.support.browser import csrf_of, signed_in


async def staff(client, fresh_db: str) -> None:  # type: ignore[no-untyped-def]
    await signed_in(client, role="staff", fresh_db=fresh_db)


async def post(client, path: str, data: dict[str, str]):  # type: ignore[no-untyped-def]
    """POST a staff form with the CSRF token, as the page would."""
    token = await csrf_of(client, "/admin/")
    return await client.post(path, data={**data, "csrf_token": token}, allow_redirects=False)


def error_of(page: str, name: str) -> str:
    """The error text shown beside the field `name`."""
    match = re.search(rf'<p class="field-error" id="e-{re.escape(name)}"[^>]*>([^<]*)</p>', page)
    assert match, f"no error beside {name}"
    return html.unescape(match.group(1))


def product_form(
    *rows: dict[str, str], slug: str = "blue-mug", name: str = "Blue mug", **extra: str
) -> dict[str, str]:
    data = {"name": name, "slug": slug, "description": "A mug.", "is_published": "on", **extra}
    for index, row in enumerate(rows):
        data.update({f"v-{index}-{key}": value for key, value in row.items()})
    return data


def variant(sku: str, price: str = "12.50", stock: str = "3", **extra: str) -> dict[str, str]:
    return {
        "sku": sku,
        "name": sku.title(),
        "price": price,
        "currency": "EUR",
        "stock": stock,
        **extra,
    }


async def create(client, data: dict[str, str]) -> int:  # type: ignore[no-untyped-def]
    resp = await post(client, "/admin/products/new", data)
    assert resp.status == 303, await resp.text()
    match = re.match(r"^/admin/products/(\d+)\?saved=1$", resp.headers["Location"])
    assert match
    return int(match.group(1))


class _FormFields(HTMLParser):
    """The fields of the page's forms as a browser would post them (inputs, checked boxes,
    textareas, selected options), for the form whose action is `action`."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.inside = False
        self.fields: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action") == self.action and a.get("method") == "post"
        if not self.inside or ("name" not in a and tag != "option"):
            return
        if tag == "input":
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.fields[a["name"]] = a.get("value") or "on"
            elif a.get("type") not in ("submit", "file"):
                self.fields[a["name"]] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.fields[a["name"]] = ""
        elif tag == "select":
            self._select = a["name"]
            self.fields.setdefault(a["name"], "")
        elif tag == "option" and self._select is not None and "selected" in a:
            self.fields[self._select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.fields[self._textarea] += data


def form_of(page: str, action: str) -> dict[str, str]:
    """What the page's POST form to `action` would send as it is shown (without the CSRF
    token, which `post` adds)."""
    parser = _FormFields(action)
    parser.feed(page)
    parser.fields.pop("csrf_token", None)
    return parser.fields
