"""/ops/: the overview. A traffic light per component with the reason when not green, the numbers
an operator checks first, and charts of the last hour.

Every check runs concurrently and is bounded by CHECK_TIMEOUT_SECONDS, so the page answers
within a few seconds whatever is down. The lights are cached LIGHTS_CACHE_SECONDS per web process
(one check at a time: a refresh storm waits for the running one), so self-refreshing pages in
many tabs do not hammer the services.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import structlog
from aiohttp import web

from actors.ops import heartbeats, history
from actors.ops.heartbeats import Process
from auth import throttle
from configs.settings import Settings
from storage import emails, orders, outbox
from storage.outbox import Backlog
from web import health
from web.keys import DB, REDIS, SETTINGS
from web.ops import charts
from web.render import render

log = structlog.get_logger(__name__)

Colour = Literal["green", "amber", "red", "grey"]
CHECK_TIMEOUT_SECONDS = 2.0
LIGHTS_CACHE_SECONDS = 5.0
REFRESH_SECONDS = 10
SERVER_ERRORS_WINDOW_SECONDS = 300
DELIVERY_WINDOW = timedelta(minutes=5)  # failed or refused sends in it make SMTP amber
OUTBOX_WAIT_SECONDS = 30.0  # an event waiting this long with relays alive makes them amber
FORGET_SILENT_SECONDS = 600.0  # a process silent longer no longer colours its light


@dataclass(frozen=True)
class Light:
    """One component's state: green, amber (degraded), red (down) or grey (off or unknown)."""

    component: str
    colour: Colour
    reason: str


@dataclass
class LightsCache:
    """The last lights of this web process and when they were taken."""

    lights: list[Light] | None = None
    taken_at: float = 0.0
    lock: asyncio.Lock | None = None


LIGHTS_CACHE = web.AppKey("ops_lights_cache", LightsCache)


async def _answers(check: Callable[[], Awaitable[object]]) -> str | None:
    """None when `check` succeeds within the bound, else what went wrong (a short reason)."""
    try:
        await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return None


async def lights(request: web.Request) -> list[Light]:
    """Every component's light, checked now (each check bounded)."""
    config = request.config_dict
    settings: Settings = config[SETTINGS]
    db = config[DB]
    redis = config[REDIS]
    jobs: list[Awaitable[Light]] = [
        _check("Primary database", lambda: db.primary.fetchval("SELECT 1"), "answers"),
        _replica(request),
        _check(
            "Redis",
            lambda: redis.ping(),
            "answers",
            "; the catalog cache is bypassed and the throttles fail open",
        ),
        _check(
            f"Broker ({settings.broker_kind})",
            lambda: health.check_broker(settings),
            "accepts connections",
            "; events wait in the outbox",
        ),
    ]
    if settings.elasticsearch_url is not None:
        url = str(settings.elasticsearch_url)
        jobs.append(
            _check(
                "Search (Elasticsearch)",
                lambda: health.check_http(url),
                "answers",
                "; PostgreSQL answers searches",
            )
        )
    else:
        jobs.append(_fixed(Light("Search", "green", "PostgreSQL full-text search")))
    smtp = settings.smtp_server
    if smtp is not None:
        jobs.append(
            _with_deliveries(
                request,
                _check(
                    "SMTP",
                    lambda: health.check_smtp(smtp),
                    f"{smtp.hostname} greets",
                    "; emails are retried",
                ),
            )
        )
    else:
        jobs.append(_fixed(Light("SMTP", "green", "local mailbox (no SMTP_URL)")))
    singles, processes = await asyncio.gather(asyncio.gather(*jobs), _processes_lights(request))
    return [*singles, *processes]


