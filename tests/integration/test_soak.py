"""The soak's short form: about a minute of load on the real process tree, two machines of a web,
a worker and a relay each, every kind of fault injected once or more (losing a whole machine
among them), then every invariant checked (tests/soak; `make soak` is the long form).

A failure prints the invariant table, the seed and the command that runs the same soak again.
The operator (tests/soak/operator.py) watches the /ops pages meanwhile: its table must have a
row for every kind of fault injected, and a killed worker must show red (the Workers light or the
workers page) within 30 s. No screenshots here (`make soak` takes them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak.faults import KINDS
from tests.soak.run import SoakConfig, run_soak

SEED = 20261207
# Start-up, a minute of load, the drain, the checks and the stop, on a busy two-core machine.
pytestmark = pytest.mark.timeout(420)


async def test_a_minute_of_load_and_faults_keeps_every_invariant(tmp_path: Path) -> None:
    config = SoakConfig(
        seconds=60,
        seed=SEED,
        shoppers=6,
        app_clients=3,
        staff=2,
        faults="auto",
        fault_every=5,
        drain_seconds=30,
        # A worker is red after 3 silent intervals: 1 s here, so a kill shows before the
        # faults that follow it (Redis stopped, then started empty) hide the heartbeats.
        heartbeat_seconds=1.0,
        log_dir=tmp_path / "soak",
    )
    report = await run_soak(config)
    injected = {window.kind for window in report.journal.faults}
    assert injected == set(KINDS), f"not every kind of fault was injected:\n{report.render()}"
    failed = [row.name for row in report.rows if not row.passed]
    assert not failed, f"\n{report.render()}"

    operator = report.operator
    assert operator is not None and report.camera is None
    rendered = report.render()
    assert "What the operator saw" in rendered
    rows = {watch.fault.kind: watch for watch in operator.first_of_each()}
    assert set(rows) == injected, rendered
    for kind, watch in rows.items():
        assert f"  {kind} at +" in rendered, kind
        assert any(sight.offset > 0 and sight.lights for sight in watch.sights), (
            f"the operator never read the overview after {kind}:\n{rendered}"
        )
    # Two machines, told apart by their HOST_NAME on /ops/workers; one of them lost and back.
    assert "machines: machine-a (web-0 :" in rendered and "; machine-b (web-0 :" in rendered
    assert operator.baseline is not None, rendered
    assert {"machine-a", "machine-b"} <= set(operator.baseline.hosts), operator.baseline.hosts
    lost = [w for w in report.journal.faults if w.kind == "lose-machine"]
    assert all(w.target in ("machine-a", "machine-b") for w in lost), lost
    kill = rows["kill-worker"]
    assert any(0 < sight.offset <= 30 and sight.workers_red for sight in kill.sights), (
        f"a killed worker never showed red within 30 s:\n{rendered}"
    )
