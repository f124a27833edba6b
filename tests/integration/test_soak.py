"""The soak's short form: about a minute of load on the real process tree, every kind of fault
injected once or more, then every invariant checked (tests/soak; `make soak` is the long form).

A failure prints the invariant table, the seed and the command that runs the same soak again.
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
        log_dir=tmp_path / "soak",
    )
    report = await run_soak(config)
    injected = {window.kind for window in report.journal.faults}
    assert injected == set(KINDS), f"not every kind of fault was injected:\n{report.render()}"
    failed = [row.name for row in report.rows if not row.passed]
    assert not failed, f"\n{report.render()}"
