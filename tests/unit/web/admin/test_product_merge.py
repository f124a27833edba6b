"""product_merge.merge: three texts per field (posted, as opened, stored now) decide each field."""

from __future__ import annotations

from web.admin.product_form import ProductForm
from web.admin.product_merge import merge, snapshot

OPENED_VALUES = {"slug": "mug", "name": "Mug", "description": "", "is_published": "on"}
OPENED_ROWS = [
    {"index": "0", "id": "7", "sku": "MUG-1", "price": "10.00", "currency": "EUR", "stock": "5"},
    {"index": "1", "currency": "EUR"},  # the blank row for a new variant
]


def posted(values: dict[str, str], rows: list[dict[str, str]]) -> ProductForm:
    return ProductForm(
        values={**values, "csrf_token": "t"},
        rows=[dict(row) for row in rows],
        original=snapshot(OPENED_VALUES, OPENED_ROWS),
    )


def test_untouched_fields_take_what_is_stored_now_and_changed_ones_are_kept() -> None:
    form = posted({**OPENED_VALUES, "name": "Blue mug"}, OPENED_ROWS)
    now_rows = [{**OPENED_ROWS[0], "price": "8.40", "stock": "3"}]
    merged = merge(form, {**OPENED_VALUES, "description": "Theirs"}, now_rows)
    assert merged is not None and merged.conflicts == {}
    assert merged.values["name"] == "Blue mug" and merged.values["description"] == "Theirs"
    assert merged.rows[0]["price"] == "8.40" and merged.rows[0]["stock"] == "3"
    assert merged.rows[1] == {"index": "1", "currency": "EUR"}  # a new row goes as posted
    assert merged.values["csrf_token"] == "t"  # not a product field: left alone
    assert merged.posted()["v-0-stock"] == "3" and merged.posted()["name"] == "Blue mug"


def test_the_same_change_made_twice_is_no_conflict_and_different_ones_are() -> None:
    rows = [{**OPENED_ROWS[0], "price": "9.00", "stock": "6"}, OPENED_ROWS[1]]
    form = posted({**OPENED_VALUES, "is_published": ""}, rows)
    now_rows = [{**OPENED_ROWS[0], "price": "9.00", "stock": "4"}]
    merged = merge(form, {**OPENED_VALUES, "is_published": ""}, now_rows)
    assert merged is not None
    assert merged.conflicts == {"v-0-stock": merged.conflicts["v-0-stock"]}
    assert "\u201c4\u201d" in merged.conflicts["v-0-stock"]
    assert merged.rows[0]["stock"] == "6"  # the editor's value stays in the form


def test_stock_that_orders_moved_to_the_typed_number_is_still_a_conflict() -> None:
    # The editor typed 11 over a shown 5 (six more on the shelf); meanwhile a cancellation put
    # six back (5 -> 11). Taking that for "the same change" would lose one of the two sixes.
    rows = [{**OPENED_ROWS[0], "stock": "11"}, OPENED_ROWS[1]]
    merged = merge(posted(OPENED_VALUES, rows), OPENED_VALUES, [{**OPENED_ROWS[0], "stock": "11"}])
    assert merged is not None and merged.conflicts.keys() == {"v-0-stock"}
    assert merged.rows[0]["stock"] == "11"  # shown again; saving again means "mine"


def test_attributes_merge_a_cleared_value_conflicts_in_words_a_checkbox_never() -> None:
    opened = {**OPENED_VALUES, "attr-colour": "blue"}
    form = ProductForm(
        values={**opened, "attr-colour": "navy", "is_published": ""},
        rows=[dict(OPENED_ROWS[0])],
        original=snapshot(opened, OPENED_ROWS),
    )
    merged = merge(form, {**OPENED_VALUES, "is_published": "on"}, [OPENED_ROWS[0]])
    assert merged is not None and merged.conflicts.keys() == {"attr-colour"}
    assert "cleared" in merged.conflicts["attr-colour"]
    assert merged.values["is_published"] == ""  # two states: changing it cannot conflict


def test_rows_removed_or_deleted_meanwhile_are_left_as_posted() -> None:
    removing = [{**OPENED_ROWS[0], "remove": "on", "price": "1.00"}]
    merged = merge(posted(OPENED_VALUES, removing), OPENED_VALUES, [])
    assert merged is not None and merged.conflicts == {} and merged.rows == removing


def test_without_a_readable_original_there_is_nothing_to_merge() -> None:
    for original in ("", "not json", '{"values": []}', '{"rows": {}}', "[]"):
        form = ProductForm(values=dict(OPENED_VALUES), rows=[], original=original)
        assert merge(form, OPENED_VALUES, []) is None
