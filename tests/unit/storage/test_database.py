from __future__ import annotations

import math
from collections import deque

from storage.database import _lag_seconds


def test_caught_up_replica_has_no_lag() -> None:
    assert _lag_seconds(deque([(10.0, 100), (11.0, 100)]), 100, now=12.0) == 0.0


def test_lag_is_time_since_primary_first_had_unreplayed_wal() -> None:
    samples = deque([(10.0, 100), (11.0, 150), (12.0, 200)])
    assert _lag_seconds(samples, 120, now=13.0) == 2.0  # the primary passed 120 at t=11
    assert _lag_seconds(samples, 99, now=13.0) == 3.0


def test_unknown_replay_position_is_infinite_lag() -> None:
    assert math.isinf(_lag_seconds(deque([(1.0, 5)]), None, now=2.0))
