"""Rank groups (search.bitmap_rank.groups): products split by what ts_rank reads of their
documents, by positions as by weights, the same split as one product at a time, and levels by
score best first."""

from __future__ import annotations

import random

import pytest
from pyroaring import BitMap

from search import bitmap_rank
from search.bitmap_index import BitmapIndex, ProductState, Unsupported
from search.bitmap_rank import Signature, groups

Documents = dict[int, dict[str, str]]  # product -> lexeme -> its placement ("2A,7C")


def seeded_index(rng: random.Random, products: int) -> tuple[BitmapIndex, Documents]:
    """An index of `products` documents over three lexemes, each at one of a few placements."""
    index = BitmapIndex()
    documents: Documents = {}
    for pid in range(1, products + 1):
        document = {}
        for lexeme in ("alpha", "beta", "gamma"):
            if rng.random() < 0.7:
                document[lexeme] = rng.choice(["1A", "2A,7C", "3B", "4C,9C", "5A,6B", "8D"])
        documents[pid] = document
        for lexeme, placement in document.items():
            weights = "".join(part[-1] for part in placement.split(","))
            index.add_pattern(lexeme, weights, placement, [pid])
    return index, documents


def one_by_one(
    documents: Documents, lexemes: list[str], members: BitMap, positional: bool
) -> dict[Signature, BitMap]:
    found: dict[Signature, BitMap] = {}
    for pid in members:
        signature = tuple(
            (lexeme, placement if positional else "".join(p[-1] for p in placement.split(",")))
            for lexeme in lexemes
            if (placement := documents[pid].get(lexeme)) is not None
        )
        found.setdefault(signature, BitMap()).add(pid)
    return found


@pytest.mark.parametrize("positional", [True, False])
def test_groups_split_as_one_product_at_a_time(positional: bool) -> None:
    rng = random.Random(11)
    index, documents = seeded_index(rng, 400)
    for _ in range(20):
        lexemes = sorted(rng.sample(["alpha", "beta", "gamma", "delta"], rng.randint(1, 4)))
        members = BitMap(rng.sample(range(1, 401), rng.randint(0, 400)))
        split = groups(index, lexemes, members, positional=positional)
        expected = one_by_one(documents, lexemes, members, positional)
        scores = [float(rng.randint(0, 5)) for _ in split.signatures]
        levels = list(split.levels(scores))
        by_signature: dict[Signature, BitMap] = {}
        for signature, score in zip(split.signatures, scores, strict=True):
            level = dict(levels)[score]
            by_signature[signature] = expected.get(signature, BitMap()) & level
        assert len(split.signatures) == len(set(split.signatures)) == len(expected)
        assert by_signature == expected
        # levels: best first, each score once, every member in exactly one
        assert [score for score, _ in levels] == sorted(set(scores), reverse=True)
        assert sum(len(level) for _, level in levels) == len(members)
        assert BitMap.union(*(level for _, level in levels)) == members if levels else not members


def test_too_many_groups_are_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    index, _ = seeded_index(random.Random(2), 300)
    monkeypatch.setattr(bitmap_rank, "GROUPS_MAX", 5)
    for positional in (True, False):
        with pytest.raises(Unsupported):
            groups(index, ["alpha", "beta"], BitMap(range(1, 301)), positional=positional)


def test_placement_codes_follow_changed_documents() -> None:
    """The placement codes kept per lexeme are dropped when a document with the lexeme
    changes: the groups after the change are those of the documents as they are."""
    rng = random.Random(4)
    index, documents = seeded_index(rng, 200)
    index.set_bins([100])
    for pid in range(1, 201):
        index.add_scalars(ProductState(pid, True, None, 100, True, 0, "p", fingerprint=pid))
    members = BitMap(range(1, 201))
    lexemes = ["alpha", "beta"]
    groups(index, lexemes, members, positional=True)  # codes made and kept
    assert index.placement_codes("alpha") is index.placement_codes("alpha")
    for round_ in range(5):
        changed = rng.sample(range(1, 201), 3)
        states = []
        for pid in changed:
            document = {"alpha": rng.choice(["2A,7C", "11B", "12A,13C"])}
            if rng.random() < 0.5:
                document["beta"] = rng.choice(["1A", "14D"])
            documents[pid] = document
            placements = list(document.values())
            states.append(
                ProductState(
                    pid, True, None, 100, True, 0, "p",
                    lexemes=list(document),
                    weights=["".join(p[-1] for p in pl.split(",")) for pl in placements],
                    positions=placements,
                    fingerprint=1000 * (round_ + 1) + pid,
                )
            )  # fmt: skip
        index.replace(changed, states)
        split = groups(index, lexemes, members, positional=True)
        expected = one_by_one(documents, lexemes, members, True)
        assert set(split.signatures) == set(expected), round_
