"""The JSON API sub-app, mounted at /api/v1/: its operations, auth middleware and OpenAPI
document. Every error in it is problem+json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth.tokens import InvalidToken
from web.api import auth, cart, categories, me, orders, products
from web.api.docs import add_docs_routes
from web.api.openapi import openapi_document
from web.api.routing import Operation, add_operations
from web.cookies import ACCESS, CSRF_HEADER, REFRESH, SAFE_METHODS, check_csrf, cookie_name
from web.keys import ACCOUNTS, PRINCIPAL, SETTINGS
from web.params import opaque
from web.problems import problem_middleware

PREFIX = "/api/v1"
OPERATIONS: tuple[Operation, ...] = (
    *products.OPERATIONS,
    *categories.OPERATIONS,
    *auth.OPERATIONS,
    *me.OPERATIONS,
    *cart.OPERATIONS,
    *orders.OPERATIONS,
)


@web.middleware
async def api_auth(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bearer tokens for API clients; cookies (set by the storefront) for the browser's scripts.

    A bad bearer token is a 401, never anonymous. A browser request that changes something must
    carry the CSRF token in the X-CSRF-Token header.
    """
    header = request.headers.get("Authorization")
    if header is not None:
        request.pop(PRINCIPAL, None)  # the header wins over any cookie
        scheme, _, sent = header.partition(" ")
        token = opaque(sent.strip())
        if scheme.lower() != "bearer" or token is None:
            raise InvalidToken("use the Bearer scheme")
        request[PRINCIPAL] = await request.config_dict[ACCOUNTS].authenticate(token)
    elif request.method not in SAFE_METHODS and (
        CSRF_HEADER in request.headers
        or any(request.cookies.get(cookie_name(request, base)) for base in (ACCESS, REFRESH))
    ):
        await check_csrf(request)
    response: web.StreamResponse = await handler(request)
    return response


async def openapi_view(request: web.Request) -> web.Response:
    """The OpenAPI document of this API."""
    title = f"{request.config_dict[SETTINGS].shop_name} API"
    return web.json_response(openapi_document(OPERATIONS, title=title, prefix=PREFIX))


def create_api_app() -> web.Application:
    """The /api/v1 application."""
    api = web.Application(middlewares=[problem_middleware, api_auth])
    add_operations(api, OPERATIONS)
    api.router.add_get("/openapi.json", openapi_view, name="openapi")
    add_docs_routes(api)
    return api
