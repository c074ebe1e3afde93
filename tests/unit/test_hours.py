"""Business seconds (SPEC §3): hand-checked tables, DST days, holidays, config parsing, properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays as holidays_package
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttrd.replytime.hours import (
    ALWAYS_OPEN,
    WEEKDAYS,
    Schedule,
    Span,
    _public_holidays,
    check_country,
    parse_span,
)

HOUR = 3600.0


def schedule(
    zone: str,
    hours: dict[str, list[str]],
    holidays: frozenset[date] = frozenset(),
    country: str | None = None,
    subdivision: str | None = None,
) -> Schedule:
    week = tuple(tuple(parse_span(text) for text in hours.get(day, [])) for day in WEEKDAYS)
    return Schedule("test", zone, week, holidays, country, subdivision)


def office(
    zone: str,
    *spans: str,
    holidays: frozenset[date] = frozenset(),
    country: str | None = None,
    subdivision: str | None = None,
) -> Schedule:
    """Monday to Friday, the same spans each day."""
    return schedule(zone, {day: list(spans) for day in WEEKDAYS[:5]}, holidays, country, subdivision)


def sunday(zone: str, *spans: str) -> Schedule:
    return schedule(zone, {"sunday": list(spans)})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


LONDON = office("Europe/London", "09:00-17:30", holidays=frozenset({date(2026, 11, 11)}))
NY_SPLIT = office("America/New_York", "08:00-12:00", "13:00-17:00")
LONDON_9_5 = office("Europe/London", "09:00-17:00")
NY_9_5 = office("America/New_York", "09:00-17:00")

CASES = [
    # The shared scenario: Saturday 15:00:55 to Monday 17:05:55 (GMT) is Monday 09:00-17:05:55.
    ("scenario", LONDON, "2026-11-14T15:00:55Z", "2026-11-16T17:05:55Z", 29155.0),
    ("weekend", LONDON, "2026-11-14T10:00Z", "2026-11-15T20:00Z", 0.0),
    ("overnight, closing to opening", LONDON, "2026-11-17T17:30Z", "2026-11-18T09:00Z", 0.0),
    ("explicit holiday", LONDON, "2026-11-11T08:00Z", "2026-11-11T18:00Z", 0.0),
    ("week with a holiday", LONDON, "2026-11-09T00:00Z", "2026-11-16T00:00Z", 4 * 8.5 * HOUR),
    ("mid-span, sub-second", LONDON, "2026-11-17T10:15:30.25Z", "2026-11-17T11:00Z", 2669.75),
    ("mid-span, other zones", LONDON, "2026-11-17T05:15:30.25-05:00", "2026-11-17T20:00+09:00", 2669.75),
    ("starts before opening", LONDON, "2026-11-17T06:00Z", "2026-11-17T09:00:01Z", 1.0),
    ("ends after closing", LONDON, "2026-11-17T17:29:59.5Z", "2026-11-17T23:00Z", 0.5),
    # 10-12 and 13-17 on Monday, 8-12 on Tuesday (EDT).
    ("two spans, two days", NY_SPLIT, "2026-06-01T10:00-04:00", "2026-06-02T12:30-04:00", 10 * HOUR),
    ("lunch break", NY_SPLIT, "2026-06-01T12:10-04:00", "2026-06-01T12:50-04:00", 0.0),
    ("across lunch", NY_SPLIT, "2026-06-01T11:30-04:00", "2026-06-01T13:30-04:00", HOUR),
    ("end before start", LONDON, "2026-11-17T12:00Z", "2026-11-17T11:00Z", 0.0),
    ("empty interval", LONDON, "2026-11-17T12:00Z", "2026-11-17T12:00Z", 0.0),
]

DST_CASES = [
    # A whole-day span on the change day: 23 hours in spring, 25 in autumn.
    (
        "London spring day",
        sunday("Europe/London", "00:00-24:00"),
        "2026-03-28T00:00Z",
        "2026-03-31T00:00Z",
        23 * HOUR,
    ),
    (
        "London autumn day",
        sunday("Europe/London", "00:00-24:00"),
        "2026-10-24T00:00Z",
        "2026-10-27T00:00Z",
        25 * HOUR,
    ),
    (
        "NY spring day",
        sunday("America/New_York", "00:00-24:00"),
        "2026-03-07T00:00Z",
        "2026-03-10T00:00Z",
        23 * HOUR,
    ),
    (
        "NY autumn day",
        sunday("America/New_York", "00:00-24:00"),
        "2026-10-31T00:00Z",
        "2026-11-03T00:00Z",
        25 * HOUR,
    ),
    # 01:00-03:00 across the change: 01:00 GMT to 03:00 BST; 01:00 BST (first) to 03:00 GMT.
    (
        "London spring 01-03",
        sunday("Europe/London", "01:00-03:00"),
        "2026-03-29T00:00Z",
        "2026-03-30T00:00Z",
        HOUR,
    ),
    (
        "London autumn 01-03",
        sunday("Europe/London", "01:00-03:00"),
        "2026-10-25T00:00Z",
        "2026-10-26T00:00Z",
        3 * HOUR,
    ),
    (
        "NY spring 01-03",
        sunday("America/New_York", "01:00-03:00"),
        "2026-03-08T00:00Z",
        "2026-03-09T00:00Z",
        HOUR,
    ),
    (
        "NY autumn 01-03",
        sunday("America/New_York", "01:00-03:00"),
        "2026-11-01T00:00Z",
        "2026-11-02T00:00Z",
        3 * HOUR,
    ),
    # Nonexistent wall times use the offset before the change: 01:30 is 01:30 UTC (02:30 BST).
    (
        "span from the gap",
        sunday("Europe/London", "01:30-03:00"),
        "2026-03-29T00:00Z",
        "2026-03-30T00:00Z",
        1800.0,
    ),
    (
        "span inside the gap",
        sunday("Europe/London", "01:30-02:00"),
        "2026-03-29T00:00Z",
        "2026-03-30T00:00Z",
        0.0,
    ),
    # 01:15-01:45 is 01:15-01:45 UTC, 02:00-02:30 BST is 01:00-01:30 UTC: the union is 45 minutes.
    (
        "spans sharing instants",
        sunday("Europe/London", "01:15-01:45", "02:00-02:30"),
        "2026-03-29T00:00Z",
        "2026-03-30T00:00Z",
        2700.0,
    ),
    # A repeated wall time means its first occurrence: 01:30-01:45 BST is 00:30-00:45 UTC.
    (
        "repeated hour, first",
        sunday("Europe/London", "01:30-01:45"),
        "2026-10-25T00:00Z",
        "2026-10-25T01:00Z",
        900.0,
    ),
    (
        "repeated hour, second",
        sunday("Europe/London", "01:30-01:45"),
        "2026-10-25T01:00Z",
        "2026-10-25T02:00Z",
        0.0,
    ),
    # Ordinary office hours over the change weekend: Friday 12-17 and Monday 9-12, local time.
    ("London spring weekend", LONDON_9_5, "2026-03-27T12:00Z", "2026-03-30T11:00Z", 8 * HOUR),
    ("London autumn weekend", LONDON_9_5, "2026-10-23T11:00Z", "2026-10-26T12:00Z", 8 * HOUR),
    ("NY spring weekend", NY_9_5, "2026-03-06T17:00Z", "2026-03-09T16:00Z", 8 * HOUR),
    ("NY autumn weekend", NY_9_5, "2026-10-30T16:00Z", "2026-11-02T17:00Z", 8 * HOUR),
    ("London opens 08:00 UTC in BST", LONDON_9_5, "2026-03-30T08:00Z", "2026-03-30T09:00Z", HOUR),
    ("London opens 09:00 UTC in GMT", LONDON_9_5, "2026-03-27T08:00Z", "2026-03-27T09:00Z", 0.0),
    ("London week over spring", LONDON_9_5, "2026-03-23T00:00Z", "2026-03-31T00:00Z", 6 * 8 * HOUR),
]


@pytest.mark.parametrize(
    ("plan", "start", "end", "expected"),
    [case[1:] for case in CASES + DST_CASES],
    ids=[case[0] for case in CASES + DST_CASES],
)
def test_business_seconds(plan: Schedule, start: str, end: str, expected: float) -> None:
    assert plan.business_seconds(at(start), at(end)) == expected


CHRISTMAS = ("2026-12-24T00:00Z", "2026-12-30T00:00Z")  # Thursday to Tuesday, GMT


def test_country_holidays_close_christmas_and_the_boxing_day_substitute() -> None:
    plain = office("Europe/London", "09:00-17:30")
    by_country = office("Europe/London", "09:00-17:30", country="GB")
    explicit = office(
        "Europe/London", "09:00-17:30", holidays=frozenset({date(2026, 12, 25), date(2026, 12, 28)})
    )
    # Thu 24, Fri 25, Mon 28, Tue 29 open without holidays; 25 and 28 (Boxing Day observed) are public.
    assert plain.business_seconds(at(CHRISTMAS[0]), at(CHRISTMAS[1])) == 4 * 8.5 * HOUR
    assert by_country.business_seconds(at(CHRISTMAS[0]), at(CHRISTMAS[1])) == 2 * 8.5 * HOUR
    assert explicit.business_seconds(at(CHRISTMAS[0]), at(CHRISTMAS[1])) == 2 * 8.5 * HOUR


def test_is_holiday() -> None:
    gb = office("Europe/London", "09:00-17:30", country="GB", holidays=frozenset({date(2026, 11, 11)}))
    assert gb.is_holiday(date(2026, 12, 25))
    assert gb.is_holiday(date(2026, 12, 26))
    assert gb.is_holiday(date(2026, 12, 28))
    assert gb.is_holiday(date(2026, 11, 11))
    assert not gb.is_holiday(date(2026, 12, 29))
    assert not LONDON.is_holiday(date(2026, 12, 25))
    assert LONDON.is_holiday(date(2026, 11, 11))


def test_subdivision_adds_its_holidays() -> None:
    # Easter Monday 2026-04-06 is a bank holiday in England, not in all of the UK.
    uk = office("Europe/London", "09:00-17:30", country="GB")
    england = office("Europe/London", "09:00-17:30", country="GB", subdivision="ENG")
    monday = (at("2026-04-06T00:00+01:00"), at("2026-04-07T00:00+01:00"))
    assert not uk.is_holiday(date(2026, 4, 6))
    assert england.is_holiday(date(2026, 4, 6))
    assert uk.business_seconds(*monday) == 8.5 * HOUR
    assert england.business_seconds(*monday) == 0.0


def test_always_open_with_a_holiday() -> None:
    utc = schedule("UTC", {}, holidays=frozenset({date(2026, 5, 1)}))
    assert utc.always_open
    assert utc.business_seconds(at("2026-04-30T12:00Z"), at("2026-05-02T06:00Z")) == 18 * HOUR
    # In London the holiday is 2026-04-30T23:00Z to 2026-05-01T23:00Z (BST).
    london = schedule("Europe/London", {}, holidays=frozenset({date(2026, 5, 1)}))
    assert london.business_seconds(at("2026-04-30T20:00Z"), at("2026-05-02T00:00Z")) == 4 * HOUR


def test_holiday_closes_the_local_day_not_the_utc_day() -> None:
    # New York's 2026-07-03 runs from 04:00 UTC to 04:00 UTC the next day (EDT).
    ny = schedule("America/New_York", {}, holidays=frozenset({date(2026, 7, 3)}))
    assert ny.business_seconds(at("2026-07-03T00:00Z"), at("2026-07-04T12:00Z")) == 12 * HOUR


def test_skipped_day_counts_its_instants_once() -> None:
    # Samoa skipped 2011-12-30: its spans fall on the instants of 2011-12-31's, counted once.
    apia = schedule("Pacific/Apia", {day: ["09:00-17:00"] for day in WEEKDAYS})
    assert apia.business_seconds(at("2011-12-29T00:00-10:00"), at("2012-01-01T00:00+14:00")) == 16 * HOUR
    # Friday 09:00-17:00 of the skipped day is read at -10:00: Saturday 09:00-17:00 at +14:00.
    friday = schedule("Pacific/Apia", {"friday": ["09:00-17:00"]})
    assert friday.business_seconds(at("2011-12-31T00:00+14:00"), at("2012-01-01T00:00+14:00")) == 8 * HOUR


def test_always_open_property() -> None:
    assert ALWAYS_OPEN.always_open
    assert not LONDON.always_open
    assert (
        ALWAYS_OPEN.business_seconds(at("2026-03-28T00:00Z"), at("2026-03-30T00:00:00.5Z")) == 48 * HOUR + 0.5
    )


def test_ten_years_exact() -> None:
    # 520 weeks of five 8.5-hour days, Monday to Monday at GMT midnight.
    london = office("Europe/London", "09:00-17:30")
    assert london.business_seconds(at("2020-01-06T00:00Z"), at("2029-12-24T00:00Z")) == 520 * 5 * 8.5 * HOUR
    # 2016-2025 has three leap years: 3653 days.
    decade = (at("2016-01-01T00:00Z"), at("2026-01-01T00:00Z"))
    assert ALWAYS_OPEN.business_seconds(*decade) == 3653 * 24 * HOUR
    assert schedule("Europe/London", {}).business_seconds(*decade) == 3653 * 24 * HOUR


def test_ten_years_with_public_holidays_counted_day_by_day() -> None:
    # Two 4-hour spans on weekdays that are not US public holidays (observed days included), none of
    # them near the 02:00 clock changes. In New York the decade runs from 2019-12-31 19:00, after
    # that day's close, to 2029-12-31 19:00, after its close: the local days 2020-01-01..2029-12-31.
    # (How long this takes is measured by bench/core_speed.py.)
    plan = office("America/New_York", "08:00-12:00", "13:00-17:00", country="US")
    decade = (at("2020-01-01T00:00Z"), at("2030-01-01T00:00Z"))
    closed = holidays_package.country_holidays("US", years=range(2020, 2030))
    first = date(2020, 1, 1)
    weekdays = [
        day
        for day in (first + timedelta(days=n) for n in range((date(2030, 1, 1) - first).days))
        if day.weekday() < 5
    ]
    open_days = sum(1 for day in weekdays if day not in closed)
    assert open_days < len(weekdays)  # the holidays do close some weekdays
    assert plan.business_seconds(*decade) == open_days * 8 * HOUR
    # The public holidays are built once per country and year, then reused: none is built again.
    built = _public_holidays.cache_info().misses
    assert plan.business_seconds(*decade) == open_days * 8 * HOUR
    assert _public_holidays.cache_info().misses == built


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        LONDON.business_seconds(datetime(2026, 11, 16, 9), at("2026-11-16T10:00Z"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("09:00-17:30", Span(540, 1050)),
        ("00:00-24:00", Span(0, 1440)),
        ("9:00-17:00", Span(540, 1020)),
        (" 13:00 - 17:00 ", Span(780, 1020)),
        ("23:59-24:00", Span(1439, 1440)),
    ],
)
def test_parse_span(text: str, expected: Span) -> None:
    assert parse_span(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9-5", '"9-5" is not a time range HH:MM-HH:MM'),
        ("", "is not a time range"),
        ("09:00", "is not a time range"),
        ("09:00-17:00-18:00", "is not a time range"),
        ("09:00\u201317:00", "is not a time range"),
        ("09.00-17.00", "is not a time range"),
        ("17:00-09:00", "end of a time range must be after its start"),
        ("09:00-09:00", "end of a time range must be after its start"),
        ("24:00-24:00", "24:00 can only end a time range"),
        ("09:60-10:00", "09:60 is not a time of day"),
        ("09:00-24:01", "24:01 is not a time of day"),
        ("25:00-26:00", "25:00 is not a time of day"),
    ],
)
def test_parse_span_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_span(text)


def test_invalid_schedules() -> None:
    with pytest.raises(ValueError, match="0 <= start < end <= 1440"):
        Span(600, 540)
    with pytest.raises(ValueError, match="0 <= start < end <= 1440"):
        Span(0, 1441)
    with pytest.raises(ValueError, match="not 7"):
        Schedule("short", "UTC", ((),) * 5)
    for zone in ("Mars/Olympus", "America", "../etc", ""):
        with pytest.raises(ValueError, match="unknown time zone"):
            Schedule("bad", zone, ((),) * 7)


def test_check_country() -> None:
    check_country("GB")
    check_country("GB", "ENG")
    check_country("GB", "England")
    check_country("US", "CA")
    with pytest.raises(ValueError, match="unknown holiday country 'XX'"):
        check_country("XX")
    with pytest.raises(ValueError, match="did you mean 'GB'"):
        check_country("gb")
    with pytest.raises(ValueError, match=r"unknown subdivision 'XX' .*ENG, NIR, SCT, WLS"):
        check_country("GB", "XX")


# Properties, over random schedules in zones with DST, half-hour offsets and a skipped day.

ZONES = ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata"]
INPUT_ZONES = [
    UTC,
    ZoneInfo("Europe/London"),
    ZoneInfo("America/Los_Angeles"),
    timezone(timedelta(hours=5, minutes=45)),
]

# Quarter-hour bounds, so that spans often start or end inside a skipped or repeated hour.
spans = st.builds(
    lambda start, length: Span(start * 15, min(start + length, 96) * 15),
    st.integers(0, 95),
    st.integers(1, 96),
)
days = st.lists(spans, max_size=3).map(tuple)
schedules = st.builds(
    Schedule,
    name=st.just("property"),
    timezone=st.sampled_from(ZONES),
    week=st.tuples(days, days, days, days, days, days, days),
    holidays=st.frozensets(st.dates(date(2010, 1, 1), date(2028, 12, 31)), max_size=30),
)
moments = st.datetimes(datetime(2010, 1, 1), datetime(2028, 12, 31), timezones=st.sampled_from(INPUT_ZONES))
durations = st.timedeltas(timedelta(0), timedelta(days=10))


def later(moment: datetime, delta: timedelta) -> datetime:
    """`delta` of elapsed time after `moment`, in its zone (aware + timedelta is wall-clock arithmetic)."""
    return (moment.astimezone(UTC) + delta).astimezone(moment.tzinfo)


def calendar_seconds(start: datetime, end: datetime) -> float:
    # In UTC: subtracting two datetimes of one ZoneInfo would give their wall-clock difference.
    return max((end.astimezone(UTC) - start.astimezone(UTC)).total_seconds(), 0.0)


def reference(plan: Schedule, start: datetime, end: datetime) -> float:
    """The rule read literally: datetime.combine per span, instants compared in UTC."""
    zone = ZoneInfo(plan.timezone)
    week = ((Span(0, 1440),),) * 7 if plan.always_open else plan.week
    pieces = []
    day = start.astimezone(zone).date() - timedelta(days=2)
    while day <= end.astimezone(zone).date() + timedelta(days=2):
        for span in () if plan.is_holiday(day) else week[day.weekday()]:
            opens = datetime.combine(day, time(span.start // 60, span.start % 60), tzinfo=zone)
            closes = datetime.combine(
                day + timedelta(days=span.end // 1440),
                time(span.end % 1440 // 60, span.end % 60),
                tzinfo=zone,
            )
            pieces.append((opens.astimezone(UTC), closes.astimezone(UTC)))
        day += timedelta(days=1)
    total, reach = timedelta(0), start.astimezone(UTC)
    for opens, closes in sorted(pieces):
        low, high = max(opens, reach), min(closes, end.astimezone(UTC))
        if high > low:
            total, reach = total + (high - low), high
    return total.total_seconds()


@settings(deadline=None)
@given(schedules, moments, durations, durations)
def test_additive(plan: Schedule, start: datetime, first: timedelta, second: timedelta) -> None:
    middle = later(start, first)
    end = later(middle, second)
    whole = plan.business_seconds(start, end)
    assert whole == pytest.approx(
        plan.business_seconds(start, middle) + plan.business_seconds(middle, end), abs=1e-6
    )


@settings(deadline=None)
@given(schedules, moments, moments)
def test_bounded_by_calendar_seconds(plan: Schedule, start: datetime, end: datetime) -> None:
    assert 0.0 <= plan.business_seconds(start, end) <= calendar_seconds(start, end)


@settings(deadline=None)
@given(st.sampled_from(ZONES), moments, moments)
def test_always_open_is_calendar_seconds(zone: str, start: datetime, end: datetime) -> None:
    assert Schedule("24/7", zone, ((),) * 7).business_seconds(start, end) == calendar_seconds(start, end)


@settings(deadline=None)
@given(schedules, moments, durations)
def test_matches_literal_rule(plan: Schedule, start: datetime, length: timedelta) -> None:
    end = later(start, length)
    assert plan.business_seconds(start, end) == reference(plan, start, end)


@settings(max_examples=300, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    seconds=st.integers(0, 40 * 3600),
    name=st.sampled_from(["london", "new_york_split", "always"]),
)
def test_passing_instant_is_where_business_time_first_exceeds_the_threshold(
    start: datetime, seconds: int, name: str
) -> None:
    schedule = {"london": LONDON, "new_york_split": NY_SPLIT, "always": ALWAYS_OPEN}[name]
    horizon = start + timedelta(days=30)
    instant = schedule.passing_instant(start, seconds, horizon)
    if instant is None:
        assert schedule.business_seconds(start, horizon) <= seconds + 1e-6
        return
    assert start <= instant <= horizon
    assert schedule.business_seconds(start, instant) == pytest.approx(seconds, abs=1e-6)
    assert schedule.business_seconds(start, instant + timedelta(seconds=1)) > seconds
    assert schedule.business_seconds(start, instant - timedelta(seconds=1)) <= seconds


def test_passing_instant_waits_for_the_next_opening_when_a_threshold_ends_a_day() -> None:
    # Mon 09:00-17:30 London: 8.5 h reached exactly at the close; more only from Tue 09:00 on.
    monday_nine = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    assert LONDON.passing_instant(monday_nine, 8.5 * 3600, monday_nine + timedelta(days=7)) == datetime(
        2026, 11, 17, 9, 0, tzinfo=UTC
    )
