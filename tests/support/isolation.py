"""Each test run gets a RabbitMQ vhost and a Redis database of its own, so that two runs on one
machine (two checkouts, CI beside a developer) never flush or consume each other's messages.

The vhost is created with the management API when the plugin answers, else with `rabbitmqctl`
(root, or the RabbitMQ user, on the broker's machine), and deleted at the end of the run. The
Redis database is claimed with a key in database 0 that expires, so a run that died frees its
database within the hour.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from base64 import b64encode
from dataclasses import dataclass
from urllib.error import URLError
from urllib.parse import quote, urlsplit, urlunsplit
from urllib.request import Request, urlopen

import redis

CLAIM_SECONDS = 3600
MANAGEMENT_PORT = 15672
COMMAND_TIMEOUT_SECONDS = 30


class IsolationError(RuntimeError):
    """No vhost or no Redis database could be had for this run."""


@dataclass
class RedisClaim:
    """A Redis database this run holds (`url`), until `release`."""

    url: str
    key: str
    admin_url: str

    def release(self) -> None:
        with redis.Redis.from_url(self.admin_url, socket_connect_timeout=2) as client:
            client.delete(self.key)


def claim_redis_database(base_url: str, run_id: str) -> RedisClaim:
    """The first of databases 1-15 no other run holds; `base_url`'s own database is ignored."""
    parts = urlsplit(base_url)
    admin_url = urlunsplit(parts._replace(path="/0"))
    try:
        with redis.Redis.from_url(admin_url, socket_connect_timeout=2) as client:
            for index in range(1, 16):
                key = f"aioshop-tests:db:{index}"
                if client.set(key, run_id, nx=True, ex=CLAIM_SECONDS):
                    url = urlunsplit(parts._replace(path=f"/{index}"))
                    return RedisClaim(url, key, admin_url)
    except redis.RedisError as exc:
        raise IsolationError(f"Redis is not reachable at {admin_url}: {exc!r}") from exc
    raise IsolationError("every Redis database 1-15 is held by another test run")


@dataclass
class Vhost:
    """A RabbitMQ vhost this run created (`url`: the broker URL pointing at it)."""

    name: str
    url: str
    base_url: str

    def delete(self) -> None:
        _management(self.base_url, "DELETE", f"/api/vhosts/{quote(self.name, safe='')}") or _ctl(
            "delete_vhost", self.name
        )


def create_vhost(base_url: str, run_id: str) -> Vhost:
    """A new vhost `aioshop-tests-<run id>`, the URL's user allowed everything in it."""
    name = f"aioshop-tests-{run_id}"
    parts = urlsplit(base_url)
    user = parts.username or "guest"
    path = f"/{quote(name, safe='')}"
    created = _management(base_url, "PUT", f"/api/vhosts{path}") and _management(
        base_url,
        "PUT",
        f"/api/permissions{path}/{quote(user, safe='')}",
        b'{"configure":".*","write":".*","read":".*"}',
    )
    if not created:
        _ctl("add_vhost", name)
        _ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
    return Vhost(name, urlunsplit(parts._replace(path=path)), base_url)


def new_run_id() -> str:
    """A short id for this run: the process id and a random part."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _management(base_url: str, method: str, path: str, body: bytes | None = None) -> bool:
    """Call RabbitMQ's management API next to the broker; False when it does not answer."""
    parts = urlsplit(base_url)
    credentials = f"{parts.username or 'guest'}:{parts.password or 'guest'}".encode()
    request = Request(
        f"http://{parts.hostname}:{MANAGEMENT_PORT}{path}",
        data=body,
        method=method,
        headers={
            "Authorization": f"Basic {b64encode(credentials).decode()}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urlopen(request, timeout=5) as response:  # noqa: S310
            return 200 <= response.status < 300
    except (URLError, OSError):
        return False


def _ctl(*arguments: str) -> None:
    command = shutil.which("rabbitmqctl")
    if command is None:
        raise IsolationError(
            "RabbitMQ's management API does not answer and rabbitmqctl is not installed: "
            "enable the management plugin or run the tests on the broker's machine"
        )
    result = subprocess.run(
        [command, "-q", *arguments],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise IsolationError(f"rabbitmqctl {' '.join(arguments)}: {result.stderr.strip()}")
