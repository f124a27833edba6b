"""Validation messages for people: pydantic's error types become plain sentences, and the
summary lists a form's errors in the form's order with links to their fields."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from web.admin.messages import Problem, plain, summary
from web.admin.product_form import VariantIn
from web.fields import FormId, FormPrice, FormStock, Line200, Slug


class Sample(BaseModel):
    name: Line200
    slug: Slug
    price: FormPrice
    stock: FormStock
    category_id: FormId | None = None


def errors_of(**data: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate({"name": "Mug", "slug": "mug", "price": "1", "stock": "1", **data})
    return plain(caught.value)


@pytest.mark.parametrize(
    ("data", "field", "sentence"),
    [
        ({"price": "twelve"}, "price", "Enter a price such as 12.50."),
        ({"price": "-1"}, "price", "A price cannot be below 0."),
        ({"price": "99999999999"}, "price", "Enter a price of at most 10,000,000,000."),
        ({"stock": "1.5"}, "stock", "Enter the number in stock, a whole number such as 12."),
        ({"stock": "-3"}, "stock", "Stock cannot be below 0."),
        ({"name": ""}, "name", "Enter a name."),
        ({"name": "x" * 201}, "name", "Use at most 200 characters."),
        ({"slug": "Bad Slug"}, "slug", "Use lowercase letters and digits, words joined by"),
        ({"category_id": "9" * 20}, "category_id", "Choose a category from the list."),
    ],
)
def test_pydantic_errors_become_plain_sentences(data, field: str, sentence: str) -> None:
    message = errors_of(**data)[field]
    assert message.startswith(sentence)
    for jargon in ("Input should", "String should", "valid decimal", "pattern", "^"):
        assert jargon not in message


def test_a_missing_field_asks_for_it() -> None:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate({})
    errors = plain(caught.value)
    assert errors["name"] == "Enter a name."
    assert errors["price"] == "Enter a price such as 12.50."
    assert errors["slug"].startswith("Enter a slug such as blue-mug")


def test_a_variant_row_field_is_worded_by_its_kind() -> None:
    with pytest.raises(ValidationError) as caught:
        VariantIn.model_validate(
            {"sku": "mug 1", "currency": "EUR", "price": "1.234", "stock": "x"}
        )
    errors = plain(caught.value)
    assert errors["sku"].startswith("Use capital letters, digits")
    assert errors["price"] == "EUR prices have at most 2 decimal places."  # ours, kept
    assert errors["stock"].startswith("Enter the number in stock")


def test_the_summary_follows_the_form_order_and_links_each_field() -> None:
    errors = {"v-0-price": "P.", "name": "N.", "form": "Reload.", "variants": "V.", "odd": "O."}
    problems = summary(
        errors,
        [("name", "Name"), ("slug", "Slug"), ("variants", "Variants"), ("v-0-price", "Price")],
        {"variants": "variants"},
    )
    assert problems == [
        Problem(None, "", "Reload."),
        Problem("f-name", "Name", "N."),
        Problem("variants", "Variants", "V."),
        Problem("f-v-0-price", "Price", "P."),
        Problem("f-odd", "odd", "O."),  # a field the order does not name still shows, last
    ]
    assert summary({}, [("name", "Name")]) == []
