"""Line charts of the last hour, drawn here as SVG (no JavaScript, no library), and their data:
the shop's own history in Redis (actors.ops.history), or Prometheus when PROMETHEUS_URL is set.

A chart has an accessible <title> and <desc>, axis labels with their unit and UTC times, its last
value printed, and a gap wherever a sample is missing (separate polylines; a lone sample is a
dot). Every text in the SVG is escaped: the markup is built here, never from raw data.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import redis.asyncio as aioredis
from markupsafe import Markup, escape

from actors.ops import history
from actors.ops.history import Point

WIDTH, HEIGHT = 360, 200
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 24, 24
AXIS_NAMES = {"/min": "per minute", "s": "seconds"}
WINDOW_SECONDS = 3600
PROMETHEUS_TIMEOUT_SECONDS = 3.0
PROMETHEUS_POINTS = 120  # step = window / this


@dataclass(frozen=True)
class Series:
    """What a chart shows: a history series name, its PromQL, title and unit."""

    name: str
    title: str
    unit: str  # "/min", "s", "messages"
    promql: str


SERIES: tuple[Series, ...] = (
    Series(
        history.ORDERS_PER_MINUTE,
        "Orders per minute",
        "/min",
        "sum(rate(aioshop_orders_placed_total[5m])) * 60",
    ),
    Series(
        history.QUEUE_DEPTH,
        "Queue depth (messages ready)",
        "messages",
        'sum(max by (queue) (aioshop_queue_messages{state="ready"}))',
    ),
    Series(
        history.ACTOR_FAILURES,
        "Actor failures per minute",
        "/min",
        "sum(rate(dramatiq_message_errors_total[5m])) * 60",
    ),
    Series(
        history.OUTBOX_OLDEST_AGE,
        "Outbox: oldest unpublished event",
        "s",
        "max(aioshop_outbox_oldest_age_seconds)",
    ),
    Series(
        history.REPLICA_LAG,
        "Replica lag",
        "s",
        "max(aioshop_replica_lag_seconds)",
    ),
    Series(
        history.REQUEST_P95,
        "Request time, 95th percentile",
        "s",
        "histogram_quantile(0.95, sum by (le) "
        "(rate(aioshop_http_request_duration_seconds_bucket[5m])))",
    ),
)


@dataclass(frozen=True)
class Chart:
    series: Series
    points: Sequence[Point]
    since: float
    until: float

    @property
    def last(self) -> float | None:
        return next((p.value for p in reversed(self.points) if p.value is not None), None)

    @property
    def svg(self) -> Markup:
        return draw(self)


class PrometheusUnavailable(Exception):
    """Prometheus did not answer a query_range in time, or answered something unusable."""


async def from_history(
    client: aioredis.Redis, *, slot_seconds: int, now: float, series: Sequence[Series] = SERIES
) -> list[Chart]:
    """The charts of the last hour from the shop's own history (raises on Redis errors)."""
    since = now - WINDOW_SECONDS
    found = await asyncio.gather(
        *(
            history.read_series(client, s.name, slot_seconds=slot_seconds, since=since, until=now)
            for s in series
        )
    )
    return [Chart(s, points, since, now) for s, points in zip(series, found, strict=True)]


async def from_prometheus(
    base_url: str, *, now: float, series: Sequence[Series] = SERIES
) -> list[Chart]:
    """The charts of the last hour from Prometheus's /api/v1/query_range, one PromQL expression
    per chart; raises PrometheusUnavailable on any failure (timeout, status, malformed)."""
    since = now - WINDOW_SECONDS
    step = WINDOW_SECONDS / PROMETHEUS_POINTS
    timeout = aiohttp.ClientTimeout(total=PROMETHEUS_TIMEOUT_SECONDS)
    url = base_url.rstrip("/") + "/api/v1/query_range"
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            found = await asyncio.gather(
                *(_query_range(session, url, s.promql, since, now, step) for s in series)
            )
    except PrometheusUnavailable:
        raise
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError) as exc:
        raise PrometheusUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return [Chart(s, points, since, now) for s, points in zip(series, found, strict=True)]


