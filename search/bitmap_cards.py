"""The cards of product lists (a hit's fields and its first image) kept in process, so a product
list the index pages (search.bitmap) is answered without a statement once its cards are known.

A card is read from PostgreSQL the first time a page shows it (CARDS, one statement for the
page's missing ones) and kept until the search_changes log names its product (the products
triggers of migration 0020 log a change of any card field; 0022 logs image changes), or until
CARDS_CACHED newer cards pushed it out. Reads go to a reader that has replayed at least as far as
the index (the caller passes it); a card read while a refresh forgot cards is used once but not
kept, so a card read before a change can never outlive the change.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence

from search.backend import SearchHit
from search.postgres import listed_hit
from search.postgres_query import FIRST_IMAGE
from storage.database import Executor

CARDS_CACHED = 50_000  # a card is ~0.5 KiB: ~25 MiB per web process at most
CARDS = f"""
    SELECT l.*, NULL AS sort_key, image.* FROM (
        SELECT p.id, p.slug, p.name, p.price_min, p.price_max, p.currency, p.in_stock,
               0::float8 AS score
        FROM products p WHERE p.id = ANY ($1::bigint[])
    ) l {FIRST_IMAGE}
"""


class CardCache:
    """Cards by product id, least recently shown first out (module docstring)."""

    def __init__(self, size: int = CARDS_CACHED) -> None:
        self.size = size
        self._cards: OrderedDict[int, SearchHit] = OrderedDict()
        self._forgotten = 0  # how many times forget ran: a read across one is not kept

    def forget(self, product_ids: Iterable[int]) -> None:
        """These products changed: read their cards again."""
        for product_id in product_ids:
            self._cards.pop(product_id, None)
        self._forgotten += 1

    def clear(self) -> None:
        self._cards.clear()
        self._forgotten += 1

    def __len__(self) -> int:
        return len(self._cards)

    async def cards(
        self, product_ids: Sequence[int], reader: Callable[[], Awaitable[Executor]]
    ) -> dict[int, SearchHit]:
        """The cards of these products (those that exist), reading the missing ones (one CARDS
        statement) through the executor `reader` gives."""
        cards = self._cards
        found: dict[int, SearchHit] = {}
        missing: list[int] = []
        for product_id in product_ids:
            card = cards.get(product_id)
            if card is None:
                missing.append(product_id)
            else:
                cards.move_to_end(product_id)
                found[product_id] = card
        if missing:
            forgotten = self._forgotten
            records = await (await reader()).fetch(CARDS, missing)
            keep = forgotten == self._forgotten
            for record in records:
                card = listed_hit(record)
                found[card.product_id] = card
                if keep:
                    cards[card.product_id] = card
            while len(cards) > self.size:
                cards.popitem(last=False)
        return found
