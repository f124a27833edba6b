"""Benchmark of a database failover: from killing the primary to the next successful checkout.

A script, not a test: it prints figures and asserts nothing.

One shop (a web, a worker and a relay process; tests/support/failover.py) on a streaming pair
whose URLs name both servers. Clients check out through the API all along (a 503 is tried again
after 0.1 s). Each round: the primary is stopped as a crash (pg_ctl stop -m immediate), after
`--outage` seconds the standby is promoted (pg_ctl promote), and the lost node is rebuilt as the
new standby (pg_basebackup) for the next round, so the roles swap back and forth while the
shop's processes keep running untouched. Per round it prints the time from the kill to the
promotion (the operator's part), from the promotion to the first checkout that succeeds (the
shop's part), and from the kill to that checkout; then their median and max.

    make bench-failover
    .venv/bin/python -m tests.bench.failover_bench [--rounds 3] [--outage 1.0] [--clients 4]

Services: PostgreSQL server binaries (the pair runs on its own ports), Redis at TEST_REDIS_URL
(a database of its own) and RabbitMQ at TEST_BROKER_URL (a vhost of its own, deleted after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.failover import CheckoutLoad, FailoverShop, progress
from tests.support.isolation import claim_redis_database, create_vhost, new_run_id
from tests.support.smtp import smtp_server

REDIS_BASE_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BROKER_BASE_URL = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
WARM_UP_SECONDS = 2.0  # checkouts before each kill
RECOVERY_LIMIT_SECONDS = 60.0  # a round that finds no checkout by then is reported as such


@dataclass
class Round:
    to_promote: float
    to_checkout: float | None  # promotion -> first successful checkout; None: none came
    unavailable: int  # 503 answers during the round
    other: int  # answers neither 2xx nor 503 with Retry-After (should be 0)

    @property
    def total(self) -> float | None:
        return None if self.to_checkout is None else self.to_promote + self.to_checkout


async def failover_round(shop: FailoverShop, load: CheckoutLoad, outage: float) -> Round:
    """Kill the primary, promote the standby after `outage` s, wait for a checkout, rebuild."""
    await asyncio.sleep(WARM_UP_SECONDS)
    seen = len(load.answers)
    killed = time.monotonic()
    lost = await asyncio.to_thread(shop.cluster.stop_primary)
    await asyncio.sleep(outage)
    await asyncio.to_thread(shop.cluster.promote)
    promoted = time.monotonic()
    deadline = promoted + RECOVERY_LIMIT_SECONDS
    while load.first_checkout_after(promoted) is None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    first = load.first_checkout_after(promoted)
    answers = load.answers[seen:]
    await asyncio.to_thread(shop.cluster.rebuild_standby, lost)
    return Round(
        to_promote=promoted - killed,
        to_checkout=None if first is None else first - promoted,
        unavailable=sum(a.status == 503 for a in answers),
        other=sum(not a.acceptable for a in answers),
    )


def show(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<34} -"
    return f"{name:<34} median {statistics.median(values):6.2f} s   max {max(values):6.2f} s"


async def bench(rounds: int, outage: float, clients: int) -> None:
    began = time.monotonic()
    run_id = new_run_id()
    claim = claim_redis_database(REDIS_BASE_URL, run_id)
    vhost = create_vhost(BROKER_BASE_URL, f"bench-failover-{run_id}")
    try:
        with smtp_server() as smtp, tempfile.TemporaryDirectory(prefix="failover-") as tmp:
            shop = FailoverShop(Path(tmp), claim.url, vhost.url, smtp.url)
            try:
                await shop.start()
                progress("pair, web, worker and relay up", began)
                load = CheckoutLoad(shop.base_url, clients=clients)
                stop = asyncio.Event()
                running = asyncio.create_task(load.run(stop))
                results = []
                for number in range(1, rounds + 1):
                    result = await failover_round(shop, load, outage)
                    results.append(result)
                    total = "none" if result.total is None else f"{result.total:.2f} s"
                    checkout = "-" if result.to_checkout is None else f"{result.to_checkout:.2f}"
                    progress(
                        f"round {number}: kill->checkout {total} (promote {result.to_promote:.2f}"
                        f" s, then {checkout} s); 503s {result.unavailable}, other {result.other}",
                        began,
                    )
                stop.set()
                await running
            finally:
                await shop.close()
    finally:
        vhost.delete()
        claim.release()
    totals = [r.total for r in results if r.total is not None]
    print(f"\nfailover, {rounds} rounds, {clients} clients, promotion {outage:g} s after the kill")
    print(show("kill -> first checkout", totals))
    print(show("kill -> promoted (operator)", [r.to_promote for r in results]))
    shop_part = [r.to_checkout for r in results if r.to_checkout is not None]
    print(show("promoted -> first checkout (shop)", shop_part))
    print(f"{'checkouts placed':<34} {len(load.placed)}")
    print(f"{'503 answers':<34} {sum(r.unavailable for r in results)}")
    print(f"{'other answers (should be 0)':<34} {sum(r.other for r in results)}")
    print(f"{'rounds with no checkout':<34} {sum(r.total is None for r in results)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outage", type=float, default=1.0, help="seconds before promoting")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(bench(args.rounds, args.outage, args.clients))


if __name__ == "__main__":
    main()
