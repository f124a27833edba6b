"""The OpenAPI document says what an app needs: each operation's answers with schemas, each
problem type, the headers to send and read, the security schemes, examples and descriptions.
(Whether the API keeps to it is tests/integration/web/api/test_openapi_contract.py's job.)"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from web.api.app import OPERATIONS, PREFIX
from web.api.openapi import REASONS, openapi_document
from web.problems import EXPOSED_SCHEMAS, PROBLEM_JSON, PROBLEMS, problem_body

DOCUMENT = openapi_document(OPERATIONS, title="aioshop API", prefix=PREFIX)
SCHEMAS = DOCUMENT["components"]["schemas"]
ENTRIES = [
    (path, method, entry)
    for path, methods in DOCUMENT["paths"].items()
    for method, entry in methods.items()
]
IDS = [f"{method.upper()} {path}" for path, method, _ in ENTRIES]


def operation(method: str, path: str) -> dict[str, Any]:
    entry: dict[str, Any] = DOCUMENT["paths"][PREFIX + path][method]
    return entry


def validator(name: str) -> Any:
    """A validator of components/schemas/<name>, with the document's other schemas to refer to."""
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": SCHEMAS}}
    return jsonschema_rs.validator_for(root)


@pytest.mark.parametrize(("path", "method", "entry"), ENTRIES, ids=IDS)
def test_every_operation_is_described_with_its_answers(
    path: str, method: str, entry: dict[str, Any]
) -> None:
    assert entry["summary"] and entry["description"], path
    success = [status for status in entry["responses"] if status.startswith("2")]
    assert len(success) == 1, path
    answer = entry["responses"][success[0]]
    if success[0] != "204":
        assert "$ref" in answer["content"]["application/json"]["schema"], path
    for status, response in entry["responses"].items():
        if int(status) >= 400:
            schema = response["content"][PROBLEM_JSON]["schema"]
            assert schema == {"$ref": f"#/components/schemas/Problem{status}"}, (path, status)
        assert response["description"], (path, status)


def test_each_problem_type_is_enumerated_under_its_status() -> None:
    for problem in PROBLEMS.values():
        kinds = SCHEMAS[f"Problem{problem.status}"]["anyOf"]
        assert {"$ref": f"#/components/schemas/problem-{problem.slug}"} in kinds, problem.slug
        shape = SCHEMAS[f"problem-{problem.slug}"]
        assert shape["properties"]["type"] == {"const": f"/problems/{problem.slug}"}
        assert set(problem.expose) <= set(shape["required"]), problem.slug
        assert set(problem.expose) <= set(EXPOSED_SCHEMAS), problem.slug


@pytest.mark.parametrize("problem", sorted(set(PROBLEMS.values()), key=lambda p: p.slug))
def test_the_problem_schemas_take_the_bodies_the_api_sends(problem: Any) -> None:
    examples = {
        "errors": {"email": "value is not a valid email address"},
        "retry_after": 30,
        "slug": "linen-shirt",
        "sku": "LINEN-M",
        "available": 1,
        "requested": 2,
        "shortages": {"LINEN-M": 0},
        "current": "shipped",
        "code": "express",
        "reason": "processing",
    }
    exposed = {name: examples[name] for name in problem.expose}
    body = problem_body(
        problem.status, f"/problems/{problem.slug}", problem.title, detail="x", **exposed
    )
    status_schema = validator(f"Problem{problem.status}")
    assert status_schema.is_valid(body), body
    wrong_type = {**body, "type": "/problems/no-such-problem"}
    assert not status_schema.is_valid(wrong_type)
    if problem.expose:  # a field the type promises, missing
        missing = {k: v for k, v in body.items() if k != problem.expose[0]}
        assert not validator(f"problem-{problem.slug}").is_valid(missing)


@pytest.mark.parametrize("status", sorted(set(REASONS) - {304}))
def test_plain_http_errors_are_about_blank(status: int) -> None:
    body = problem_body(status, "about:blank", "Method Not Allowed")
    assert validator(f"Problem{status}").is_valid(body)
    assert not validator(f"Problem{status}").is_valid({**body, "status": 599})


def test_checkout_documents_its_headers() -> None:
    entry = operation("post", "/checkout")
    parameters = {p["name"]: p for p in entry["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in parameters and parameters["Idempotency-Key"]["example"]
    headers = entry["responses"]["201"]["headers"]
    assert {"Location", "Idempotent-Replayed"} <= set(headers)
    assert entry["requestBody"]["content"]["application/json"]["example"]["card"]
    assert {"cartToken": []} in entry["security"] and {} in entry["security"]


def test_cached_reads_document_etag_and_if_none_match() -> None:
    for path in ("/products", "/products/{slug}", "/categories", "/search"):
        entry = operation("get", path)
        assert "If-None-Match" in {p["name"] for p in entry["parameters"] if p["in"] == "header"}
        assert "ETag" in entry["responses"]["200"]["headers"]
        assert "ETag" in entry["responses"]["304"]["headers"]


def test_retry_after_and_www_authenticate_are_documented() -> None:
    seen = set()
    for _, _, entry in ENTRIES:
        for status, header in (
            ("429", "Retry-After"),
            ("503", "Retry-After"),
            ("401", "WWW-Authenticate"),
        ):
            if status in entry["responses"]:
                assert header in entry["responses"][status]["headers"]
                seen.add(status)
    assert seen == {"401", "429", "503"}


def test_security_schemes_and_the_cart_token() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["bearer"] == schemes["bearer"] | {"type": "http", "scheme": "bearer"}
    assert schemes["cartToken"] | {"in": "header", "name": "X-Cart-Token"} == schemes["cartToken"]
    for path in ("/cart", "/cart/items", "/checkout"):
        for entry in DOCUMENT["paths"][PREFIX + path].values():
            assert {"cartToken": []} in entry["security"], path
    assert operation("get", "/me")["security"] == [{"bearer": []}, {"cookie": []}]


def test_answers_have_their_schemas_and_examples() -> None:
    order = validator("Order")
    assert not order.is_valid({"number": "AAAA-BBBB-CCCC"})  # required fields are required
    assert SCHEMAS["Money"]["properties"]["amount"]["examples"]
    assert operation("post", "/auth/login")["requestBody"]["content"]["application/json"]["example"]
    assert "problem+json" in DOCUMENT["info"]["description"]
    assert {tag["name"] for tag in DOCUMENT["tags"]} >= {op.tag for op in OPERATIONS}
