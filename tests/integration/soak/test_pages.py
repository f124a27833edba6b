"""The soak operator's reading of the real /ops pages (tests/soak/pages.py): a worker gone
silent beside a live one is read as an amber light with its reason and as a red row of the
workers page; the queues
page's rows are read cell by cell."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.ops.heartbeats import HeartbeatThread
from tests.soak import pages
from tests.support.browser import signed_in


async def test_a_silent_worker_is_read_on_the_overview_and_red_on_the_workers_page(
    client: Any, fresh_db: str, redis_url: str
) -> None:
    alive = HeartbeatThread(redis_url, kind="worker", interval=60, queues=["orders"])
    alive.beat()
    silent = HeartbeatThread(
        redis_url, kind="worker", interval=0.5, queues=["email"], host="machine-b"
    )
    silent.beat()
    await asyncio.sleep(2.0)  # more than 3 intervals of 0.5 s without a beat: red
    await signed_in(client, role="ops", fresh_db=fresh_db)

    page = await client.get("/ops/")
    assert page.status == 200
    seen = pages.overview(await page.text())
    by_component = {light.component: light for light in seen.lights}
    assert by_component["Workers"].colour == "amber", seen.lights  # one alive: amber, not red
    assert "1 silent" in by_component["Workers"].reason
    assert "1 alive" in by_component["Workers"].reason
    assert not by_component["Workers"].reason.startswith("red")  # the colour is not the reason
    assert by_component["Primary database"].colour == "green"
    assert by_component["Primary database"].reason == "answers"
    assert seen.numbers["workers_alive"] == "1"

    page = await client.get("/ops/workers")
    assert page.status == 200
    rows = pages.workers(await page.text()).rows
    assert sorted((row.kind, row.status) for row in rows) == [
        ("worker", "green"),
        ("worker", "red"),
    ]
    red = next(row for row in rows if row.status == "red")
    assert red.reason.startswith("silent for "), red
    assert red.pid == str(silent.pid)
    assert red.host == "machine-b"
    assert {row.host for row in rows} == {"machine-b", alive.host}


async def test_the_queues_page_is_read_row_by_row(client: Any, fresh_db: str) -> None:
    await signed_in(client, role="ops", fresh_db=fresh_db)
    page = await client.get("/ops/queues")
    assert page.status == 200
    seen = pages.queues(await page.text())
    assert seen.error is None
    assert "orders" in seen.rows, seen.rows
    orders = seen.rows["orders"]
    assert set(orders) == {"ready", "delayed", "unacked", "dead", "consumers", "oldest"}
    assert orders["dead"] == "0"
    assert orders["consumers"] == "0"  # no worker in this test
