"""The index's sort orders (search.bitmap_sort) page exactly as sorting every row by its key does,
also after products change price or name, come and go (BitmapIndex.replace)."""

from __future__ import annotations

import heapq
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pyroaring import BitMap

from search.bitmap_index import SORT_ORDERS, BitmapIndex, ProductState, _cursor_key, micros

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ["anchor", "Anchor", "bolt", "bolt", "zebra", "émail", "", "a", "ab", "b"]


def product(rng: random.Random, pid: int) -> ProductState:
    return ProductState(
        id=pid,
        is_published=rng.random() < 0.9,
        category_id=rng.choice([1, 2, 3, None]),
        price_min=rng.choice([None, 0, 100, 100, 250, rng.randrange(0, 10_000)]),
        in_stock=rng.random() < 0.7,
        # a few products created in the same microsecond: the id decides
        created_us=micros(EPOCH + timedelta(seconds=rng.randrange(0, 50))),
        name_key=rng.choice(NAMES).lower() + rng.choice(["", "", str(rng.randrange(3))]),
        fingerprint=1,
    )


def reference(index: BitmapIndex, sort: str, rows: BitMap, after: Any, count: int) -> list[int]:
    """The page by a key per row: what the index did before it kept orders."""
    key = index.sort_key(sort)
    candidates = list(rows)
    if after is not None:
        bound = _cursor_key(sort, after)
        candidates = [pid for pid in rows if key(pid) > bound]
    return heapq.nsmallest(count, candidates, key=key)


def cursor(index: BitmapIndex, sort: str, pid: int) -> tuple[Any, int]:
    """The cursor a page ending at `pid` carries, as search.postgres writes it."""
    price = index.price_of[pid]
    if sort == "price_asc":
        return (9223372036854775807 if price < 0 else price, pid)
    if sort == "price_desc":
        return (price, pid)
    if sort == "newest":
        moment = EPOCH + timedelta(microseconds=index.created_of[pid] - micros(EPOCH))
        return (moment.isoformat(), pid)
    return (index.name_of[pid], pid)


def check_pages(index: BitmapIndex, rng: random.Random, queries: int) -> int:
    """Compare `queries` random pages (sets, sorts, cursors, sizes); how many were compared."""
    known = list(index.known)
    compared = 0
    for _ in range(queries):
        density = rng.choice([0.01, 0.2, 0.9, 1.0])
        rows = BitMap(pid for pid in known if rng.random() < density)
        sort = rng.choice(SORT_ORDERS)
        count = rng.choice([1, 5, 25])
        after = None
        if rows and rng.random() < 0.6:
            after = cursor(index, sort, rng.choice(known))
        assert index.page(sort, rows, after, count) == reference(index, sort, rows, after, count)
        # the same within some categories (the page starts from their kept ranks)
        within = rng.sample([1, 2, 3, 4], rng.randint(1, 3))
        rows = rows & index.in_categories(within)
        found = index.page(sort, rows, after, count, within)
        assert found == reference(index, sort, rows, after, count), (sort, within, count)
        compared += 1
    return compared


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("within_share", [4, 10**9])
def test_pages_from_the_orders_equal_a_sort_by_key_after_changes(
    seed: int, within_share: int
) -> None:
    rng = random.Random(seed)
    index = BitmapIndex(within_share=within_share)  # 10**9: every page from the categories' ranks
    index.set_bins(sorted(rng.randrange(0, 10_000) for _ in range(500)))
    ids = rng.sample(range(1, 3_000), 800)
    for pid in ids:
        index.add_scalars(product(rng, pid))
    index.make_orders()
    check_pages(index, rng, 150)
    for _ in range(20):  # refreshes: some products change, some go, new ones come
        changed = rng.sample(ids, 30) + [rng.randrange(3_000, 6_000) for _ in range(5)]
        gone = set(rng.sample(changed, 5))
        index.replace(changed, [product(rng, pid) for pid in changed if pid not in gone])
        ids = sorted(index.known)
        check_pages(index, rng, 20)
    assert index.page("name", BitMap(), None, 5) == []


def test_a_page_of_a_product_the_orders_do_not_hold_falls_back_to_the_keys() -> None:
    rng = random.Random(4)
    index = BitmapIndex()
    index.set_bins([0, 500, 1000])
    for pid in range(1, 50):
        index.add_scalars(product(rng, pid))
    index.make_orders()
    index.add_scalars(product(rng, 70))  # not through replace: no order has it
    rows = BitMap(range(1, 50)) | BitMap([70])
    for sort in SORT_ORDERS:
        assert index.page(sort, rows, None, 60) == reference(index, sort, rows, None, 60)
