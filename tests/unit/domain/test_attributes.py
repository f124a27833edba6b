"""Attribute values as people read them."""

from __future__ import annotations

from domain.attributes import value_text, yes_no


def test_booleans_read_yes_or_no_whatever_the_kind_says() -> None:
    assert value_text(True, kind="boolean") == "Yes"
    assert value_text(False, kind="boolean") == "No"
    assert value_text(True, kind="text") == "Yes"  # a JSON true is never "True"
    assert value_text("false", kind="boolean") == "No"  # a facet's value, as search keeps it
    assert value_text("true", kind="boolean") == "Yes"
    assert (yes_no(1), yes_no(0), yes_no(None)) == ("Yes", "No", "No")


def test_choices_read_as_their_names_numbers_with_their_units() -> None:
    names = {"navy": "Navy blue", "red": "Red"}
    assert value_text("navy", kind="choice", choices=names) == "Navy blue"
    assert value_text("gone", kind="choice", choices=names) == "gone"  # a choice since deleted
    assert value_text(["red", "navy"], kind="choice", choices=names) == "Red, Navy blue"
    assert value_text(350, kind="number", unit="ml") == "350 ml"
    assert value_text(2.5, kind="number") == "2.5"
    assert value_text("Cotton", kind="text") == "Cotton"
