"""Logs never carry secrets: the real logging configuration, a run of requests that handle every
kind of secret, and a search of everything written for each secret's value."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiohttp import web

from configs.logging import configure_logging
from tests.support.accounts import emailed_token
from tests.support.orders import ADDRESS, stocked_product
from web.app import create_app

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase 42"
CARD_NUMBER = "4242 4242 4242 4242"
log = structlog.get_logger(__name__)


@pytest.fixture(params=["json", "console"])
def log_output(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Everything the app logs, through configs.logging as production sets it up."""
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(request.param, "info", stream=stream)
    # Module loggers used now must not keep this configuration for the tests after this one.
    structlog.configure(cache_logger_on_first_use=False)
    yield stream
    structlog.configure(**saved_config)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


async def failing(request: web.Request) -> web.Response:
    """A handler that fails holding the request's credentials in its locals and its message."""
    authorization = request.headers["Authorization"]
    cookies = dict(request.cookies)
    log.warning("test.headers_seen", headers=dict(request.headers), cookies=cookies)
    raise RuntimeError(f"could not use {authorization} with {cookies}")


async def expect(resp: Any, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json() if resp.content_type.endswith("json") else await resp.text()


async def test_no_secret_reaches_the_logs(
    aiohttp_client, settings, fresh_db, log_output: io.StringIO
) -> None:
    app = create_app(settings)
    app.router.add_get("/failing", failing)
    client = await aiohttp_client(app)
    secrets: list[str] = [PASSWORD, NEW_PASSWORD, CARD_NUMBER, CARD_NUMBER.replace(" ", "")]

    account = {"email": "ada@example.com", "password": PASSWORD}
    registered = await expect(
        await client.post("/api/v1/auth/register", json=account | {"name": "Ada"}), 201
    )
    login = await expect(await client.post("/api/v1/auth/login", json=account), 200)
    refreshed = await expect(
        await client.post("/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}),
        200,
    )
    for pair in (registered, login, refreshed):
        secrets += [pair["access_token"], pair["refresh_token"]]
    bearer = {"Authorization": f"Bearer {refreshed['access_token']}"}

    # A reset link as the email carries it: opened, then its form posted.
    await expect(
        await client.post("/api/v1/auth/password-reset", json={"email": account["email"]}), 202
    )
    token = await emailed_token(fresh_db, registered["user"]["id"], "password_reset")
    secrets.append(token)
    link = f"/reset-password?token={token}"
    await expect(await client.get(link), 200)
    csrf = client.session.cookie_jar.filter_cookies(client.make_url("/"))["aioshop-csrf"].value
    secrets.append(csrf)
    reset = await client.post(
        link,
        data={"new_password": NEW_PASSWORD, "csrf_token": csrf},
        allow_redirects=False,
    )
    assert reset.status == 303, await reset.text()

    # A checkout with a card, as a guest of the API.
    await stocked_product(fresh_db, "tee", {"TEE-S": 3}, price=1500)
    guest = {"Idempotency-Key": "log-secrets-1"}
    cart = await expect(await client.post("/api/v1/cart/items", json={"sku": "TEE-S"}), 201)
    guest["X-Cart-Token"] = cart["cart_token"]
    secrets.append(cart["cart_token"])
    order = {
        "email": "guest@example.com",
        "shipping_address": ADDRESS,
        "shipping_method": "standard",
        "card": {"number": CARD_NUMBER, "expiry": "12/39", "cvc": "123"},
    }
    await expect(await client.post("/api/v1/checkout", json=order, headers=guest), 201)

    # A request that is logged at warning and exception level, with its credentials at hand.
    client.session.cookie_jar.update_cookies({"aioshop-refresh": refreshed["refresh_token"]})
    assert (await client.get("/failing", headers=bearer)).status == 500

    written = log_output.getvalue()
    assert "test.headers_seen" in written and "RuntimeError" in written  # the lines are there
    assert "request.failed" in written
    leaked = [secret for secret in secrets if secret in written]
    assert not leaked, f"{len(leaked)} secrets in the logs:\n{written}"


def test_every_json_line_names_the_machine_that_wrote_it() -> None:
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        configure_logging("json", "info", stream=stream, host_name="machine-b")
        structlog.configure(cache_logger_on_first_use=False)
        log.info("test.ours")
        logging.getLogger("test.stdlib").warning("theirs")
        log.info("test.own_host", host_name="said-so")
    finally:
        structlog.configure(**saved_config)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["host_name"] for line in lines] == ["machine-b", "machine-b", "said-so"]
