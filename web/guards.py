"""The guard of the staff-only sub-apps (/admin and /ops): one middleware, so no page forgets it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from web.keys import PRINCIPAL


@web.middleware
async def staff_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """Anonymous visitors go to the sign-in page; signed-in non-staff get 403."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")
    if not principal.is_staff:
        raise web.HTTPForbidden(text="This page is for staff.")
    response: web.StreamResponse = await handler(request)  # web.security: never cached
    return response
