"""Simulated users: what they share (the catalog they know, cards, addresses) and their loop.

Each user acts at random, driven by a random.Random of its own derived from the run's seed, and
concurrently with the others: a shopper on the storefront's HTML (shoppers.py), an app client on
the JSON API (apps.py), a member of staff on /admin and the staff API (staff.py). A step that
meets something the user did not expect goes on with the next step; the harness's own surprises
(a page it could not read) are noted in the report, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.soak.client import Answer, Client
from tests.soak.journal import Journal
from tests.soak.tree import HotProduct

THINK_SECONDS = (0.1, 0.7)
EXPIRY = "12/39"
CVC = "123"
# Test cards of the built-in gateway (domain.payments) and how often users pick each.
CARDS = (
    ("4242 4242 4242 4242", 70),  # succeeds
    ("4000 0000 0000 0002", 15),  # declined
    ("4000000000009995", 15),  # insufficient funds
)
GOOD_CARD = "4242424242424242"
ADDRESS = {
    "full_name": "Grace Hopper",
    "line1": "1 Compiler Way",
    "line2": "",
    "city": "Arlington",
    "postal_code": "22201",
    "country": "GB",
    "phone": "",
}
MAX_NOTES_PER_USER = 20


@dataclass
class Catalog:
    """What the users know of the shop before they start."""

    hot: list[HotProduct]  # little stock, much wanted
    products: list[str]  # slugs of published seeded products
    categories: list[str]  # category slugs
    words: list[str]  # words from product names, to search for
    price_products: dict[int, list[int]] = field(default_factory=dict)  # staff i -> product ids

    def hot_pick(self, rng: random.Random) -> tuple[str, str]:
        """A hot product's slug and one of its SKUs."""
        product = rng.choice(self.hot)
        return product.slug, rng.choice(sorted(product.variants))


def digits(card: str) -> str:
    return card.replace(" ", "")


class User:
    """The loop every simulated user runs: `begin`, then `step` and a pause until the stop."""

    kind = "user"
    lane = 0  # the second octet of the users' addresses, one per kind

    def __init__(
        self,
        index: int,
        seed: int,
        ports: list[int],
        journal: Journal,
        catalog: Catalog,
        stop: asyncio.Event,
    ) -> None:
        self.index = index
        self.seed = seed
        self.name = f"{self.kind}-{index}"
        self.rng = random.Random(f"{seed}-{self.name}")
        self.journal = journal
        self.catalog = catalog
        self.stop = stop
        self.ports = ports
        address = f"10.{self.lane}.{index // 250}.{index % 250 + 1}"
        self.client = Client(self.name, ports, journal, self.rng, address)
        self.notes = 0
        self.setup()

    def setup(self) -> None:
        """The state of a kind of user, before it begins."""

    async def run(self) -> None:
        try:
            await self.guarded("begin", self.begin)
            while not self.stop.is_set():
                await self.guarded("step", self.step)
                await self.pause()
        finally:
            await self.client.close()

    async def guarded(self, what: str, action: Callable[[], Awaitable[None]]) -> None:
        try:
            await action()
        except Exception as exc:  # a harness surprise: noted, and the user goes on
            self.note(f"{what} raised {exc!r} at {traceback.format_exc(limit=-2).strip()}")

    def note(self, text: str) -> None:
        self.notes += 1
        if self.notes <= MAX_NOTES_PER_USER:
            self.journal.notes.append(f"{self.name}: {text}")

    async def pause(self, span: tuple[float, float] = THINK_SECONDS) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stop.wait(), self.rng.uniform(*span))

    def choose(self, weights: dict[str, int]) -> str:
        names = sorted(weights)
        return self.rng.choices(names, weights=[weights[n] for n in names])[0]

    def card(self) -> str:
        numbers = [number for number, _ in CARDS]
        return self.rng.choices(numbers, weights=[weight for _, weight in CARDS])[0]

    def email(self, what: str = "") -> str:
        return f"{self.name}{what}-{self.seed}@soak.example.com"

    def password(self) -> str:
        return f"soak {self.rng.getrandbits(48):x} horse battery"

    async def begin(self) -> None:
        """What the user does once, first."""

    async def step(self) -> None:
        """One action."""

    def unexpected(self, what: str, answer: Answer) -> None:
        """Note an answer the journey cannot go on from, unless it is one the invariants judge
        (no answer, 5xx: recorded with the request already)."""
        if answer.status is not None and answer.status < 500:
            self.note(f"{what}: {answer.status} at {answer.path}: {answer.text[:200]!r}")

    @staticmethod
    def answered(answer: Answer) -> bool:
        return answer.status is not None and answer.status < 500
