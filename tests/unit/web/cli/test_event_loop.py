"""EVENT_LOOP: which event loop `aioshop web` and `aioshop relay` run on (web.cli.main)."""

from __future__ import annotations

import asyncio

import uvloop

from web.cli.main import loop_factory


def test_auto_and_uvloop_choose_uvloop_and_asyncio_the_default_loop() -> None:
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None  # asyncio.Runner's own loop


def test_the_chosen_loop_runs_a_coroutine() -> None:
    factory = loop_factory("auto")
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:
        loop = runner.run(_running_loop())
    assert isinstance(loop, uvloop.Loop)


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()
