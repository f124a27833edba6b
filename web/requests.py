"""Facts about the client behind a request."""

from __future__ import annotations

from aiohttp import web

from web.keys import SETTINGS
from web.params import header_text, opaque


def client_ip(request: web.Request) -> str:
    """The client's address: NGINX's last X-Forwarded-For hop when the proxy is trusted.

    Only the rightmost entry is ours (NGINX appends the address it saw); the ones before it are
    whatever the client chose to send.
    """
    if request.config_dict[SETTINGS].trust_forwarded_headers:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops and opaque(hops[-1], max_length=64):  # an address, not bytes to key a throttle
            return hops[-1]
    return request.remote or "unknown"


def user_agent(request: web.Request) -> str:
    """The User-Agent as a session records it: readable text, at most 300 characters."""
    return header_text(request.headers.get("User-Agent"), 300)
