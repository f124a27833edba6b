"""docs/mobile-app.md, run: every request of the guide is sent in order to the app, and each
answer must be the one the guide shows (its status, the headers shown, the JSON fields shown).

The guide's notation: a ```http block holds a request (`METHOD /path`, headers, a blank line,
a body) or an answer (`HTTP/1.1 NNN ...`, headers, a blank line, JSON). In an answer, a value
written `{{name}}` is kept for later requests (`{{name}}` there is replaced by it); seen again,
it must be the same value, except a token (`..._token`), which the newer answer replaces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.orders import stocked_product

GUIDE = Path(__file__).parents[3] / "docs" / "mobile-app.md"
BLOCK = re.compile(r"^```http\n(.*?)^```", re.DOTALL | re.MULTILINE)
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
WHOLE_PLACEHOLDER = re.compile(r"^\{\{(\w+)\}\}$")
TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: str


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: Any  # the JSON shown, or None


@dataclass
class Kept:
    values: dict[str, Any] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            assert name in self.values, f"{{{{{name}}}}} is used before an answer gave it"
            return str(self.values[name])

        return PLACEHOLDER.sub(value, text)

    def match(self, shown: Any, actual: Any, where: str) -> None:
        """`actual` has what `shown` shows (dicts: the keys shown; lists: the items shown)."""
        if isinstance(shown, str) and (placeholder := WHOLE_PLACEHOLDER.match(shown)):
            name = placeholder.group(1)
            if name in self.values and not name.endswith("_token"):
                assert actual == self.values[name], f"{where}: {actual!r} is not {name}"
            self.values[name] = actual
        elif isinstance(shown, dict):
            assert isinstance(actual, dict), f"{where}: {actual!r} is not an object"
            for key, value in shown.items():
                assert key in actual, f"{where}: no {key!r} in {actual!r}"
                self.match(value, actual[key], f"{where}.{key}")
        elif isinstance(shown, list):
            assert isinstance(actual, list) and len(actual) >= len(shown), f"{where}: {actual!r}"
            for index, value in enumerate(shown):
                self.match(value, actual[index], f"{where}[{index}]")
        else:
            assert actual == shown, f"{where}: {actual!r}, the guide shows {shown!r}"


def _head_and_body(block: str) -> tuple[list[str], str]:
    head, _, body = block.partition("\n\n")
    return head.strip().splitlines(), body.strip()


def _headers(lines: list[str]) -> list[tuple[str, str]]:
    pairs = [line.split(":", 1) for line in lines]
    assert all(len(pair) == 2 for pair in pairs), lines
    return [(name.strip(), value.strip()) for name, value in pairs]


def parse(text: str) -> list[tuple[Request, Answer]]:
    """The guide's requests, each with the answer shown after it."""
    blocks = BLOCK.findall(text)
    assert blocks and len(blocks) % 2 == 0, "every request is followed by its answer"
    steps = []
    for request_block, answer_block in zip(blocks[::2], blocks[1::2], strict=True):
        head, body = _head_and_body(request_block)
        method, target = head[0].split(" ", 1)
        assert method in {"GET", "POST", "PATCH", "PUT", "DELETE"}, head[0]
        request = Request(method, target.strip(), _headers(head[1:]), body)
        head, body = _head_and_body(answer_block)
        assert head[0].startswith("HTTP/1.1 "), f"an answer must follow {request}: {head[0]}"
        status = int(head[0].split()[1])
        steps.append((request, Answer(status, _headers(head[1:]), json.loads(body or "null"))))
    return steps


@pytest.fixture
async def app_url(client: Any, fresh_db: str) -> str:
    """The app with one product in stock, as the guide's first request finds it."""
    await stocked_product(fresh_db, "linen-shirt", {"LINEN-SHIRT-M": 5}, price=4900)
    return str(client.make_url("")).rstrip("/")


async def test_the_guide_runs_as_written(app_url: str) -> None:
    kept = Kept()
    # No cookie jar: an app has none, and a cookie must not stand in for the cart token.
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(), timeout=TIMEOUT
    ) as session:
        for number, (request, answer) in enumerate(parse(GUIDE.read_text()), start=1):
            where = f"request {number} ({request.method} {request.target})"
            body = kept.fill(request.body)
            async with session.request(
                request.method,
                app_url + kept.fill(request.target),
                headers=[(name, kept.fill(value)) for name, value in request.headers],
                data=body.encode() if body else None,
            ) as resp:
                text = await resp.text()
                assert resp.status == answer.status, f"{where}: {resp.status} {text}"
                for name, value in answer.headers:
                    assert name in resp.headers, f"{where}: no {name} header"
                    kept.match(value, resp.headers[name], f"{where} {name}")
                if answer.body is not None:
                    kept.match(answer.body, json.loads(text), where)


def test_the_guide_covers_what_an_app_needs() -> None:
    steps = parse(GUIDE.read_text())
    sent = {(request.method, request.target) for request, _ in steps}
    headers = {name for request, _ in steps for name, _ in request.headers}
    assert ("POST", "/api/v1/auth/login") in sent
    assert ("POST", "/api/v1/auth/refresh") in sent
    assert ("POST", "/api/v1/checkout") in sent
    assert ("GET", "{{order_url}}") in sent  # the order's status
    assert {
        "Authorization",
        "X-Cart-Token",
        "X-Order-Token",
        "Idempotency-Key",
        "If-None-Match",
    } <= headers
    placed = [answer for request, answer in steps if request.target == "/api/v1/checkout"]
    assert any(("Idempotent-Replayed", "true") in answer.headers for answer in placed)
    assert any("order_token" in answer.body for answer in placed)  # a guest's


def test_a_changed_answer_fails_the_guide() -> None:
    """The matching is strict: a value that differs, or a field that is missing, fails."""
    kept = Kept({"number": "AAAA-BBBB-CCCC"})
    with pytest.raises(AssertionError):
        kept.match({"status": "pending"}, {"status": "confirmed"}, "answer")
    with pytest.raises(AssertionError):
        kept.match({"number": "{{number}}"}, {"number": "DDDD-EEEE-FFFF"}, "answer")
    with pytest.raises(AssertionError):
        kept.match({"items": [{"sku": "A"}]}, {"items": []}, "answer")
    kept.match({"access_token": "{{access_token}}"}, {"access_token": "one"}, "answer")
    kept.match({"access_token": "{{access_token}}"}, {"access_token": "two"}, "answer")
    assert kept.values["access_token"] == "two"
