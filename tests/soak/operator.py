"""The operator: an account with the role `ops` that watches the /ops pages while the faults hit.

For every fault the injector applies, the operator reads /ops/ as the fault begins and about
READ_AT seconds after it (each light's component, colour and reason; the first numbers), plus
/ops/workers for a kill and /ops/queues for a broker or poison fault (the rows concerned). The
report's second table, "What the operator saw", has one row per kind of fault (its first
occurrence): what was not green at each moment and why, or "all green". Each row's verdict says
when the pages first showed that fault (sights.SHOWN_BY: its own light turning, its page's
alarm, its count growing) or "NOT SHOWN within 30 s", a finding: faults overlap, so a red light
of another fault under way (listed on the line) does not count, nor a signal already on in the
operator's last look before the fault began (lights so then are marked so).

The operator never fails the soak: every read is bounded (OPS_TIMEOUT_SECONDS), and a page that
does not answer 200 is itself recorded ("/ops/ answered 503"). Its requests are not the shoppers'
(invariant 1 does not count them), but a 5xx from /ops outside every fault window (plus the
grace) is listed under the table as a finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tests.soak import html, pages
from tests.soak.client import Answer, Client
from tests.soak.journal import Journal
from tests.soak.sights import POISON_QUEUE, PageRead, Sight, Watch, cell, count_of, verdict_text
from tests.soak.tree import OPERATOR_EMAIL, STAFF_PASSWORD

ADDRESS = "10.4.200.1"  # the operator's own X-Forwarded-For: the throttles count it apart
READ_AT = (0.0, 5.0, 15.0, 30.0)  # seconds after a fault began; 0 is "as it began"
OPS_TIMEOUT_SECONDS = 10.0  # one page read, redirects included
WATCH_EVERY_SECONDS = 0.25
FINISH_TIMEOUT_SECONDS = 45.0  # after the load stopped: the reads still due, at most this
KILLS = ("kill-worker", "kill-relay", "lose-machine")
QUEUE_FAULTS = ("cut-broker", "refuse-broker", "poison", "poison-outbox")


class Operator:
    """Signs in once, then watches the journal for faults until `stop` (see the docstring)."""

    def __init__(
        self,
        ports: list[int],
        journal: Journal,
        seed: int,
        on_sight: Callable[[Watch, Sight], Awaitable[None]] | None = None,
    ) -> None:
        self.journal = journal  # the shoppers' journal: read for its faults, never written
        self.ports = ports
        self.rng = random.Random(f"{seed}-ops")
        self.client: Client | None = None  # opened by run(), on the run's loop
        self.watches: list[Watch] = []
        self.baseline: Sight | None = None
        self.sights: list[Sight] = []  # every look that read the overview, in order
        self.reads: list[PageRead] = []
        self.notes: list[str] = []
        self.on_sight = on_sight
        self._tasks: list[asyncio.Task[None]] = []

    async def run(self, stop: asyncio.Event) -> None:
        """Sign in, take a look before any fault, then follow each fault until `stop`; then
        finish the reads still due (bounded). Never raises but for cancellation."""
        # Its requests go to a journal of its own, so they are not counted as the shoppers'.
        self.client = Client("operator", self.ports, Journal(), self.rng, ADDRESS)
        try:
            await self._sign_in()
            self.baseline = await self.look(None, 0.0, ("/ops/", "/ops/workers", "/ops/queues"))
            seen = 0
            while not stop.is_set():
                for window in self.journal.faults[seen:]:
                    watch = Watch(window, before=self._last_before(window.started))
                    self.watches.append(watch)
                    self._tasks.append(asyncio.create_task(self._follow(watch)))
                seen = len(self.journal.faults)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), WATCH_EVERY_SECONDS)
            if self._tasks:
                _, late = await asyncio.wait(self._tasks, timeout=FINISH_TIMEOUT_SECONDS)
                for task in late:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
        except Exception as exc:  # the operator is evidence, never the verdict
            self.notes.append(f"the operator stopped watching: {exc!r}")
        finally:
            await self.client.close()
            for task in self._tasks:
                task.cancel()

    async def _sign_in(self) -> bool:
        page = await self._bounded("GET", "/login?next=/ops/")
        form = html.form_to(page.text, "/login") if page and page.ok else None
        if form is None:
            self.notes.append("the operator found no sign-in form")
            return False
        form.set("email", OPERATOR_EMAIL)
        form.set("password", STAFF_PASSWORD)
        answer = await self._bounded("POST", "/login", data=form.fields)
        if answer is None or answer.path.partition("?")[0] != "/ops/":
            self.notes.append(f"the operator could not sign in ({answer and answer.status})")
            return False
        return True

    async def _bounded(self, method: str, path: str, **options: Any) -> Answer | None:
        assert self.client is not None
        try:
            return await asyncio.wait_for(
                self.client.request(method, path, **options), OPS_TIMEOUT_SECONDS
            )
        except TimeoutError:
            return None

    async def _follow(self, watch: Watch) -> None:
        kind = watch.fault.kind
        paths = ["/ops/"]
        if kind in KILLS:
            paths.append("/ops/workers")
        if kind in QUEUE_FAULTS:
            paths.append("/ops/queues")
        for offset in READ_AT:
            delay = watch.fault.started + offset - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                sight = await self.look(watch, offset, tuple(paths))
            except Exception as exc:  # a parse that broke: noted, the next read goes on
                self.notes.append(f"{kind} +{offset:g} s: the operator's read broke: {exc!r}")
                continue
            watch.sights.append(sight)
            if self.on_sight is not None:
                try:
                    await self.on_sight(watch, sight)
                except Exception as exc:
                    self.notes.append(f"{kind} +{offset:g} s: screenshots failed: {exc!r}")

    async def look(self, watch: Watch | None, offset: float, paths: tuple[str, ...]) -> Sight:
        """Read `paths` now (concurrently, each bounded) and what they show."""
        sight = Sight(offset, time.time())
        if watch is not None:
            sight.others = [
                f.kind
                for f in self.journal.faults
                if f is not watch.fault
                and f.started <= sight.at
                and (f.ended is None or f.ended >= sight.at)
            ]
        answers = await asyncio.gather(*(self._read(path) for path in paths))
        for path, (read, text) in zip(paths, answers, strict=True):
            sight.reads.append(read)
            if not read.ok:
                continue
            if path == "/ops/":
                seen = pages.overview(text)
                sight.lights, sight.numbers = seen.lights, seen.numbers
            elif path == "/ops/workers":
                self._workers(sight, pages.workers(text))
            elif path == "/ops/queues":
                self._queues(sight, pages.queues(text))
        sight.workers_red = sight.workers_red or any(
            light.component == "Workers" and light.colour == "red" for light in sight.lights
        )
        if sight.lights:
            self.sights.append(sight)
        return sight

    def _last_before(self, moment: float) -> Sight | None:
        return next((s for s in reversed(self.sights) if s.at < moment), self.baseline)

    async def _read(self, path: str) -> tuple[PageRead, str]:
        read = PageRead(path, time.time(), None)
        self.reads.append(read)
        answer = await self._bounded("GET", path)
        if answer is not None and answer.path.startswith("/login"):  # signed out: once more
            self.notes.append(f"{path} sent the operator to sign in again")
            if await self._sign_in():
                answer = await self._bounded("GET", path)
        if answer is None:
            read.error = f"no answer within {OPS_TIMEOUT_SECONDS:g} s"
            return read, ""
        read.status = answer.status
        if answer.status is None:
            read.error = "no answer (connection failed)"
        elif answer.status != 200:
            read.error = f"answered {answer.status}"
        return read, answer.text

    def _workers(self, sight: Sight, seen: pages.Workers) -> None:
        red = [row for row in seen.rows if row.status == "red"]
        sight.workers_red = any(row.kind == "worker" for row in red)
        sight.hosts = sorted({row.host for row in seen.rows})
        sight.alarms += [
            f"workers page: {row.kind} {row.host}/{row.pid} red, {row.reason}" for row in red
        ]
        sight.details += list(seen.census.values())

    def _queues(self, sight: Sight, seen: pages.Queues) -> None:
        if seen.error:
            sight.alarms.append(f"queues page: {seen.error}")
        elif not seen.rows:
            sight.alarms.append("queues page: no queue listed")
        idle = [queue for queue, cells in seen.rows.items() if cells.get("consumers") == "0"]
        if idle:
            sight.alarms.append(f"queues page: no consumer on {', '.join(idle)}")
        for queue, cells in seen.rows.items():
            sight.dead[queue] = count_of(cells.get("dead"))
        cells = seen.rows.get(POISON_QUEUE)
        if cells is not None:
            sight.details.append(
                f"{POISON_QUEUE}: ready {cells.get('ready', '?')}, dead {cells.get('dead', '?')}"
                f", consumers {cells.get('consumers', '?')}"
            )

    def save(self, path: Path) -> None:
        """Every look, one JSON object a line, for a post-mortem."""
        with path.open("w") as out:
            if self.baseline is not None:
                out.write(json.dumps({"fault": None, **asdict(self.baseline)}) + "\n")
            for watch in self.watches:
                for sight in watch.sights:
                    out.write(json.dumps({"fault": asdict(watch.fault), **asdict(sight)}) + "\n")

    def first(self, kind: str) -> Watch | None:
        """The watch of the first fault of `kind`, if one was injected."""
        return next((w for w in self.watches if w.fault.kind == kind), None)

    def first_of_each(self) -> list[Watch]:
        kinds: set[str] = set()
        found = []
        for watch in self.watches:
            if watch.fault.kind not in kinds:
                kinds.add(watch.fault.kind)
                found.append(watch)
        return found

    def server_errors_outside(self, journal: Journal, grace: float) -> list[PageRead]:
        """The /ops reads answered 5xx outside every fault's window plus `grace` (the poison
        kinds hurt nothing the pages need, so their windows do not count)."""
        now = time.time()
        windows = [
            (f.started, (f.ended or now) + grace)
            for f in journal.faults
            if f.kind not in ("poison", "poison-outbox")
        ]
        return [
            read
            for read in self.reads
            if read.status is not None
            and read.status >= 500
            and not any(a <= read.at <= b for a, b in windows)
        ]

    def table(self, journal: Journal, grace: float) -> str:
        """What the operator saw: one row per kind of fault (its first occurrence), a line per
        moment; then the findings (5xx from /ops outside faults, unread pages, notes)."""
        started = journal.started
        lines = [
            "What the operator saw (/ops/ as each fault began and "
            + ", ".join(f"{t:g}" for t in READ_AT[1:])
            + " s after: the lights not green and why, and the pages the fault concerns):"
        ]
        if self.baseline is not None:
            lines.append(f"  before any fault: {cell(self.baseline, None)}")
        for watch in self.first_of_each():
            lines.append(f"  {watch.describe(started)}: {verdict_text(watch, self.baseline)}")
            before = watch.before
            if before is not None and (before.not_green or before.alarms):
                lines.append(f"      before {cell(before, None)}")
            for sight in watch.sights:
                moment = f"+{sight.offset:g} s"
                late = sight.at - watch.fault.started - sight.offset
                if late >= 2:
                    moment += f" (read at +{sight.at - watch.fault.started:.0f} s)"
                lines.append(f"      {moment:<6} {cell(sight, before)}")
            if not watch.sights:
                lines.append("      no read (the run ended first)")
        if not self.watches:
            lines.append("  no fault was injected")
        outside = self.server_errors_outside(journal, grace)
        failed = [read for read in self.reads if not read.ok]
        lines.append(
            f"  operator: {len(self.reads)} page reads, {len(failed)} not answered 200; "
            f"5xx from /ops outside any fault: {len(outside)}"
        )
        lines += [
            f"    - FINDING: {read.path} answered {read.status} at +{read.at - started:.1f} s, "
            "outside any fault"
            for read in outside[:10]
        ]
        lines += [f"    - {note}" for note in self.notes[:10]]
        return "\n".join(lines)
