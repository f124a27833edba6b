"""The JSON API sub-app, mounted at /api/v1/. Every error in it is problem+json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from auth.tokens import InvalidToken, verify_access_token
from web.api import products
from web.keys import PRINCIPAL, SIGNING_KEYS
from web.problems import problem_middleware


@web.middleware
async def bearer_auth(request: web.Request, handler: Any) -> web.StreamResponse:
    """Verify `Authorization: Bearer` when present; a bad token is a 401, never anonymous."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("use the Bearer scheme")
        request[PRINCIPAL] = verify_access_token(request.config_dict[SIGNING_KEYS], token.strip())
    response: web.StreamResponse = await handler(request)
    return response


def create_api_app() -> web.Application:
    """The /api/v1 application."""
    api = web.Application(middlewares=[problem_middleware, bearer_auth])
    api.router.add_get("/products", products.list_products, name="products")
    api.router.add_post("/products", products.create_product)
    api.router.add_get("/products/{product_id}", products.get_product, name="product")
    return api
