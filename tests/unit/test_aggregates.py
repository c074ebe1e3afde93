"""`ttrd report`'s aggregates (ttrd.replytime.aggregates), rule by rule (docs/decisions.md, "Reports").

Pure: items and a directory built by hand, `now` passed in. Expected figures come from the rule
applied by hand, and percentiles also from `statistics.quantiles(method="inclusive")`, which
interpolates between closest ranks the way numpy's default does.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from ttrd.replytime.aggregates import Distribution, ReportRow, sla_breaches, summarise
from ttrd.replytime.directory import Agent, Directory, Mailbox, Organization, Sla
from ttrd.replytime.engine import judge
from ttrd.replytime.hours import Schedule, Span
from ttrd.replytime.items import Item

HOUR = 3600.0
SECOND = timedelta(seconds=1)
OFFICE = Schedule("office", "Europe/London", ((Span(9 * 60, 17 * 60),),) * 5 + ((), ()))
"""09:00-17:00 on weekdays; London keeps UTC in November, so the times below read the same in both."""
MONDAY = datetime(2026, 11, 16, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """`day` days after Monday 16 November 2026, at hour:minute UTC (day 4 is a Friday, 7 a Monday)."""
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


FRIDAY_3PM = at(4, 15)
MONDAY_11AM = at(7, 11)
"""From FRIDAY_3PM: 68 calendar hours, 4 business hours (15:00-17:00 on Friday, 09:00-11:00 on Monday)."""


def directory(sla_hours: Sequence[float] = (), window_days: float = 30) -> Directory:
    """alice is in two teams, bob in one, carol in none; `support` keeps office hours and has the SLAs."""
    agents = [
        Agent("alice", "alice@example.com", teams=("emea", "tier2")),
        Agent("bob", "bob@example.com", teams=("emea",)),
        Agent("carol", "carol@example.com"),
    ]
    mailboxes = [
        Mailbox(
            "support",
            "support@example.com",
            "shared",
            members=("alice", "bob", "carol"),
            sla=tuple(Sla(f"{hours:g}h", hours * HOUR) for hours in sla_hours),
            schedule="office",
        ),
        Mailbox("sales", "sales@example.com", "shared"),  # 24/7 (no default schedule), no SLA
    ]
    organization = Organization(("example.com",), window_days=window_days)
    return Directory(organization, agents, mailboxes, {"office": OFFICE})


_numbers = itertools.count()


def replied(context: str, agent: str | None, opened: datetime, answered: datetime, where: Directory) -> Item:
    """A replied item as the engine makes it: business time on its context's schedule."""
    found = where.context(context)
    assert found is not None
    number = next(_numbers)
    return Item(
        conversation=f"c{number}",
        context=context,
        inbound_message_id=f"q{number}@cust.net",
        customer="jo@cust.net",
        opened_at=opened,
        first=True,
        status="replied",
        agent=agent,
        reply_message_id=f"a{number}@example.com",
        replied_at=answered,
        calendar_seconds=(answered - opened).total_seconds(),
        business_seconds=found.schedule.business_seconds(opened, answered),
    )


def waiting(context: str, opened: datetime, stored: Literal["open", "unanswered"] = "open") -> Item:
    number = next(_numbers)
    return Item(
        conversation=f"c{number}",
        context=context,
        inbound_message_id=f"q{number}@cust.net",
        customer="jo@cust.net",
        opened_at=opened,
        first=True,
        status=stored,
    )


def counts(rows: list[ReportRow]) -> list[tuple[str | None, int, int, int, int]]:
    return [(row.group, row.items, row.replied, row.awaiting, row.unanswered) for row in rows]


# --- groups -----------------------------------------------------------------------------------------


def test_by_agent_is_the_agent_who_replied_and_items_without_one_are_the_null_group_last() -> None:
    where = directory()
    items = [
        waiting("support", at(0, 9)),  # first, so that the null group is not last by chance
        replied("support", "bob", at(0, 9), at(0, 10), where),
        replied("bob", "alice", at(0, 9), at(0, 11), where),  # bob's own mailbox, but alice replied
        replied("support", "alice", at(0, 9), at(0, 12), where),
        replied("support", None, at(0, 9), at(0, 13), where),  # from an address of no agent
    ]
    rows = summarise(items, "agent", where, at(0, 18))
    assert counts(rows) == [("alice", 2, 2, 0, 0), ("bob", 1, 1, 0, 0), (None, 2, 1, 1, 0)]
    assert [row.calendar.mean for row in rows] == [2.5 * HOUR, 1 * HOUR, 4 * HOUR]


