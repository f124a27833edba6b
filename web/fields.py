"""Pydantic field types for what API bodies and forms carry, each matching its column.

Text: no control characters (PostgreSQL refuses NUL, and the others are invisible in a page or an
email); multi-line text keeps tab and line breaks. Lengths are the tables' CHECKs.
Whole numbers: ids fit a bigint (1 to 2**63-1), counts an integer column, money a bigint with
room to multiply by a line's quantity. JSON bodies use the strict types (a JSON number, never a
string or a float); forms use the `Form*` ones, which read ASCII digits only: `int()` also reads
'١٢٣' and pydantic reads ' 1_000 ', neither of which a person typed into a number field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from domain.checkout import MAX_QUANTITY
from domain.countries import country_choices, is_country
from domain.emails import MAX_LENGTH as EMAIL_MAX_LENGTH
from domain.emails import InvalidEmail, normalize_email
from domain.identifiers import SKU_PATTERN, SLUG_MAX_LENGTH, SLUG_PATTERN
from domain.money import CURRENCY_PATTERN

BIGINT_MAX = 2**63 - 1
STOCK_MAX = 10**9  # an integer column (2**31-1), with room for returns to land on top
MONEY_MAX = 10**12  # minor units; times MAX_QUANTITY it still fits a bigint

# C0 controls and DEL; multi-line text keeps tab, line feed and carriage return.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_IN_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
DIGITS = re.compile(r"[0-9]{1,19}")
# What a form's number field may hold: ASCII only, a sign for the bounds to refuse by name.
FORM_INTEGER = re.compile(r"-?[0-9]{1,30}")
FORM_DECIMAL = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?")


def text_problem(text: str, *, multiline: bool = False) -> str | None:
    """What is wrong with client text as text, or None (lengths are the caller's)."""
    if "\x00" in text:
        return "must not contain a NUL character"
    if (CONTROL_IN_LINES if multiline else CONTROL).search(text):
        return "must not contain control characters"
    return None


def whole_number(text: str, low: int = 0, high: int = BIGINT_MAX) -> int | None:
    """`text` as a whole number from `low` to `high` when it is only ASCII digits, else None."""
    if DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if low <= value <= high else None


@dataclass(frozen=True)
class _TextCheck(AfterValidator):
    """The control-character check, saying in the JSON Schema what it refuses (a field with a
    stricter documented pattern, FILLED_LINE say, has that one instead)."""

    pattern: str = ""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.setdefault("pattern", self.pattern)
        return schema


def _checked(multiline: bool) -> AfterValidator:
    def check(value: str) -> str:
        problem = text_problem(value, multiline=multiline)
        if problem is not None:
            raise PydanticCustomError("control_character", problem)
        return value

    pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$" if multiline else r"^[^\x00-\x1f\x7f]*$"
    return _TextCheck(check, pattern=pattern)


def _json_int(value: Any) -> Any:
    """A JSON number that is a whole number (45.0 too, as JSON Schema's integer) as an int;
    anything else is left for the strict int to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _form_int(value: Any) -> Any:
    """A form field's digits as an int; an int is left for the bounds to check."""
    if isinstance(value, str):
        if FORM_INTEGER.fullmatch(value.strip()) is None:
            raise PydanticCustomError("int_parsing", "Enter a whole number (digits 0-9).")
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise PydanticCustomError("int_type", "Enter a whole number (digits 0-9).")


def _form_decimal(value: Any) -> Any:
    """A form field's decimal number (digits, and a point with decimals) as a Decimal."""
    if isinstance(value, str):
        if FORM_DECIMAL.fullmatch(value.strip()) is None:
            raise PydanticCustomError("decimal_parsing", "Enter a number such as 12.50.")
        return Decimal(value.strip())
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return value
    raise PydanticCustomError("decimal_type", "Enter a number such as 12.50.")


@dataclass(frozen=True)
class Documented:
    """Says in the JSON Schema (the API's OpenAPI document) what a validator here enforces, so
    a client, and the schema tests, can tell a valid value from the schema alone."""

    pattern: str

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema["pattern"] = self.pattern
        return schema


def one_of(*fields: str) -> dict[str, Any]:
    """A model's JSON Schema addition: exactly one of `fields` is given (not null), as the
    model's own validator insists."""
    return {
        "oneOf": [
            {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in fields
        ]
    }


SINGLE_LINE = _checked(multiline=False)
MULTI_LINE = _checked(multiline=True)
# No control character, and (for a required line) one that is not blank once stripped.
ANY_LINE = Documented(r"^[^\x00-\x1f\x7f]*$")
FILLED_LINE = Documented(r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$")
LINES = Documented(r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$")


def _line(min_length: int, max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


# Identifiers (their patterns admit no control character).
Slug = Annotated[
    str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=SLUG_MAX_LENGTH)
]
ShortSlug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, min_length=1, max_length=60)]
Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
CurrencyCode = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN.pattern)]


