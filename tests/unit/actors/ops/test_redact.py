"""Secrets hidden from the arguments operators see."""

from __future__ import annotations

from actors.ops.redact import REDACTED, VALUE_CHARS, arguments, is_secret, redact


def test_names_that_look_like_secrets() -> None:
    for name in (
        "password",
        "new_password",
        "api_key",
        "Token",
        "client_secret",
        "card",
        "cvc",
        "Authorization",
        "session_id",
        "refresh_token",
        "cookie",
    ):
        assert is_secret(name), name
    for name in ("order_id", "kind", "item", "email", "product_id", "variant_ids"):
        assert not is_secret(name), name


def test_nested_values_are_redacted_and_cut() -> None:
    shown = redact({"outer": {"password": "p", "list": [{"token": "t"}]}, "text": "y" * 500})
    assert shown["outer"]["password"] == REDACTED
    assert shown["outer"]["list"][0]["token"] == REDACTED
    assert len(shown["text"]) == VALUE_CHARS


def test_arguments_line() -> None:
    line = arguments([1, {"secret": "s"}], {"order_id": 7, "card_number": "4242"})
    assert line == f"1, {{'secret': '{REDACTED}'}}, order_id=7, card_number={REDACTED}"
