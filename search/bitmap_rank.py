"""Relevance in the in-process index: the page of a one-word query ranked without reading its
candidates from PostgreSQL.

The SQL path's score (search.postgres_query SCORE) is a tier plus 0.99 * ts_rank(weights, doc,
corrected query, 32). For a query whose root is not AND (one word: the word as a prefix, ORed with
its completions and correction), PostgreSQL's ts_rank (calc_rank_or) reads nothing of a document
but, for each query operand, the weights of the positions of the lexemes it matches, in order. So
the candidates split into groups of equal (lexeme -> weights) for the lexemes the query's operands
match, every product of a group has the same rank, and PostgreSQL ranks one small synthetic
document per group (RANK_GROUPS) with its own ts_rank: identical numbers, with no float emulation.
The ranks are cached per (query, group). Queries of several words (calc_rank_and reads the
distances between positions) are ranked by PostgreSQL over their best tier's candidates instead.
"""

from __future__ import annotations

import bisect
import functools
from array import array
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap

from search.bitmap_index import BitmapIndex, Unsupported

GROUPS_MAX = 2_000  # more groups than this: PostgreSQL ranks the candidates itself
RANKS_CACHED = 100_000
RANK_GROUPS = """
    SELECT coalesce(array_agg(ts_rank('{0.1,0.2,0.4,1.0}', u.doc::tsvector,
                                      to_tsquery('english', $1::text), 32)::float8
                              ORDER BY u.n), '{}')
    FROM unnest($2::text[]) WITH ORDINALITY AS u (doc, n)
"""
# The score tiers of search.postgres_query SCORE and SKU_SCORE, best first: (10|5|0) + (3|2|1|0).
TIER_SCORES = tuple(sku + tier for sku in (10, 5, 0) for tier in (3, 2, 1, 0))

TOKENS_CACHED = 4096
Signature = tuple[tuple[str, str], ...]  # (lexeme, weights) of the matched lexemes, sorted


@functools.lru_cache(maxsize=TOKENS_CACHED)
def tokens(tsquery: str) -> tuple[Any, ...]:
    """to_tsquery output as tokens: "(", ")", "&", "|" and (lexeme, prefix, weight A only);
    Unsupported for anything else (!, <->, weights other than A). Cached: a search reads the
    same few normalised queries several times (its sets, its rank groups)."""
    return tuple(_scan(tsquery))


def _scan(tsquery: str) -> list[Any]:
    found: list[Any] = []
    i, n = 0, len(tsquery)
    while i < n:
        char = tsquery[i]
        if char == " ":
            i += 1
        elif char in "()&|":
            found.append(char)
            i += 1
        elif char == "'":
            i += 1
            lexeme = []
            while True:
                if i >= n:
                    raise Unsupported("tsquery")
                if tsquery[i] == "'":
                    if i + 1 < n and tsquery[i + 1] == "'":
                        lexeme.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                if tsquery[i] == "\\" and i + 1 < n:
                    i += 1
                lexeme.append(tsquery[i])
                i += 1
            flags = ""
            if i < n and tsquery[i] == ":":
                i += 1
                while i < n and tsquery[i] in "*ABCDabcd":
                    flags += tsquery[i].upper()
                    i += 1
            weights = flags.replace("*", "")
            if weights not in ("", "A"):
                raise Unsupported("tsquery weights")
            found.append(("".join(lexeme), "*" in flags, weights == "A"))
        else:
            raise Unsupported("tsquery operator")
    return found


def or_operands(tsquery: str) -> list[tuple[str, bool]] | None:
    """The operands (lexeme, prefix) of a query that is one operand or operands ORed together,
    else None (an AND, or nesting)."""
    parts = tokens(tsquery)
    while parts and parts[0] == "(" and parts[-1] == ")":
        parts = parts[1:-1]
    operands = parts[0::2]
    if not operands or any(p != "|" for p in parts[1::2]):
        return None
    if not all(isinstance(o, tuple) and not o[2] for o in operands):
        return None
    return [(o[0], o[1]) for o in operands]


