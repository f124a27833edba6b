"""The edge's field types: a country is an ISO 3166-1 alpha-2 code pycountry knows."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from web.bodies import AddressIn
from web.fields import Country

COUNTRY = TypeAdapter(Country)


@pytest.mark.parametrize("code", ["GB", "DE", "FR", "IE", "JP", "AX", "CI", "ZW"])
def test_alpha_2_codes_are_countries(code: str) -> None:
    assert COUNTRY.validate_python(code) == code


@pytest.mark.parametrize(
    "code", ["XX", "UK", "ZZ", "gb", "GBR", "G", "", "G\x00", "GB ", "12", "É", "EU"]
)
def test_anything_else_is_refused(code: str) -> None:
    with pytest.raises(ValidationError):
        COUNTRY.validate_python(code)


def test_an_address_names_what_is_wrong_with_its_country() -> None:
    address = {"full_name": "Ada", "line1": "1 Row", "city": "London", "postal_code": "N1"}
    with pytest.raises(ValidationError) as caught:
        AddressIn.model_validate({**address, "country": "XX"})
    [error] = caught.value.errors()
    assert error["loc"] == ("country",) and "not a country" in error["msg"]
    assert AddressIn.model_validate({**address, "country": "GB"}).country == "GB"


def test_the_schema_lists_the_codes() -> None:
    schema = COUNTRY.json_schema()
    assert schema["type"] == "string" and len(schema["enum"]) == 249
    assert "GB" in schema["enum"] and "XX" not in schema["enum"]
