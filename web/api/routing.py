"""API operations declared once: the route, its guard, its body model and its documentation.

`add_operations` registers each operation with a wrapper that enforces its `auth` level and reads
its body model, so the OpenAPI document and the behaviour cannot drift apart. The document
lists every status an operation can answer, each error as problem+json: the ones every
operation shares follow from its declaration (a body: 400 413 415 422; query parameters: 400;
path parameters: 404; a guard: 401 403), and `problems` adds the domain's (409 for a conflict).
web/api/openapi.py builds the document; `tests/integration/web/api/test_openapi_contract.py`
holds the API to it with schemathesis.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from auth.permissions import require_staff
from auth.tokens import InvalidToken, Principal
from web.bodies import read_body
from web.keys import PRINCIPAL

Auth = Literal["none", "user", "staff"]
Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    auth: Auth = "none"
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    tag: str = "shop"
    name: str | None = None
    parameters: tuple[dict[str, Any], ...] = ()  # OpenAPI query parameters, for the document
    problems: tuple[int, ...] = ()  # statuses of its domain errors (409, 429...), for the document
    # For the document too (web/api/openapi.py): request headers it reads beyond the usual ones,
    # headers its success answer carries, whether a guest's cart token (X-Cart-Token) counts,
    # whether a guest's order token (X-Order-Token) does (the handler checks it: with auth
    # "none", an operation on one order answers 404 to anyone neither its owner nor holding its
    # token), and an example body. Its description is the handler's docstring.
    request_headers: tuple[str, ...] = ()
    response_headers: tuple[str, ...] = ()
    cart_token: bool = False
    order_token: bool = False
    example: dict[str, Any] | None = None


def principal_of(request: web.Request) -> Principal:
    """The signed-in principal; raises InvalidToken for anonymous requests."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:
        raise InvalidToken("authentication required")
    return principal


def _guarded(operation: Operation) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if operation.auth == "user":
            principal_of(request)
        elif operation.auth == "staff":
            require_staff(request.get(PRINCIPAL))
        if operation.body is None:
            return await operation.handler(request)
        return await operation.handler(request, await read_body(request, operation.body))

    handle.__name__ = operation.handler.__name__
    handle.__doc__ = operation.handler.__doc__
    return handle


def add_operations(app: web.Application, operations: Iterable[Operation]) -> None:
    """Register every operation's route on `app`."""
    for operation in operations:
        app.router.add_route(
            operation.method, operation.path, _guarded(operation), name=operation.name
        )