def _country(value: str) -> str:
    if not is_country(value):
        raise PydanticCustomError("country", "not a country (an ISO 3166-1 alpha-2 code, e.g. GB)")
    return value


# A country as ISO 3166-1 alpha-2 (pycountry's list): the address forms' select, the API's field.
# The schema lists the codes, so a client (and the contract test) knows which two letters count.
Country = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z]{2}$"),
    AfterValidator(_country),
    WithJsonSchema(
        {
            "type": "string",
            "enum": sorted(code for code, _ in country_choices()),
            "examples": ["GB"],
        }
    ),
]


def _email(value: str) -> str:
    try:
        return normalize_email(value)
    except InvalidEmail as exc:
        # pydantic's own wording for EmailStr, which this type replaces.
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: {reason}", {"reason": str(exc)}
        ) from None


# The shop's one email rule (domain.emails), normalised; never pydantic's EmailStr, which also
# takes "Name <address>" and so differs from what createadmin and the checkout form accept.
Email = Annotated[
    str,
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": EMAIL_MAX_LENGTH}),
]

# What an emailed link or a refresh carries: printable ASCII, so a lookup by its digest is all.
OpaqueToken = Annotated[str, StringConstraints(pattern=r"^[!-~]{10,200}$")]

# One line of text, stripped: a name, an address line, a tracking number.
Line60 = Annotated[str, _line(1, 60), SINGLE_LINE, FILLED_LINE]
Line100 = Annotated[str, _line(1, 100), SINGLE_LINE, FILLED_LINE]
Line200 = Annotated[str, _line(1, 200), SINGLE_LINE, FILLED_LINE]
OptionalLine200 = Annotated[str, _line(0, 200), SINGLE_LINE, ANY_LINE]
# Text a person may break into lines: a description, a note.
Note = Annotated[str, _line(0, 500), MULTI_LINE, LINES]
Description = Annotated[str, StringConstraints(max_length=10_000), MULTI_LINE, LINES]

# Whole numbers in JSON bodies: a JSON integer (never a string) within the column's range.
JSON_INT = BeforeValidator(_json_int)
Id = Annotated[int, Field(strict=True, ge=1, le=BIGINT_MAX), JSON_INT]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY), JSON_INT]
QuantityOrZero = Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY), JSON_INT]  # 0: remove
MinorUnits = Annotated[int, Field(strict=True, ge=0, le=MONEY_MAX), JSON_INT]
Stock = Annotated[int, Field(strict=True, ge=0, le=STOCK_MAX), JSON_INT]

# Whole numbers and prices in forms: ASCII digits only.
FormId = Annotated[int, BeforeValidator(_form_int), Field(ge=1, le=BIGINT_MAX)]
FormStock = Annotated[int, BeforeValidator(_form_int), Field(ge=0, le=STOCK_MAX)]
FormPrice = Annotated[
    Decimal, BeforeValidator(_form_decimal), Field(ge=0, le=Decimal(10**10), allow_inf_nan=False)
]
