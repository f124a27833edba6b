"""`aioshop reindex`, run as the real command, rebuilds the PostgreSQL search documents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from search.backend import SearchQuery
from search.postgres import PostgresSearch
from storage.database import connect, create_pool
from tests.support.cli import GOOD_ENV, run_cli
from tests.support.search_backends import Catalog

CLEAR_DOCUMENTS = """
    UPDATE products SET search_vector = NULL, search_facets = '{}', indexed_at = NULL
    WHERE id = ANY ($1::bigint[])
"""


@pytest.fixture
async def search(fresh_db: str) -> AsyncIterator[PostgresSearch]:
    primary = await create_pool(fresh_db, 2)
    yield PostgresSearch(primary, primary, terms_ttl=0)
    await primary.close()


@pytest.fixture
async def catalog(fresh_db: str, search: PostgresSearch) -> AsyncIterator[Catalog]:
    conn = await connect(fresh_db)
    yield Catalog(conn, search)
    await conn.close()


async def names(search: PostgresSearch, text: str, **filters: object) -> list[str]:
    result = await search.search(SearchQuery(text=text, limit=100, **filters))  # type: ignore[arg-type]
    return sorted(hit.name for hit in result.hits)


async def test_reindex_rebuilds_lost_documents_and_the_vocabulary(
    fresh_db, catalog, search
) -> None:
    await catalog.attribute("colour")
    lamps = [
        await catalog.product(f"Brass lamp {n}", attributes={"colour": "gold"}) for n in range(5)
    ]
    await catalog.product("Velvet cushion")
    hidden = await catalog.product("Secret zephyrion", published=False, index=False)
    await catalog.conn.execute(CLEAR_DOCUMENTS, [*lamps[:3], hidden])
    await catalog.conn.execute("DELETE FROM search_terms")
    assert await names(search, "lamp") == ["Brass lamp 3", "Brass lamp 4"]

    result = run_cli("reindex", "--batch", "2", DATABASE_URL=fresh_db, **GOOD_ENV)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["postgres", "terms", "total"]
    assert lines[0].split()[1] == "6"  # every published product, in batches of two
    assert lines[-1].endswith(" s")
    assert await names(search, "lamp") == [f"Brass lamp {n}" for n in range(5)]
    # Facets and the vocabulary are back too: a filter, a typo and a prefix.
    assert len(await names(search, "lamp", attributes={"colour": ("gold",)})) == 5
    assert await names(search, "cushon") == ["Velvet cushion"]
    assert await names(search, "velv") == ["Velvet cushion"]
    # Unpublished products stay out.
    assert await catalog.conn.fetchval(
        "SELECT search_vector IS NULL FROM products WHERE id = $1", hidden
    )
    assert await names(search, "zephyrion") == []


async def test_reindex_of_an_empty_catalog_says_so(fresh_db) -> None:
    result = run_cli("reindex", DATABASE_URL=fresh_db, **GOOD_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["postgres", "0"]


def test_reindex_with_an_unreachable_database_stops_with_one_line() -> None:
    result = run_cli(
        "reindex", DATABASE_URL="postgresql://postgres@127.0.0.1:1/postgres", **GOOD_ENV
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("aioshop: cannot reach a service at start-up")


async def test_reindex_with_elasticsearch_down_fails_after_postgres(fresh_db, catalog) -> None:
    await catalog.product("Brass lamp", index=False)
    result = run_cli(
        "reindex", DATABASE_URL=fresh_db, ELASTICSEARCH_URL="http://127.0.0.1:9", **GOOD_ENV
    )
    assert result.returncode == 2
    assert result.stdout.splitlines()[0].split()[:2] == ["postgres", "1"]
    assert result.stderr.strip().splitlines()[-1].startswith("aioshop: Elasticsearch failed")
    assert "Traceback" not in result.stderr


async def test_reindex_with_a_refused_document_stops_with_one_line(
    fresh_db, catalog, aiohttp_server
) -> None:
    """Against a stand-in for Elasticsearch (which cannot run here) speaking its documented
    API: index creation, then a bulk answer refusing one document
    (https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-bulk), which must
    end the command with one line naming the document and delete the half-loaded index."""
    refused_id = await catalog.product("Brass lamp", index=False)
    await catalog.product("Velvet cushion", index=False)
    requests: list[tuple[str, str]] = []

    async def answer(request: web.Request) -> web.Response:
        requests.append((request.method, request.path))
        body: dict[str, object] = {"acknowledged": True}
        if request.path == "/_bulk":
            actions = [json.loads(line) for line in (await request.text()).splitlines() if line]
            items = []
            for action in actions[::2]:  # each index action is followed by its document
                target = action["index"]
                if target["_id"] == str(refused_id):
                    error = {"type": "document_parsing_exception", "reason": "failed to parse\nx"}
                    items.append({"index": {**target, "status": 400, "error": error}})
                else:
                    items.append({"index": {**target, "status": 201, "result": "created"}})
            body = {"took": 3, "errors": True, "items": items}
        return web.json_response(body, headers={"X-Elastic-Product": "Elasticsearch"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = await aiohttp_server(app)

    # In a thread: the stand-in answers on this test's event loop meanwhile.
    result = await asyncio.to_thread(
        run_cli,
        "reindex",
        DATABASE_URL=fresh_db,
        ELASTICSEARCH_URL=str(server.make_url("")),
        **GOOD_ENV,
    )

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    # Progress lines of the steps (stderr is not a terminal), then one line: no traceback, no
    # request log.
    *progress, line = lines
    assert all(each.split()[0] in {"postgres", "elastic"} for each in progress), lines
    assert line.startswith("aioshop: Elasticsearch refused documents: 1 document(s) failed")
    assert f"id {refused_id}: failed to parse" in line
    created = next(path for method, path in requests if method == "PUT")
    assert created.startswith("/aioshop-products-")
    assert [path for _, path in requests][1] == "/_bulk"
    assert requests[-1] == ("DELETE", created)  # the new index goes; the alias never moved
    assert not any("_aliases" in path for _, path in requests)


def test_reindex_refuses_a_batch_below_one() -> None:
    result = run_cli("reindex", "--batch", "0")
    assert result.returncode == 2 and "--batch must be at least 1" in result.stderr
