"""A real SMTP server in the test process (aiosmtpd, on its own thread) that keeps what it gets,
and that can be told to refuse mail for a while (a 4xx: the sender must try again later), or
to refuse a recipient with the reply a test chooses."""

from __future__ import annotations

import email
import email.policy
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.waiting import eventually


class _Collect:
    """aiosmtpd handler: parse every accepted message and keep it with its envelope."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.server.refusals.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if time.monotonic() < self.server.refuse_until:
            self.server.refused += 1
            return "451 4.3.2 Service unavailable for now, try again later"
        if self.server.headers_only:  # a benchmark's: its headers, the body left unparsed
            message = BytesHeaderParser(policy=email.policy.default).parsebytes(envelope.content)
        else:
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        # list.append is atomic: the test thread may read while the server thread appends.
        self.server.recipients.append(list(envelope.rcpt_tos))
        self.server.peers.append(session.peer)
        self.server.arrived.append(time.time())
        self.server.messages.append(message)
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on 127.0.0.1: `.url` for SMTP_URL, `.messages` as they arrive
    (`headers_only`: parsed as far as their headers, for a benchmark that reads no body)."""

    def __init__(self, *, headers_only: bool = False) -> None:
        self.headers_only = headers_only
        self.port = _free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []  # the envelope's RCPT TO of each message
        self.peers: list[Any] = []  # the client's (host, port) of each message: its connection
        self.arrived: list[float] = []  # time.time() when each message arrived
        self.refuse_until = 0.0  # time.monotonic() until which every message gets a 451
        self.refused = 0  # messages refused so far
        self.refusals: dict[str, str] = {}  # address -> the reply to its RCPT TO
        self._controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)

    def refuse(self, address: str, reply: str) -> None:
        """Answer RCPT TO `address` with `reply` ("550 5.1.1 No such user"), until `accept`."""
        self.refusals[address] = reply

    def accept(self, address: str) -> None:
        self.refusals.pop(address, None)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def restart(self) -> None:
        """Stop (dropping every client's connection) and listen again on the same port."""
        self.stop()
        self._controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)
        self.start()

    def refuse_all_for(self, seconds: float) -> None:
        """Answer every message with a temporary failure (451) for the next `seconds`."""
        self.refuse_until = time.monotonic() + seconds

    async def wait_for(self, count: int, timeout: float = 15.0) -> bool:
        """Wait until at least `count` messages arrived (True) or `timeout` passes (False)."""
        return await eventually(lambda: len(self.messages) >= count, timeout=timeout)


@contextmanager
def smtp_server(*, headers_only: bool = False) -> Iterator[SmtpServer]:
    """A started SmtpServer, stopped on exit (use it as a fixture body)."""
    server = SmtpServer(headers_only=headers_only)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
