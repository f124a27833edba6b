"""API operations declared once: the route, its guard, its body model and its documentation.

`add_operations` registers each operation with a wrapper that enforces its `auth` level and reads
its body model, so the OpenAPI document and the behaviour cannot drift apart. The document
lists every status an operation can answer, each error as problem+json: the ones every
operation shares follow from its declaration (a body: 400 413 415 422; query parameters: 400;
path parameters: 404; a guard: 401 403), and `problems` adds the domain's (409 for a conflict).
`tests/integration/web/api/test_openapi_contract.py` holds the API to it with schemathesis.
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
from domain.identifiers import SLUG_MAX_LENGTH, SLUG_PATTERN
from web.bodies import read_body
from web.fields import BIGINT_MAX
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


# What the path's parameters are, by name (web.params parses them so).
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "slug": {"type": "string", "pattern": SLUG_PATTERN, "maxLength": SLUG_MAX_LENGTH},
    "number": {"type": "string", "pattern": "^[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}$"},
    "variant_id": {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
    "address_id": {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
}
# Text in a JSON body never holds a NUL (web.params.json_problems); a string schema without a
# pattern of its own says so.
NO_NUL = "^[^\\x00]*$"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
REASONS = {
    304: "Not modified: the client's copy (If-None-Match) is current",
    400: "Malformed: a body that is not JSON, or a query parameter that cannot be used",
    401: "Missing, invalid or expired token",
    403: "Not allowed, or a cookie-borne request without its CSRF token",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The body is too large",
    415: "The body is not application/json",
    422: "A field is not valid",
    429: "Too many attempts; see Retry-After",
    503: "Busy; see Retry-After",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


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
    components = schemas.get("$defs", {})
    _refuse_nul(components)
    components["Problem"] = PROBLEM_SCHEMA
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
            {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
            for name in _path_parameters(operation)
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
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "aioshop-access"},
            },
        },
    }


def _path_parameters(operation: Operation) -> list[str]:
    return [part[1:-1] for part in operation.path.split("/") if part.startswith("{")]


def _refuse_nul(schema: Any) -> None:
    """Give every string schema without a pattern the NO_NUL one."""
    if isinstance(schema, dict):
        if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
            schema["pattern"] = NO_NUL
        for value in schema.values():
            _refuse_nul(value)
    elif isinstance(schema, list):
        for value in schema:
            _refuse_nul(value)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _responses(operation: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "success"}
    if operation.response is not None:
        success["content"] = {"application/json": {"schema": _ref(operation.response)}}
    responses: dict[str, Any] = {str(operation.status): success}
    # Any request with an Authorization header that is not a valid bearer token is refused.
    statuses = {401, *operation.problems}
    if operation.body is not None:
        statuses |= {400, 413, 415, 422}
    if operation.parameters:
        statuses.add(400)
    if _path_parameters(operation):
        statuses.add(404)
    if operation.auth == "staff" or operation.method in UNSAFE_METHODS:
        statuses.add(403)  # not staff; or riding on cookies without the CSRF token
    for status in sorted(statuses - {304}):
        content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        responses[str(status)] = {"description": REASONS[status], "content": content}
    if 304 in operation.problems:
        responses["304"] = {"description": REASONS[304]}
    return responses
