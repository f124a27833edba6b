"""The Elasticsearch index: its settings and mapping, and a product's document read from PostgreSQL.

The document mirrors PostgreSQL's (migration 0006): it is read after `search_index_products` has
refreshed the product's `search_facets`, so both backends filter and count the same 'slug=value'
strings. Text fields: `name` (english, weight of PostgreSQL's A), `tags` (category path names and
attribute values, B) and `description` (C), each stemmed; `text_all` joins the three so that the
words of one query may come from different fields, as they may in one tsvector; `words` is the
same text unstemmed (a typed prefix like "runni" must reach "running", whose stem is "run");
`vocabulary` is the unstemmed name and tags, which the term suggester corrects words against
(PostgreSQL's search_terms has the same words). `name_prefix` (search_as_you_type) serves
autocomplete. Only published products are indexed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

ALIAS = "aioshop-products"
# One shard: a catalog fits easily, and terms aggregations on one shard count exactly.
INDEX_SETTINGS: dict[str, Any] = {
    "number_of_shards": 1,
    "analysis": {"normalizer": {"folded": {"type": "custom", "filter": ["lowercase"]}}},
}
ENGLISH = {"type": "text", "analyzer": "english"}
PLAIN = {"type": "text", "analyzer": "standard"}
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "long"},
        "slug": {"type": "keyword", "index": False},
        "name": {
            **ENGLISH,
            "fields": {
                "raw": {"type": "keyword"},  # suggestions of equal score, by name
                # The name sort (PostgreSQL's lower(name)) and one suggestion per name.
                "lower": {"type": "keyword", "normalizer": "folded"},
            },
        },
        "name_prefix": {"type": "search_as_you_type"},
        "description": ENGLISH,
        "tags": ENGLISH,
        "text_all": ENGLISH,
        "words": PLAIN,
        "vocabulary": PLAIN,
        "skus": {"type": "keyword"},
        "category_id": {"type": "long"},
        "category_path": {"type": "long"},
        "facets": {"type": "keyword"},
        "filterable_facets": {"type": "keyword"},  # facets of is_filterable attributes: counted
        "price_min": {"type": "long"},
        "price_max": {"type": "long", "index": False},
        "currency": {"type": "keyword", "index": False},
        "in_stock": {"type": "boolean"},
        # Nanoseconds, so a `newest` cursor keeps PostgreSQL's microseconds exactly.
        "created_at": {"type": "date_nanos"},
    },
}
# Everything a document is made of. `version`: the primary's clock in microseconds, read after
# search_index_products locked the product row, so a later indexer of the same product always
# reads a larger one (even when an earlier transaction rolled back after writing to
# Elasticsearch, which a rolled-back index_version would not show).
DOCUMENT_SELECT = """
    SELECT p.id, p.slug, p.name, p.description, p.is_published, p.created_at, p.category_id,
           p.price_min, p.price_max, p.currency, p.in_stock, p.search_facets,
           coalesce(own.path, '{{}}') AS category_path,
           coalesce((SELECT string_agg(c.name, ' ' ORDER BY array_position(own.path, c.id))
                     FROM categories c WHERE c.id = ANY (own.path)), '') AS category_names,
           ARRAY(SELECT v.sku FROM variants v WHERE v.product_id = p.id ORDER BY v.sku) AS skus,
           ARRAY(SELECT f FROM unnest(p.search_facets) f
                 WHERE split_part(f, '=', 1) IN (SELECT slug FROM attributes WHERE is_filterable)
                 ORDER BY f) AS filterable_facets,
           coalesce((SELECT string_agg(replace(v.value, '-', ' ') || coalesce(' ' || ch.name, ''),
                                       ' ' ORDER BY v.f)
                     FROM (SELECT f, split_part(f, '=', 1) AS attribute,
                                  substr(f, strpos(f, '=') + 1) AS value
                           FROM unnest(p.search_facets) f) v
                     LEFT JOIN attributes at ON at.slug = v.attribute
                     LEFT JOIN attribute_choices ch ON ch.attribute_id = at.id AND ch.slug = v.value
                     WHERE v.value NOT IN ('true', 'false')), '') AS attribute_words,
           (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS version
    FROM products p
    LEFT JOIN categories own ON own.id = p.category_id
    WHERE {where}
    ORDER BY p.id
"""
SELECT_DOCUMENTS = DOCUMENT_SELECT.format(where="p.id = ANY ($1::bigint[])")
# Reindexing: published products in id order, one batch after another (keyset on id).
SELECT_PUBLISHED_AFTER = DOCUMENT_SELECT.format(where="p.is_published AND p.id > $1") + " LIMIT $2"
# Products whose PostgreSQL document changed since a moment (a reindex's catch-up).
SELECT_INDEXED_SINCE = "SELECT id FROM products WHERE indexed_at >= $1 ORDER BY id"


def index_name(alias: str = ALIAS, now: datetime | None = None) -> str:
    """A new concrete index behind `alias`: <alias>-<UTC timestamp to microseconds>."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{alias}-{moment.strftime('%Y%m%d%H%M%S%f')}"


def format_time(moment: datetime) -> str:
    """A timestamp as date_nanos reads and sorts it back: UTC, six decimals, 'Z'."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def document(row: Any) -> dict[str, Any]:
    """The Elasticsearch document of one product row of DOCUMENT_SELECT."""
    tags = " ".join(part for part in (row["category_names"], row["attribute_words"]) if part)
    return {
        "id": row["id"],
        "slug": row["slug"],
        "name": row["name"],
        "name_prefix": row["name"],
        "description": row["description"],
        "tags": tags,
        "text_all": " ".join(part for part in (row["name"], tags, row["description"]) if part),
        "words": " ".join(part for part in (row["name"], tags, row["description"]) if part),
        "vocabulary": " ".join(part for part in (row["name"], tags) if part),
        "skus": list(row["skus"]),
        "category_id": row["category_id"],
        "category_path": list(row["category_path"]),
        "facets": list(row["search_facets"]),
        "filterable_facets": list(row["filterable_facets"]),
        "price_min": row["price_min"],
        "price_max": row["price_max"],
        "currency": row["currency"],
        "in_stock": row["in_stock"],
        "created_at": format_time(row["created_at"]),
    }
