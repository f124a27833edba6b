"""The API against its own OpenAPI document, with schemathesis: every check, a fixed seed.

Schemathesis generates requests from the document, valid and invalid ones, and checks each
answer: never a 5xx, every status, content type and body as the document says, invalid data
refused, valid data accepted, authentication not ignored. The document is built at collection
(the app serves the same one, which the first test checks); the app is served from a thread of
its own on a loopback port, because schemathesis calls it synchronously. A customer's and a staff
member's bearer tokens sign the requests in; they carry no session, so a generated logout or
password change cannot end them halfway.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from auth.tokens import SigningKeys, issue_access_token
from configs.settings import Settings
from tests.conftest import TEST_SECRET, Template, dsn_for
from tests.support.catalog import build_catalog
from tests.support.db import fetch, sql
from web.api.app import OPERATIONS, PREFIX
from web.api.openapi import openapi_document
from web.app import create_app

EXAMPLES_PER_OPERATION = 10
SEED = 20261207
TITLE = "aioshop API"  # what the app titles its document with the default SHOP_NAME
DOCUMENT = openapi_document(OPERATIONS, title=TITLE, prefix=PREFIX)
STAFF_OPERATIONS = frozenset(op.handler.__name__ for op in OPERATIONS if op.auth == "staff")
# Validity no JSON Schema can say: a card's check digit and expiry, a cursor or position only a
# previous page gives, a one-time token only an email gives, a password on the list of common
# ones, an email address at a reserved domain (format "email" allows "a@b.test", which no mail
# server takes). Requests that miss it are refused (400/422) though the schema allows them.
ACCEPTED_AFTER_REFUSAL = (
    "checkout",
    "login",
    "request_password_reset",
    "list_products",
    "search_products",
    "list_my_orders",
    "confirm_password_reset",
    "verify_email",
    "register",
    "change_password",
)
# What schemathesis accepts for schema-valid data by default, less its 5xx.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "suppress-health-check": ["all"],
        "generation": {
            "max-examples": EXAMPLES_PER_OPERATION,
            "deterministic": True,
            "database": "none",
        },
        "phases": {"stateful": {"enabled": False}},
        "checks": {"enabled": True},
        "operations": [
            {
                "include-operation-id": operation,
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400", "422"]}
                },
            }
            for operation in ACCEPTED_AFTER_REFUSAL
        ],
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@dataclass(frozen=True)
class LiveApp:
    url: str
    customer: str  # bearer tokens
    staff: str


def _serve(settings: Settings, ready: threading.Event, state: dict[str, Any]) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = web.AppRunner(create_app(settings))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    state["port"], state["loop"] = runner.addresses[0][1], loop
    ready.set()
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(runner.cleanup())
        loop.close()


@pytest.fixture(scope="module")
def live_app(
    template: Template, run_redis_url: str, broker_url: str, tmp_path_factory: Any
) -> Iterator[LiveApp]:
    """The whole app on a loopback port, for every operation's test: a database of its own with
    a small catalog, a customer and a staff member."""
    flush = redis.Redis.from_url(run_redis_url, socket_connect_timeout=2)
    flush.flushdb()  # throttles of earlier runs would refuse the sign-ups below
    flush.close()
    name = asyncio.run(template.clone())
    dsn = dsn_for(template.admin_dsn, name)
    settings = Settings(
        database_url=dsn,
        redis_url=run_redis_url,
        broker_url=broker_url,
        secret_key=TEST_SECRET,
        database_pool_size=4,
        log_format="console",
        replica_database_url=None,
        elasticsearch_url=None,
        smtp_url=None,
        data_dir=Path(tmp_path_factory.mktemp("schema")),
    )
    asyncio.run(build_catalog(dsn))
    ready, state = threading.Event(), {}
    thread = threading.Thread(target=_serve, args=(settings, ready, state), daemon=True)
    thread.start()
    assert ready.wait(30), "the app did not start"
    url = f"http://127.0.0.1:{state['port']}"
    try:
        for email in ("shopper@example.com", "staff@example.com"):
            body = {"email": email, "password": "correct horse battery", "name": "Ada"}
            resp = requests.post(f"{url}/api/v1/auth/register", json=body, timeout=30)
            assert resp.status_code == 201, resp.text
        asyncio.run(sql(dsn, "UPDATE users SET role = 'staff' WHERE email LIKE 'staff@%'"))
        rows = asyncio.run(fetch(dsn, "SELECT id, role FROM users"))
        ids = {row["role"]: row["id"] for row in rows}
        keys = SigningKeys.from_secrets(TEST_SECRET)
        yield LiveApp(
            url,
            customer=issue_access_token(keys, ids["customer"], "customer"),
            staff=issue_access_token(keys, ids["staff"], "staff"),
        )
    finally:
        state["loop"].call_soon_threadsafe(state["loop"].stop)
        thread.join(30)
        asyncio.run(template.drop(name))


def test_the_app_serves_this_document(live_app: LiveApp) -> None:
    served = requests.get(f"{live_app.url}/api/v1/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def _headers(case: Any, app: LiveApp) -> dict[str, str]:
    staff = case.operation.definition.raw.get("operationId") in STAFF_OPERATIONS
    return {"Authorization": f"Bearer {app.staff if staff else app.customer}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,  # nothing written to the work tree: the seed is the whole story
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_api_answers_as_its_document_says(case: Any, live_app: LiveApp) -> None:
    case.call_and_validate(base_url=live_app.url, headers=_headers(case, live_app), timeout=30)
