"""The header's cart count of signed-in shoppers, kept a moment per process (web.carts)."""

from __future__ import annotations

from web.carts import UnitCounts


def test_a_kept_count_serves_until_a_later_write_or_its_time_is_up() -> None:
    counts = UnitCounts(seconds=3600, size=2)
    assert counts.get(1, None) is None
    counts.put(1, 3, lsn=100)
    assert counts.get(1, None) == 3
    assert counts.get(1, 100) == 3  # the request's own write is in the count
    assert counts.get(1, 101) is None  # its own later write: count again
    assert UnitCounts(seconds=0).get(1, None) is None
    expired = UnitCounts(seconds=0)
    expired.put(1, 3, lsn=100)
    assert expired.get(1, None) is None


def test_the_memory_is_bounded() -> None:
    counts = UnitCounts(seconds=3600, size=2)
    for user_id in (1, 2, 3):
        counts.put(user_id, user_id, lsn=1)
    assert counts.get(1, None) is None and counts.get(3, None) == 3
