"""The charts from Prometheus's query_range API: the client's requests, its parsing (gaps kept),
its time bound, and the overview falling back to the shop's own history, saying so.

The Prometheus here is a small aiohttp server in the test, the HTTP peer of the client code only
(the real Prometheus is exercised by the monitoring stack's own tests).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from configs.settings import Settings
from tests.support.browser import signed_in
from web.app import create_app
from web.ops import charts
from web.ops.charts import SERIES, PrometheusUnavailable


async def operator(client: Any, fresh_db: str) -> None:
    """Signed in as an admin: the role that reaches /ops whichever roles the guard knows."""
    await signed_in(client, role="admin", fresh_db=fresh_db)


class FakePrometheus:
    """Answers /api/v1/query_range with a matrix whose samples skip every third step."""

    def __init__(self, *, status: int = 200, delay: float = 0.0) -> None:
        self.status = status
        self.delay = delay
        self.queries: list[dict[str, str]] = []

    async def query_range(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response({"status": "error", "error": "boom"}, status=self.status)
        start, end = float(request.query["start"]), float(request.query["end"])
        step = float(request.query["step"])
        steps = round((end - start) / step)
        values = [[start + i * step, str(i / 10)] for i in range(steps + 1) if i % 3 != 2]
        result = [{"metric": {}, "values": values}]
        return web.json_response(
            {"status": "success", "data": {"resultType": "matrix", "result": result}}
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/query_range", self.query_range)
        return app


async def test_charts_come_from_one_promql_query_per_series_with_gaps_kept(
    aiohttp_server: Any,
) -> None:
    fake = FakePrometheus()
    server = await aiohttp_server(fake.app())
    now = time.time()
    found = await charts.from_prometheus(str(server.make_url("/")), now=now)
    assert sorted(q["query"] for q in fake.queries) == sorted(s.promql for s in SERIES)
    assert all(float(q["end"]) - float(q["start"]) == pytest.approx(3600) for q in fake.queries)
    for chart in found:
        steps = len(chart.points)
        assert steps == charts.PROMETHEUS_POINTS + 1
        gaps = [i for i, p in enumerate(chart.points) if p.value is None]
        assert gaps == [i for i in range(steps) if i % 3 == 2]
        assert chart.points[4].value == pytest.approx(0.4)


@pytest.mark.parametrize("fault", ["status", "slow", "down"])
async def test_a_failing_prometheus_raises_in_bounded_time(
    fault: str, aiohttp_server: Any, unused_tcp_port: int
) -> None:
    if fault == "down":
        url = f"http://127.0.0.1:{unused_tcp_port}/"
    else:
        fake = FakePrometheus(status=503) if fault == "status" else FakePrometheus(delay=30)
        url = str((await aiohttp_server(fake.app())).make_url("/"))
    began = time.monotonic()
    with pytest.raises(PrometheusUnavailable):
        await charts.from_prometheus(url, now=time.time())
    assert time.monotonic() - began < charts.PROMETHEUS_TIMEOUT_SECONDS + 2


@pytest.mark.parametrize("answering", [True, False])
async def test_the_overview_draws_from_prometheus_or_says_it_fell_back(
    answering: bool,
    aiohttp_server: Any,
    aiohttp_client: Any,
    fresh_db: str,
    settings_for: Callable[..., Settings],
) -> None:
    fake = FakePrometheus() if answering else FakePrometheus(status=500)
    server = await aiohttp_server(fake.app())
    settings = settings_for(fresh_db, prometheus_url=str(server.make_url("/")))
    client = await aiohttp_client(create_app(settings))
    try:
        await operator(client, fresh_db)
        page = await (await client.get("/ops/")).text()
        assert fake.queries
        assert len(re.findall(r'<figure class="chart"', page)) == 6
        if answering:
            assert "From Prometheus." in page and "did not answer" not in page
        else:
            assert "Prometheus did not answer" in page
            assert "From the shop&#39;s own history." in page
    finally:
        await client.close()
