"""One soak run: start the tree, let the users loose while the injector follows its schedule, stop
the load, let the system drain (bounded), check the invariants, stop everything.

Everything random comes from the seed: the catalog, the schedule, each user's choices (the
interleaving of concurrent users is the machine's, so a seed reproduces the run's pressure and
faults, not its exact timing).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shlex
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.soak import stalls
from tests.soak.apps import AppClient
from tests.soak.faults import Fault, Injector, schedule
from tests.soak.invariants import Row, check_all, table
from tests.soak.journal import Journal, StockSample
from tests.soak.journeys import Catalog, User
from tests.soak.operator import Operator
from tests.soak.screenshots import ALL_PAGES, Camera
from tests.soak.shoppers import Shopper
from tests.soak.sights import Sight, Watch
from tests.soak.staff import Staff
from tests.soak.tree import DEFAULT_MACHINES, Machine, MachineSpec, Tree, TreeOptions

STOP_USERS_SECONDS = 40.0  # a user's request in flight may take up to its 30 s timeout
SAMPLE_EVERY_SECONDS = 1.0
OPERATOR_FINISH_SECONDS = 60.0  # its own bound is 45 s past the stop, plus a read in flight
PRICE_PRODUCTS_PER_STAFF = 8
SELECT_PUBLISHED = """
    SELECT id, slug, name FROM products
    WHERE is_published AND slug NOT LIKE 'soak-hot-%' AND in_stock
    ORDER BY id
"""
SELECT_NEGATIVE = (
    "SELECT count(*) FILTER (WHERE stock_on_hand < 0), min(stock_on_hand) FROM variants"
)
COUNT_UNSETTLED = """
    SELECT (SELECT count(*) FROM outbox
            WHERE published_at IS NULL AND NOT (event_id = ANY ($1::uuid[])))
         + (SELECT count(*) FROM orders o LEFT JOIN payments p ON p.order_id = o.id
            WHERE o.status = 'pending' AND p.status IS DISTINCT FROM 'declined')
         + (SELECT count(*) FROM outbox o
            WHERE NOT EXISTS (SELECT 1 FROM processed_events p
                              WHERE p.consumer = o.actor_name AND p.event_id = o.event_id)
              AND NOT (o.event_id = ANY ($1::uuid[])))
