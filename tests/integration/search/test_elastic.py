"""The Elasticsearch backend against a real cluster: what only this backend is tested for
(external versions, the alias swap of a reindex), beside the contract every backend meets
(test_search_contract.py).

Runs only when ELASTICSEARCH_URL names a cluster (tests.support.search_backends). Writes are made
visible with an explicit refresh before each search (Elasticsearch is near-real-time).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from search.backend import SearchQuery
from search.elastic import ElasticsearchSearch
from search.reindex import Report, Timer, reindex_elastic
from tests.support.search_backends import (
    NEEDS_ELASTICSEARCH,
    Catalog,
    catalog_for,
    elastic_search,
)

RENAME = "UPDATE products SET name = $2 WHERE id = $1"
pytestmark = NEEDS_ELASTICSEARCH


@pytest.fixture
async def search(fresh_db: str) -> AsyncIterator[ElasticsearchSearch]:
    async with elastic_search(fresh_db) as backend:
        yield backend


@pytest.fixture
async def catalog(fresh_db: str, search: ElasticsearchSearch) -> AsyncIterator[Catalog]:
    async with catalog_for(fresh_db, search) as catalog:
        yield catalog


async def find(search: ElasticsearchSearch, query: SearchQuery) -> Any:
    await search.client.indices.refresh(index=search.alias)
    return await search.search(query)


async def names(search: ElasticsearchSearch, text: str, **filters: Any) -> list[str]:
    result = await find(search, SearchQuery(text=text, **filters))
    return [hit.name for hit in result.hits]


async def test_an_older_write_never_replaces_a_newer_document(catalog, search) -> None:
    product_id = await catalog.product("Velvet cushion")
    await catalog.conn.execute(RENAME, product_id, "Velvet pillow")
    stale = await search.client.get(index=search.alias, id=str(product_id))
    await search.index_product(product_id)
    # The first write arrives late, with its older version: refused (409) and dropped.
    await search.client.options(ignore_status=409).index(
        index=search.alias,
        id=str(product_id),
        document=stale["_source"],
        version=stale["_version"],
        version_type="external",
    )
    assert await names(search, "pillow") == ["Velvet pillow"]


async def test_reindex_swaps_the_alias_to_a_new_index(catalog, search) -> None:
    for number in range(7):
        await catalog.product(f"Lamp {number}")
    hidden = await catalog.product("Draft lamp", published=False)
    before = await search.aliased_indices()
    report = Report()
    new_index = await reindex_elastic(
        search.client, search.primary, Timer(report, None), batch=3, alias=search.alias
    )
    assert await search.aliased_indices() == [new_index]
    assert new_index not in before
    assert not await search.client.indices.exists(index=before)  # the old index is gone
    assert [step.name for step in report.steps] == ["elastic", "alias", "catch-up"]
    assert report.steps[0].count == 7
    result = await find(search, SearchQuery(text="lamp", limit=100))
    assert hidden not in {hit.product_id for hit in result.hits}
    assert result.total == 7
    # Writes after the swap go to the new index through the alias.
    await catalog.product("Lamp 8")
    assert (await find(search, SearchQuery(text="lamp"))).total == 8