async def _with_deliveries(request: web.Request, greeting: Awaitable[Light]) -> Light:
    """A server that greets can still refuse or fail what it is sent: amber when the delivery
    log has failed or refused attempts in the last DELIVERY_WINDOW (they are on /ops/emails)."""
    light = await greeting
    if light.colour != "green":
        return light
    try:
        counts = await asyncio.wait_for(
            emails.counts_since(request.config_dict[DB].primary, DELIVERY_WINDOW),
            timeout=CHECK_TIMEOUT_SECONDS,
        )
    except Exception as exc:
        log.warning("ops.deliveries_unavailable", error=repr(exc))
        return light
    bad = counts.get("refused", 0) + counts.get("failed", 0)
    if not bad:
        return light
    minutes = int(DELIVERY_WINDOW.total_seconds() // 60)
    return Light(
        light.component,
        "amber",
        f"greets, but {bad} of {bad + counts.get('sent', 0)} sends in the last {minutes} min "
        f"were refused or failed ({counts.get('refused', 0)} refused, not retried): "
        "see /ops/emails",
    )


async def _fixed(light: Light) -> Light:
    return light


async def _check(
    component: str, check: Callable[[], Awaitable[object]], ok: str, meanwhile: str = ""
) -> Light:
    """Green saying `ok`, or red with what went wrong (and what the shop does `meanwhile`)."""
    error = await _answers(check)
    if error is None:
        return Light(component, "green", ok)
    return Light(component, "red", f"{error}{meanwhile}")


async def _replica(request: web.Request) -> Light:
    db = request.config_dict[DB]
    state = db.replica.state
    pool = db.replica.replica_pool
    if pool is None or not state.configured:
        return Light("Replica", "grey", "none configured: browsing reads use the primary")
    error = await _answers(lambda: pool.fetchval("SELECT 1"))
    if error is not None:
        return Light("Replica", "red", f"{error}; reads go to the primary")
    if not state.healthy:
        lag = state.lag_seconds
        behind = f"lag {lag:.1f} s" if lag is not None else "lag unknown"
        return Light(
            "Replica",
            "amber",
            f"{behind} (max {db.replica.max_lag_seconds:g} s): reads go to the primary",
        )
    return Light("Replica", "green", f"lag {state.lag_seconds or 0:.1f} s; serves browsing reads")


async def _processes_lights(request: web.Request) -> list[Light]:
    try:
        found = await heartbeats.processes(request.config_dict[REDIS])
    except Exception as exc:
        reason = f"unknown: heartbeats are in Redis, which did not answer ({type(exc).__name__})"
        return [Light("Workers", "grey", reason), Light("Relays", "grey", reason)]
    relays = process_light("Relays", [p for p in found if p.kind == "relay"])
    if relays.colour == "green":
        relays = await _with_backlog(request, relays)
    return [process_light("Workers", [p for p in found if p.kind == "worker"]), relays]


async def _with_backlog(request: web.Request, light: Light) -> Light:
    """Relays that beat but do not get the outbox out (a row the broker refuses, a relay stuck
    on it): amber once the oldest unpublished event has waited OUTBOX_WAIT_SECONDS."""
    try:
        backlog = await asyncio.wait_for(
            outbox.backlog(request.config_dict[DB].primary), timeout=CHECK_TIMEOUT_SECONDS
        )
    except Exception as exc:
        log.warning("ops.backlog_unavailable", error=repr(exc))
        return light
    if backlog.unpublished and backlog.oldest_age_seconds >= OUTBOX_WAIT_SECONDS:
        return Light(
            light.component,
            "amber",
            f"{light.reason}, but the oldest of {backlog.unpublished} outbox events has waited "
            f"{backlog.oldest_age_seconds:.0f} s: see /ops/outbox",
        )
    return light


def process_light(component: str, found: list[Process], now: float | None = None) -> Light:
    """Red when none is alive; amber when one fell silent in the last FORGET_SILENT_SECONDS
    while others are alive (naming it: a crash to look into, its work taken over); else green.
    A process silent longer than that is left to /ops/workers, so a replaced one does not
    colour the light for the hour its record is kept."""
    now = time.time() if now is None else now
    alive = [p for p in found if p.status == "green"]
    silent = [p for p in found if p.status == "red" and now - p.last_beat < FORGET_SILENT_SECONDS]
    if not alive:
        reason = "none alive"
        if silent:
            reason += f" ({', '.join(f'{p.host}:{p.pid} {p.reason}' for p in silent[:3])})"
        return Light(component, "red", reason)
    if silent:
        names = ", ".join(f"{p.host}:{p.pid} {p.reason}" for p in silent[:3])
        more = f" and {len(silent) - 3} more" if len(silent) > 3 else ""
        return Light(
            component, "amber", f"{len(silent)} silent ({names}{more}); {len(alive)} alive"
        )
    return Light(component, "green", f"{len(alive)} alive")


async def cached_lights(request: web.Request) -> list[Light]:
    """The lights, at most LIGHTS_CACHE_SECONDS old; one check runs at a time per process."""
    cache = request.app[LIGHTS_CACHE]
    if cache.lock is None:
        cache.lock = asyncio.Lock()
    async with cache.lock:
        now = time.monotonic()
        if cache.lights is None or now - cache.taken_at > LIGHTS_CACHE_SECONDS:
            cache.lights = await lights(request)
            cache.taken_at = time.monotonic()
        return cache.lights


@dataclass(frozen=True)
class Numbers:
    """What an operator checks first; None where it could not be read."""

    orders_last_hour: int | None
    backlog: Backlog | None
    workers_alive: int | None
    relays_alive: int | None
    server_errors: int | None  # 5xx answers in the last SERVER_ERRORS_WINDOW_SECONDS


async def numbers(request: web.Request, now: float) -> Numbers:
    db = request.config_dict[DB]

    async def bounded(work: Awaitable[object]) -> object:
        try:
            return await asyncio.wait_for(work, timeout=CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("ops.number_unavailable", error=repr(exc))
            return None

    redis = request.config_dict[REDIS]
    slot_seconds = request.config_dict[SETTINGS].history_slot_seconds
    placed, backlog, found, errors = await asyncio.gather(
        bounded(orders.count_placed(db.primary, now - 3600, now)),
        bounded(outbox.backlog(db.primary)),
        bounded(heartbeats.processes(redis)),
        bounded(
            history.server_errors(
                redis, slot_seconds=slot_seconds, now=now, window=SERVER_ERRORS_WINDOW_SECONDS
            )
        ),
    )
    counts = heartbeats.census(found) if isinstance(found, list) else None
    return Numbers(
        orders_last_hour=placed if isinstance(placed, int) else None,
        backlog=backlog if isinstance(backlog, Backlog) else None,
        workers_alive=counts["worker"].alive if counts else None,
        relays_alive=counts["relay"].alive if counts else None,
        server_errors=errors if isinstance(errors, int) else None,
    )


@dataclass(frozen=True)
class Charts:
    charts: list[charts.Chart]
    source: str  # "Prometheus" or "the shop's own history"
    notice: str | None  # why the charts are not from where they should be


async def load_charts(request: web.Request, now: float) -> Charts:
    """From Prometheus when PROMETHEUS_URL is set (falling back to the history, saying so),
    else from the history; empty, with the reason, when neither answers."""
    settings: Settings = request.config_dict[SETTINGS]
    redis = request.config_dict[REDIS]
    notice = None
    if settings.prometheus_url is not None:
        try:
            found = await charts.from_prometheus(str(settings.prometheus_url), now=now)
            return Charts(found, "Prometheus", None)
        except charts.PrometheusUnavailable as exc:
            log.warning("ops.prometheus_unavailable", error=str(exc))
            notice = (
                f"Prometheus did not answer ({exc}): these charts come from the shop's own history."
            )
    try:
        found = await charts.from_history(
            redis, slot_seconds=settings.history_slot_seconds, now=now
        )
    except Exception as exc:
        log.warning("ops.history_unavailable", error=repr(exc))
        reason = (
            f"No charts: the history is kept in Redis, which did not answer ({type(exc).__name__})."
        )
        return Charts([], "none", (notice + " " if notice else "") + reason)
    return Charts(found, "the shop's own history", notice)


async def overview(request: web.Request) -> web.Response:
    """The lights, the first numbers, the charts and the throttles' state."""
    now = time.time()
    found_lights, found_numbers, found_charts = await asyncio.gather(
        cached_lights(request), numbers(request, now), load_charts(request, now)
    )
    failing = throttle.unavailable_since()
    return render(
        request,
        "ops/index.html",
        {
            "lights": found_lights,
            "numbers": found_numbers,
            "charts": found_charts,
            "throttles_failing_since": (
                datetime.fromtimestamp(failing, UTC) if failing is not None else None
            ),
            "refresh_seconds": REFRESH_SECONDS,
            "errors_minutes": SERVER_ERRORS_WINDOW_SECONDS // 60,
        },
    )


def add_routes(app: web.Application) -> None:
    app[LIGHTS_CACHE] = LightsCache()
    app.router.add_get("/", overview, name="ops")
