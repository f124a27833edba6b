"""The index's products in each sort's order (numpy arrays), so a page is a gather and a partial
sort of ranks instead of a Python key per matching row.

A SortOrder holds every product the index knows, ordered by the sort's (key, id) as
search.bitmap_index.BitmapIndex.sort_key compares them, and each product's rank in that order. A
page of a set of rows: their ranks (one gather), those past the cursor's rank (one bisect over
the order), the `count` smallest (np.partition), mapped back to ids. The order is made once
(numpy's lexsort for the numeric keys, a stable Python sort for names) and kept by `merge`: the
products whose key changed leave it and come back at their new places (np.insert), O(products)
in numpy per refreshed batch, nothing when only stock or documents changed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap

NOT_RANKED = np.iinfo(np.int32).max  # a product id not in the order (unknown to the index)

Key = Callable[[Any], Any]


class SortOrder:
    """One sort's order of the index's products and their ranks (module docstring)."""

    def __init__(self, order: npt.NDArray[np.uint32], capacity: int) -> None:
        self.order = order
        self.rank = np.full(capacity, NOT_RANKED, dtype=np.int32)
        self.rank[order] = np.arange(len(order), dtype=np.int32)

    def page(self, key: Key, rows: BitMap, bound: Any, count: int) -> list[int] | None:
        """The first `count` of `rows` whose key is past `bound` (None: from the start), in
        order; None when a row is not in the order (the caller sorts by key instead)."""
        ids = np.frombuffer(rows.to_array(), dtype=np.uint32)
        if ids.size and int(ids[-1]) >= len(self.rank):
            return None
        ranks = self.rank[ids]
        if ranks.size and int(ranks.max()) == NOT_RANKED:
            return None
        if bound is not None:
            # keys increase along the order: the first place whose key is past the bound
            threshold = bisect.bisect_right(self.order, bound, key=_on_int(key))
            ranks = ranks[ranks >= threshold]
        if ranks.size > count:
            ranks = np.partition(ranks, count - 1)[:count]
        ranks.sort()
        found: list[int] = self.order[ranks].tolist()
        return found

    def merge(self, moved: Sequence[int], present: BitMap, key: Key, capacity: int) -> None:
        """`moved` (products whose key changed, or that came or went) at their new places:
        those still `present` are put back where `key` sorts them."""
        if not moved:
            return
        moved_ids = np.array(moved, dtype=np.uint32)
        inside = moved_ids[moved_ids < len(self.rank)]
        places = self.rank[inside]
        clean = np.delete(self.order, places[places != NOT_RANKED])
        back = sorted((pid for pid in moved if pid in present), key=key)
        on_int = _on_int(key)
        where = [bisect.bisect_left(clean, key(pid), key=on_int) for pid in back]
        # equal places keep the order given (np.insert sorts the places stably)
        self.order = np.insert(clean, where, np.array(back, dtype=np.uint32))
        if capacity > len(self.rank):
            self.rank = np.full(capacity, NOT_RANKED, dtype=np.int32)
        else:
            self.rank.fill(NOT_RANKED)
        self.rank[self.order] = np.arange(len(self.order), dtype=np.int32)


def _on_int(key: Key) -> Key:
    """`key` of a numpy id (as a Python int: `-pid` of a uint32 would wrap)."""
    return lambda pid: key(int(pid))


def make_order(
    sort: str,
    ids: npt.NDArray[np.uint32],
    prices: npt.NDArray[np.int64],
    created: npt.NDArray[np.int64],
    names: Sequence[str],
    missing_price: int,
) -> npt.NDArray[np.uint32]:
    """`ids` (ascending) in `sort`'s (key, id) order; prices, created: per id (all of them),
    prices with the index's NO_PRICE (-1), which price_asc sorts as `missing_price`."""
    signed = ids.astype(np.int64)
    if sort == "price_asc":
        chosen = prices[ids]
        keys = np.where(chosen < 0, missing_price, chosen)
        return ids[np.lexsort((signed, keys))]
    if sort == "price_desc":
        return ids[np.lexsort((-signed, -prices[ids]))]
    if sort == "newest":
        return ids[np.lexsort((-signed, -created[ids]))]
    if sort == "name":
        # ids ascending and a stable sort by name: (name, id)
        return np.array(sorted(ids.tolist(), key=names.__getitem__), dtype=np.uint32)
    raise ValueError(sort)