def all_operands(tsquery: str) -> list[tuple[str, bool]]:
    """Every operand (lexeme, prefix) of a normalised tsquery, whatever its operators."""
    return [(part[0], part[1]) for part in tokens(tsquery) if isinstance(part, tuple)]


def synthetic_document(signature: Signature, *, positional: bool) -> str:
    """A tsvector literal with these lexemes: at their own positions ("1A,9C": `positional`),
    else at positions 1, 2, ... of these weights ("AC")."""
    parts = []
    for lexeme, pattern in signature:
        quoted = "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"
        if positional:
            placed = [(p[:-1], p[-1]) for p in pattern.split(",") if p]
        else:
            placed = [(str(n), w) for n, w in enumerate(pattern, start=1)]
        positions = ",".join(f"{n}{'' if w == 'D' else w}" for n, w in placed)
        parts.append(f"{quoted}:{positions}" if positions else quoted)
    return " ".join(parts)


@dataclass
class Groups:
    """Products split into rank groups, each with its signature: as bitmaps (`bitmaps`), or as
    the sorted `ids` and the group of each (`group`, an index into `signatures`)."""

    signatures: list[Signature]
    bitmaps: list[BitMap] | None = None
    ids: npt.NDArray[np.uint32] | None = None
    group: npt.NDArray[np.intp] | None = None

    def levels(self, scores: Sequence[float]) -> Iterator[tuple[float, BitMap]]:
        """The products by score (`scores`: each group's), best first, each level made when
        the iteration reaches it (a page takes the first few)."""
        if self.bitmaps is not None:
            levels: dict[float, BitMap] = {}
            for group, score in zip(self.bitmaps, scores, strict=True):
                levels[score] = levels[score] | group if score in levels else group
            yield from sorted(levels.items(), key=lambda level: level[0], reverse=True)
            return
        assert self.ids is not None
        assert self.group is not None
        if not self.signatures:
            return
        distinct, level = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
        of_member = level.astype(np.uint16)[self.group]  # levels <= GROUPS_MAX: a radix sort
        order = np.argsort(of_member, kind="stable")  # ids stay sorted within a level
        starts = np.searchsorted(of_member[order], np.arange(len(distinct) + 1))
        ids = self.ids[order]
        for n in range(len(distinct) - 1, -1, -1):
            yield float(distinct[n]), BitMap(array("I", ids[starts[n] : starts[n + 1]].tobytes()))


def groups(
    index: BitmapIndex, lexemes: Sequence[str], members: BitMap, *, positional: bool
) -> Groups:
    """`members` split by the weights (`positional`: the positions too) of each of `lexemes` in
    their documents; Unsupported past GROUPS_MAX groups."""
    if positional:
        return _placement_groups(index, lexemes, members)
    found: list[tuple[Signature, BitMap]] = [((), members)]
    for lexeme in lexemes:
        present = []
        for pattern, bitmap in index.patterns.get(lexeme, {}).items():
            if bitmap.intersect(members):  # no set made for the many patterns that miss
                present.append((pattern, members & bitmap))
        split: list[tuple[Signature, BitMap]] = []
        for signature, group in found:
            rest = group
            for pattern, part in present:
                inside = group & part
                if inside:
                    split.append(((*signature, (lexeme, pattern)), inside))
                    rest = rest - inside
                    if len(split) > GROUPS_MAX:
                        raise Unsupported("too many rank groups")
            if rest:
                split.append((signature, rest))
        found = split
    return Groups([signature for signature, _ in found], bitmaps=[group for _, group in found])


