"""What the soak's operator saw (tests/soak/operator.py reads the pages; this module holds the
looks and says what they showed): a look's lights, numbers and alarms, when a fault's own signal
(SHOWN_BY) first showed, and one look as a line of the report's "What the operator saw" table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.events import CAPTURE_PAYMENT
from tests.soak import pages
from tests.soak.journal import FaultWindow

REASON_CHARS = 110
POISON_QUEUE = CAPTURE_PAYMENT.queue  # the poisoned event's actor consumes this queue
# What shows each kind of fault: (lights whose component starts so, alarms that start so);
# "poison" and "poison-outbox" are shown by their counts growing (see `signals`).
SHOWN_BY: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "kill-worker": (("Workers",), ("workers page: worker",)),
    "kill-relay": (("Relays",), ("workers page: relay",)),
    "lose-machine": (("Workers", "Relays"), ("workers page: worker", "workers page: relay")),
    "cut-broker": (("Broker",), ("queues page:",)),
    "refuse-broker": (("Broker",), ("queues page:",)),
    "redis-down": (("Redis",), ()),
    "pause-replay": (("Replica",), ()),
    "smtp-refuse": (("SMTP",), ()),
}


@dataclass
class PageRead:
    path: str
    at: float  # time.time() the read began
    status: int | None  # None: no answer within the bound
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Sight:
    """One look at the pages, `offset` seconds after its fault began."""

    offset: float
    at: float
    reads: list[PageRead] = field(default_factory=list)
    lights: list[pages.Light] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)
    alarms: list[str] = field(default_factory=list)  # what the other pages showed amiss
    details: list[str] = field(default_factory=list)  # their rows concerned, as read
    workers_red: bool = False  # the workers page had a red worker, or the light was red
    hosts: list[str] = field(default_factory=list)  # the machines the workers page listed
    dead: dict[str, int | None] = field(default_factory=dict)  # queue -> its dead, as read
    others: list[str] = field(default_factory=list)  # other faults under way meanwhile

    @property
    def not_green(self) -> list[pages.Light]:
        return [light for light in self.lights if light.colour != "green"]


@dataclass
class Watch:
    """What the operator saw of one fault."""

    fault: FaultWindow
    sights: list[Sight] = field(default_factory=list)
    before: Sight | None = None  # the operator's last look before the fault began

    def describe(self, started: float) -> str:
        f = self.fault
        length = f" {f.ended - f.started:.0f} s" if f.ended and f.ended - f.started >= 1 else ""
        return f"{f.kind} at +{f.started - started:.0f} s ({f.target}{length})"


def count_of(text: str | None) -> int | None:
    try:
        return int(str(text).split()[0])
    except (ValueError, IndexError):
        return None


def signals(kind: str, sight: Sight, baseline: Sight | None, machine: str = "") -> list[str]:
    """What in `sight` shows a fault of `kind` (SHOWN_BY), against the look before any fault
    for the counts (dead letters, parked events). A lost `machine` is shown only by what names
    it (a light's reason lists the silent as host:pid, the workers page's alarm as host/pid),
    not by another machine's process another fault killed."""
    components, alarms = SHOWN_BY.get(kind, ((), ()))
    found = [
        f"{light.component} {light.colour}"
        for light in sight.not_green
        if light.component.startswith(components) and (not machine or f"{machine}:" in light.reason)
    ]
    found += [
        _key(alarm)
        for alarm in sight.alarms
        if alarm.startswith(alarms) and (not machine or f" {machine}/" in alarm)
    ]
    if kind == "poison":
        before = (baseline.dead.get(POISON_QUEUE) if baseline else 0) or 0
        now = sight.dead.get(POISON_QUEUE)
        if now is not None and now > before:
            found.append(f"{POISON_QUEUE} has {now} dead")
    if kind == "poison-outbox":
        before = count_of(baseline.numbers.get("outbox_parked")) if baseline else 0
        now = count_of(sight.numbers.get("outbox_parked"))
        if now is not None and now > (before or 0):
            found.append(f"{now} parked")
    return found


def _short(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _key(alarm: str) -> str:
    """An alarm without its changing part ("silent for 17 s"): the same alarm later on."""
    return alarm.split(",")[0]


def verdict(watch: Watch, baseline: Sight | None) -> tuple[float, list[str]] | None:
    """When (seconds after the fault began) and how the pages first showed the fault: a signal
    of its kind (`signals`) that the operator's last look before the fault did not have; None
    when no look within 30 s showed it."""
    found = [(sight.offset, new_signals(watch, sight, baseline)) for sight in watch.sights]
    return next(((offset, new) for offset, new in found if new), None)


def new_signals(watch: Watch, sight: Sight, baseline: Sight | None) -> list[str]:
    """The signals of the watch's fault in `sight` that were not on before it began."""
    kind, machine = watch.fault.kind, _lost(watch.fault)
    before = watch.before
    had = set(signals(kind, before, baseline, machine)) if before is not None else set()
    return [signal for signal in signals(kind, sight, baseline, machine) if signal not in had]


def _lost(fault: FaultWindow) -> str:
    return fault.target if fault.kind == "lose-machine" else ""


def verdict_text(watch: Watch, baseline: Sight | None) -> str:
    found = verdict(watch, baseline)
    if found is not None:
        offset, shown = found
        return f"shown at +{offset:g} s ({', '.join(map(_short, shown))})"
    before = watch.before
    if before is not None and signals(watch.fault.kind, before, baseline, _lost(watch.fault)):
        return "NOT SHOWN anew within 30 s (its signal was on before it began)"
    return "NOT SHOWN within 30 s"


def _numbers(numbers: dict[str, str]) -> str:
    n = numbers
    if not n:
        return ""
    return (
        f"[workers {n.get('workers_alive', '?')}, relays {n.get('relays_alive', '?')} alive; "
        f"outbox {n.get('outbox_unpublished', '?')} waiting, oldest "
        f"{n.get('outbox_oldest_age_seconds', '?')}, {n.get('outbox_parked', '?')} parked; "
        f"5xx {n.get('server_errors', '?')}]"
    )


def cell(sight: Sight, before: Sight | None) -> str:
    """One moment: pages that did not answer, lights not green (marked when they were so in the
    last look before the fault), what the other pages showed amiss, the numbers, the rows."""
    parts = [f"{read.path} {read.error}" for read in sight.reads if not read.ok]
    was = (
        {light.component for light in before.not_green}
        if before is not None and sight is not before
        else set()
    )
    for light in sight.not_green:
        already = " (so before it began)" if light.component in was else ""
        parts.append(f"{light.component} {light.colour}{already}: {_short(light.reason)}")
    parts += [_short(alarm) for alarm in sight.alarms]
    text = " · ".join(parts) if parts else "all green"
    if sight.numbers:
        text += " " + _numbers(sight.numbers)
    if sight.details:
        text += " {" + "; ".join(sight.details) + "}"
    if sight.others:
        text += f" (also under way: {', '.join(sorted(set(sight.others)))})"
    return text
