"""/ops/: a light per component with its reason, the first numbers and six server-drawn charts;
it answers, quickly and with the right lights, whatever is down (Redis stopped, SMTP refusing)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from actors.ops import heartbeats
from actors.ops.heartbeats import HeartbeatThread
from configs.settings import Settings
from storage import emails
from storage.database import connect
from tests.support.browser import signed_in
from tests.support.orders import place_order, stocked_product
from tests.support.pgcluster import free_ports
from tests.support.redis_server import RedisServer
from web.app import create_app
from web.ops import overview

SVG = "{http://www.w3.org/2000/svg}"


async def operator(client: Any, fresh_db: str) -> None:
    """Signed in as an admin: the role that reaches /ops whichever roles the guard knows."""
    await signed_in(client, role="admin", fresh_db=fresh_db)


def lights(page: str) -> dict[str, tuple[str, str]]:
    """{component: (colour, reason)} as the page shows them."""
    found = re.findall(
        r'data-component="([^"]+)" data-status="(\w+)">\s*<div><strong>[^<]*</strong>: '
        r'<span class="visually-hidden">[^<]*</span>([^<]*)</div>',
        page,
    )
    return {component: (colour, reason) for component, colour, reason in found}


def number(page: str, name: str) -> str:
    match = re.search(rf'data-number="{name}">([^<]*)<', page)
    assert match, name
    return match.group(1)


async def test_the_overview_shows_every_light_the_numbers_and_six_charts(
    client: Any, fresh_db: str, redis_url: str
) -> None:
    variants = await stocked_product(fresh_db, "mug", {"MUG-1": 5})
    conn = await connect(fresh_db)
    try:
        await place_order(conn, [(variants["MUG-1"], 1)])
    finally:
        await conn.close()
    worker = HeartbeatThread(redis_url, kind="worker", interval=60, queues=["orders"])
    worker.beat()
    await operator(client, fresh_db)

    resp = await client.get("/ops/")
    page = await resp.text()
    assert resp.status == 200
    shown = lights(page)
    assert {name: colour for name, (colour, _) in shown.items()} == {
        "Primary database": "green",
        "Replica": "grey",
        "Redis": "green",
        "Broker (rabbitmq)": "green",
        "Search": "green",
        "SMTP": "green",
        "Workers": "green",
        "Relays": "red",
    }
    assert shown["Workers"][1] == "1 alive" and shown["Relays"][1] == "none alive"
    assert shown["SMTP"][1].startswith("local mailbox")
    assert number(page, "orders_last_hour") == "1"
    assert number(page, "outbox_unpublished") != "?"  # the order's events wait for a relay
    assert number(page, "workers_alive") == "1" and number(page, "relays_alive") == "0"
    assert number(page, "server_errors") == "0"
    assert 'data-refresh="' in page
    figures = re.findall(r'<figure class="chart" data-chart="(\w+)">.*?(<svg.*?</svg>)', page, re.S)
    assert len(figures) == 6
    for _, svg in figures:
        root = ET.fromstring(svg)  # noqa: S314 - the page's own SVG
        assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None


async def test_with_redis_stopped_the_overview_answers_at_once_with_redis_red(
    aiohttp_client: Any,
    fresh_db: str,
    settings_for: Callable[..., Settings],
) -> None:
    with RedisServer() as server:
        client = await aiohttp_client(create_app(settings_for(fresh_db, redis_url=server.url)))
        try:
            await operator(client, fresh_db)
            first = lights(await (await client.get("/ops/")).text())
            assert first["Redis"][0] == "green"
            server.stop()
            cached = lights(await (await client.get("/ops/")).text())
            assert cached["Redis"][0] == "green"  # a refresh within the cache's life
            await asyncio.sleep(overview.LIGHTS_CACHE_SECONDS + 0.1)  # the cache's life is over

            began = time.monotonic()
            resp = await client.get("/ops/")
            page = await resp.text()
            took = time.monotonic() - began
            assert resp.status == 200 and took < 6, took
            shown = lights(page)
            assert shown["Redis"][0] == "red"
            assert shown["Primary database"][0] == "green"
            assert shown["Workers"][0] == "grey" and "Redis" in shown["Workers"][1]
            assert "No charts: the history is kept in Redis" in page
            assert number(page, "workers_alive") == "?" and number(page, "server_errors") == "?"

            workers = await client.get("/ops/workers")
            assert workers.status == 200
            assert "Redis did not answer" in await workers.text()
        finally:
            await client.close()


@pytest.mark.parametrize("answering", [True, False])
async def test_the_smtp_light_follows_the_smtp_server(
    answering: bool,
    aiohttp_client: Any,
    fresh_db: str,
    settings_for: Callable[..., Settings],
    smtp: Any,
) -> None:
    url = smtp.url if answering else f"smtp://127.0.0.1:{free_ports(1)[0]}"
    client = await aiohttp_client(create_app(settings_for(fresh_db, smtp_url=url)))
    try:
        await operator(client, fresh_db)
        colour, reason = lights(await (await client.get("/ops/")).text())["SMTP"]
        if answering:
            assert colour == "green" and reason.endswith("greets")
        else:
            assert colour == "red" and "Error" in reason
    finally:
        await client.close()


async def test_smtp_that_greets_but_refuses_is_amber_and_a_waiting_outbox_makes_relays_amber(
    aiohttp_client: Any,
    fresh_db: str,
    redis_url: str,
    settings_for: Callable[..., Settings],
    smtp: Any,
) -> None:
    """What the soak found the lights missed: a server that greets and refuses every message,
    and relays that beat while an event waits (a row the broker refuses)."""
    client = await aiohttp_client(create_app(settings_for(fresh_db, smtp_url=smtp.url)))
    relay = HeartbeatThread(redis_url, kind="relay", interval=60, queues=[])
    relay.beat()
    conn = await connect(fresh_db)
    try:
        for result in ("sent", "refused", "refused"):
            await emails.record(
                conn,
                emails.Attempt(
                    kind="order_placed",
                    recipient="ada@example.com",
                    subject="Your order",
                    result=result,
                    error=None if result == "sent" else "SMTP 550 mailbox unavailable",
                    event_name="email.send_order_email",
                    event_id=uuid.uuid4(),
                ),
                timeout=5,
            )
        await conn.execute(
            "INSERT INTO outbox (event_id, actor_name, payload, created_at)"
            " VALUES ($1, 'search.index_product', '{}'::jsonb, now() - interval '45 seconds')",
            uuid.uuid4(),
        )
    finally:
        await conn.close()
    try:
        await operator(client, fresh_db)
        shown = lights(await (await client.get("/ops/")).text())
        colour, reason = shown["SMTP"]
        assert colour == "amber" and "2 of 3 sends" in reason and "2 refused" in reason
        colour, reason = shown["Relays"]
        assert colour == "amber" and "has waited 4" in reason, reason
    finally:
        await client.close()


def test_a_replaced_process_makes_its_light_amber_then_none() -> None:
    now = time.time()

    def process(pid: int, status: str, silent_for: float) -> Any:
        return heartbeats.Process(
            key=f"k{pid}", kind="worker", host="h", pid=pid, started_at=now - 900,
            queues=("orders",), threads=4, in_progress=0, processed=0, interval=5,
            last_beat=now - silent_for, stopped_at=None, status=status,  # type: ignore[arg-type]
            reason=f"silent for {silent_for:.0f} s" if status == "red" else "beat 1 s ago",
        )  # fmt: skip

    alive, crashed, long_gone = (
        process(1, "green", 1),
        process(2, "red", 20),
        process(3, "red", 900),
    )
    assert overview.process_light("Workers", [alive], now).colour == "green"
    light = overview.process_light("Workers", [alive, crashed], now)
    assert light.colour == "amber" and "h:2 silent for 20 s" in light.reason
    assert overview.process_light("Workers", [alive, long_gone], now).colour == "green"
    assert overview.process_light("Workers", [crashed], now).colour == "red"
    assert overview.process_light("Workers", [], now).reason == "none alive"


async def test_the_overview_and_workers_page_ask_anonymous_visitors_to_sign_in(client: Any) -> None:
    for path in ("/ops/", "/ops/workers"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login")
