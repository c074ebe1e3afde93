"""Business seconds over weekly opening hours, in a schedule's time zone, minus holidays (SPEC §3).

A schedule opens, on each local calendar day that is not a holiday, the spans of that weekday
(minutes after local midnight; an end of 1440 is the next local midnight). A schedule with no span
on any day is open 00:00-24:00 every day. The business seconds of [start, end] are the measure of
the instants in [start, end] that some open span covers: computed exactly, in microseconds.

Wall times become instants the way ``datetime.combine(day, time, tzinfo=ZoneInfo(tz))`` makes
them (zoneinfo, fold=0):

- a wall time that occurs twice (clocks go back) means its first occurrence;
- a wall time that does not exist (clocks go forward) is read with the UTC offset in force before
  the change, so it lands as far after the change as it is after the start of the skipped wall
  hour: in Europe/London on 2026-03-29, 01:30 is 01:30 UTC (02:30 BST).

So on a change day a 00:00-24:00 span lasts 23 or 25 hours, 01:00-03:00 lasts one hour in spring
and three in autumn (London, New York), and 09:00-17:00 keeps its eight hours. A wall time inside
the skipped hour lands among the instants of the wall times just after it: in London on
2026-03-29, 01:30-03:00 lasts 30 minutes, 01:30-02:00 is empty, and 01:15-01:45 and 02:00-02:30
share 01:15-01:30 UTC. Each instant counts once however many spans cover it, so the result never
exceeds the calendar seconds and is additive over adjacent intervals.

A holiday (an explicit date, or a public holiday of the schedule's country through the
``holidays`` package) drops every span of that local calendar day: the whole local day is closed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_DAY_MINUTES = 1440
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MINUTE_MICROS = 60_000_000
_DAY_MICROS = _DAY_MINUTES * _MINUTE_MICROS
_ONE_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_MINUTES = tuple(timedelta(minutes=m) for m in range(_DAY_MINUTES + 1))
_TIME_RANGE = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")

Interval = tuple[int, int]
"""Instants in microseconds since the Unix epoch, start then end."""


@dataclass(frozen=True, slots=True)
class Span:
    """Opening hours within one local day, in minutes after local midnight (end may be 1440)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= _DAY_MINUTES:
            raise ValueError(f"span {self.start}-{self.end} is not within 0 <= start < end <= 1440 minutes")


