"""One simulated user's HTTP client: its own cookie jar and address, every hop recorded.

Each request goes to one of the web processes, of every machine, at random, as a load balancer
would send it (the cookies are the host's, so a session works on all of them); a web that refuses
the connection (its machine lost) is passed over for another, as NGINX does. Redirects are
followed by hand so that every hop is recorded with its own status and timing. The user's address
travels in X-Forwarded-For, as NGINX would send it (the processes trust it), so throttles count
each simulated user apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from tests.soak.journal import Journal, RequestRecord

REQUEST_TIMEOUT_SECONDS = 30.0  # past 10 s a request already breaks the first invariant
MAX_REDIRECTS = 5
CANCELLED = "cancelled: the load stopped while it waited"


@dataclass
class Answer:
    """The last hop's answer, and the statuses of the hops before it."""

    status: int | None  # None: no answer
    path: str  # the path that gave this answer
    text: str = ""
    headers: CIMultiDictProxy[str] | CIMultiDict[str] = field(default_factory=CIMultiDict)
    history: list[int] = field(default_factory=list)  # statuses of the redirects followed

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def redirected(self) -> bool:
        return bool(self.history)

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None


class Client:
    def __init__(
        self,
        actor: str,
        ports: list[int],
        journal: Journal,
        rng: random.Random,
        address: str,
    ) -> None:
        self.actor = actor
        self.ports = ports
        self.journal = journal
        self.rng = rng
        self.address = address
        self.headers: dict[str, str] = {}  # sent with every request (a bearer token)
        self._count = 0
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies of 127.0.0.1 are kept
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
        )

    async def close(self) -> None:
        await self.session.close()

    def cookie(self, name: str) -> str | None:
        found = [c.value for c in self.session.cookie_jar if c.key == name]
        return found[0] if found else None

    async def get(self, path: str, **options: Any) -> Answer:
        return await self.request("GET", path, **options)

    async def post(self, path: str, **options: Any) -> Answer:
        return await self.request("POST", path, **options)

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: Any = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        follow: bool = True,
    ) -> Answer:
        """Send one request (following redirects unless `follow` is False); never raises for
        a failed request: the answer's status is None then, and the journal has the error."""
        history: list[int] = []
        for _ in range(MAX_REDIRECTS + 1):
            answer = await self._hop(method, path, data, json_body, headers)
            location = answer.headers.get("Location")
            if not follow or answer.status not in (301, 302, 303, 307, 308) or not location:
                answer.history = history
                return answer
            history.append(answer.status)
            path = _path_of(urljoin(path, location))
            if answer.status in (301, 302, 303):
                method, data, json_body = "GET", None, None
        answer.history = history
        return answer

    async def _hop(
        self,
        method: str,
        path: str,
        data: Any,
        json_body: Any,
        headers: dict[str, str] | None,
    ) -> Answer:
        self._count += 1
        request_id = f"soak-{self.actor}-{self._count}"
        # The balancer in front of the machines: a web that refuses the connection (its machine
        # is down) is skipped for the next one, as NGINX's proxy_next_upstream does on "error".
        # The request was never sent, so even a POST may go on; one sent and cut is not retried.
        ports = self.rng.sample(self.ports, len(self.ports))
        sent = {"X-Forwarded-For": self.address, "X-Request-ID": request_id, **self.headers}
        sent.update(headers or {})
        record = RequestRecord(
            self.actor, method, path, ports[0], request_id, time.time(), 0.0, None
        )
        self.journal.requests.append(record)
        try:
            for port in ports[:-1]:
                record.port = port
                with contextlib.suppress(aiohttp.ClientConnectorError):
                    return await self._send(record, method, path, data, json_body, sent)
            record.port = ports[-1]
            return await self._send(record, method, path, data, json_body, sent)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            record.error = repr(exc)[:200]
            return Answer(None, path)
        except asyncio.CancelledError:
            record.error = CANCELLED
            raise
        finally:
            record.ended = time.time()

    async def _send(
        self,
        record: RequestRecord,
        method: str,
        path: str,
        data: Any,
        json_body: Any,
        headers: dict[str, str],
    ) -> Answer:
        async with self.session.request(
            method,
            f"http://127.0.0.1:{record.port}{path}",
            data=data,
            json=json_body,
            headers=headers,
            allow_redirects=False,
        ) as response:
            text = await response.text(errors="replace")
            record.status = response.status
            record.retry_after = response.headers.get("Retry-After")
            record.error = None
            return Answer(response.status, path, text, response.headers)


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