async def _query_range(
    session: aiohttp.ClientSession, url: str, expr: str, start: float, end: float, step: float
) -> list[Point]:
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    async with session.get(url, params=params) as response:
        if response.status != 200:
            raise PrometheusUnavailable(f"query_range answered {response.status}")
        body = await response.json()
    if not isinstance(body, dict) or body.get("status") != "success":
        raise PrometheusUnavailable(f"query_range failed: {str(body)[:200]}")
    data = body["data"]
    if data.get("resultType") != "matrix":
        raise PrometheusUnavailable(f"unexpected result type {data.get('resultType')!r}")
    values: dict[int, float] = {}
    for sample_time, text in data["result"][0]["values"] if data["result"] else []:
        value = float(text)
        if math.isfinite(value):
            values[round((float(sample_time) - start) / step)] = value
    count = round((end - start) / step)
    return [Point(start + i * step, values.get(i)) for i in range(count + 1)]


def draw(chart: Chart, width: int = WIDTH, height: int = HEIGHT) -> Markup:
    """The chart as an <svg> element (safe markup: every text in it escaped)."""
    s = chart.series
    values = [p.value for p in chart.points if p.value is not None]
    top = _nice_ceiling(max(values, default=0.0))
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    span = max(chart.until - chart.since, 1e-9)

    def x(t: float) -> float:
        return LEFT + plot_w * (t - chart.since) / span

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    ident = f"chart-{s.name}"
    last = chart.last
    desc = f"{s.title} over the hour to {_clock(chart.until)} UTC: " + (
        f"{len(values)} samples, last {_value(last, s.unit)}, highest "
        f"{_value(max(values), s.unit)}."
        if values
        else "no samples yet."
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{ident}-title {ident}-desc" class="chart-svg" '
        f'data-series="{escape(s.name)}">',
        f'<title id="{ident}-title">{escape(s.title)} ({escape(s.unit)})</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#c8c8cc"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        level = top * fraction
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            'stroke="#e4e4e8"/>'
            f'<text x="{LEFT - 4}" y="{y(level) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{escape(_number(level))}</text>"
        )
    parts.append(
        f'<text x="{LEFT - 4}" y="{TOP - 10}" font-size="11" class="axis-unit">'
        f"{escape(AXIS_NAMES.get(s.unit, s.unit))}</text>"
    )
    for fraction, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        moment = chart.since + span * fraction
        parts.append(
            f'<text x="{x(moment):.1f}" y="{height - 8}" text-anchor="{anchor}" '
            f'font-size="11">{escape(_clock(moment))} UTC</text>'
        )
    for run in _runs(chart.points):
        if len(run) == 1:
            p = run[0]
            parts.append(
                f'<circle class="sample" cx="{x(p.time):.1f}" cy="{y(p.value or 0):.1f}" r="2.5" '
                'fill="#1f5fbf"/>'
            )
        else:
            coordinates = " ".join(f"{x(p.time):.1f},{y(p.value or 0):.1f}" for p in run)
            parts.append(
                f'<polyline class="line" points="{coordinates}" fill="none" stroke="#1f5fbf" '
                'stroke-width="2"/>'
            )
    label = "last " + _value(last, s.unit) if last is not None else "no samples"
    parts.append(
        f'<text class="last" x="{LEFT + plot_w}" y="{TOP - 10}" text-anchor="end" '
        f'font-size="12" font-weight="700">{escape(label)}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped


def _runs(points: Sequence[Point]) -> list[list[Point]]:
    """Consecutive points with values, split at gaps."""
    runs: list[list[Point]] = [[]]
    for p in points:
        if p.value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(p)
    return [run for run in runs if run]


def _nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least `value` (1 for an empty or all-zero chart)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(m * power) for m in (1, 2, 5, 10) if m * power >= value)


def _number(value: float) -> str:
    """A tick label: few digits (the axis's unit is written once, above it)."""
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.2g}"


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "none"
    if unit == "s" and 0 < value < 1:
        return f"{value * 1000:.0f} ms"
    text = f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.2g}"
    return f"{text}{unit}" if unit.startswith("/") else f"{text} {unit}"


def _clock(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%H:%M")
