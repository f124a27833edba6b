"""/ops/workers: every worker process and relay, from their heartbeats in Redis.

Each process is a table row (`data-process`, `data-kind`) whose status cell carries
`data-status="green|red|grey"` and says it in words ("beat 2 s ago", "silent for 17 s",
"stopped 40 s ago"): a killed worker turns red within three heartbeat intervals.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from aiohttp import web

from actors.ops import heartbeats
from actors.ops.heartbeats import STALE_AFTER_INTERVALS
from web.keys import REDIS, SETTINGS
from web.render import render

log = structlog.get_logger(__name__)


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")


async def workers_view(request: web.Request) -> web.Response:
    """The processes, workers first; a notice (never an error page) when Redis does not answer."""
    settings = request.config_dict[SETTINGS]
    error = None
    try:
        found = await heartbeats.processes(request.config_dict[REDIS])
    except Exception as exc:
        log.warning("ops.heartbeats_unavailable", error=repr(exc))
        found, error = [], f"Redis did not answer ({type(exc).__name__}): no heartbeat to show."
    interval = settings.heartbeat_interval_seconds
    return render(
        request,
        "ops/workers.html",
        {
            "processes": found,
            "census": heartbeats.census(found),
            "error": error,
            "when": _when,
            "interval": interval,
            "stale_after": STALE_AFTER_INTERVALS * interval,
            "refresh_seconds": max(2, round(interval)),
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/workers", workers_view, name="ops_workers")
