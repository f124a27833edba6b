"""The shared validators of the web edge (web.fields, web.params): what they let through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiohttp import web
from pydantic import BaseModel, ValidationError

from configs.logging import redact_text
from web.fields import FormId, FormPrice, Id, Line100, Note, text_problem, whole_number
from web.listing import encode_cursor, parse_listing
from web.params import (
    MAX_JSON_DEPTH,
    InvalidParameters,
    header_text,
    json_problems,
    keyset,
    keyset_text,
    load_json,
    opaque,
)


class Shapes(BaseModel):
    id: Id | None = None
    form_id: FormId | None = None
    price: FormPrice | None = None
    name: Line100 | None = None
    note: Note | None = None


@pytest.mark.parametrize(
    "text", ["١٢٣", "²", "\uff11\uff12", " 12", "1_000", "+5", "12.0", "", "9" * 20]
)
def test_whole_numbers_are_ascii_digits_only(text: str) -> None:
    assert whole_number(text) is None


def test_whole_numbers_stay_in_their_range() -> None:
    assert whole_number("9223372036854775807") == 2**63 - 1
    assert whole_number("9223372036854775808") is None
    assert whole_number("0", 1) is None


def test_text_may_not_hold_control_characters() -> None:
    assert text_problem("a\x00b") == "must not contain a NUL character"
    assert text_problem("a\x07b") == "must not contain control characters"
    assert text_problem("two\nlines") is not None
    assert text_problem("two\nlines\tand a tab", multiline=True) is None
    assert text_problem("Zoë — naïve") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "5"),  # a string where JSON has a number
        ("id", True),
        ("id", 2**63),
        ("id", 0),
        ("id", 1.5),
        ("form_id", "١٢٣"),
        ("form_id", "²"),
        ("form_id", "9" * 25),
        ("price", "١٢"),
        ("price", "1e3"),
        ("price", "-1"),
        ("name", "   "),
        ("name", "a\x00b"),
        ("name", "two\nlines"),
        ("note", "a\x00b"),
    ],
)
def test_fields_refuse(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Shapes.model_validate({field: value})


def test_fields_accept() -> None:
    shapes = Shapes.model_validate(
        {"id": 45.0, "form_id": " 42 ", "price": "12.50", "name": " Ada ", "note": "a\nb"}
    )
    assert (shapes.id, shapes.form_id, str(shapes.price), shapes.name) == (45, 42, "12.50", "Ada")


def test_keysets_are_read_strictly() -> None:
    at = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert keyset(keyset_text(at, 42)) == (at, 42)
    for forged in (
        "2024-W01-1,1",
        "20240101T000000+0000,1",
        "2024-01-01T00:00:00,1",  # no offset
        "0001-01-01T00:00:00+14:00,1",  # before year 1 in UTC
        "2024-01-01T00:00:00+00:00,0",
        f"2024-01-01T00:00:00+00:00,{2**63}",
        "2024-01-01T00:00:00+00:00,\u0661",
        "",
    ):
        with pytest.raises(ValueError, match=r".*"):
            keyset(forged)


def test_cursors_hold_only_what_the_backends_write() -> None:
    good = encode_cursor("newest", ("newest", "2024-05-01T10:00:00+00:00", 7))
    assert parse_listing({"cursor": good}).after == ("newest", "2024-05-01T10:00:00+00:00", 7)
    forged = (
        ("newest", ("newest", "2024-W01-1", 1)),
        ("newest", ("newest", "2024-05-01T10:00:00+00:00", 2**63)),
        ("newest", ("newest", "2024-05-01T10:00:00+00:00", True)),
        ("price_asc", ("price_asc", 2**63, 1)),
        ("price_asc", ("price_asc", -2, 1)),
        ("name", ("name", "a\x00b", 1)),
        ("name", ("name", "x" * 1001, 1)),
        ("newest", ("price_asc", 5, 1)),
    )
    for sort, after in forged:
        with pytest.raises(InvalidParameters) as caught:
            parse_listing({"sort": "newest", "cursor": encode_cursor(sort, after)})
        assert "cursor" in caught.value.errors


def test_json_bodies_are_bounded() -> None:
    assert load_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    for raw in (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), b"1e400", b"{"):
        with pytest.raises(web.HTTPBadRequest):
            load_json(raw)
    assert json_problems({"a": [{"b": "x\x00"}], "c\x00": 1, "n": 2**63, "m": -(2**63)}) == {
        "a.0.b": "must not contain a NUL character",
        "body": "a key must not contain a NUL character",
        "n": "is too large a number",
    }


def test_header_tokens_are_printable_ascii() -> None:
    assert opaque("abc-DEF_123.~") == "abc-DEF_123.~"
    for sent in ("\udcff\udcfe", "a b", "a\x01b", "", "x" * 5000, None):
        assert opaque(sent) is None
    assert header_text("Mozilla\udcff\x00", 300) == "Mozilla??"


def test_secrets_are_redacted_from_text() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    for text, secret in (
        (f"Authorization: Bearer {jwt}", jwt),
        (f"token {jwt} seen", jwt),
        ("GET /reset-password?token=AbC123-_xyz&next=/", "AbC123-_xyz"),
        ("paid with 4242 4242 4242 4242 today", "4242 4242 4242 4242"),
        ("paid with 4000-0000-0000-0002", "4000-0000-0000-0002"),
        ("{'aioshop-refresh': 'opaque-refresh-value'}", "opaque-refresh-value"),
        ("refresh_token=opaque-refresh-value", "opaque-refresh-value"),
        ("Cookie: aioshop-access=a; aioshop-csrf=b", "aioshop-access=a"),
    ):
        assert secret not in redact_text(text), text
    kept = "order 1733556771000 at 2026-12-07T07:12:51Z, request 0123456789abcdef0123456789ab"
    assert redact_text(kept) == kept  # ids and timestamps that fail the Luhn check stay
