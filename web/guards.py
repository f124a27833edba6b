"""The guards of the staff sub-apps: one middleware each, so no page forgets it.

/admin is for the roles `staff` and `admin`; /ops for `ops` and `admin` (auth.permissions).
Anonymous visitors go to the sign-in page; a signed-in account without the role gets a 403 page
saying which role the page needs and which one the account has.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from auth.tokens import Principal
from web.keys import PRINCIPAL
from web.render import render


def _refused(request: web.Request, principal: Principal, area: str, roles: str) -> web.Response:
    return render(
        request,
        "forbidden.html",
        {"area": area, "roles": roles, "role": principal.role},
        status=403,
    )


def _sign_in(request: web.Request) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/login?next={quote(request.path_qs, safe='')}")


@web.middleware
async def staff_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """/admin: staff and admin. Anonymous visitors sign in first; anyone else gets 403."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        raise _sign_in(request)
    if not principal.is_staff:
        return _refused(request, principal, "the shop's staff pages", "staff or admin")
    response: web.StreamResponse = await handler(request)  # web.security: never cached
    return response


@web.middleware
async def operators_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """/ops: ops and admin. Anonymous visitors sign in first; anyone else gets 403."""
    principal = request.get(PRINCIPAL)
    if principal is None:
        raise _sign_in(request)
    if not principal.is_operator:
        return _refused(request, principal, "the operations pages", "ops or admin")
    response: web.StreamResponse = await handler(request)  # web.security: never cached
    return response
