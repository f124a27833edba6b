from __future__ import annotations

from collections import deque

from storage.replica import _lag_seconds


def test_caught_up_replica_has_no_lag() -> None:
    assert _lag_seconds(deque([(10.0, 100), (11.0, 100)]), 100, now=12.0) == 0.0
    assert _lag_seconds(deque([(12.0, 100)]), 100, now=12.0) == 0.0  # from the first sample


def test_lag_is_bounded_by_the_newest_sample_the_replica_has_reached() -> None:
    samples = deque([(10.0, 100), (11.0, 150), (12.0, 200)])
    assert _lag_seconds(samples, 150, now=13.0) == 2.0  # at most since the primary was at 150
    assert _lag_seconds(samples, 120, now=13.0) == 3.0


def test_a_replica_behind_every_sample_has_an_unknown_lag() -> None:
    # Right after a start there is one sample: a replica behind it may be gigabytes behind.
    assert _lag_seconds(deque([(12.0, 200)]), 150, now=12.0) is None
    assert _lag_seconds(deque([(10.0, 100), (11.0, 150)]), 99, now=13.0) is None


def test_unknown_replay_position_is_an_unknown_lag() -> None:
    assert _lag_seconds(deque([(1.0, 5)]), None, now=2.0) is None
    assert _lag_seconds(deque(), 5, now=2.0) is None
