"""The catalog benchmark's side-by-side table of two catalog sizes, and the web process memory
it reads from /proc (this test's own process)."""

from __future__ import annotations

import argparse
import os

from tests.bench.catalog_bench import Measured, Row, SizeResult, chosen, report, side_by_side
from tests.bench.support import Load, Memory, process_memory

MEMORY = {"cached": Memory(2, 100.0, 120.0, 200.0), "uncached": Memory(2, 110.0, 130.0, 220.0)}


def measured(rate: float, bare: float = 10_000.0) -> Measured:
    return Measured([(Load(bare, 1.0, 2.0, 0, 0), Load(rate, 5.0, 9.0, 0, 0))])


def size(products: int, rows: list[tuple[Row, Measured]]) -> SizeResult:
    return SizeResult(products, rows, MEMORY)


def test_a_row_below_half_its_share_at_the_larger_size_is_a_cliff() -> None:
    steady, falling = Row("list", "uncached", ["/a"], 64), Row("rare", "uncached", ["/b"], 16)
    small = size(100_000, [(steady, measured(2_000)), (falling, measured(1_000))])
    # The larger size's bare endpoint ran slower: shares of bare are compared, not rates.
    large = size(
        1_000_000, [(steady, measured(1_000, bare=5_000)), (falling, measured(400, bare=10_000))]
    )
    lines = side_by_side([small, large])
    assert "### 100k vs 1M" in lines
    list_line = next(line for line in lines if line.startswith("| list |"))
    rare_line = next(line for line in lines if line.startswith("| rare |"))
    assert "| 100% |" in list_line and "CLIFF" not in list_line
    assert "| 40% | CLIFF |" in rare_line


def test_rows_whose_names_hold_counts_pair_by_key_and_missing_ones_show_a_dash() -> None:
    small = size(100_000, [(Row("pages (29)", "cached", ["/c"], 64, key="pages"), measured(900))])
    large = size(1_000_000, [(Row("pages (31)", "cached", ["/c"], 64, key="pages"), measured(900))])
    assert any(
        line.startswith("| pages | ") and "| 100% |" in line
        for line in side_by_side([small, large])
    )
    alone = size(1_000_000, [])
    assert any(
        line.startswith("| pages | ") and "| - |" in line for line in side_by_side([small, alone])
    )


def test_the_report_has_a_table_and_the_memory_per_size() -> None:
    args = argparse.Namespace(rounds=1, seconds=1.0)
    row = Row("list", "uncached", ["/a"], 64, ">= 15%")
    lines = report([size(100_000, [(row, measured(2_000))])], args)
    assert "### 100,000 products" in lines
    assert any(line.startswith("| list | 64 | 2,000 |") and "| met |" in line for line in lines)
    assert "| uncached | 2 | 110 | 130 | 220 |" in lines
    assert not any("vs" in line and line.startswith("###") for line in lines)  # one size alone


def test_process_memory_reads_a_process_without_children() -> None:
    memory = process_memory(os.getpid())
    assert memory.processes == 1
    assert 1 < memory.rss_mib <= memory.peak_mib
    assert memory.total_mib == memory.rss_mib


def test_a_row_without_any_answer_misses_its_latency_target() -> None:
    args = argparse.Namespace(rounds=1, seconds=1.0)
    row = Row("search", "uncached", ["/s"], 16, "p99 <= 50 ms")
    silent = Measured([(Load(10_000.0, 1.0, 2.0, 0, 0), Load(0.0, 0.0, 0.0, 0, 0))])
    line = next(
        line for line in report([size(1_000_000, [(row, silent)])], args) if "search" in line
    )
    assert "no answer within a run" in line and line.endswith("| MISSED |")


def test_rows_are_chosen_by_parts_of_their_names() -> None:
    rows = [Row(name, "uncached", ["/"], 16) for name in ("Deep pages", "rare filter", "search")]
    assert chosen(rows, None) == rows
    assert [row.name for row in chosen(rows, "deep, RARE")] == ["Deep pages", "rare filter"]
    assert chosen(rows, "nothing") == []