def test_by_team_counts_an_agent_in_each_of_their_teams_and_one_in_none_in_the_null_group() -> None:
    where = directory()
    items = [
        waiting("support", at(0, 9)),
        replied("support", "carol", at(0, 9), at(0, 14), where),  # carol is in no team
        replied("support", "alice", at(0, 9), at(0, 10), where),
        replied("support", "bob", at(0, 9), at(0, 11), where),
        replied("support", "alice", at(0, 9), at(0, 12), where),
    ]
    rows = summarise(items, "team", where, at(0, 18))
    assert counts(rows) == [("emea", 3, 3, 0, 0), ("tier2", 2, 2, 0, 0), (None, 2, 1, 1, 0)]
    assert sum(row.items for row in rows) == len(items) + 2  # alice's two replies count in both teams
    emea, tier2, nobody = rows
    assert (emea.calendar.median, emea.calendar.mean) == (2 * HOUR, 2 * HOUR)  # 1, 2 and 3 hours
    assert (tier2.calendar.median, tier2.calendar.mean) == (2 * HOUR, 2 * HOUR)  # 1 and 3 hours
    assert nobody.calendar == Distribution(5 * HOUR, 5 * HOUR, 5 * HOUR)
    assert nobody.reply_rate == 0.5


def test_by_mailbox_is_the_context() -> None:
    where = directory()
    items = [
        replied("support", "alice", at(0, 9), at(0, 10), where),
        replied("sales", "alice", at(0, 9), at(0, 10), where),
        waiting("alice", at(0, 9)),
    ]
    rows = summarise(items, "mailbox", where, at(0, 18))
    assert counts(rows) == [("alice", 1, 0, 1, 0), ("sales", 1, 1, 0, 0), ("support", 1, 1, 0, 0)]


# --- reply rate, awaiting and unanswered ------------------------------------------------------------


def test_reply_rate_is_replied_over_all_items_of_the_group() -> None:
    where = directory(window_days=1)
    now = at(3, 12)
    items = [
        replied("support", "alice", at(0, 9), at(0, 10), where),
        replied("support", "bob", at(0, 9), at(0, 11), where),
        waiting("support", at(3, 9)),  # 3 hours old: awaiting
        waiting("support", at(0, 9)),  # 3 days old, the window is 1 day: unanswered
        waiting("sales", at(3, 9)),
    ]
    support, sales = reversed(summarise(items, "mailbox", where, now))
    assert counts([support, sales]) == [("support", 4, 2, 1, 1), ("sales", 1, 0, 1, 0)]
    assert support.reply_rate == 2 / 4  # not 2/3: the awaiting item counts too
    assert sales.reply_rate == 0.0
    assert sales.calendar == sales.business == Distribution(None, None, None)


@pytest.mark.parametrize(
    ("age", "awaiting", "unanswered"),
    [
        (timedelta(days=1) - SECOND, 1, 1),
        (timedelta(days=1), 1, 1),
        (timedelta(days=1) + SECOND, 0, 2),
    ],
)
def test_an_open_item_is_awaiting_until_its_window_has_passed_by_now(
    age: timedelta, awaiting: int, unanswered: int
) -> None:
    where = directory(window_days=1)
    opened = at(0, 9)
    items = [
        waiting("support", opened),
        waiting("support", opened, stored="unanswered"),  # stays unanswered whatever now is
        replied("support", "alice", opened, opened + timedelta(hours=1), where),  # stays replied
    ]
    [row] = summarise(items, "mailbox", where, opened + age)
    assert (row.replied, row.awaiting, row.unanswered) == (1, awaiting, unanswered)


# --- median, p90, mean ------------------------------------------------------------------------------


def quantiles(values: Sequence[float]) -> tuple[float, float]:
    """Median and p90 by the standard library: the inclusive method interpolates between closest ranks."""
    if len(values) == 1:
        return values[0], values[0]  # every rank is the one value
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.quantiles(values, n=2, method="inclusive")[0], deciles[8]


@pytest.mark.parametrize(
    ("values", "median", "p90"),
    [
        # unsorted on purpose; the median and p90 worked out by hand (position = (n - 1) x fraction)
        ([42.0], 42.0, 42.0),
        ([70.0, 10.0], 40.0, 64.0),  # p90 at 0.9: 10 + 0.9 x 60
        ([300.0, 5.0, 60.0], 60.0, 252.0),  # p90 at 1.8 of 5, 60, 300: 60 + 0.8 x 240
        ([8.0, 1.0, 4.0, 2.0], 3.0, 6.8),  # median at 1.5: 2 + 0.5 x 2; p90 at 2.7: 4 + 0.7 x 4
        ([7.0, 1.0, 30.0, 2.0, 19.0, 4.0, 11.0, 3.0, 50.0, 5.0], 6.0, 32.0),  # at 4.5: 5..7; 8.1: 30..50
    ],
)
def test_median_and_p90_interpolate_between_closest_ranks(
    values: list[float], median: float, p90: float
) -> None:
    assert quantiles(values) == pytest.approx((median, p90), rel=1e-12)
    found = Distribution.of(values)
    assert found.median == pytest.approx(median, rel=1e-12)
    assert found.p90 == pytest.approx(p90, rel=1e-12)
    assert found.mean == pytest.approx(statistics.fmean(values), rel=1e-12)


