"""/ops/queues on both brokers: a backed-up queue shows its numbers, a poisoned message shows
its traceback, is retried once (after a page that asks) and disappears; delete one; purge asks
first and removes exactly that part; every action is audited with who did it; input checked at
the edge (unknown queue 404, bad id 400); a broker that does not answer gives the reason fast."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors.ops.messages import browse
from actors.ops.queues import read_depths
from storage.database import connect
from tests.support.browser import csrf_of, signed_in
from tests.support.queues import (
    ACTOR,
    OPERATOR_ROLE,
    POISON,
    QUEUE,
    poisoned,
    running_worker,
    settings_for_kind,
)
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually
from web.app import create_app

KINDS = ["rabbitmq", "redis"]
PAGE = f"/ops/queues/{QUEUE}"


@pytest.fixture(params=KINDS)
async def world(request, aiohttp_client, settings_for, fresh_db, redis_url) -> AsyncIterator[Any]:
    """(client signed in as staff, broker with the poison actor, settings) on one broker."""
    settings = settings_for_kind(request.param, settings_for, fresh_db, redis_url)
    with poisoned(settings) as broker:
        client = await aiohttp_client(create_app(settings))
        await signed_in(client, role=OPERATOR_ROLE, fresh_db=fresh_db)
        try:
            yield client, broker, settings
        finally:
            await client.close()


def cell(page: str, queue: str, name: str) -> str:
    """The text of one cell of a queue's row on /ops/queues."""
    row = re.search(rf'<tr data-queue="{queue}">(.*?)</tr>', page, re.S)
    assert row, page
    found = re.search(rf'<td class="{name}"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert found, row.group(1)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


async def audit_rows(dsn: str) -> list[Any]:
    conn = await connect(dsn)
    try:
        return list(
            await conn.fetch("SELECT user_email, action, target, detail FROM ops_audit ORDER BY id")
        )
    finally:
        await conn.close()


async def post_confirmed(client: Any, path: str) -> Any:
    """Open the confirmation page, then post its form (with its CSRF token)."""
    page = await client.get(path)
    assert page.status == 200, await page.text()
    text = await page.text()
    assert f'action="{path}"' in text
    token = await csrf_of(client, path)
    return await client.post(path, data={"csrf_token": token}, allow_redirects=False)


async def test_a_backed_up_queue_shows_its_numbers_and_purge_asks_then_removes_that_part(
    world, fresh_db
) -> None:
    client, broker, settings = world
    with running_worker(broker):
        dead = await asyncio.to_thread(
            broker.get_actor(ACTOR).send_with_options, kwargs={"item": "bad-x"}, max_retries=0
        )
        assert await eventually(lambda: len(POISON.attempts) == 1, timeout=20)
        await asyncio.sleep(0.3)
    for index in range(5):
        await asyncio.to_thread(broker.get_actor(ACTOR).send, item=f"good-{index}")

    page = await client.get("/ops/queues")
    text = await page.text()
    assert page.status == 200 and 'data-refresh="5"' in text
    assert cell(text, QUEUE, "ready") == "5" and cell(text, QUEUE, "dead") == "1"
    assert cell(text, QUEUE, "consumers") == "0"
    assert ACTOR in text  # the actors' table: it ran and failed

    confirm = await client.get(f"{PAGE}/ready/purge")
    assert f"Purge 5 ready messages of {QUEUE}?" in await confirm.text()
    resp = await post_confirmed(client, f"{PAGE}/ready/purge")
    assert resp.status == 303
    assert resp.headers["Location"] == f"{PAGE}?part=ready&done=purge&count=5"
    notice = await (await client.get(resp.headers["Location"])).text()
    assert f"Purged 5 ready messages of {QUEUE}." in notice
    (depth,) = [
        d for d in await asyncio.to_thread(read_depths, broker, settings) if d.queue == QUEUE
    ]
    assert (depth.ready, depth.dead) == (0, 1)  # the dead part untouched
    (letter,) = (await asyncio.to_thread(browse, broker, QUEUE, "dead")).messages
    assert letter.message_id == dead.message_id

    (entry,) = await audit_rows(fresh_db)
    assert (entry["action"], entry["target"]) == ("queue.purge", QUEUE)
    assert entry["user_email"] and '"count": 5' in entry["detail"]
    assert "queue.purge" in notice  # the queue's recent actions


async def test_a_poisoned_message_shows_its_traceback_is_retried_once_and_disappears(
    world, fresh_db
) -> None:
    client, broker, _settings = world
    with running_worker(broker):
        sent = await asyncio.to_thread(
            broker.get_actor(ACTOR).send_with_options, kwargs={"item": "bad-1"}, max_retries=0
        )
        assert await eventually(lambda: len(browse(broker, QUEUE, "dead").messages) == 1, 20)
        page = await (await client.get(f"{PAGE}?part=dead")).text()
        assert sent.message_id in page
        assert "ValueError: poison: cannot handle bad-1" in page
        assert "<summary>Traceback</summary>" in page
        assert "raise ValueError(f&#34;poison: cannot handle {item}&#34;)" in page  # escaped

        POISON.fixed = True
        path = f"{PAGE}/dead/messages/{sent.message_id}/retry"
        confirm = await (await client.get(path)).text()
        assert f"Retry message <code>{sent.message_id}</code>" in confirm
        resp = await post_confirmed(client, path)
        assert resp.status == 303
        assert await eventually(lambda: POISON.effects == ["bad-1"], timeout=20)
        await asyncio.sleep(0.5)  # room for a second run, if there were to be one
    assert POISON.attempts == ["bad-1", "bad-1"]
    after = await (await client.get(resp.headers["Location"])).text()
    assert "The message was moved to" in after
    assert f'data-message-id="{sent.message_id}"' not in after
    (entry,) = await audit_rows(fresh_db)
    assert (entry["action"], entry["target"]) == ("message.retry", f"{QUEUE}.XQ")
    assert sent.message_id in entry["detail"]


async def test_delete_one_asks_removes_it_and_is_audited(world, fresh_db) -> None:
    client, broker, _settings = world
    kept = await asyncio.to_thread(broker.get_actor(ACTOR).send, item="good-1")
    gone = await asyncio.to_thread(broker.get_actor(ACTOR).send, item="good-2")
    page = await (await client.get(PAGE)).text()
    assert f"{PAGE}/ready/messages/{gone.message_id}/delete" in page
    assert f"{PAGE}/ready/messages/{gone.message_id}/retry" not in page  # ready: no retry
    resp = await post_confirmed(client, f"{PAGE}/ready/messages/{gone.message_id}/delete")
    assert resp.status == 303
    shown = (await asyncio.to_thread(browse, broker, QUEUE, "ready")).messages
    assert [m.message_id for m in shown] == [kept.message_id]
    (entry,) = await audit_rows(fresh_db)
    assert (entry["action"], entry["target"]) == ("message.delete", QUEUE)


async def test_input_is_checked_at_the_edge(client, settings, fresh_db) -> None:
    await signed_in(client, role=OPERATOR_ROLE, fresh_db=fresh_db)
    token = await csrf_of(client, "/ops/")
    good_id = "0b7c4e1a-2f8d-4c3e-9a5b-6d7e8f901234"
    assert (await client.get("/ops/queues/no_such_queue")).status == 404
    for path in (
        "/ops/queues/no_such_queue/ready/purge",
        f"/ops/queues/no_such_queue/dead/messages/{good_id}/retry",
        "/ops/queues/email/nowhere/purge",
        "/ops/queues/email/ready/retry-all",  # only the dead part is retried all
        f"/ops/queues/email/ready/messages/{good_id}/retry",  # a ready one is not retried
        "/ops/queues/email/dead/explode",
    ):
        assert (await client.get(path)).status == 404, path
        resp = await client.post(path, data={"csrf_token": token}, allow_redirects=False)
        assert resp.status == 404, path
    for path in (
        "/ops/queues/email/dead/messages/not-an-id/retry",
        f"/ops/queues/email/dead/messages/{good_id.upper()}/delete",
        "/ops/queues/email?part=sideways",
        "/ops/queues/email?page=0",
        "/ops/queues/email?page=x",
    ):
        assert (await client.get(path)).status == 400, path
    resp = await client.post(
        "/ops/queues/email/dead/messages/not-an-id/retry",
        data={"csrf_token": token},
        allow_redirects=False,
    )
    assert resp.status == 400
    # No CSRF token: refused before anything happens.
    resp = await client.post("/ops/queues/email/ready/purge", allow_redirects=False)
    assert resp.status == 403
    assert await audit_rows(fresh_db) == []


async def test_a_broker_that_stops_answering_gives_the_reason_quickly(
    aiohttp_client, settings_for, fresh_db, broker_url
) -> None:
    proxy = TcpProxy.of(broker_url, 5672)
    await proxy.start()
    settings = settings_for(fresh_db, broker_url=proxy.url_through(broker_url))
    client = await aiohttp_client(create_app(settings))
    try:
        await signed_in(client, role=OPERATOR_ROLE, fresh_db=fresh_db)
        ok = await (await client.get("/ops/queues")).text()
        assert 'data-queue="email"' in ok and "broker unreachable" not in ok
        proxy.refuse(120)  # cut, and turn every new connection away
        started = time.monotonic()
        page = await client.get("/ops/queues/email")
        text = await page.text()
        assert time.monotonic() - started < 5
        assert page.status == 503 and "broker unreachable: RabbitMQ is unreachable" in text
        await asyncio.sleep(5.1)  # past the depth cache
        started = time.monotonic()
        overview = await (await client.get("/ops/queues")).text()
        assert time.monotonic() - started < 5
        assert "broker unreachable: RabbitMQ is unreachable" in overview
    finally:
        await client.close()
        await proxy.stop()


async def test_the_dead_letters_overview_links_to_each_queues_dead_part(client, fresh_db) -> None:
    await signed_in(client, role=OPERATOR_ROLE, fresh_db=fresh_db)
    page = await (await client.get("/ops/dead-letters")).text()
    assert 'href="/ops/queues/email?part=dead"' in page
    assert 'aria-current="page"' in page  # on the operators' layout


async def test_a_requeue_from_the_dead_letters_overview_is_audited(world, fresh_db) -> None:
    client, broker, _settings = world
    with running_worker(broker):
        await asyncio.to_thread(
            broker.get_actor(ACTOR).send_with_options, kwargs={"item": "bad-z"}, max_retries=0
        )
        assert await eventually(lambda: len(browse(broker, QUEUE, "dead").messages) == 1, 20)
    resp = await client.post(
        f"/ops/dead-letters/{QUEUE}/requeue",
        data={"csrf_token": await csrf_of(client, "/ops/dead-letters")},
        allow_redirects=False,
    )
    assert resp.status == 303
    (entry,) = await audit_rows(fresh_db)
    assert (entry["action"], entry["target"]) == ("queue.retry_all", f"{QUEUE}.XQ")
    assert '"count": 1' in entry["detail"]
    bad = await client.post(
        f"/ops/dead-letters/{QUEUE}/requeue",
        data={"csrf_token": await csrf_of(client, "/ops/dead-letters"), "message_id": "x'; --"},
        allow_redirects=False,
    )
    assert bad.status == 400
