"""Moments for people: a date and time in a time zone and a locale (Babel, CLDR data)."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import UTC, datetime

from babel.dates import format_date, format_time, get_datetime_format
from markupsafe import Markup


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names this machine knows (zoneinfo; read once)."""
    return frozenset(zoneinfo.available_timezones())


def is_time_zone(name: str) -> bool:
    """Whether `name` is a time zone zoneinfo knows (`Europe/Paris`, `UTC`)."""
    return name in time_zones()


def format_moment(moment: datetime, zone: str, locale: str) -> str:
    """`29 Mar 2026, 02:30` (en_IE), `Mar 29, 2026, 2:30 AM` (en_US): `moment` in `zone`, to the
    minute, written as `locale` writes a medium date with a short time. A naive `moment` is UTC.
    Raises ZoneInfoNotFoundError for an unknown zone, ValueError for an unknown locale."""
    minute = _aware(moment).astimezone(UTC).replace(second=0, microsecond=0)
    return _format_minute(minute, zone, locale)


@functools.lru_cache(maxsize=1024)
def _format_minute(minute: datetime, zone: str, locale: str) -> str:
    """format_moment of a UTC minute, remembered: the emails and pages of one minute show the
    same few moments (Babel's formatting is most of an order email's date work)."""
    local = minute.astimezone(zoneinfo.ZoneInfo(zone))
    date_text = format_date(local, "medium", locale=locale)
    time_text = format_time(local, "short", tzinfo=local.tzinfo, locale=locale)
    pattern = str(get_datetime_format("medium", locale=locale))  # "{1}, {0}": date, time
    return pattern.replace("{1}", date_text).replace("{0}", time_text)


def iso_utc(moment: datetime) -> str:
    """`2026-03-29T01:30:00Z`: the machine-readable moment, as a <time datetime> holds it."""
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_element(moment: datetime | None, zone: str, locale: str) -> Markup:
    """`<time datetime="…Z">29 Mar 2026, 02:30</time>` (format_moment), or a dash for None."""
    if moment is None:
        return Markup("\u2014")
    return Markup('<time datetime="{}">{}</time>').format(
        iso_utc(moment), format_moment(moment, zone, locale)
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
