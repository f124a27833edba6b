"""Moments for people: in a time zone (daylight saving included) and a locale."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfoNotFoundError

import pytest

from domain.dates import format_moment, is_time_zone, iso_utc, time_element

NNBSP = "\u202f"
HALF_PAST_ONE_AM = "Nov 1, 2026, 1:30" + NNBSP + "AM"


@pytest.mark.parametrize(
    ("moment", "zone", "locale", "text"),
    [
        (datetime(2026, 1, 15, 12, 5, tzinfo=UTC), "UTC", "en_IE", "15 Jan 2026, 12:05"),
        # London: GMT in winter, BST (UTC+1) from 01:00 UTC on 29 March 2026.
        (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "Europe/London", "en_GB", "29 Mar 2026, 00:59"),
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Europe/London", "en_GB", "29 Mar 2026, 02:00"),
        # New York leaves daylight saving on 1 November 2026 at 06:00 UTC: 01:30 happens twice.
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "America/New_York", "en_US", HALF_PAST_ONE_AM),
        (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), "America/New_York", "en_US", HALF_PAST_ONE_AM),
        # Across midnight into the next day, and a German date.
        (datetime(2026, 7, 31, 23, 30, tzinfo=UTC), "Europe/Berlin", "de_DE", "01.08.2026, 01:30"),
        (datetime(2026, 7, 31, 23, 30, tzinfo=UTC), "Asia/Tokyo", "ja_JP", "2026/08/01 8:30"),
        # Half-hour offsets, and a naive moment taken as UTC.
        (datetime(2026, 7, 1, 0, 0), "Asia/Kolkata", "en_IN", "1 Jul 2026, 5:30" + NNBSP + "AM"),
    ],
)  # fmt: skip
def test_a_moment_reads_in_the_zone_and_locale(
    moment: datetime, zone: str, locale: str, text: str
) -> None:
    assert format_moment(moment, zone, locale) == text


def test_the_time_element_holds_the_utc_moment_for_machines() -> None:
    moment = datetime(2026, 6, 1, 22, 15, 9, tzinfo=UTC)
    element = time_element(moment, "Europe/Paris", "fr_FR")
    assert str(element) == '<time datetime="2026-06-01T22:15:09Z">2 juin 2026, 00:15</time>'
    assert iso_utc(moment) == "2026-06-01T22:15:09Z"
    assert str(time_element(None, "UTC", "en_IE")) == "\u2014"


def test_only_zones_zoneinfo_knows_are_time_zones() -> None:
    assert is_time_zone("Europe/Paris") and is_time_zone("UTC")
    for name in ("Mars/Olympus", "", "europe/paris", "Europe/Paris\x00", "../../etc/passwd"):
        assert not is_time_zone(name)
    with pytest.raises(ZoneInfoNotFoundError):
        format_moment(datetime(2026, 1, 1, tzinfo=UTC), "Mars/Olympus", "en_IE")
