"""Per-product facet codes (search.bitmap_facets) count as the facets' bitmaps do, also for
products with more facets than the inline slots, and after products change."""

from __future__ import annotations

import random

import numpy as np
from pyroaring import BitMap

from search.bitmap_facets import (
    FACET_SLOTS,
    FacetSlots,
    KeptCounts,
    tally_values,
)
from search.bitmap_index import CATEGORY_CODE_MAX, BitmapIndex, ProductState

FACETS = [f"a{n % 5}=v{n}" for n in range(40)]


def by_bitmaps(facets: dict[str, BitMap], base: BitMap) -> dict[str, int]:
    return {f: n for f, b in facets.items() if (n := b.intersection_cardinality(base))}


def by_slots(slots: FacetSlots, base: BitMap) -> dict[str, int]:
    ids = np.frombuffer(base.to_array(), dtype=np.uint32)
    counts = slots.tally(base, ids)
    return {
        f: int(counts[c + 1])
        for f, c in slots.codes.items()
        if c + 1 < len(counts) and counts[c + 1]
    }


def test_codes_count_as_the_bitmaps_do_through_changes() -> None:
    rng = random.Random(5)
    products = 300
    owned = {
        pid: set(rng.sample(FACETS, rng.choice([0, 1, 3, 8, 9, 15]))) for pid in range(products)
    }
    facets: dict[str, BitMap] = {f: BitMap() for f in FACETS}
    for pid, mine in owned.items():
        for f in mine:
            facets[f].add(pid)
    slots = FacetSlots()
    slots.make(facets, products)
    assert slots.ready and slots.overflow  # some products spill past the slots
    assert FACET_SLOTS <= slots.width < 15  # as many as most have, up to a bound
    assert all(len(codes) > slots.width for codes in slots.overflow.values())
    for round_ in range(30):
        base = BitMap(rng.sample(range(products), rng.randrange(0, products)))
        assert by_slots(slots, base) == by_bitmaps(facets, base), round_
        # some products change their facets (one to a facet never seen before)
        for pid in rng.sample(range(products), 5):
            new = set(rng.sample(FACETS, rng.choice([0, 2, 9, 12])))
            if round_ % 7 == 0:
                new.add(f"new=n{round_}")
                facets.setdefault(f"new=n{round_}", BitMap())
            for f in owned[pid] - new:
                facets[f].discard(pid)
            for f in new:
                facets[f].add(pid)
            owned[pid] = new
            slots.set(pid, sorted(new) + sorted(new)[:1])  # a repeated facet counts once
            assert set(slots.of(pid)) == {slots.codes[f] for f in new}


def test_grown_slots_keep_their_codes() -> None:
    slots = FacetSlots()
    slots.make({"a=1": BitMap([1, 2]), "b=2": BitMap([2])}, 3)
    slots.grow(10)
    slots.set(9, ["b=2"])
    base = BitMap([1, 2, 9])
    assert by_slots(slots, base) == {"a=1": 2, "b=2": 2}


def test_categories_tally() -> None:
    values = np.array([3, -1, 3, 7, 2_000_000, 7, 7], dtype=np.int64)
    assert tally_values(values) == [(3, 2), (7, 3), (2_000_000, 1)]
    assert tally_values(np.array([5, -1], dtype=np.int64)) == [(5, 1)]
    assert tally_values(np.array([-1], dtype=np.int64)) == []


def test_counts_shift_from_one_set_to_another() -> None:
    """A set's counts from another's: less those of the products only the other has, plus those
    of the products only it has (a facet new since the other's counts were made too)."""

    def counts(products: dict[int, tuple[int, list[int], int]], ids: set[int]) -> KeptCounts:
        tally = np.zeros(5, dtype=np.intp)
        categories: dict[int, int] = {}
        buckets = [0, 0]
        for pid in ids:
            category, codes, bucket = products[pid]
            categories[category] = categories.get(category, 0) + 1
            for code in codes:
                tally[code + 1] += 1
            buckets[bucket] += 1
        return KeptCounts(BitMap(ids), None, categories, tally, buckets)

    rng = random.Random(3)
    products = {
        pid: (rng.randrange(4), rng.sample(range(3), rng.randrange(3)), rng.randrange(2))
        for pid in range(60)
    }
    products[7] = (9, [3], 1)  # code 3: not in the older counts' codes
    for _ in range(20):
        known, wanted = set(rng.sample(range(60), 30)), set(rng.sample(range(60), 25))
        older = counts(products, known - {7})
        older.codes = older.codes[:4]
        shifted = older.shifted(
            [counts(products, known - {7} - wanted)],
            [counts(products, wanted - known | ({7} & wanted))],
            BitMap(wanted),
            True,
        )
        expected = counts(products, wanted)
        assert shifted.categories == {c: n for c, n in expected.categories.items() if n}
        assert shifted.codes.tolist() == expected.codes.tolist()
        assert shifted.buckets == expected.buckets
        assert shifted.text == BitMap(wanted) and shifted.in_stock is True


def test_sparse_category_and_bucket_counts_as_the_bitmaps_do() -> None:
    """The counts of a sparse set from the small per-product arrays (category code, bucket)
    are the bitmaps', through category and price changes, and with category ids past what the
    small array holds (then from the wide one)."""
    rng = random.Random(8)
    for wide in (False, True):
        index = BitmapIndex()
        index.set_bins([0, 500, 5000])
        categories = [3, 7, 11] + ([CATEGORY_CODE_MAX + 5] if wide else [])

        def state(pid: int, categories: list[int] = categories) -> ProductState:
            price = rng.choice([None, 0, 999, 1000, 2600, 7000, 20_000])
            category = rng.choice([None, *categories])
            return ProductState(pid, True, category, price, True, 0, "n", fingerprint=1)

        for pid in range(1, 301):
            index.add_scalars(state(pid))
        for round_ in range(5):
            changed = rng.sample(range(1, 301), 20)
            index.replace(changed, [state(pid) for pid in changed[5:]])  # 5 gone
            base = BitMap(rng.sample(range(1, 301), 60))
            ids = np.frombuffer(base.to_array(), dtype=np.uint32)
            assert index._wide_categories is wide
            assert sorted(index._category_counts(base, ids)) == sorted(
                index._category_counts(base, None)
            ), round_
            assert index._bucket_counts(base, ids) == index._bucket_counts(base, None), round_
