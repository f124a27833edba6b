"""Rendering pages with what every page needs: the request, the user, CSRF; and for the
storefront's pages (`page`), the top categories of the header."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from web import catalog
from web.cookies import csrf_token
from web.keys import PRINCIPAL


def render(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> web.Response:
    """The page `template` with `context`, plus `request`, `principal` and `csrf_token`."""
    full = {
        "request": request,
        "principal": request.get(PRINCIPAL),
        "csrf_token": csrf_token(request),
        **(context or {}),
    }
    response: web.Response = aiohttp_jinja2.render_template(template, request, full, status=status)
    # Pages can show who is signed in: never let a shared cache keep them.
    response.headers.setdefault("Cache-Control", "private, no-store")
    return response


async def page(
    request: web.Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    nav: list[Any] | None = None,
) -> web.Response:
    """`render` plus what the storefront's layout shows on every page: the top categories (a
    cached catalog read). `nav` is those categories when the caller has read them already
    (web.store.catalog.with_nav)."""
    if nav is None:
        nav = catalog.loads(await catalog.category_tree(request))["items"]
    return render(request, template, {"nav_categories": nav, **(context or {})}, status=status)
