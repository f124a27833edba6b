"""Waiting for something that happens in another thread, process or server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    """Poll `predicate` every 50 ms until it is true (True) or `timeout` seconds pass (False)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
