"""The OpenAPI 3.1 document of the API, built from its `Operation`s and web.problems' table.

Each operation gets: its summary and (from the handler's docstring) description; its body's and
its success answer's JSON schemas (pydantic's; the answers' models are in web/api/schemas.py);
every status it can answer, each error as application/problem+json whose `type` is enumerated
from web.problems.PROBLEMS (what each problem type carries is a schema of its own); the request
headers it reads (Idempotency-Key, If-None-Match) and the response headers an app reads (ETag,
Location, Idempotent-Replayed, Retry-After, WWW-Authenticate); its security (a bearer JWT, the
storefront's cookie, or a guest's cart token); and examples.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from domain.identifiers import SLUG_MAX_LENGTH, SLUG_PATTERN
from web.api.routing import Operation
from web.carts import CART_HEADER
from web.checkout import IDEMPOTENCY_KEY_MAX, ORDER_TOKEN_HEADER
from web.fields import BIGINT_MAX
from web.problems import EXPOSED_SCHEMAS, PROBLEM_JSON, PROBLEMS, Problem, problem_body

IDEMPOTENCY_HEADER = "Idempotency-Key"
ABOUT_BLANK = "about:blank"

# What the path's parameters are, by name (web.params parses them so).
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "slug": {
        "description": "the product's slug, as in its `slug` field",
        "schema": {"type": "string", "pattern": SLUG_PATTERN, "maxLength": SLUG_MAX_LENGTH},
        "example": "linen-shirt",
    },
    "number": {
        "description": "the order's number",
        "schema": {"type": "string", "pattern": "^[0-9A-Za-z]{4}-[0-9A-Za-z]{4}-[0-9A-Za-z]{4}$"},
        "example": "7K2M-9QXD-4TBA",
    },
    "variant_id": {
        "description": "the line's `variant_id`",
        "schema": {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
    },
    "address_id": {
        "description": "the address's `id`",
        "schema": {"type": "integer", "minimum": 1, "maximum": BIGINT_MAX},
    },
}
# Text in a JSON body never holds a NUL (web.params.json_problems); a string schema without a
# pattern of its own says so.
NO_NUL = "^[^\\x00]*$"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "An error, as RFC 9457 problem details. `type` names the problem (a path under "
        "/problems/, or about:blank for plain HTTP errors such as 405 or 413); `title` is the "
        "same for every problem of a type; `detail` says what happened this time; `errors` "
        "(validation problems) maps each field to its message."
    ),
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": EXPOSED_SCHEMAS["errors"],
    },
}
REASONS = {
    304: "Not modified: the client's copy (If-None-Match) is current",
    400: "Malformed: a body that is not JSON, or a query parameter that cannot be used",
    401: "Missing, invalid or expired token: refresh it (POST /auth/refresh), or sign in again",
    403: "Not allowed, or a cookie-borne request without its CSRF token",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "The body is too large",
    415: "The body is not application/json",
    422: "A field is not valid (`errors` names each)",
    429: "Too many attempts; wait Retry-After seconds",
    503: "Busy; wait Retry-After seconds",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Request headers an operation may read, as OpenAPI header parameters.
REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    IDEMPOTENCY_HEADER: {
        "description": (
            "Any unique string per order attempt (a UUID). A retry with the same key and body "
            "answers with the order already placed (and `Idempotent-Replayed: true`) instead of "
            "ordering twice; the same key with another body is a 422 idempotency-key-reused."
        ),
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": IDEMPOTENCY_KEY_MAX,
            "pattern": "^[\\x20-\\x7e]+$",
        },
        "example": "5f0c6a8e-2d1b-4c55-9a3e-7b1f0d2c9e41",
    },
    "If-None-Match": {
        "description": "The ETag of the copy the app holds: a 304 without a body if unchanged.",
        "schema": {"type": "string"},
    },
}
# Response headers, as OpenAPI header objects.
RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "Send it back as If-None-Match to get a 304 while the answer is unchanged.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "How long the answer may be reused (public catalog data).",
        "required": True,
        "schema": {"type": "string"},
    },
    "Location": {
        "description": "The URL of what was created.",
        "required": True,
        "schema": {"type": "string"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the answer to an earlier request with the same "
        "Idempotency-Key (no new order was placed); absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": "`Bearer`: the access token is missing, wrong or expired.",
        "required": True,
        "schema": {"type": "string"},
    },
}
STATUS_HEADERS = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}
CACHED_HEADERS = ("ETag", "Cache-Control")

SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "The `access_token` of POST /auth/login, /auth/register or /auth/refresh, as "
            "`Authorization: Bearer <token>`. It expires after `expires_in` seconds: on a 401, "
            "spend the `refresh_token` at POST /auth/refresh once and retry."
        ),
    },
    "cookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "aioshop-access",
        "description": (
            "The storefront's own scripts: HttpOnly cookies set by the auth operations when "
            "the request carries X-CSRF-Token; every unsafe request must carry that header too."
        ),
    },
    "cartToken": {
        "type": "apiKey",
        "in": "header",
        "name": CART_HEADER,
        "description": (
            "A guest's cart: the `cart_token` of the answer that made the cart (the first "
            "POST /cart/items). Send it with every cart and checkout request; after signing "
            "in, send it once more and the guest cart joins the customer's."
        ),
    },
    "orderToken": {
        "type": "apiKey",
        "in": "header",
        "name": ORDER_TOKEN_HEADER,
        "description": (
            "A guest's order: the `order_token` of the POST /checkout answer that placed it "
            "(shown once; keep it with the order). It reads that order and pays it again after "
            "a decline. A wrong token, or none, answers 404 as for an order that does not exist."
        ),
    },
}
TAGS = [
    {"name": "auth", "description": "Accounts and sessions: sign up, sign in, refresh, sign out."},
    {"name": "catalog", "description": "Products, categories and search; public and cacheable."},
    {"name": "cart", "description": "The cart of a customer (bearer) or a guest (cart token)."},
    {"name": "checkout", "description": "Shipping methods and placing an order."},
    {"name": "orders", "description": "The signed-in customer's orders."},
    {"name": "me", "description": "The signed-in customer's profile, password and addresses."},
    {"name": "staff", "description": "Staff only: moving orders along."},
]
DESCRIPTION = """\
The shop's JSON API for apps. Bodies are JSON (`Content-Type: application/json`); money is an
integer `amount` of minor units with its ISO `currency` (and `formatted` text for people).

