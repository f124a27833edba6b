"""What the seeded catalog is made of, and the generator that draws its products.

The taxonomy (attributes and their choices, product types with the word lists their names come
from, the category tree) and `Generator`, which turns one `random.Random(seed)` stream into
product and variant rows: the i-th product depends only on the seed and i, so the same seed
gives the same catalog whatever the batch size. No database here; storage.seed loads the rows.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Choice = tuple[str, str, str | None]  # slug, name, swatch
Row = tuple[Any, ...]
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
CURRENCY = "EUR"

ATTRIBUTES: tuple[tuple[str, str, str, str, tuple[Choice, ...]], ...] = (
    ("colour", "Colour", "choice", "", (
        ("black", "Black", "#111111"), ("white", "White", "#ffffff"), ("navy", "Navy", "#1f2a44"),
        ("grey", "Grey", "#8a8d91"), ("red", "Red", "#c0392b"), ("green", "Green", "#2e7d32"),
        ("olive", "Olive", "#6b7b3a"), ("sand", "Sand", "#d8c3a5"), ("blue", "Blue", "#2f6db5"),
        ("pink", "Pink", "#e8a0b4"), ("yellow", "Yellow", "#f2c94c"), ("brown", "Brown", "#7b5134"),
    )),
    ("size", "Size", "choice", "", tuple(
        (s.lower(), s, None) for s in ("XS", "S", "M", "L", "XL", "XXL"))),
    ("shoe_size", "Shoe size", "choice", "EU", tuple(
        (str(s), str(s), None) for s in range(36, 47))),
    ("material", "Material", "choice", "", tuple(
        (re.sub(r"\W+", "-", m.lower()), m, None) for m in (
        "Cotton", "Linen", "Wool", "Merino", "Denim", "Leather", "Suede", "Canvas", "Nylon",
        "Polyester", "Stoneware", "Porcelain", "Glass", "Steel", "Cast Iron", "Oak", "Bamboo",
        "Ceramic", "Recycled Plastic", "Velvet", "Rubber"))),
    ("capacity_ml", "Capacity", "number", "ml", ()),
    ("screen_inches", "Screen size", "number", "in", ()),
    ("organic", "Organic", "boolean", "", ()),
    ("waterproof", "Waterproof", "boolean", "", ()),
)  # fmt: skip
CHOICES = {slug: choices for slug, _, _, _, choices in ATTRIBUTES if choices}
OPTIONS: dict[str, tuple[Any, ...]] = {a: tuple(c[0] for c in cs) for a, cs in CHOICES.items()}
CHOICE_NAMES = {(a, c[0]): c[1] for a, choices in CHOICES.items() for c in choices}
MATERIAL_SLUGS = {c[1]: c[0] for c in CHOICES["material"]}

ADJECTIVES = {
    "clothing": ("Breezy", "Classic", "Relaxed", "Everyday", "Heritage", "Slim", "Softwash"),
    "shoes": ("Trail", "Urban", "Featherweight", "Classic", "Court", "Cloud", "Summit"),
    "home": ("Cosy", "Nordic", "Rustic", "Minimal", "Woven", "Calm", "Sunlit"),
    "kitchen": ("Everyday", "Artisan", "Speckled", "Matte", "Bistro", "Handmade"),
    "electronics": ("Compact", "Pro", "Wireless", "Slim", "Max", "Lite", "Active"),
    "outdoors": ("Alpine", "Trail", "Ridge", "Basecamp", "Storm", "Lightweight"),
}
BRANDS = ("Nimbus", "Volt", "Arcwave", "Kestrel", "Lumen", "Orbit", "Fjell", "Tern")
COMPATIBLE = ("iPhone-compatible", "USB-C", "Android-compatible", "Braided USB-C")
FEATURES = {
    "clothing": ("Pre-washed for a soft feel from day one.", "Cut for an easy, relaxed fit.",
                 "Machine washable at 30 degrees.", "Reinforced seams that keep their shape."),
    "shoes": ("Cushioned footbed for all-day comfort.", "Grippy rubber outsole.",
              "Runs true to size.", "Removable insole."),
    "home": ("Adds warmth to any room.", "Made in a small family workshop.",
             "Pairs well with natural wood and linen.", "Easy to care for."),
    "kitchen": ("Dishwasher safe.", "Microwave safe.", "Stacks neatly in the cupboard.",
                "Food-safe and free of BPA."),
    "electronics": ("Two-year warranty.", "Charges fully in under two hours.",
                    "Works with phones, tablets and laptops.", "Firmware updates over the air."),
    "outdoors": ("Packs down small.", "Tested on long trails in wet weather.",
                 "Repairable, with spare parts available.", "Light enough for fast hikes."),
}  # fmt: skip
CLOSERS = ("Free returns within 30 days.", "Ships in recyclable packaging.", "")
ARTICLE = re.compile(r"\b([Aa]) ([aeiou]|8|11)")  # "a oak lamp" -> "an oak lamp"


@dataclass(frozen=True)
class TypeSpec:
    """A product type: its attribute levels, and the word lists its products are made from."""

    slug: str
    name: str
    department: str
    product_attributes: tuple[str, ...]
    variant_attributes: tuple[str, ...]
    names: tuple[str, ...]  # templates: {adjective} {material} {noun} {brand} {compat} {capacity}
    nouns: tuple[str, ...]
    blurbs: tuple[str, ...]  # first sentence of the description; same fields, lower-cased
    euros: tuple[int, int]
    materials: tuple[str, ...] = ()
    capacities: tuple[int, ...] = ()
    screens: tuple[float, ...] = ()


WEAR = "{adjective} {material} {noun}"  # "Breezy Linen Shirt"
TYPES = {t.slug: t for t in (
    TypeSpec("t-shirt", "T-shirt", "clothing", ("material", "organic"), ("colour", "size"),
             (WEAR,), ("T-Shirt", "Tee", "Crew Tee"), ("A {adjective} {noun} in soft {material}.",),
             (15, 45), ("Cotton", "Linen", "Merino")),
    TypeSpec("shirt", "Shirt", "clothing", ("material",), ("colour", "size"), (WEAR,),
             ("Shirt", "Overshirt", "Oxford Shirt"), ("A {adjective} {noun} in {material}.",),
             (35, 95), ("Cotton", "Linen", "Denim")),
    TypeSpec("knitwear", "Knitwear", "clothing", ("material",), ("colour", "size"), (WEAR,),
             ("Jumper", "Cardigan", "Sweater"), ("A warm {noun} knitted from {material}.",),
             (45, 140), ("Wool", "Merino", "Cotton")),
    TypeSpec("jacket", "Jacket", "clothing", ("material", "waterproof"), ("colour", "size"),
             (WEAR,), ("Jacket", "Parka", "Shell Jacket"),
             ("A {adjective} {noun} for every season.",
              "A {material} {noun} that shrugs off wind and rain."), (80, 320),
             ("Nylon", "Polyester", "Wool", "Denim")),
    TypeSpec("trousers", "Trousers", "clothing", ("material",), ("colour", "size"), (WEAR,),
             ("Chinos", "Trousers", "Joggers"), ("{adjective} {noun} in {material}.",), (45, 130),
             ("Cotton", "Linen", "Denim", "Wool")),
    TypeSpec("hat", "Hat", "clothing", ("material",), ("colour",), (WEAR,),
             ("Beanie", "Cap", "Bucket Hat"), ("A {material} {noun}, one size fits most.",),
             (15, 45), ("Wool", "Cotton", "Merino")),
    TypeSpec("socks", "Socks", "clothing", ("material", "organic"), ("colour", "size"), (WEAR,),
             ("Socks", "Ankle Socks", "Hiking Socks"), ("{adjective} {noun} in {material}.",),
             (8, 25), ("Cotton", "Merino", "Bamboo")),
    TypeSpec("sneaker", "Sneaker", "shoes", ("material",), ("colour", "shoe_size"), (WEAR,),
             ("Sneaker", "Trainer", "Low-Top"), ("A {adjective} {noun} with a {material} upper.",),
             (60, 180), ("Leather", "Canvas", "Suede")),
    TypeSpec("running-shoe", "Running shoe", "shoes", ("waterproof",), ("colour", "shoe_size"),
             ("{adjective} Runner Shoe", "{brand} {noun}"), ("Running Shoe", "Road Runner"),
             ("A light, responsive shoe for road and trail.",), (80, 200)),
    TypeSpec("boot", "Boot", "shoes", ("material", "waterproof"), ("shoe_size",), (WEAR,),
             ("Boot", "Chelsea Boot", "Hiking Boot"), ("A sturdy {noun} in {material}.",),
             (90, 260), ("Leather", "Suede")),
    TypeSpec("sandal", "Sandal", "shoes", ("material",), ("shoe_size",), (WEAR,),
             ("Sandal", "Slide", "Trek Sandal"), ("{adjective} {noun}s for warm days.",),
             (30, 90), ("Leather", "Rubber")),
    TypeSpec("cushion", "Cushion", "home", ("material", "organic"), ("colour",), (WEAR,),
             ("Cushion", "Cushion Cover", "Floor Cushion"), ("A {material} {noun} to sink into.",),
             (20, 60), ("Linen", "Cotton", "Wool", "Velvet")),
    TypeSpec("throw", "Throw", "home", ("material",), ("colour",), (WEAR,), ("Throw", "Blanket"),
             ("A {adjective} {noun} woven from {material}.",), (40, 180),
             ("Wool", "Cotton", "Merino")),
    TypeSpec("lamp", "Lamp", "home", ("material",), ("colour",), (WEAR,),
             ("Table Lamp", "Floor Lamp", "Desk Lamp"), ("A {material} {noun} with a warm glow.",),
             (40, 250), ("Ceramic", "Oak", "Steel", "Glass")),
    TypeSpec("towel", "Towel", "home", ("material", "organic"), ("colour",), (WEAR,),
             ("Bath Towel", "Hand Towel", "Beach Towel"), ("A thirsty {noun} in {material}.",),
             (10, 40), ("Cotton", "Bamboo", "Linen")),
    TypeSpec("mug", "Mug", "kitchen", ("material", "capacity_ml"), ("colour",),
             ("{material} {noun} {capacity} ml", WEAR), ("Mug", "Cup", "Latte Mug"),
             ("A {material} {noun} that holds {capacity} ml.",), (8, 30),
             ("Stoneware", "Porcelain", "Glass"), capacities=(250, 300, 350, 400)),
    TypeSpec("pan", "Pan", "kitchen", ("material",), (), (WEAR,),
             ("Frying Pan", "Skillet", "Saute Pan"), ("A {material} {noun} that heats evenly.",),
             (25, 150), ("Cast Iron", "Steel")),
    TypeSpec("knife", "Knife", "kitchen", ("material",), (), ("{adjective} {noun}",),
             ("Chef Knife", "Bread Knife", "Paring Knife"), ("A {noun} with a {material} blade.",),
             (20, 160), ("Steel",)),
    TypeSpec("bottle", "Bottle", "kitchen", ("material",), ("capacity_ml", "colour"), (WEAR,),
             ("Water Bottle", "Flask", "Bottle"), ("A leak-proof {material} {noun}.",), (12, 45),
             ("Steel", "Glass", "Recycled Plastic"), capacities=(500, 750, 1000)),
    TypeSpec("cable", "Cable", "electronics", (), ("colour",),
             ("{compat} Charging Cable", "{brand} {compat} Cable"), ("Cable",),
             ("A tough {compat} charging cable.",), (8, 30)),
    TypeSpec("charger", "Charger", "electronics", (), (), ("{brand} {compat} Wall Charger",),
             ("Charger",), ("A fast {compat} wall charger.",), (15, 60)),
    TypeSpec("headphones", "Headphones", "electronics", ("waterproof",), ("colour",),
             ("{brand} {adjective} {noun}",), ("Headphones", "Earbuds"),
             ("{adjective} {noun} with rich, clear sound.",), (30, 300)),
    TypeSpec("speaker", "Speaker", "electronics", ("waterproof",), ("colour",),
             ("{brand} {adjective} {noun}",), ("Speaker", "Soundbar"),
             ("A {adjective} {noun} that fills the room.",), (30, 250)),
    TypeSpec("tablet", "Tablet", "electronics", ("screen_inches",), ("colour",),
             ("{brand} {noun} {screen} inch",), ("Tab", "Tablet"),
             ("A {screen}-inch {noun} for reading, drawing and video.",), (150, 900),
             screens=(8.3, 10.1, 11, 12.9, 13.3)),
    TypeSpec("tent", "Tent", "outdoors", ("material", "waterproof"), (), (WEAR,),
             ("Tent", "Dome Tent", "Tunnel Tent"), ("A {material} {noun} that pitches fast.",),
             (90, 600), ("Nylon", "Polyester")),
    TypeSpec("backpack", "Backpack", "outdoors", ("material", "waterproof"), ("colour",), (WEAR,),
             ("Backpack", "Daypack", "Rucksack"), ("A {adjective} {noun} in tough {material}.",),
             (40, 200), ("Nylon", "Canvas", "Polyester")),
    TypeSpec("sleeping-bag", "Sleeping bag", "outdoors", ("material",), ("colour",), (WEAR,),
             ("Sleeping Bag", "Quilt"), ("A {noun} filled for cold nights.",), (60, 350),
             ("Nylon", "Polyester")),
)}  # fmt: skip

# (slug, name, the type of its products (leaves only), children)
Node = tuple[str, str, str | None, tuple[Any, ...]]
CATEGORIES: tuple[Node, ...] = (
    ("clothing", "Clothing", None, (
        ("tops", "Tops", None, (("t-shirts", "T-shirts", "t-shirt", ()),
                                ("shirts", "Shirts", "shirt", ()),
                                ("knitwear", "Knitwear", "knitwear", ()))),
        ("outerwear", "Outerwear", "jacket", ()),
        ("trousers", "Trousers", "trousers", ()),
        ("clothing-accessories", "Accessories", None, (("hats", "Hats", "hat", ()),
                                                       ("socks", "Socks", "socks", ()))))),
    ("shoes", "Shoes", None, (
        ("sneakers", "Sneakers", "sneaker", ()), ("running-shoes", "Running", "running-shoe", ()),
        ("boots", "Boots", "boot", ()), ("sandals", "Sandals", "sandal", ()))),
    ("home", "Home", None, (
        ("textiles", "Textiles", None, (("cushions", "Cushions", "cushion", ()),
                                        ("throws", "Throws & blankets", "throw", ()))),
        ("lighting", "Lighting", "lamp", ()), ("bath", "Bath", "towel", ()))),
    ("kitchen", "Kitchen", None, (
        ("tableware", "Tableware", "mug", ()), ("cookware", "Cookware", "pan", ()),
        ("knives", "Knives", "knife", ()), ("drinkware", "Drinkware", "bottle", ()))),
    ("electronics", "Electronics", None, (
        ("audio", "Audio", None, (("headphones", "Headphones", "headphones", ()),
                                  ("speakers", "Speakers", "speaker", ()))),
        ("tablets", "Tablets", "tablet", ()),
        ("charging", "Charging", None, (("cables", "Cables", "cable", ()),
                                        ("chargers", "Chargers", "charger", ()))))),
    ("outdoors", "Outdoors", None, (
        ("camping", "Camping", None, (("tents", "Tents", "tent", ()),
                                      ("sleeping-bags", "Sleeping bags", "sleeping-bag", ()))),
        ("backpacks", "Backpacks", "backpack", ()), ("rainwear", "Rainwear", "jacket", ()),
        ("trail-bottles", "Bottles", "bottle", ()))),
)  # fmt: skip


@dataclass(frozen=True)
class Taxonomy:
    """Database ids of what the seed's products point at."""

    leaves: tuple[tuple[int, TypeSpec], ...]  # (category id, type) per leaf category
    type_ids: dict[str, int]


