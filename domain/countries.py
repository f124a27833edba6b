"""Countries: ISO 3166-1 alpha-2 codes (pycountry) and their names for people."""

from __future__ import annotations

import functools
import unicodedata

import pycountry


@functools.cache
def _names() -> dict[str, str]:
    """{alpha_2: name}: the common name where ISO's is formal ("Bolivia", not "Bolivia,
    Plurinational State of")."""
    return {
        country.alpha_2: getattr(country, "common_name", None) or country.name
        for country in pycountry.countries
    }


def is_country(code: str) -> bool:
    """Whether `code` is an ISO 3166-1 alpha-2 code, in capitals (`GB`, `DE`)."""
    return code in _names()


def country_name(code: str) -> str:
    """`Germany` for `DE`; a code that is no country is shown as it is."""
    return _names().get(code, code)


def _sort_key(name: str) -> str:
    """Accents and case set aside, so Åland Islands sorts with the A's and Côte d'Ivoire with C."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


@functools.cache
def country_choices() -> tuple[tuple[str, str], ...]:
    """(alpha_2, name) of every country, sorted by name as people look for it."""
    return tuple(sorted(_names().items(), key=lambda item: _sort_key(item[1])))
