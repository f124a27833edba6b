"""Reading p50/p95 from histogram buckets."""

from __future__ import annotations

from actors.ops.stats import DURATION_BUCKETS, bucket_of, quantile


def counts(*pairs: tuple[float, int]) -> list[int]:
    buckets = [0] * len(DURATION_BUCKETS)
    for seconds, n in pairs:
        buckets[bucket_of(seconds)] += n
    return buckets


def test_quantiles_are_the_upper_bound_of_the_bucket_holding_the_rank() -> None:
    buckets = counts((0.003, 90), (0.3, 10))
    assert quantile(buckets, 0.5) == 0.005
    assert quantile(buckets, 0.9) == 0.005
    assert quantile(buckets, 0.95) == 0.5
    assert quantile([0] * len(DURATION_BUCKETS), 0.5) is None


def test_the_overflow_bucket_reads_as_the_largest_bound() -> None:
    assert quantile(counts((10_000.0, 1)), 0.95) == DURATION_BUCKETS[-2]


def test_a_duration_on_a_bound_falls_in_that_bucket() -> None:
    assert DURATION_BUCKETS[bucket_of(0.25)] == 0.25
