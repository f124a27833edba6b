"""The fault injector: what it can break, the schedule it follows, and the windows it records.

A schedule is `auto` (drawn from the seed: every kind at least once, spread over the load, then
more at random; `auto,-poison-outbox` leaves kinds out), `none`, or explicit:
`AT:KIND[:SECONDS],...` with AT in seconds after the load starts, e.g.
`10:kill-worker,25:redis-down:6,40:pause-replay:8`. The kinds:

    kill-worker     SIGKILL one worker's process group (on any machine); restart it SECONDS later
    kill-relay      SIGKILL one relay (on any machine); restart it SECONDS later
    lose-machine    SIGKILL every process of one machine at once (web, worker, relay: a host
                    lost); start them all again SECONDS later
    cut-broker      close every connection to RabbitMQ at once (they may reconnect at once)
    refuse-broker   cut them and turn new ones away for SECONDS
    redis-down      stop Redis; start it again (empty) SECONDS later
    pause-replay    pause the replica's WAL replay for SECONDS (it falls behind)
    smtp-refuse     the SMTP server answers every message with a 451 for SECONDS
    poison          an outbox event whose actor must fail for good (an order that does not
                    exist): it must land in the dead letters and block nothing
    poison-outbox   an outbox row the relay cannot publish (no actor has its name, as a row
                    written by a newer release): it must be parked and block nothing

Faults run as tasks of their own, so they may overlap; one that finds its target already down
(both workers dead, Redis already stopped) is skipped and noted. A kill keeps one of each kind
alive somewhere, and losing a machine needs another machine's web left, or nothing would move.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain.events import CAPTURE_PAYMENT
from storage import outbox
from tests.soak.journal import FaultWindow, Journal
from tests.soak.tree import READY_MARKS, Machine, ShopProcess, Tree

KINDS = (
    "kill-worker",
    "kill-relay",
    "lose-machine",
    "cut-broker",
    "refuse-broker",
    "redis-down",
    "pause-replay",
    "smtp-refuse",
    "poison",
    "poison-outbox",
)
# (shortest, longest) SECONDS of each kind in an `auto` schedule.
DURATIONS = {
    "kill-worker": (2.0, 5.0),
    "kill-relay": (2.0, 5.0),
    "lose-machine": (2.0, 5.0),
    "cut-broker": (0.0, 0.0),
    "refuse-broker": (2.0, 6.0),
    "redis-down": (3.0, 8.0),
    "pause-replay": (4.0, 10.0),
    "smtp-refuse": (3.0, 8.0),
    "poison": (0.0, 0.0),
    "poison-outbox": (0.0, 0.0),
}
CUT_WINDOW_SECONDS = 1.0  # a cut is instant; its window covers the reconnect
WARM_UP_SECONDS = 5.0  # no fault before the users have started
POISON_ORDER_ID = 10**15  # no order has this id
UNKNOWN_ACTOR = "soak.no_such_actor"
INSERT_UNPUBLISHABLE = """
    INSERT INTO outbox (event_id, actor_name, payload, request_id) VALUES ($1, $2, $3, $4)
