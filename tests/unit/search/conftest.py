"""Fixtures of the Elasticsearch backend's unit tests: a client of a fake cluster
(tests.support.fake_elastic) and the backend on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from elasticsearch import AsyncElasticsearch

from search.elastic import ElasticsearchSearch
from tests.support.fake_elastic import Attributes, FakeCluster


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
async def client(cluster: FakeCluster) -> AsyncIterator[AsyncElasticsearch]:
    # No retries: each request takes exactly one canned answer.
    es = AsyncElasticsearch(
        "http://elastic.test:9200", node_class=cluster.node_class(), max_retries=0
    )
    yield es
    await es.close()


@pytest.fixture
def attributes() -> Attributes:
    return Attributes()


@pytest.fixture
def elastic(client: AsyncElasticsearch, attributes: Attributes) -> ElasticsearchSearch:
    return ElasticsearchSearch(client, primary=None, reader=attributes)  # type: ignore[arg-type]
