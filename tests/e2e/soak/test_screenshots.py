"""The soak's camera (tests/soak/screenshots.py) in Debian's Chromium: it signs in as the soak's
operator and saves full-page screenshots of every /ops page at 1280 px and 375 px, plus the dead
part of a queue that has dead letters; a missing Chromium is a note, not an error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from auth.admins import create_admin
from configs.settings import Settings
from tests.soak.screenshots import ALL_PAGES, WIDTHS, Camera
from tests.soak.tree import OPERATOR_EMAIL, STAFF_PASSWORD
from tests.support.queues import ACTOR, POISON, QUEUE, poisoned, running_worker
from tests.support.waiting import eventually
from web.app import create_app

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def shop_with_a_dead_letter(settings: Settings, fresh_db: str) -> AsyncIterator[str]:
    """The app on a free port, its operator account, and one message in QUEUE's dead part."""
    await create_admin(
        fresh_db, email=OPERATOR_EMAIL, name="Operator", password=STAFF_PASSWORD, role="ops"
    )
    with poisoned(settings) as broker:
        with running_worker(broker):
            await asyncio.to_thread(
                broker.get_actor(ACTOR).send_with_options, kwargs={"item": "bad"}, max_retries=0
            )
            assert await eventually(lambda: len(POISON.attempts) == 1, timeout=20)
            await asyncio.sleep(0.3)
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield f"http://{host}:{port}"
        finally:
            await runner.cleanup()


async def test_the_camera_shoots_every_ops_page_at_both_widths(
    shop_with_a_dead_letter: str, tmp_path: Path
) -> None:
    camera = Camera(tmp_path / "shots", shop_with_a_dead_letter)
    assert await camera.open(), camera.notes
    try:
        camera.shoot_soon("mid-load", tuple(ALL_PAGES))
    finally:
        await camera.close()
    expected = {
        tmp_path / "shots" / "mid-load" / f"{name}-{width}.png"
        for name in (*ALL_PAGES, "queue-dead")
        for width in WIDTHS
    }
    assert set(camera.paths) == expected, camera.summary()
    for path in expected:
        assert path.read_bytes().startswith(PNG), path
    assert str(expected.pop()) in camera.summary()
    assert camera.dead_parts == [f"/ops/queues/{QUEUE}?part=dead"]


async def test_without_chromium_the_camera_says_so_and_takes_nothing(
    base_url: str, tmp_path: Path
) -> None:
    camera = Camera(tmp_path / "shots", base_url, chromium=tmp_path / "no-chromium")
    assert not await camera.open()
    camera.shoot_soon("mid-load", tuple(ALL_PAGES))
    await camera.close()
    assert camera.paths == []
    assert "no Chromium at" in camera.summary()
