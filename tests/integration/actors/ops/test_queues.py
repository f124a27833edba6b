"""Queue depths on both brokers: a backed-up queue, then its delayed and dead parts after a
failing actor, its consumers while a worker runs, the oldest message's age, the gauges."""

from __future__ import annotations

import asyncio
import base64
import time
from urllib.parse import quote

import pytest
from aiohttp import web
from prometheus_client.core import GaugeMetricFamily

from actors.broker import build_broker
from actors.dead_letters import BrokerUnavailable
from actors.ops import queues
from actors.ops.queues import QueueDepth, metric_families, read_depths
from domain.events import EVENTS
from tests.support.queues import ACTOR, POISON, QUEUE, poisoned, running_worker, settings_for_kind
from tests.support.waiting import eventually

KINDS = ["rabbitmq", "redis"]


def depth_of(broker, settings) -> QueueDepth:  # type: ignore[no-untyped-def]
    (depth,) = [d for d in read_depths(broker, settings) if d.queue == QUEUE]
    return depth


@pytest.mark.parametrize("kind", KINDS)
async def test_a_backed_up_queue_then_its_delayed_and_dead_parts_and_its_consumers(
    kind, settings_for, fresh_db, redis_url
) -> None:
    settings = settings_for_kind(kind, settings_for, fresh_db, redis_url)
    with poisoned(settings) as broker:
        actor = broker.get_actor(ACTOR)
        for index in range(7):
            await asyncio.to_thread(actor.send, item=f"good-{index}")
        await asyncio.sleep(1.1)  # the oldest is a second old
        depth = await asyncio.to_thread(depth_of, broker, settings)
        assert (depth.ready, depth.delayed, depth.dead, depth.consumers) == (7, 0, 0, 0)
        assert depth.oldest_age_seconds is not None and 1.0 <= depth.oldest_age_seconds < 30
        assert depth.slo_seconds == queues.DEFAULT_SLO_SECONDS
        if kind == "redis":
            assert depth.unacked == 0
        else:
            assert depth.unacked is None  # no management API configured
        # Reading the depth took nothing away.
        assert (await asyncio.to_thread(depth_of, broker, settings)).ready == 7

        # A message that retries once with a long backoff, another that dies at once.
        await asyncio.to_thread(
            actor.send_with_options,
            kwargs={"item": "bad-slow"},
            min_backoff=60_000,
            max_backoff=60_000,
        )
        await asyncio.to_thread(actor.send_with_options, kwargs={"item": "bad-dead"}, max_retries=0)
        with running_worker(broker):
            assert await eventually(lambda: len(POISON.effects) == 7, timeout=20)

            def settled() -> bool:
                d = depth_of(broker, settings)
                return (
                    d.ready == 0
                    and d.dead == 1
                    and d.consumers >= 1
                    and (
                        d.delayed == 1 or kind == "rabbitmq"  # a RabbitMQ worker holds it
                    )
                )

            assert await eventually(settled, timeout=20)
        depth = await asyncio.to_thread(depth_of, broker, settings)
        assert depth.dead == 1 and depth.oldest_age_seconds is None
        # The worker stopped: a RabbitMQ delayed message it held is back in the delay queue.
        assert await eventually(lambda: depth_of(broker, settings).delayed == 1, timeout=10)
        if kind == "rabbitmq":
            assert await eventually(lambda: depth_of(broker, settings).consumers == 0, 10)


async def test_an_unreachable_broker_raises_quickly(settings_for, fresh_db) -> None:
    settings = settings_for(fresh_db, broker_url="amqp://guest:guest@127.0.0.1:1/%2F")
    broker = build_broker(settings)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await asyncio.to_thread(read_depths, broker, settings)
    assert time.monotonic() - started < 5


def test_metric_families_name_every_state_and_leave_unknowns_out() -> None:
    depths = [
        QueueDepth("email", 3, 2, 1, None, 2, 12.5, 120),
        QueueDepth("orders", 0, 0, 0, 4, 1, None, 60),
    ]
    families = {f.name: f for f in metric_families(depths)}
    assert set(families) == {
        "aioshop_queue_messages",
        "aioshop_queue_consumers",
        "aioshop_queue_oldest_age_seconds",
        "aioshop_queue_slo_seconds",
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        if isinstance(family, GaugeMetricFamily)
        for s in family.samples
    }
    assert samples[("aioshop_queue_messages", (("queue", "email"), ("state", "ready")))] == 3
    assert samples[("aioshop_queue_messages", (("queue", "email"), ("state", "dead")))] == 1
    assert ("aioshop_queue_messages", (("queue", "email"), ("state", "unacked"))) not in samples
    assert samples[("aioshop_queue_messages", (("queue", "orders"), ("state", "unacked")))] == 4
    assert samples[("aioshop_queue_oldest_age_seconds", (("queue", "email"),))] == 12.5
    assert samples[("aioshop_queue_oldest_age_seconds", (("queue", "orders"),))] == 0
    assert samples[("aioshop_queue_slo_seconds", (("queue", "orders"),))] == 60
    assert samples[("aioshop_queue_consumers", (("queue", "email"),))] == 2


def test_every_shop_queue_has_its_slo() -> None:
    for event in EVENTS.values():
        assert event.queue in queues.SLO_SECONDS, event.queue


async def test_the_management_api_adds_unacknowledged_and_held_delayed_messages(
    aiohttp_server, settings_for, fresh_db
) -> None:
    """A fake management API (its real one is optional and not run here), over HTTP."""
    seen: list[tuple[str, str | None]] = []

    async def queues_of_vhost(request: web.Request) -> web.Response:
        seen.append((request.path_qs, request.headers.get("Authorization")))
        return web.json_response(
            [
                {"name": QUEUE, "messages_ready": 1, "messages_unacknowledged": 3, "consumers": 1},
                {"name": f"{QUEUE}.DQ", "messages_ready": 0, "messages_unacknowledged": 2},
            ]
        )

    app = web.Application()
    app.router.add_get("/api/queues/{vhost}", queues_of_vhost)
    server = await aiohttp_server(app)
    url = f"http://ops%40x:s3cret@127.0.0.1:{server.port}/"
    settings = settings_for(fresh_db, rabbitmq_management_url=url)
    with poisoned(settings) as broker:
        await asyncio.to_thread(broker.get_actor(ACTOR).send, item="good")
        depth = await asyncio.to_thread(depth_of, broker, settings)
        vhost = broker.parameters.virtual_host
    assert (depth.ready, depth.unacked, depth.delayed) == (1, 3, 2)
    ((path, authorization),) = seen
    assert path.startswith(f"/api/queues/{quote(vhost, safe='')}?columns=")
    assert authorization == "Basic " + base64.b64encode(b"ops@x:s3cret").decode()

    # The API down: the AMQP counts still stand, the unacknowledged ones are unknown.
    await server.close()
    with poisoned(settings) as broker:
        depth = await asyncio.to_thread(depth_of, broker, settings)
    assert depth.unacked is None and depth.ready == 0