"""


@dataclass
class SoakConfig:
    seconds: float = 600.0  # of load
    seed: int = 7
    shoppers: int = 10
    app_clients: int = 5
    staff: int = 2
    faults: str = "auto"
    fault_every: float = 20.0  # seconds between faults in an `auto` schedule, on average
    # A declined order waits for another card until the expiry (1 minute here, ticked each minute).
    drain_seconds: float = 180.0
    grace_seconds: float = 5.0  # after a fault's window, a 503 is still the fault's
    products: int = 200
    pool_size: int = 4
    heartbeat_seconds: float = 5.0  # the shop's default; a worker shows red after 3 of them
    log_dir: Path | None = None
    screenshots: Path | None = None  # where to save screenshots of the /ops pages; None: none
    machines: tuple[MachineSpec, ...] = DEFAULT_MACHINES

    def command(self) -> str:
        """The command line that runs this configuration again."""
        faults = shlex.quote(self.faults)
        return (
            f"python -m tests.soak --minutes {self.seconds / 60:g} --seed {self.seed} "
            f"--shoppers {self.shoppers} --app-clients {self.app_clients} --staff {self.staff} "
            f"--faults {faults} --fault-every {self.fault_every:g} "
            f"--drain-seconds {self.drain_seconds:g} --pool-size {self.pool_size} "
            f"--heartbeat-seconds {self.heartbeat_seconds:g} --machines {len(self.machines)}"
        )


@dataclass
class Report:
    config: SoakConfig
    run_dir: Path
    faults: list[Fault] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    journal: Journal = field(default_factory=Journal, repr=False)
    drain: str = ""
    startup_seconds: float = 0.0
    stopping: list[str] = field(default_factory=list)  # processes that did not stop cleanly
    machines: list[str] = field(default_factory=list)  # each machine and what runs on it
    operator: Operator | None = field(default=None, repr=False)
    camera: Camera | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.passed for row in self.rows)

    def render(self) -> str:
        config = self.config
        windows = ", ".join(
            f"{f.kind}@{f.started - self.journal.started:.0f}s"
            + (f"+{f.ended - f.started:.0f}s" if f.ended and f.ended > f.started else "")
            + f"({f.target})"
            for f in self.journal.faults
        )
        lines = [
            f"soak: seed {config.seed}, {config.seconds:g} s of load, {config.shoppers} shoppers, "
            f"{config.app_clients} app clients, {config.staff} staff; start-up "
            f"{self.startup_seconds:.0f} s; {self.drain}",
            f"machines: {'; '.join(self.machines) or 'none started'}",
            f"schedule: {', '.join(map(str, self.faults)) or 'none'}",
            f"faults injected: {windows or 'none'}",
            table(self.rows) if self.rows else "no invariants checked",
        ]
        if self.operator is not None:
            lines.append(self.operator.table(self.journal, config.grace_seconds))
        if self.journal.notes:
            lines.append(f"harness notes ({len(self.journal.notes)}):")
            lines.extend(f"  {note}" for note in self.journal.notes[:10])
        if self.stopping:
            lines.append(f"stopping the tree: {'; '.join(self.stopping)}")
        if self.camera is not None:
            lines.append(self.camera.summary())
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"{verdict}; logs in {self.run_dir}")
        lines.append(f"reproduce: {config.command()}")
        return "\n".join(lines)


def describe_machine(machine: Machine) -> str:
    """ "machine-a (web-0 :8081, worker-0, relay-0; metrics :9191, :9192)", for the report."""
    parts = [
        f"{p.name.partition('/')[2]} :{port}"
        for p, port in zip(machine.webs, machine.web_ports, strict=True)
    ]
    parts += [p.name.partition("/")[2] for p in (*machine.workers, *machine.relays)]
    ports = f":{machine.settings.worker_metrics_port}, :{machine.settings.relay_metrics_port}"
    return f"{machine.name} ({', '.join(parts)}; metrics {ports})"


async def run_soak(config: SoakConfig) -> Report:
    """Run the soak described by `config`; the report says what held. Raises TreeError when the
    tree cannot start (then nothing was checked)."""
    run_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="aioshop-soak-"))
    rng = random.Random(config.seed)
    report = Report(config, run_dir)
    report.faults = schedule(config.faults, rng, config.seconds, config.fault_every)
    options = TreeOptions(
        seed=config.seed,
        products=config.products,
        staff=config.staff,
        pool_size=config.pool_size,
        heartbeat_seconds=config.heartbeat_seconds,
        machines=config.machines,
    )
    tree = Tree(options, run_dir)
    began = time.monotonic()
    try:
        await tree.start()
        report.startup_seconds = time.monotonic() - began
        report.machines = [describe_machine(machine) for machine in tree.machines]
        catalog = await load_catalog(tree, rng, config.staff)
        initial = await stock_levels(tree)
        if config.screenshots is not None:  # Chromium starts before the journal's clock does
            report.camera = Camera(config.screenshots, f"http://127.0.0.1:{tree.web_ports[0]}")
            await report.camera.open()
        journal = report.journal = Journal()
        tree.progress(f"load starts: {len(report.faults)} faults scheduled")
        watching = await load(tree, config, catalog, report, rng)
        tree.progress(f"load stopped after {len(journal.requests)} requests; draining")
        report.drain = await drain(tree, journal.poisoned, config.drain_seconds)
        tree.progress(report.drain)
        await finish_watching(watching, report)
        report.rows = await check_all(tree, journal, initial, config.grace_seconds)
        journal.save(run_dir / "journal.jsonl")
        tree.progress("invariants checked; stopping the tree")
    finally:
        if report.camera is not None:
            await report.camera.close()
        stopping = await tree.close()
        report.stopping = stopping
        tree.progress("stopped")
    return report


async def load(
    tree: Tree, config: SoakConfig, catalog: Catalog, report: Report, rng: random.Random
) -> asyncio.Task[None]:
    """The users and the injector for `config.seconds`, the stock sampled meanwhile; the
    operator watching (its task goes on after the load: the reads still due are taken while
    the system drains, see finish_watching)."""
    journal = report.journal
    stop = asyncio.Event()
    kinds: list[tuple[type[User], int]] = [
        (Shopper, config.shoppers),
        (AppClient, config.app_clients),
        (Staff, config.staff),
    ]
    users = [
        kind(i, config.seed, tree.web_ports, journal, catalog, stop)
        for kind, count in kinds
        for i in range(count)
    ]
    running = [asyncio.create_task(user.run(), name=user.name) for user in users]
    sampler = asyncio.create_task(sample_stock(tree, journal, stop))
    watcher = asyncio.create_task(stalls.watch(tree, journal, stop))
    injector = Injector(tree, journal, random.Random(f"{config.seed}-injector"))
    faulting = asyncio.create_task(injector.run(report.faults, stop))
    operator = report.operator = Operator(tree.web_ports, journal, config.seed)
    camera = report.camera
    if camera is not None and camera.ready:

        async def shoot(watch: Watch, sight: Sight) -> None:
            await camera.on_sight(watch, sight, operator)

        operator.on_sight = shoot
    watching = asyncio.create_task(operator.run(stop), name="operator")
    try:
        if camera is not None:
            await asyncio.sleep(config.seconds / 2)
            camera.shoot_soon("mid-load", tuple(ALL_PAGES))
            await asyncio.sleep(config.seconds / 2)
        else:
            await asyncio.sleep(config.seconds)
    finally:
        stop.set()
        _, late = await asyncio.wait(running, timeout=STOP_USERS_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if late:
            journal.notes.append(
                f"{len(late)} user(s) still waiting {STOP_USERS_SECONDS:.0f} s after the stop"
            )
        await faulting
        await sampler
        await watcher
        if sys.exc_info()[0] is not None:  # the load failed: nobody will wait for the operator
            watching.cancel()
    return watching


async def finish_watching(watching: asyncio.Task[None], report: Report) -> None:
    """Wait for the operator's last reads (it bounds them itself; this bounds it once more),
    and save what it saw beside the journal."""
    done, _ = await asyncio.wait([watching], timeout=OPERATOR_FINISH_SECONDS)
    if not done:
        watching.cancel()
        report.journal.notes.append("the operator was still reading; stopped")
    await asyncio.gather(watching, return_exceptions=True)
    if report.operator is not None:
        report.operator.save(report.run_dir / "operator.jsonl")


async def load_catalog(tree: Tree, rng: random.Random, staff: int) -> Catalog:
    assert tree.pool is not None
    rows = await tree.pool.fetch(SELECT_PUBLISHED)
    categories = [r["slug"] for r in await tree.pool.fetch("SELECT slug FROM categories")]
    words = sorted(
        {w.lower() for r in rows for w in r["name"].split() if len(w) > 3 and w.isalpha()}
    )
    chosen = rng.sample(rows, min(len(rows), PRICE_PRODUCTS_PER_STAFF * staff))
    prices = {i: [r["id"] for r in chosen[i::staff]] for i in range(staff)}
    browse = rng.sample(rows, min(len(rows), 80))
    return Catalog(
        hot=tree.hot,
        products=[r["slug"] for r in browse],
        categories=categories,
        words=words[:200],
        price_products=prices,
    )


async def stock_levels(tree: Tree) -> dict[int, int]:
    assert tree.pool is not None
    return {
        r["id"]: r["stock_on_hand"]
        for r in await tree.pool.fetch("SELECT id, stock_on_hand FROM variants")
    }


async def sample_stock(tree: Tree, journal: Journal, stop: asyncio.Event) -> None:
    """Look for negative stock every second while the load runs (the end state is not enough:
    a negative moment can be repaired before the end)."""
    assert tree.pool is not None
    while not stop.is_set():
        try:
            negative, lowest = await tree.pool.fetchrow(SELECT_NEGATIVE)
            journal.samples.append(StockSample(time.time(), negative, lowest))
        except Exception as exc:  # the harness's own pool: note it and go on
            journal.notes.append(f"stock sample failed: {exc!r}")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_SECONDS)


async def drain(tree: Tree, poisoned: list[str], seconds: float) -> str:
    """Wait until nothing is left to do (outbox published, no order pending but those declined
    and waiting for another card, every event's effect in the inbox but the poisoned ones),
    twice in a row, or `seconds` pass."""
    assert tree.pool is not None
    began = time.monotonic()
    settled_before = False
    left = -1
    while time.monotonic() - began < seconds:
        left = int(await tree.pool.fetchval(COUNT_UNSETTLED, [uuid.UUID(p) for p in poisoned]))
        if left == 0 and settled_before:
            return f"drained in {time.monotonic() - began:.0f} s"
        settled_before = left == 0
        await asyncio.sleep(1.0)
    return f"NOT drained after {seconds:g} s ({left} things left to do)"
