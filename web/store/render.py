"""Rendering storefront pages with what every page needs: the request, the user, CSRF."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

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
