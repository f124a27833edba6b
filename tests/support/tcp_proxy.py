"""A TCP proxy in the test process that can cut every connection through it, on demand.

Point a client at `proxy.port` instead of the server's: `cut()` closes every open connection
at once (as a network failure or a restarted server would), `refuse(seconds)` also turns new
connections away for a while, so the client's reconnects fail until the "network" is back, and
`admit_only(n)` lets n more connections through and no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    @classmethod
    def of(cls, url: str, default_port: int) -> TcpProxy:
        """A proxy to the server of a service URL (`url_through` gives the URL via the proxy)."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)

    def url_through(self, url: str) -> str:
        """`url` with its host and port replaced by this proxy's (start it first)."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0  # connections accepted and forwarded
        self.refused = 0  # connections turned away while refusing
        self.cuts = 0  # connections cut by cut()
        self._refuse_until = 0.0
        self._admit: int | None = None  # how many more new connections to let through (None: all)
        self._pipes: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self.cut()
            await self._server.wait_closed()

    def cut(self) -> int:
        """Close every open connection; returns how many were cut."""
        cut = 0
        for writer in list(self._pipes):
            transport = writer.transport
            if not transport.is_closing():
                transport.abort()  # an RST, not a polite close: the peers learn of it abruptly
                cut += 1
        self._pipes.clear()
        self.cuts += cut
        return cut

    def refuse(self, seconds: float) -> None:
        """Cut every connection and turn new ones away for `seconds`."""
        self._refuse_until = time.monotonic() + seconds
        self.cut()

    def admit_only(self, count: int) -> None:
        """Let the next `count` new connections through and turn every later one away (the
        connections open now stay): the server becomes unreachable part-way through a task."""
        self._admit = count

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._admit is not None:
            self._admit -= 1
        if time.monotonic() < self._refuse_until or (self._admit is not None and self._admit < 0):
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        self._pipes.update((writer, up_writer))
        await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        self._pipes.difference_update((writer, up_writer))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.transport.abort()