**Signing in.** POST /auth/login (or /auth/register) answers with an `access_token` (a JWT, sent
as `Authorization: Bearer ...`) and a `refresh_token`. When a request answers 401, spend the
refresh token once at POST /auth/refresh for a new pair and retry; a refresh token used twice
ends its session.

**A guest's cart.** The first POST /cart/items of a guest answers with a `cart_token`: send it
as the `X-Cart-Token` header on every cart and checkout request.

**Placing an order.** POST /checkout with an `Idempotency-Key` header: a retry with the same key
cannot order twice. A guest's answer carries an `order_token`, shown once: send it as the
`X-Order-Token` header to read that order (GET /orders/{number}) and to pay it again after a
decline (POST /orders/{number}/payment).

**Errors** are `application/problem+json` (RFC 9457): `type` says which problem it is (each is
listed with its fields under components/schemas), `errors` names each invalid field. A 429 or
503 carries `Retry-After`.

**Caching.** Catalog answers carry an `ETag`; send it back as `If-None-Match` for a 304.

A guide for mobile apps: docs/mobile-app.md.
"""


def openapi_document(operations: Sequence[Operation], *, title: str, prefix: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the operations, with pydantic's JSON schemas."""
    bodies = {operation.body for operation in operations if operation.body is not None}
    answers = {operation.response for operation in operations if operation.response is not None}
    components = _schemas(answers, "serialization")
    received = _schemas(bodies, "validation")
    _refuse_nul(received)  # what the API takes, not what it gives
    components.update(received)
    components.update(problem_schemas())
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        paths.setdefault(prefix + operation.path, {})[operation.method.lower()] = _operation(
            operation
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": DESCRIPTION},
        "tags": TAGS,
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _operation(operation: Operation) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "summary": operation.summary,
        "description": inspect.getdoc(operation.handler) or operation.summary,
        "operationId": operation.handler.__name__,
        "tags": [operation.tag],
        "responses": _responses(operation),
    }
    if operation.auth != "none":
        entry["security"] = [{"bearer": []}, {"cookie": []}]
    elif operation.order_token:
        entry["security"] = [{"bearer": []}, {"cookie": []}, {"orderToken": []}]
    elif operation.cart_token:
        entry["security"] = [{"bearer": []}, {"cartToken": []}, {"cookie": []}, {}]
    if operation.body is not None:
        content: dict[str, Any] = {"schema": _ref(operation.body)}
        if operation.example is not None:
            content["example"] = operation.example
        entry["requestBody"] = {"required": True, "content": {"application/json": content}}
    parameters = [
        {"name": name, "in": "path", "required": True, **PATH_PARAMETERS[name]}
        for name in _path_parameters(operation)
    ]
    parameters += list(operation.parameters)
    headers = list(operation.request_headers)
    if 304 in operation.problems:
        headers.append("If-None-Match")
    parameters += [{"name": name, "in": "header", **REQUEST_HEADERS[name]} for name in headers]
    if parameters:
        entry["parameters"] = parameters
    return entry


