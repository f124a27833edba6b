"""Reading the shop's pages as a browser would: the forms (what submitting them posts) and links.

The standard library's HTMLParser is enough for our own server-rendered pages; a form's fields
are collected as a browser submits them (checked boxes and radios only, a select's chosen
option, a textarea's text), and the radio choices are kept so a user can pick another one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

SKIPPED_TYPES = frozenset({"submit", "button", "file", "image", "reset"})


@dataclass
class Form:
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    radios: dict[str, list[str]] = field(default_factory=dict)  # name -> every offered value

    def get(self, name: str, default: str = "") -> str:
        return next((value for key, value in self.fields if key == name), default)

    def names(self) -> list[str]:
        return [key for key, _ in self.fields]

    def set(self, name: str, value: str) -> None:
        """Replace the field's value (add it when the page had none), as typing into it would."""
        if name in self.names():
            self.fields = [(key, value if key == name else old) for key, old in self.fields]
        else:
            self.fields.append((name, value))

    def unset(self, name: str) -> None:
        self.fields = [(key, value) for key, value in self.fields if key != name]


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._select_value: str | None = None
        self._select_first: str | None = None
        self._option: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {key: value or "" for key, value in attrs}
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "form":
            self._form = Form(a.get("action", ""), a.get("method", "get").lower())
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input":
            self._input(a)
        elif tag == "select":
            self._select, self._select_value, self._select_first = a.get("name"), None, None
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self._select_value = value
        elif tag == "textarea":
            self._textarea, self._text = a.get("name"), []

    def _input(self, a: dict[str, str]) -> None:
        assert self._form is not None
        name, kind = a.get("name"), a.get("type", "text").lower()
        if not name or kind in SKIPPED_TYPES:
            return
        if kind == "radio":
            self._form.radios.setdefault(name, []).append(a.get("value", "on"))
        if kind in ("checkbox", "radio"):
            if "checked" in a:
                self._form.fields.append((name, a.get("value", "on")))
            return
        self._form.fields.append((name, a.get("value", "")))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None and self._form is not None:
            chosen = self._select_value if self._select_value is not None else self._select_first
            self._form.fields.append((self._select, chosen or ""))
            self._select = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            self._form.fields.append((self._textarea, "".join(self._text)))
            self._textarea = None


def read(html: str) -> tuple[list[Form], list[str]]:
    """The page's forms and the hrefs of its links."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.forms, reader.links


def forms(html: str) -> list[Form]:
    return read(html)[0]


def form_to(html: str, action: str) -> Form | None:
    """The page's first form posting to `action` (exactly), or None."""
    return next((f for f in forms(html) if f.action == action), None)


def links(html: str, prefix: str) -> list[str]:
    """The distinct link targets of the page that start with `prefix`, in page order."""
    return list(dict.fromkeys(href for href in read(html)[1] if href.startswith(prefix)))


def meta(html: str, name: str) -> str | None:
    """The content of the page's <meta name=`name`> (the CSRF token is in one)."""
    found = re.search(rf'<meta name="{re.escape(name)}" content="([^"]*)"', html)
    return found.group(1) if found else None
