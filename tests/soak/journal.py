"""What a soak run saw: every request, every fault's window, every staff stock change, every
read-after-write check, every checkout attempt and the stock samples. The invariants read it."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RequestRecord:
    """One HTTP request as the simulated user saw it (one hop: redirects are their own)."""

    actor: str  # "shopper-3", "app-1", "staff-0"
    method: str
    path: str  # path and query as sent
    port: int  # which web process answered
    request_id: str  # sent as X-Request-ID, so the web logs can be searched for it
    started: float  # time.time()
    ended: float
    status: int | None  # None: no answer (connection error, timeout)
    error: str | None = None  # why there was no answer
    retry_after: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class FaultWindow:
    """One injected fault: from `started` until `ended` (time.time()) the system was hurt."""

    kind: str
    target: str  # "worker-1", "redis", "broker", ...
    started: float
    ended: float | None = None  # None: never ended (the run stopped first)
    detail: str = ""


@dataclass
class StockChange:
    """A staff save that changed a variant's stock by `amount` (new minus what the form showed).

    `certain` is False when the save's answer was lost (no answer, 5xx): it may or may not have
    been written, and the stock invariant accepts either.
    """

    actor: str
    variant_id: int
    amount: int
    certain: bool
    at: float


@dataclass
class ReadCheck:
    """A read right after the same user's own write: did it see the write?"""

    actor: str
    what: str  # "cart shows the line just added", ...
    ok: bool
    detail: str
    at: float


@dataclass
class CheckoutAttempt:
    """One checkout as the user meant it (one Idempotency-Key, submitted once or more)."""

    actor: str
    channel: str  # "store" or "api"
    key: str
    card: str  # the card number used
    submits: int  # how many times it was submitted (a double click, a retry)
    numbers: list[str] = field(default_factory=list)  # the order numbers the answers named


@dataclass
class StockSample:
    at: float
    negative: int  # variants below zero at that moment
    lowest: int


@dataclass
class Journal:
    started: float = field(default_factory=time.time)
    requests: list[RequestRecord] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    stock_changes: list[StockChange] = field(default_factory=list)
    reads: list[ReadCheck] = field(default_factory=list)
    checkouts: list[CheckoutAttempt] = field(default_factory=list)
    samples: list[StockSample] = field(default_factory=list)
    poisoned: list[str] = field(default_factory=list)  # event ids the injector made fail
    unpublishable: list[str] = field(default_factory=list)  # those of them no actor can take
    notes: list[str] = field(default_factory=list)  # what the report should say besides the rows
    stalls: list[str] = field(default_factory=list)  # what the databases showed when requests hung

    def read(self, actor: str, what: str, ok: bool, detail: str = "") -> None:
        """Record a read-after-own-write check."""
        self.reads.append(ReadCheck(actor, what, ok, detail, time.time()))

    def save(self, path: Path) -> None:
        """Everything recorded, one JSON object a line with its kind, for a post-mortem."""
        kinds: dict[str, list[Any]] = {
            "request": self.requests,
            "fault": self.faults,
            "stock_change": self.stock_changes,
            "read": self.reads,
            "checkout": self.checkouts,
            "sample": self.samples,
        }
        with path.open("w") as out:
            for kind, items in kinds.items():
                for item in items:
                    out.write(json.dumps({"kind": kind, **asdict(item)}) + "\n")
            for text in (*self.notes, *self.stalls):
                out.write(json.dumps({"kind": "note", "text": text}) + "\n")
