"""Facts about the client behind a request."""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from configs.settings import parse_networks
from web.keys import SETTINGS
from web.params import header_text, opaque


def from_trusted_proxy(request: web.Request) -> bool:
    """Whether the request's X-Forwarded-* headers count: TRUST_FORWARDED_HEADERS is on and the
    peer is one of TRUSTED_PROXIES (NGINX), not a client that reached the app another way."""
    settings = request.config_dict[SETTINGS]
    if not settings.trust_forwarded_headers or not request.remote:
        return False
    return _trusted(request.remote, settings.trusted_proxies)


@functools.lru_cache(maxsize=1024)
def _trusted(remote: str, proxies: str) -> bool:
    """Whether the peer `remote` is one of `proxies` (TRUSTED_PROXIES): asked on every response
    behind NGINX (web.cookies.is_secure), whose few addresses make the answers few."""
    try:
        peer = ipaddress.ip_address(remote)
    except ValueError:  # a Unix socket's peer, say
        return False
    return any(peer in network for network in parse_networks(proxies))


def client_ip(request: web.Request) -> str:
    """The client's address: NGINX's last X-Forwarded-For hop when the proxy is trusted.

    Only the rightmost entry is ours (NGINX appends the address it saw); the ones before it are
    whatever the client chose to send.
    """
    if from_trusted_proxy(request):
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops and opaque(hops[-1], max_length=64):  # an address, not bytes to key a throttle
            return hops[-1]
    return request.remote or "unknown"


def user_agent(request: web.Request) -> str:
    """The User-Agent as a session records it: readable text, at most 300 characters."""
    return header_text(request.headers.get("User-Agent"), 300)
