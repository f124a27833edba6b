"""Countries: ISO 3166-1 alpha-2 codes, their names, and the order people look for them in."""

from __future__ import annotations

from domain.countries import country_choices, country_name, is_country


def test_only_iso_alpha_2_codes_in_capitals_are_countries() -> None:
    assert is_country("GB") and is_country("DE") and is_country("CI")
    for code in ("gb", "UK", "GBR", "XX", "", "G", "G\x00", " GB"):
        assert not is_country(code)


def test_a_code_reads_as_its_common_name() -> None:
    assert country_name("DE") == "Germany"
    assert country_name("BO") == "Bolivia"  # not "Bolivia, Plurinational State of"
    assert country_name("TW") == "Taiwan"
    assert country_name("ZZ") == "ZZ"  # stored data that is no country shows as it is


def test_choices_are_every_country_sorted_by_name_accents_aside() -> None:
    choices = country_choices()
    names = [name for _, name in choices]
    assert len(choices) == 249 and ("FR", "France") in choices
    assert names.index("Åland Islands") < names.index("Albania")
    assert names.index("Côte d'Ivoire") < names.index("Croatia")
    assert names.index("Zimbabwe") == len(names) - 1