@pytest.mark.parametrize(
    "hours", [[1.5], [6.0, 0.5], [3.0, 1.0, 2.0], [5.0, 0.25, 4.0, 1.0], [float(h) for h in range(10, 0, -1)]]
)
def test_a_report_row_gives_mean_median_and_p90_of_calendar_and_business_time(hours: list[float]) -> None:
    # Replies from Friday 15:00 in office hours: calendar and business time differ once past 17:00.
    where = directory()
    items = [replied("support", "alice", FRIDAY_3PM, FRIDAY_3PM + timedelta(hours=h), where) for h in hours]
    [row] = summarise(items, "agent", where, at(30, 9))
    calendar = [h * HOUR for h in hours]
    business = [OFFICE.business_seconds(FRIDAY_3PM, FRIDAY_3PM + timedelta(hours=h)) for h in hours]
    for found, values in ((row.calendar, calendar), (row.business, business)):
        median, p90 = quantiles(values)
        assert found.median == pytest.approx(median, rel=1e-12)
        assert found.p90 == pytest.approx(p90, rel=1e-12)
        assert found.mean == pytest.approx(statistics.fmean(values), rel=1e-12)
    if max(hours) > 2:
        assert row.business != row.calendar


# --- SLA breaches -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("late", "breaches"), [(timedelta(0), 1), (SECOND, 2)])
def test_a_replied_item_breaches_by_its_business_time_up_to_the_reply(late: timedelta, breaches: int) -> None:
    where = directory(sla_hours=(1, 4))
    item = replied("support", "alice", FRIDAY_3PM, MONDAY_11AM + late, where)
    assert item.calendar_seconds == 68 * HOUR + late.total_seconds()  # far above both thresholds
    assert item.business_seconds == 4 * HOUR + late.total_seconds()  # exactly 4 h is not above 4 h
    assert sla_breaches(item, "replied", at(30, 12), where) == breaches  # now, much later, does not count


@pytest.mark.parametrize(("late", "breaches"), [(timedelta(0), 1), (SECOND, 2)])
def test_an_awaiting_item_breaches_by_its_business_time_up_to_now(late: timedelta, breaches: int) -> None:
    where = directory(sla_hours=(1, 4))
    item = waiting("support", FRIDAY_3PM)
    now = MONDAY_11AM + late
    assert judge(item, now, where) == "awaiting"
    window_end = FRIDAY_3PM + timedelta(days=30)
    assert OFFICE.business_seconds(FRIDAY_3PM, window_end) > 4 * HOUR  # up to the window's end, both
    assert sla_breaches(item, "awaiting", now, where) == breaches


@pytest.mark.parametrize("stored", ["open", "unanswered"])
@pytest.mark.parametrize(("early", "breaches"), [(timedelta(0), 1), (SECOND, 2)])
def test_an_unanswered_item_breaches_by_its_business_time_up_to_the_end_of_the_window(
    stored: Literal["open", "unanswered"], early: timedelta, breaches: int
) -> None:
    # A one-day window from Friday 15:00 ends on Saturday 15:00: 2 business hours, Friday's last two.
    where = directory(sla_hours=(1, 2), window_days=1)
    item = waiting("support", FRIDAY_3PM - early, stored)
    now = at(11, 12)  # the Friday after: four more office days
    assert judge(item, now, where) == "unanswered"
    assert OFFICE.business_seconds(item.opened_at, now) > 2 * HOUR  # up to now, both would be breached
    assert sla_breaches(item, "unanswered", now, where) == breaches


def test_no_sla_no_breach() -> None:
    where = directory(sla_hours=(1,))
    item = waiting("sales", at(0, 9))  # sales has no SLA
    assert sla_breaches(item, "awaiting", at(20, 9), where) == 0
    assert sla_breaches(replace(item, context="gone"), "awaiting", at(20, 9), where) == 0  # not configured


def test_a_report_row_adds_up_the_breaches_of_its_items_in_each_group() -> None:
    where = directory(sla_hours=(1, 4))
    now = MONDAY_11AM
    items = [
        replied("support", "alice", FRIDAY_3PM, MONDAY_11AM - SECOND, where),  # 4 h - 1 s: one
        replied("support", "bob", at(7, 9), at(7, 10, 30), where),  # 1.5 h: one
        replied("support", "carol", at(7, 9), at(7, 9, 30), where),  # none
        waiting("support", FRIDAY_3PM),  # awaiting, 4 h by now: one
        waiting("support", at(4, 16)),  # awaiting, 3 h by now: one
    ]
    by_team = {row.group: row.sla_breaches for row in summarise(items, "team", where, now)}
    assert by_team == {"emea": 2, "tier2": 1, None: 2}
    [support] = summarise(items, "mailbox", where, now)
    assert support.sla_breaches == 4


# --- --since and --until ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02", datetime(2026, 3, 2, tzinfo=UTC)),  # a date without a time is midnight UTC
        ("2026-03-02T09:30", datetime(2026, 3, 2, 9, 30, tzinfo=UTC)),
        ("2026-03-02T09:30+01:00", datetime(2026, 3, 2, 8, 30, tzinfo=UTC)),
    ],
)
def test_since_and_until_read_a_date_without_a_time_as_midnight_utc(text: str, expected: datetime) -> None:
    from ttrd.cli import _moment  # the CLI reads the options; the store selects by opened_at

    assert _moment(text, "--since") == expected
