"""configs/metrics.py: the multiprocess directory of a kind, cleared of dead processes' files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from configs import metrics


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A process that runs for the test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process.pid
    process.kill()
    process.wait()


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_starting_a_kind_clears_the_dead_processes_files_only(
    tmp_path: Path, live_pid: int
) -> None:
    gone = dead_pid()
    files = {
        "live_counter": tmp_path / f"counter_{live_pid}.db",
        "live_gauge": tmp_path / f"gauge_livesum_{live_pid}.db",
        "dead_counter": tmp_path / f"counter_{gone}.db",
        "dead_histogram": tmp_path / f"histogram_{gone}.db",
        "dead_gauge": tmp_path / f"gauge_all_{gone}.db",
        "ours": tmp_path / "counter_4242.db",  # this process's pid: an earlier process's file
        "not_a_metric": tmp_path / "notes.txt",
    }
    for path in files.values():
        path.write_bytes(b"x")
    removed = metrics.clear_stale(tmp_path, own_pid=4242)
    assert {path.name for path in removed} == {
        files[name].name for name in ("dead_counter", "dead_histogram", "dead_gauge", "ours")
    }
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        files[name].name for name in ("live_counter", "live_gauge", "not_a_metric")
    )


def test_a_zombie_is_no_live_process(tmp_path: Path) -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # Not waited for: it exits and stays a zombie until we reap it.
        deadline = 50
        while deadline and Path(f"/proc/{zombie.pid}/stat").read_text().split()[2] != "Z":
            subprocess.run(["sleep", "0.1"], check=True)
            deadline -= 1
        (tmp_path / f"counter_{zombie.pid}.db").write_bytes(b"x")
        assert [p.name for p in metrics.clear_stale(tmp_path)] == [f"counter_{zombie.pid}.db"]
    finally:
        zombie.wait()


def test_prepare_refuses_once_prometheus_client_is_loaded(tmp_path: Path) -> None:
    import prometheus_client  # noqa: F401 - loaded by the app's modules in any test run

    with pytest.raises(metrics.MetricsSetupError):
        metrics.prepare("web", tmp_path)
    assert not (tmp_path / "web").exists()


def test_prepare_sets_the_mode_before_prometheus_client_loads(tmp_path: Path) -> None:
    """In a fresh interpreter (as `aioshop web` is): the directory, the variables, and a
    counter's value written to this process's file there."""
    code = f"""
import os
from pathlib import Path
from configs import metrics
directory = metrics.prepare("relay", Path({str(tmp_path)!r}))
import prometheus_client
prometheus_client.Counter("aioshop_probe_total", "probe").inc()
print(directory, os.environ["PROMETHEUS_MULTIPROC_DIR"], metrics.process_kind(), os.getpid())
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    directory, variable, kind, pid = result.stdout.split()
    assert directory == variable == str(tmp_path / "relay") and kind == "relay"
    assert (tmp_path / "relay" / f"counter_{pid}.db").exists()


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        metrics.prepare("cron", tmp_path)  # type: ignore[arg-type]