_FULL_DAY = (Span(0, _DAY_MINUTES),)


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    timezone: str
    week: tuple[tuple[Span, ...], ...]
    """Seven entries, Monday first; an empty entry is a closed day."""
    holidays: frozenset[date] = frozenset()
    country: str | None = None
    subdivision: str | None = None

    def __post_init__(self) -> None:
        if len(self.week) != len(WEEKDAYS):
            raise ValueError(f"schedule {self.name!r} has {len(self.week)} weekdays, not 7")
        _zone(self.timezone)

    @property
    def always_open(self) -> bool:
        """True when no day has a span: the schedule is 24/7 (still minus its holidays)."""
        return not any(self.week)

    def is_holiday(self, day: date) -> bool:
        """True when this local date is closed: an explicit holiday or the country's public one."""
        if day in self.holidays:
            return True
        return self.country is not None and day in _public_holidays(self.country, self.subdivision, day.year)

    def business_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of [start, end] (aware datetimes, any zone) inside opening hours; 0 if end <= start."""
        low, high = _micros(start), _micros(end)
        if high <= low:
            return 0.0
        zone = _zone(self.timezone)
        # A day's spans can reach into its neighbours' instants around a time change (or a day a
        # zone skipped altogether), so look one local day further on either side.
        first = start.astimezone(zone).date() - _ONE_DAY
        last = end.astimezone(zone).date() + _ONE_DAY
        return _covered(self._open_intervals(zone, first, last), low, high) / 1_000_000

    def passing_instant(self, start: datetime, seconds: float, horizon: datetime) -> datetime | None:
        """The instant after which more than `seconds` of business time have passed since `start`.

        business_seconds(start, t) > seconds exactly when t is after it. None when that comes only
        after `horizon`. An SLA threshold's deadline does not change with the clock, so a caller can
        compute it once and compare it with the time at every look.
        """
        remaining = round(seconds * 1_000_000)
        low, high = _micros(start), _micros(horizon)
        zone = _zone(self.timezone)
        day = start.astimezone(zone).date() - _ONE_DAY
        reach = low
        while _before_midnight(day) <= high:
            # A week of days at a time: most thresholds pass within days, windows last years.
            last = day + _WEEK - _ONE_DAY
            for opens, closes in sorted(self._open_intervals(zone, day, last)):
                begin = max(opens, reach)
                if closes <= begin:
                    continue
                if closes - begin > remaining:
                    instant = begin + remaining
                    return _from_micros(instant) if instant <= high else None
                remaining -= closes - begin
                reach = closes
            day = last + _ONE_DAY
        return None

    def _open_intervals(self, zone: ZoneInfo, first: date, last: date) -> Iterator[Interval]:
        """Instant intervals of every open span of the local days first..last."""
        week = (_FULL_DAY,) * 7 if self.always_open else self.week
        closed = self._closed_days(first, last)
        # Aware datetime + timedelta is wall-clock arithmetic with fold=0: exactly what
        # datetime.combine(day, time, tzinfo=zone) gives, without building one per span end.
        midnight = datetime.combine(first, time(), tzinfo=zone)
        wall = (first.toordinal() - _EPOCH_ORDINAL) * _DAY_MICROS
        for day in range(first.toordinal(), last.toordinal() + 1):
            if day not in closed:
                for span in week[(day - 1) % 7]:
                    yield (
                        _instant(midnight, wall, span.start),
                        _instant(midnight, wall, span.end),
                    )
            midnight += _ONE_DAY
            wall += _DAY_MICROS

    def _closed_days(self, first: date, last: date) -> frozenset[int]:
        """Ordinals of the holidays among the days first..last."""
        return frozenset(
            ordinal
            for ordinal in range(first.toordinal(), last.toordinal() + 1)
            if self.is_holiday(date.fromordinal(ordinal))
        )


def parse_span(text: str) -> Span:
    """Parse a config time range such as "09:00-17:30" ("24:00" may end it)."""
    match = _TIME_RANGE.fullmatch(text)
    if match is None:
        raise ValueError(f'"{text}" is not a time range HH:MM-HH:MM')
    start = _minutes(text, match[1], match[2])
    end = _minutes(text, match[3], match[4])
    if start == _DAY_MINUTES:
        raise ValueError(f'"{text}": 24:00 can only end a time range')
    if end <= start:
        raise ValueError(f'"{text}": the end of a time range must be after its start')
    return Span(start, end)


def check_country(country: str, subdivision: str | None = None) -> None:
    """Raise ValueError unless the `holidays` package knows this country (and subdivision)."""
    known = holidays_package.list_supported_countries()
    if country not in known:
        hint = f"; did you mean {country.upper()!r}?" if country.upper() in known else ""
        raise ValueError(f"unknown holiday country {country!r}: use an ISO 3166 code such as 'GB'{hint}")
    if subdivision is None:
        return
    try:
        # The constructor also accepts subdivision aliases ("England") that the list leaves out.
        holidays_package.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:
        choices = ", ".join(known[country]) or "none"
        raise ValueError(
            f"unknown subdivision {subdivision!r} of holiday country {country!r} (known: {choices})"
        ) from None


def _minutes(text: str, hours: str, minutes: str) -> int:
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > _DAY_MINUTES:
        raise ValueError(f'"{text}": {hours}:{minutes} is not a time of day between 00:00 and 24:00')
    return value


def _micros(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch, exactly."""
    wall = (moment.toordinal() - _EPOCH_ORDINAL) * _DAY_MICROS
    wall += ((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1_000_000 + moment.microsecond
    return wall - _offset_micros(moment.utcoffset())


def _before_midnight(day: date) -> int:
    """An instant before a local day starts anywhere: its UTC midnight minus a day."""
    return (day.toordinal() - _EPOCH_ORDINAL - 1) * _DAY_MICROS


def _from_micros(instant: int) -> datetime:
    seconds, micros = divmod(instant, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


def _instant(midnight: datetime, wall: int, minute: int) -> int:
    """The instant of the wall time `minute` after a local midnight, as epoch microseconds.

    `wall` is that midnight's wall clock reading counted as if it were UTC.
    """
    offset = _offset_micros((midnight + _MINUTES[minute]).utcoffset())
    return wall + minute * _MINUTE_MICROS - offset


def _offset_micros(offset: timedelta | None) -> int:
    # Cheaper than timedelta floor division, and this runs twice per span per day.
    if offset is None:
        raise ValueError("naive datetime: business hours need an aware datetime")
    return (offset.days * 86_400 + offset.seconds) * 1_000_000 + offset.microseconds


def _covered(intervals: Iterator[Interval], low: int, high: int) -> int:
    """Measure of the union of the intervals within [low, high]."""
    total = 0
    reach = low
    for opens, closes in sorted(intervals):
        start, end = max(opens, reach), min(closes, high)
        if end > start:
            total += end - start
            reach = end
    return total


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as 'America'
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/London'") from None


@lru_cache(maxsize=256)
def _public_holidays(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    # One immutable set per year: the `holidays` object is slow to build and fills itself in
    # lazily, which is not safe to share between threads.
    return frozenset(holidays_package.country_holidays(country, subdiv=subdivision, years=year))


ALWAYS_OPEN = Schedule("24/7", "UTC", ((),) * 7)
