"""API operations declared once: the route, its guard, its body model and its documentation.

`add_operations` registers each operation with a wrapper that enforces its `auth` level and reads
its body model, so the OpenAPI document and the behaviour cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

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


def openapi_document(operations: Sequence[Operation], *, title: str, prefix: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the operations, with pydantic's JSON schemas."""
    models = {
        model
        for operation in operations
        for model in (operation.body, operation.response)
        if model is not None
    }
    _, schemas = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        entry: dict[str, Any] = {
            "summary": operation.summary,
            "operationId": operation.handler.__name__,
            "tags": [operation.tag],
            "responses": _responses(operation),
        }
        if operation.auth != "none":
            entry["security"] = [{"bearer": []}, {"cookie": []}]
        if operation.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(operation.body)}},
            }
        parameters = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in operation.path.split("/")
            if part.startswith("{")
        ]
        parameters += list(operation.parameters)
        if parameters:
            entry["parameters"] = parameters
        paths.setdefault(prefix + operation.path, {})[operation.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "aioshop-access"},
            },
        },
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _responses(operation: Operation) -> dict[str, Any]:
    problem = {"description": "problem", "content": {"application/problem+json": {}}}
    success: dict[str, Any] = {"description": "success"}
    if operation.response is not None:
        success["content"] = {"application/json": {"schema": _ref(operation.response)}}
    responses: dict[str, Any] = {str(operation.status): success}
    if operation.body is not None:
        responses["422"] = problem
    if operation.parameters:
        responses["400"] = problem
    if operation.auth != "none":
        responses["401"] = problem
    if operation.auth == "staff":
        responses["403"] = problem
    return responses