def problem_schemas() -> dict[str, Any]:
    """`Problem`, one schema per problem type (`problem-<slug>`: its fields), and one per status
    (`ProblemNNN`: any of that status's types, or about:blank)."""
    schemas: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
    by_status: dict[int, dict[str, Problem]] = {}
    for problem in PROBLEMS.values():
        by_status.setdefault(problem.status, {})[problem.slug] = problem
        schemas[f"problem-{problem.slug}"] = _problem_type(problem)
    for status in sorted(set(REASONS) - {304}):
        kinds = [
            {"$ref": f"#/components/schemas/problem-{slug}"}
            for slug in sorted(by_status.get(status, {}))
        ]
        blank = {
            "allOf": [{"$ref": "#/components/schemas/Problem"}],
            "title": "about:blank",
            "properties": {"type": {"const": ABOUT_BLANK}, "status": {"const": status}},
        }
        schemas[f"Problem{status}"] = {"anyOf": [*kinds, blank]}
    return schemas


@functools.cache
def problem_examples() -> dict[int, dict[str, Any]]:
    """For each status, an example body of each of its problem types (and about:blank)."""
    examples: dict[int, dict[str, Any]] = {status: {} for status in REASONS}
    for problem in PROBLEMS.values():
        exposed = {name: EXPOSED_SCHEMAS[name]["examples"][0] for name in problem.expose}
        detail = problem.detail or f"{problem.title}."
        body = problem_body(
            problem.status, f"/problems/{problem.slug}", problem.title, detail=detail, **exposed
        )
        examples[problem.status][problem.slug] = {"summary": problem.title, "value": body}
    for status, found in examples.items():
        reason = HTTPStatus(status).phrase
        body = problem_body(status, ABOUT_BLANK, reason)
        found[ABOUT_BLANK] = {"summary": f"{reason} (a plain HTTP error)", "value": body}
    return examples


def _problem_type(problem: Problem) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "type": {"const": f"/problems/{problem.slug}"},
        "status": {"const": problem.status},
        "title": {"type": "string", "examples": [problem.title]},
    }
    properties.update({name: EXPOSED_SCHEMAS[name] for name in problem.expose})
    return {
        "allOf": [{"$ref": "#/components/schemas/Problem"}],
        "title": f"/problems/{problem.slug}",
        "description": f"{problem.status}: {problem.title}.",
        "properties": properties,
        "required": ["type", "title", "status", "detail", *problem.expose],
    }


def _schemas(models: set[type[BaseModel]], mode: JsonSchemaMode) -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(model, mode) for model in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    found: dict[str, Any] = schemas.get("$defs", {})
    return found


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


def _headers(names: Sequence[str]) -> dict[str, Any]:
    return {name: RESPONSE_HEADERS[name] for name in names}


def _responses(operation: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": operation.summary}
    if operation.response is not None:
        success["content"] = {"application/json": {"schema": _ref(operation.response)}}
    cached = 304 in operation.problems
    names = [*operation.response_headers, *(CACHED_HEADERS if cached else ())]
    if names:
        success["headers"] = _headers(names)
    responses: dict[str, Any] = {str(operation.status): success}
    # Any request with an Authorization header that is not a valid bearer token is refused.
    statuses = {401, *operation.problems}
    if operation.body is not None:
        statuses |= {400, 413, 415, 422}
    if operation.parameters or operation.request_headers:
        statuses.add(400 if operation.parameters else 422)
    if _path_parameters(operation):
        statuses.add(404)
    if operation.auth == "staff" or operation.method in UNSAFE_METHODS:
        statuses.add(403)  # not staff; or riding on cookies without the CSRF token
    for status in sorted(statuses - {304}):
        content = {
            PROBLEM_JSON: {
                "schema": {"$ref": f"#/components/schemas/Problem{status}"},
                "examples": problem_examples()[status],
            }
        }
        responses[str(status)] = {"description": REASONS[status], "content": content}
        if status in STATUS_HEADERS:
            responses[str(status)]["headers"] = _headers(STATUS_HEADERS[status])
    if cached:
        responses["304"] = {"description": REASONS[304], "headers": _headers(CACHED_HEADERS)}
    return responses
