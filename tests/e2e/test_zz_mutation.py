from pathlib import Path

import pytest

from tests.e2e import test_api_client as t

SOURCE = Path("web/static/js/api.js").read_text()
MUTANTS = {

    "no-shared-promise": ("if (!refreshing) {", "if (true) {"),

        "withRefreshLock(() => (generation() > seen ? undefined : refresh()))",
        "withRefreshLock(() => refresh())",
    ),
    "no-early-check": ("if (generation() > seen) return Promise.resolve();", ""),
}


@pytest.fixture(params=sorted(MUTANTS))
async def mutant(request, context):
    old, new = MUTANTS[request.param]
    assert old in SOURCE
    body = SOURCE.replace(old, new)

    async def serve(route):
        await route.fulfill(body=body, content_type="text/javascript")

    await context.route("**/static/js/api.js", serve)
    return request.param


@pytest.mark.parametrize("delay", [0, 0.3])
async def test_a(mutant, context, page, base_url, delay):
    await t.test_parallel_401s_share_one_refresh(context, page, base_url, delay, False)


@pytest.mark.parametrize("delay", [0, 0.3])
async def test_c(mutant, context, page, delay):
    await t.test_two_tabs_spend_the_refresh_token_once(context, page, delay)