def _placement_groups(index: BitmapIndex, lexemes: Sequence[str], members: BitMap) -> Groups:
    """groups by positions: a lexeme has hundreds of placements at a million products, and
    splitting each group by each of them cost groups x placements intersections. Here each
    member takes its placement code in each lexeme (BitmapIndex.placement_codes, 0: none), and a
    group is a combination of codes (numpy)."""
    ids = np.frombuffer(members.to_array(), dtype=np.uint32)
    key = np.zeros(len(ids), dtype=np.int64)  # the codes so far, mixed radix
    radix = 1
    coded: list[tuple[str, list[str], npt.NDArray[np.int64]]] = []
    for lexeme in lexemes:
        placed = index.placement_codes(lexeme)
        if placed is None or not len(ids):
            continue
        at = np.minimum(np.searchsorted(placed.ids, ids), len(placed.ids) - 1)
        codes = np.where(placed.ids[at] == ids, placed.codes[at], 0).astype(np.int64)
        if not codes.any():
            continue
        width = len(placed.placements) + 1
        if radix * width > KEY_MAX:
            key, radix = _renumbered(key, radix)
        key = key * width + codes
        radix *= width
        coded.append((lexeme, placed.placements, codes))
    group, count = _renumbered(key, radix)
    if count > GROUPS_MAX:
        raise Unsupported("too many rank groups")
    member = np.zeros(count, dtype=np.intp)
    member[group] = np.arange(len(ids))  # one member of each group says its signature
    signatures = [
        tuple(
            (lexeme, placements[code - 1])
            for lexeme, placements, codes in coded
            if (code := int(codes[first]))
        )
        for first in member.tolist()
    ]
    return Groups(signatures, ids=ids, group=group)


KEY_MAX = 1 << 40  # group keys are renumbered before they could grow past this


def _renumbered(key: npt.NDArray[np.int64], radix: int) -> tuple[npt.NDArray[np.intp], int]:
    """Keys (each below `radix`) as 0, 1, ... in key order, and how many distinct."""
    if radix <= 4 * len(key) + 65_536:  # a table over the keys' range: no sort
        present = np.zeros(radix, dtype=np.intp)
        present[key] = 1
        numbers = np.cumsum(present) - 1
        return numbers[key], int(numbers[-1]) + 1 if radix else 0
    found, inverse = np.unique(key, return_inverse=True)
    return inverse.astype(np.intp), len(found)


def matched_lexemes(index: BitmapIndex, operands: Sequence[tuple[str, bool]]) -> list[str]:
    """The index's lexemes the operands match (a prefix operand: every lexeme starting so)."""
    keys = index._keys(name=False)
    found = set()
    for lexeme, prefix in operands:
        if not prefix:
            if lexeme in index.lexemes:
                found.add(lexeme)
            continue
        for key in keys[bisect.bisect_left(keys, lexeme) :]:
            if not key.startswith(lexeme):
                break
            found.add(key)
    return sorted(found)


class RankCache:
    """ts_rank of (query, group signature), learnt from PostgreSQL and kept (LRU)."""

    def __init__(self, size: int = RANKS_CACHED) -> None:
        self.size = size
        self._ranks: OrderedDict[tuple[str, Signature], float] = OrderedDict()

    def get(self, query: str, signature: Signature) -> float | None:
        key = (query, signature)  # signatures of both kinds never collide: "1A" is no weights
        rank = self._ranks.get(key)
        if rank is not None:
            self._ranks.move_to_end(key)
        return rank

    def put(self, query: str, signature: Signature, rank: float) -> None:
        self._ranks[(query, signature)] = rank
        while len(self._ranks) > self.size:
            self._ranks.popitem(last=False)


def take(
    levels: dict[float, BitMap],
    after: tuple[Any, int] | None,
    count: int,
    out: list[tuple[float, int]],
) -> None:
    """Append ids from score levels, best first and by id descending within a score, after the
    cursor (score, id), until `out` holds `count`."""
    for score in sorted(levels, reverse=True):
        bitmap = levels[score]
        end = len(bitmap)
        if after is not None:
            key, last_id = after
            if score > key:
                continue
            if score == key:  # the ids below the cursor's
                end = bitmap.rank(last_id - 1) if last_id > 0 else 0
        position = end - 1
        while position >= 0 and len(out) < count:
            out.append((score, bitmap[position]))
            position -= 1
        if len(out) >= count:
            return
