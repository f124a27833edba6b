"""What a request carries besides its body model, parsed strictly: path ids, query values,
keyset positions ("Older" links), tokens in headers and cookies, and the shape of a JSON body.

Every edge (api, store, admin, ops) reads these through here, so one rule holds everywhere: a
value that cannot reach the database as it is (a NUL, an id past a bigint, '²' where digits go,
a forged position) is refused with a 4xx naming it, never a 500. The pydantic field types of
bodies and forms are web.fields; whole numbers and text follow the same rules there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy

from web.fields import BIGINT_MAX, CONTROL, text_problem, whole_number

MAX_JSON_DEPTH = 32
ORDER_NUMBER = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")
# datetime.isoformat() of an aware datetime, which is how positions are written. Python reads
# much more ('2024-W01-1', '20240101'), and PostgreSQL not all of it.
TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?[+-][0-9]{2}:[0-9]{2}"
)
KEYSET = re.compile(r"(?P<at>[^,]{1,40}),(?P<id>[0-9]{1,19})")
ASCII_INTEGER = re.compile(r"-?[0-9]+")
TOKEN = re.compile(r"[!-~]+")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class InvalidParameters(Exception):
    """Query parameters that cannot be used; `errors` maps each parameter to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


# -- the path ----------------------------------------------------------------------------------


def path_id(request: web.Request, name: str = "id") -> int:
    """The path's `{name}` as a bigint id; 404 unless it is 1 to 2**63-1 in ASCII digits."""
    value = whole_number(request.match_info[name], 1, BIGINT_MAX)
    if value is None:
        raise web.HTTPNotFound()
    return value


def path_order_number(request: web.Request, name: str = "number") -> str:
    """The path's order number, upper-cased; 404 unless it has the shape of one."""
    number = request.match_info[name].upper()
    if ORDER_NUMBER.fullmatch(number) is None:
        raise web.HTTPNotFound()
    return number


# -- the query ---------------------------------------------------------------------------------


def query_int(
    query: Mapping[str, str], name: str, low: int, high: int, errors: dict[str, str]
) -> int | None:
    """The whole number `name` (ASCII digits, `low` to `high`, both at least 0), None when
    absent; a bad one is noted in `errors`."""
    raw = query.get(name)
    if raw is None:
        return None
    value = whole_number(raw, low, high)
    if value is None:
        digits = ASCII_INTEGER.fullmatch(raw) is not None
        errors[name] = f"must be between {low} and {high}" if digits else "must be a whole number"
    return value


def query_text(query: Mapping[str, str], name: str, max_length: int, errors: dict[str, str]) -> str:
    """The text `name`, stripped ("" when absent); too long or with control characters is
    noted in `errors`."""
    text = query.get(name, "").strip()
    problem = text_problem(text)
    if len(text) > max_length:
        problem = f"at most {max_length} characters"
    if problem is not None:
        errors[name] = problem
        return ""
    return text


def query_bool(query: Mapping[str, str], name: str, errors: dict[str, str]) -> bool | None:
    """true/false (also 1/0, yes/no) for `name`, None when absent."""
    raw = query.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    errors[name] = "must be true or false"
    return None


# -- forms -------------------------------------------------------------------------------------


async def posted_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | FileField]:
    """The posted form (aiohttp keeps it: a second call reads nothing); 400 when its bytes are
    not text in its charset, which aiohttp raises as a decoding error."""
    try:
        return await request.post()
    except (UnicodeDecodeError, LookupError):  # bytes not in its charset, or no such charset
        raise web.HTTPBadRequest(text="The form could not be read as text.") from None


# -- headers and cookies ----------------------------------------------------------------------


def opaque(value: str | None, max_length: int = 4096) -> str | None:
    """A token from a header or cookie (bearer, refresh, CSRF, cart...), or None unless it is
    printable ASCII without spaces. aiohttp hands bytes that are not UTF-8 over as lone
    surrogates, which neither a digest, a comparison nor a Set-Cookie can take."""
    if value is None or len(value) > max_length or TOKEN.fullmatch(value) is None:
        return None
    return value


def header_text(value: str | None, max_length: int) -> str:
    """A header kept for people to read (User-Agent): undecodable bytes and control characters
    become "?", cut at `max_length`. Never refused: it describes the client, it asks nothing."""
    if not value:
        return ""
    cleaned = value.encode("utf-8", "replace").decode("utf-8")[:max_length]
    return CONTROL.sub("?", cleaned)


# -- positions ---------------------------------------------------------------------------------


def timestamp(text: str) -> datetime:
    """An aware timestamp as `datetime.isoformat()` writes it; ValueError for anything else,
    including moments a bigint of microseconds from 2000 cannot hold once in UTC."""
    if TIMESTAMP.fullmatch(text) is None:
        raise ValueError(text)
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError:
        raise ValueError(text) from None


def keyset(raw: str) -> tuple[datetime, int]:
    """An "Older" link's position, `<timestamp>,<id>` (keyset_text); ValueError when forged."""
    match = KEYSET.fullmatch(raw)
    if match is None:
        raise ValueError(raw)
    last_id = whole_number(match["id"], 1, BIGINT_MAX)
    if last_id is None:
        raise ValueError(raw)
    return timestamp(match["at"]), last_id


def keyset_text(at: datetime, last_id: int) -> str:
    """The position after the row (at, last_id), for the next page's link."""
    return f"{at.isoformat()},{last_id}"


# -- JSON bodies -------------------------------------------------------------------------------


def load_json(raw: bytes) -> Any:
    """The JSON document in `raw`; 400 when it is not one or nests deeper than MAX_JSON_DEPTH.

    orjson refuses NaN, Infinity and numbers beyond a double, and reads integers past 64 bits
    as floats (which no strict integer field accepts): nothing unbounded reaches a handler.
    """
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"the body is not valid JSON: {exc}") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise web.HTTPBadRequest(text=f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def json_problems(data: Any) -> dict[str, str]:
    """Values no column can take, by path ("lines.0.sku"): text with a NUL (in a key too) and
    integers past 64 bits. Field types catch the rest, with the field's own bounds."""
    problems: dict[str, str] = {}
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if "\x00" in key:
                    problems[path or "body"] = "a key must not contain a NUL character"
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend(
                (f"{path}.{index}" if path else str(index), v) for index, v in enumerate(value)
            )
        elif isinstance(value, str) and "\x00" in value:
            problems[path or "body"] = "must not contain a NUL character"
        elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            problems[path or "body"] = "is too large a number"
    return problems


def _depth(data: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
    return deepest
