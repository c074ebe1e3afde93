from __future__ import annotations

from datetime import UTC, datetime

from ttrd.replytime.histogram import Tally, difference, tally
from ttrd.replytime.items import Item

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def item(context: str, calendar: float | None, business: float | None, status: str = "replied") -> Item:
    return Item("c", context, f"{context}-{calendar}", "jo@cust.net", T0, True, status,  # type: ignore[arg-type]
                "alice", calendar_seconds=calendar, business_seconds=business)  # fmt: skip


def test_a_reply_of_exactly_a_bound_is_within_it_and_sums_are_whole_microseconds() -> None:
    items = [item("support", 60.0, 0.5), item("support", 61.0, 30.0), item("sales", None, None, "open")]
    found = tally(items, (60.0, 3600.0))
    assert found == {
        ("support", "alice", True, "calendar"): Tally((1, 1, 0), 121_000_000),
        ("support", "alice", True, "business"): Tally((2, 0, 0), 30_500_000),
    }


def test_difference_takes_away_what_went_and_leaves_out_what_did_not_change() -> None:
    before = tally([item("support", 10.0, 10.0), item("sales", 5.0, 5.0)], (60.0,))
    after = tally([item("support", 10.0, 10.0), item("support", 100.0, 100.0)], (60.0,))
    change = difference(after, before)
    assert change == {
        ("support", "alice", True, "calendar"): Tally((0, 1), 100_000_000),
        ("support", "alice", True, "business"): Tally((0, 1), 100_000_000),
        ("sales", "alice", True, "calendar"): Tally((-1, 0), -5_000_000),
        ("sales", "alice", True, "business"): Tally((-1, 0), -5_000_000),
    }