class Generator:
    """Products from one random stream: the i-th product depends only on the seed and i."""

    def __init__(self, taxonomy: Taxonomy, seed: int) -> None:
        self.taxonomy = taxonomy
        # random() only, scaled by hand: several times faster than choice() and randint().
        self.random = random.Random(seed).random  # noqa: S311 - test data, not secrets
        self.seen_slugs: set[str] = set()  # bounded: names are combinations of short word lists

    async def batch(self, start: int, ids: Sequence[int]) -> tuple[list[list[Any]], list[Row]]:
        """The products (the i-th is `start + i`) with these ids, and their variants."""
        products: list[list[Any]] = []
        variants: list[Row] = []
        for offset, product_id in enumerate(ids):
            if offset % 250 == 0:
                await asyncio.sleep(0)  # let a running COPY send its rows meanwhile
            created_at = EPOCH - timedelta(minutes=start + offset)
            product, product_variants = self.product(product_id, created_at)
            products.append(product)
            variants.extend(product_variants)
        return products, variants

    def pick(self, options: Sequence[Any]) -> Any:
        return options[int(self.random() * len(options))]

    def between(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))

    def product(self, product_id: int, created_at: datetime) -> tuple[list[Any], list[Row]]:
        pick, chance = self.pick, self.random
        category_id, spec = pick(self.taxonomy.leaves)
        words: dict[str, Any] = {
            "adjective": pick(ADJECTIVES[spec.department]),
            "noun": pick(spec.nouns),
            "material": pick(spec.materials) if spec.materials else "",
            "brand": pick(BRANDS),
            "compat": pick(COMPATIBLE),
            "capacity": pick(spec.capacities) if spec.capacities else "",
            "screen": pick(spec.screens) if spec.screens else "",
        }
        attributes: dict[str, Any] = {}
        for attribute in spec.product_attributes:
            if attribute == "material":
                attributes[attribute] = MATERIAL_SLUGS[words["material"]]
            elif attribute == "capacity_ml":
                attributes[attribute] = words["capacity"]
            elif attribute == "screen_inches":
                attributes[attribute] = words["screen"]
            else:  # the booleans
                attributes[attribute] = chance() < (0.3 if attribute == "organic" else 0.5)
        name = pick(spec.names).format_map(words)
        for key in ("adjective", "noun", "material"):
            words[key] = words[key].lower()
        first = ARTICLE.sub(r"\1n \2", pick(spec.blurbs).format_map(words))
        sentences = [first[0].upper() + first[1:]]
        features = list(FEATURES[spec.department])
        for _ in range(int(chance() * 3)):
            sentences.append(features.pop(int(chance() * len(features))))
        if len(sentences) < 3:
            sentences.append(pick(CLOSERS))
        published = chance() < 0.95
        price = self.between(*spec.euros) * 100 - (1 if chance() < 0.7 else 0)  # 4899 or 4900
        variants = []
        for position, combination in enumerate(self.combinations(spec)):
            premium = sum(_premium(a, v, spec) for a, v in combination)
            stock = 0 if chance() < 0.1 else self.between(1, 200)
            label = " / ".join(_label(a, v) for a, v in combination)
            variants.append((
                product_id, f"P{product_id:07d}-{position + 1}", label, price + premium,
                CURRENCY, stock, dict(combination), position, created_at, created_at,
            ))  # fmt: skip
        # The aggregates migration 0005's refresh_product_aggregates() computes from the
        # variants (all in CURRENCY), so the load need not run it: see storage.seed.
        prices = [variant[3] for variant in variants]
        product = [
            product_id, _slugify(name), name, " ".join(s for s in sentences if s), published,
            created_at, created_at, category_id, self.taxonomy.type_ids[spec.slug], attributes,
            min(prices), max(prices), CURRENCY, any(variant[5] > 0 for variant in variants),
        ]  # fmt: skip  # the slug is settled per batch, by _settle_slugs
        return product, variants

    def combinations(self, spec: TypeSpec) -> list[tuple[tuple[str, Any], ...]]:
        """1 to 6 variant-level value combinations, in a stable order."""
        if not spec.variant_attributes:
            return [()]
        axes = []
        room = 6
        for index, attribute in enumerate(spec.variant_attributes):
            options = OPTIONS.get(attribute, spec.capacities)
            most = min(room, len(options), 3 if index + 1 < len(spec.variant_attributes) else 6)
            count = self.between(1, most)
            if attribute == "colour":  # any few colours, in the list's order; sizes in a run
                left = list(range(len(options)))
                drawn = [left.pop(int(self.random() * len(left))) for _ in range(count)]
                picked = [options[i] for i in sorted(drawn)]
            else:
                first = int(self.random() * (len(options) - count + 1))
                picked = list(options[first : first + count])
            axes.append([(attribute, value) for value in picked])
            room //= count
        return list(itertools.product(*axes))


def _premium(attribute: str, value: Any, spec: TypeSpec) -> int:
    """What a bigger variant adds to the price, in whole euros so prices keep their ending."""
    if attribute == "size" and value == "xxl":
        return 500
    if attribute == "capacity_ml":
        return spec.capacities.index(value) * 500
    return 0


def _label(attribute: str, value: Any) -> str:
    return f"{value} ml" if attribute == "capacity_ml" else CHOICE_NAMES[(attribute, value)]


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
