"""The topology benchmark's arguments, its reading of the failover bench and its table (no I/O)."""

from __future__ import annotations

import pytest

from tests.bench.catalog_bench import Measured
from tests.bench.support import Load
from tests.bench.topology_bench import (
    Failover,
    Result,
    Row,
    checkout_script,
    parse_args,
    parse_failover,
    table,
)

FAILOVER_OUTPUT = """
failover, 1 rounds, 4 clients, promotion 1 s after the kill
kill -> first checkout             median   2.31 s   max   2.31 s
kill -> promoted (operator)        median   1.20 s   max   1.20 s
promoted -> first checkout (shop)  median   1.11 s   max   1.11 s
checkouts placed                   120
"""


def test_defaults_and_bounds() -> None:
    args = parse_args([])
    assert (args.products, args.processes, args.rounds, args.no_failover) == (
        10_000, [1, 2, 4], 3, False,
    )  # fmt: skip
    assert parse_args(["--processes", "3", "--no-failover"]).processes == [3]
    with pytest.raises(SystemExit):
        parse_args(["--processes", "0"])


def test_the_failover_figures_are_read_from_its_summary() -> None:
    assert parse_failover(FAILOVER_OUTPUT) == Failover(2.31, 1.20, 1.11)
    none = parse_failover("kill -> first checkout             -\n")
    assert none.total is None and "no checkout" in none.note


def test_the_table_has_a_row_per_measurement_and_the_failover_figure() -> None:
    bare = Load(10_000.0, 5.0, 20.0, 0, 0)
    row = Load(2_500.0, 20.0, 80.0, 3, 0)
    measured = Measured([(bare, row), (bare, row)])
    lines = table([Result(4, Row("product list", "cached", 64, ("/p",)), measured)],
                  Failover(2.31, 1.2, 1.11))  # fmt: skip
    assert lines[2] == (
        "| 4 | product list (6 non-2xx, 0 socket errors) | 64 | 2,500 | 20.0 | 80.0 | 10,000 |"
        " 25% (25%-25%) |"
    )
    assert "2.31 s (promotion 1.20 s, then 1.11 s)" in lines[3]
    assert all(line.count("|") == 9 for line in lines)


def test_each_checkout_has_its_cart_token_and_an_idempotency_key() -> None:
    script = checkout_script(["tok-a", "tok-b"], "run1")
    assert '"tok-a",\n"tok-b"' in script
    assert "['Idempotency-Key'] = 'run1-' .. id .. '-' .. n" in script
    assert "'/api/v1/checkout'" in script and '"shipping_method":"standard"' in script
