"""The Prometheus exposition of the worker and relay processes (configs/metrics.py sets the mode).

Workers: Dramatiq's own Prometheus middleware (dramatiq_messages_total, ..._errors_total,
..._retries_total, ..._rejects_total, dramatiq_messages_inprogress,
dramatiq_delayed_messages_inprogress, dramatiq_message_duration_milliseconds, by queue_name and
actor_name), added by actors/main.py only in processes `aioshop worker` started (its hooks need
Dramatiq's `process_boot`, which a relay or the web never emits). It reads dramatiq_prom_db,
dramatiq_prom_host and dramatiq_prom_port when imported: `worker_environment` gives them. Its fork
serves every file of METRICS_DIR/worker, so the shop's own counters incremented in a worker
process (captures, emails, inbox...) are on the same port.

Relays: `serve` runs prometheus-client's HTTP server over METRICS_DIR/relay.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
import structlog

log = structlog.get_logger(__name__)

PORT_ENV = "dramatiq_prom_port"
HOST_ENV = "dramatiq_prom_host"
DB_ENV = "dramatiq_prom_db"


def worker_environment(directory: Path, host: str, port: int) -> dict[str, str]:
    """The variables Dramatiq's Prometheus middleware reads at import (port 0: no server)."""
    return {DB_ENV: str(directory), HOST_ENV: host, PORT_ENV: str(port)}


def worker_middleware() -> dramatiq.Middleware:
    """Dramatiq's Prometheus middleware, with two corrections (same metric names and labels):
    no exposition server when dramatiq_prom_port is 0, and the delayed-messages gauge summed
    over the live processes (Dramatiq's default mode would label it with every pid)."""
    # Imported here, not at the top: the module reads its variables and creates its directory
    # when imported, which only a worker process wants.
    from dramatiq.middleware.prometheus import Prometheus

    class WorkerPrometheus(Prometheus):
        @property
        def forks(self) -> list[Callable[[], int]]:
            if int(os.environ.get(PORT_ENV, "9191")) == 0:
                return []
            return [serve_worker_metrics]

        def after_process_boot(self, broker: dramatiq.Broker) -> None:
            super().after_process_boot(broker)  # type: ignore[no-untyped-call]
            import prometheus_client as prom

            # Not registered anywhere: in multiprocess mode the value goes to this process's
            # file whatever the registry, and the exposition reads the files.
            self.inprogress_delayed_messages = prom.Gauge(
                "dramatiq_delayed_messages_inprogress",
                "The number of delayed messages in memory.",
                ["queue_name", "actor_name"],
                registry=None,
                multiprocess_mode="livesum",
            )

        def record_event(
            self, queue: str, actor: str, seconds: float, error: BaseException | None
        ) -> None:
            """One event a bundle carried (actors.bundles), counted as the message of its own
            it would have been: dashboards by actor_name see every event either way."""
            if not hasattr(self, "total_messages"):  # before the process booted
                return
            labels = (queue, actor)
            self.message_durations.labels(*labels).observe(seconds * 1000)
            self.total_messages.labels(*labels).inc()
            if error is not None:
                self.total_errored_messages.labels(*labels).inc()

    middleware: dramatiq.Middleware = WorkerPrometheus()
    return middleware


def serve_worker_metrics() -> int:
    """The worker's exposition process (a fork of Dramatiq's CLI): Dramatiq's own server, with
    an address that cannot be bound (another worker group on this machine has the port) said in
    one log line instead of a traceback; the workers go on without it either way."""
    from dramatiq.middleware import prometheus

    try:
        code: int = prometheus._run_exposition_server()  # type: ignore[no-untyped-call]
    except OSError as exc:
        log.error(
            "metrics.server_failed",
            host=os.environ.get(HOST_ENV),
            port=os.environ.get(PORT_ENV),
            error=repr(exc),
        )
        return 1
    return code


def serve(host: str, port: int) -> Callable[[], None] | None:
    """Serve this kind's metrics (every process's files, or the default registry without
    multiprocess mode) on host:port in a thread; returns the function that stops it. None when
    `port` is 0, or when the address cannot be bound (logged: the relay relays without it)."""
    if port == 0:
        return None
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    from configs.metrics import multiprocess_dir

    registry: Any = REGISTRY
    directory = multiprocess_dir()
    if directory is not None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, str(directory))  # type: ignore[no-untyped-call]
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        log.error("metrics.server_failed", host=host, port=port, error=repr(exc))
        return None
    log.info("metrics.serving", url=f"http://{host}:{port}/metrics")

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