"""


class ScheduleError(ValueError):
    """A --faults schedule that cannot be read."""


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the load started
    kind: str
    seconds: float

    def __str__(self) -> str:
        return f"{self.at:g}:{self.kind}" + (f":{self.seconds:g}" if self.seconds else "")


def schedule(text: str, rng: random.Random, load_seconds: float, every: float) -> list[Fault]:
    """The faults of `text` (auto, none or explicit), sorted by time. Raises ScheduleError."""
    text = text.strip()
    if text == "none":
        return []
    head, _, rest = text.partition(",")
    if head == "auto":
        left_out = [part.strip().removeprefix("-") for part in rest.split(",") if part.strip()]
        unknown = [kind for kind in left_out if kind not in KINDS]
        if unknown or not all(p.strip().startswith("-") for p in rest.split(",") if p.strip()):
            raise ScheduleError(f"{text!r}: write auto,-KIND,... with KIND one of {KINDS}")
        kinds = [kind for kind in KINDS if kind not in left_out]
        return auto_schedule(rng, load_seconds, every, kinds) if kinds else []
    faults = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        pieces = part.split(":")
        if len(pieces) not in (2, 3) or pieces[1] not in KINDS:
            raise ScheduleError(f"{part!r}: write AT:KIND[:SECONDS], KIND one of {KINDS}")
        try:
            at = float(pieces[0])
            seconds = float(pieces[2]) if len(pieces) == 3 else DURATIONS[pieces[1]][1]
        except ValueError:
            raise ScheduleError(f"{part!r}: AT and SECONDS are numbers") from None
        faults.append(Fault(at, pieces[1], seconds))
    return sorted(faults, key=lambda f: f.at)


def auto_schedule(
    rng: random.Random, load_seconds: float, every: float, kinds: list[str] | None = None
) -> list[Fault]:
    """Every kind once, in a random order, in slots spread over the load (at most `every`
    seconds apart); then a kind at random about every `every` seconds. Each fault ends two
    seconds before the load does (a shorter one than drawn, if need be)."""
    end = load_seconds - 2
    kinds = list(kinds or KINDS)
    first = list(kinds)
    rng.shuffle(first)
    slot = min(every, (end - WARM_UP_SECONDS) / len(first))
    moments = [WARM_UP_SECONDS + slot * (i + rng.uniform(0.1, 0.6)) for i in range(len(first))]
    at = moments[-1]
    while True:
        at += every * rng.uniform(0.6, 1.4)
        if at >= end:
            break
        moments.append(at)
    faults = []
    for i, moment in enumerate(moments):
        kind = first[i] if i < len(first) else rng.choice(kinds)
        low, high = DURATIONS[kind]
        seconds = min(rng.uniform(low, high), end - moment)
        if moment < end and seconds >= low:
            faults.append(Fault(round(moment, 1), kind, round(seconds, 1)))
    return faults


class Injector:
    """Applies a schedule to a tree, recording each fault's window in the journal."""

    def __init__(self, tree: Tree, journal: Journal, rng: random.Random) -> None:
        self.tree = tree
        self.journal = journal
        self.rng = rng
        self._busy: set[str] = set()  # targets down right now
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, faults: list[Fault], stop: asyncio.Event) -> None:
        """Start each fault at its time until `stop`; then wait for the ones under way (each
        puts back what it broke)."""
        begun = time.monotonic()
        for fault in faults:
            delay = begun + fault.at - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break  # the load stopped first
                except TimeoutError:
                    pass
            if stop.is_set():
                break
            self._tasks.append(asyncio.create_task(self.apply(fault)))
        await self.settle()

    async def settle(self) -> None:
        """Wait for the faults under way to end (each restores what it broke)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def apply(self, fault: Fault) -> None:
        actions: dict[str, Callable[[Fault], Awaitable[None]]] = {
            "kill-worker": self._kill_worker,
            "kill-relay": self._kill_relay,
            "lose-machine": self._lose_machine,
            "cut-broker": self._cut_broker,
            "refuse-broker": self._refuse_broker,
            "redis-down": self._redis_down,
            "pause-replay": self._pause_replay,
            "smtp-refuse": self._smtp_refuse,
            "poison": self._poison,
            "poison-outbox": self._poison_outbox,
        }
        try:
            await actions[fault.kind](fault)
        except Exception as exc:  # the injector must not stop the run: note it instead
            self.journal.notes.append(f"fault {fault} failed: {exc!r}")

    def _window(self, kind: str, target: str, detail: str = "") -> FaultWindow:
        window = FaultWindow(kind, target, time.time(), detail=detail)
        self.journal.faults.append(window)
        return window

    async def _kill(self, fault: Fault, processes: list[ShopProcess], mark: str) -> None:
        candidates = [p for p in processes if p.name not in self._busy and p.alive]
        if len(candidates) < 2:  # keep one of each kind alive, or nothing would move at all
            self.journal.notes.append(f"fault {fault} skipped: its peer is down already")
            return
        victim = self.rng.choice(candidates)
        self._busy.add(victim.name)
        window = self._window(fault.kind, victim.name, f"restart after {fault.seconds:g} s")
        try:
            await victim.kill()
            await asyncio.sleep(fault.seconds)
            await victim.start()
            await self.tree.ready(victim, mark)
        finally:
            window.ended = time.time()
            self._busy.discard(victim.name)

    async def _kill_worker(self, fault: Fault) -> None:
        await self._kill(fault, self.tree.workers, READY_MARKS["worker"])

    async def _kill_relay(self, fault: Fault) -> None:
        await self._kill(fault, self.tree.relays, READY_MARKS["relay"])

    async def _lose_machine(self, fault: Fault) -> None:
        """SIGKILL every process group of one machine at once (none of them gets a word in),
        then start them all again: the other machines carry the load meanwhile."""
        # A whole machine goes; another one's web must still answer (the shop stays up). Its
        # worker or relay may be down meanwhile (another fault): their work waits, then resumes.
        whole = [m for m in self.tree.machines if m.alive and not self._busy_on(m)]
        candidates = [
            m for m in whole if any(self._serving(o) for o in self.tree.machines if o != m)
        ]
        if not candidates:
            self.journal.notes.append(f"fault {fault} skipped: no other machine would answer")
            return
        machine = self.rng.choice(candidates)
        names = {p.name for p in machine.processes}
        self._busy |= names
        detail = f"{', '.join(sorted(n.partition('/')[2] for n in names))}; back after"
        window = self._window(fault.kind, machine.name, f"{detail} {fault.seconds:g} s")
        try:
            await asyncio.gather(*(p.kill() for p in machine.processes))
            await asyncio.sleep(fault.seconds)
            await self.tree.start_machine(machine)
        finally:
            window.ended = time.time()
            self._busy -= names

    def _busy_on(self, machine: Machine) -> bool:
        return any(p.name in self._busy for p in machine.processes)

    def _serving(self, machine: Machine) -> bool:
        return any(p.alive and p.name not in self._busy for p in machine.webs)

    async def _cut_broker(self, fault: Fault) -> None:
        assert self.tree.proxy is not None
        window = self._window(fault.kind, "broker")
        cut = self.tree.proxy.cut()
        window.detail = f"{cut} connection(s) cut"
        window.ended = window.started + CUT_WINDOW_SECONDS

    async def _refuse_broker(self, fault: Fault) -> None:
        assert self.tree.proxy is not None
        window = self._window(fault.kind, "broker", f"{fault.seconds:g} s")
        self.tree.proxy.refuse(fault.seconds)
        await asyncio.sleep(fault.seconds)
        window.ended = time.time()

    async def _redis_down(self, fault: Fault) -> None:
        redis = self.tree.redis
        assert redis is not None
        if "redis" in self._busy:
            self.journal.notes.append(f"fault {fault} skipped: Redis is down already")
            return
        self._busy.add("redis")
        window = self._window(fault.kind, "redis", f"{fault.seconds:g} s")
        try:
            await redis.stop()
            await asyncio.sleep(fault.seconds)
            await redis.start()
        finally:
            window.ended = time.time()
            self._busy.discard("redis")

    async def _pause_replay(self, fault: Fault) -> None:
        cluster = self.tree.cluster
        assert cluster is not None
        if "replica" in self._busy:
            self.journal.notes.append(f"fault {fault} skipped: replay is paused already")
            return
        self._busy.add("replica")
        window = self._window(fault.kind, "replica", f"{fault.seconds:g} s")
        try:
            await asyncio.to_thread(cluster.pause_replay)
            await asyncio.sleep(fault.seconds)
        finally:
            await asyncio.to_thread(cluster.resume_replay)
            window.ended = time.time()
            self._busy.discard("replica")

    async def _smtp_refuse(self, fault: Fault) -> None:
        smtp = self.tree.smtp
        assert smtp is not None
        window = self._window(fault.kind, "smtp", f"{fault.seconds:g} s")
        smtp.refuse_all_for(fault.seconds)
        await asyncio.sleep(fault.seconds)
        window.ended = time.time()

    async def _poison(self, fault: Fault) -> None:
        """An outbox event capturing the payment of an order that does not exist: its actor
        raises OrderNotFound, one of its `throws`, so it must go to the dead letters at once."""
        assert self.tree.pool is not None
        request_id = f"soak-poison-{len(self.journal.poisoned)}"
        async with self.tree.pool.acquire() as conn:
            event_id = await outbox.add(conn, CAPTURE_PAYMENT, request_id, order_id=POISON_ORDER_ID)
        self.journal.poisoned.append(str(event_id))
        window = self._window(fault.kind, "outbox", f"event {event_id}")
        window.ended = window.started

    async def _poison_outbox(self, fault: Fault) -> None:
        """An outbox row naming an actor no worker has: the relay cannot publish it."""
        assert self.tree.pool is not None
        event_id = uuid.uuid4()
        request_id = f"soak-poison-{len(self.journal.poisoned)}"
        payload = {"event_id": str(event_id)}
        await self.tree.pool.execute(
            INSERT_UNPUBLISHABLE, event_id, UNKNOWN_ACTOR, payload, request_id
        )
        self.journal.poisoned.append(str(event_id))
        self.journal.unpublishable.append(str(event_id))
        window = self._window(fault.kind, "outbox", f"event {event_id} for {UNKNOWN_ACTOR}")
        window.ended = window.started
