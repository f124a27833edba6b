"""actors/ops/metrics.py: Dramatiq's Prometheus middleware as the worker uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from actors.ops import metrics


def test_the_worker_environment_names_dramatiq_s_variables(tmp_path: Path) -> None:
    env = metrics.worker_environment(tmp_path, "127.0.0.1", 0)
    assert env == {
        "dramatiq_prom_db": str(tmp_path),
        "dramatiq_prom_host": "127.0.0.1",
        "dramatiq_prom_port": "0",
    }


def test_port_zero_runs_no_exposition_server_and_gauges_sum_over_live_processes(
    tmp_path: Path,
) -> None:
    """In a fresh interpreter in multiprocess mode, as a worker process is."""
    code = f"""
import os
os.environ.update({metrics.worker_environment(tmp_path, "127.0.0.1", 0)!r})
os.environ["PROMETHEUS_MULTIPROC_DIR"] = {str(tmp_path)!r}
import dramatiq
from dramatiq.brokers.stub import StubBroker
from actors.ops.metrics import worker_middleware
middleware = worker_middleware()
print(len(middleware.forks))
middleware.after_process_boot(StubBroker())
print(middleware.inprogress_delayed_messages._multiprocess_mode)
print(middleware.inprogress_messages._multiprocess_mode)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["0", "livesum", "livesum"]


def test_a_port_runs_dramatiq_s_exposition_server_through_ours(tmp_path: Path) -> None:
    code = f"""
import os
os.environ.update({metrics.worker_environment(tmp_path, "127.0.0.1", 9999)!r})
from actors.ops.metrics import worker_middleware
print([f"{{fork.__module__}}:{{fork.__name__}}" for fork in worker_middleware().forks])
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    # serve_worker_metrics runs Dramatiq's _run_exposition_server, logging a port it cannot bind.
    assert result.stdout.strip() == "['actors.ops.metrics:serve_worker_metrics']"
