"""Waiting for something that happens in another thread, process or server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll `predicate` every 50 ms until it is true (True) or `timeout` seconds pass (False)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def until(check: Callable[[], Awaitable[bool]], timeout: float, every: float = 0.05) -> bool:
    """Await `check()` every `every` s until it is true (True) or `timeout` s pass (False)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(every)
    return True


async def get_loop(base: str, stop: asyncio.Event) -> tuple[int, list[str]]:
    """GET `base`/healthz over and over (keep-alive, as a browser; a self-signed certificate
    accepted) until `stop`: (answers, failures)."""
    answered, failures = 0, []
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=False), timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        while not stop.is_set():
            try:
                async with session.get(f"{base}/healthz") as response:
                    await response.read()
                    if response.status == 200:
                        answered += 1
                    else:
                        failures.append(f"status {response.status}")
            except aiohttp.ClientError as exc:
                failures.append(repr(exc))
    return answered, failures
