"""The Dramatiq CLI's entry point: `dramatiq actors.main:broker` (what `aioshop worker` runs)."""

from __future__ import annotations

import dramatiq

from actors.broker import build_broker
from actors.ops.metrics import worker_middleware
from configs.logging import configure_logging
from configs.metrics import process_kind
from configs.settings import Settings

settings = Settings.from_env()
configure_logging(settings.log_format, settings.log_level, host_name=settings.host_name)
broker = build_broker(settings)
if process_kind() == "worker":  # started by `aioshop worker` (configs/metrics.py)
    broker.add_middleware(worker_middleware())
dramatiq.set_broker(broker)
