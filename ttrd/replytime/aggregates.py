"""Aggregates over items for `ttrd report` (and, later, dashboards). Pure: `now` is an argument.

Rules chosen where SPEC is silent (docs/decisions.md repeats them):
- `--by agent` groups by the agent who replied and `--by team` by that agent's teams (an agent in two
  teams counts in both); items nobody replied to (awaiting, unanswered, or replied by an unknown
  address) are in the group `null`.
- reply rate = replied / all items of the group.
- median and p90 interpolate linearly between the closest ranks (numpy's default, Excel PERCENTILE.INC).
- an SLA threshold is breached when the item's business time is above it: up to the reply for a
  replied item, up to `now` for an awaiting one, and up to the end of the window for an unanswered one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ttrd.replytime.directory import Directory
from ttrd.replytime.engine import judge
from ttrd.replytime.items import Item, Status

GroupBy = Literal["mailbox", "agent", "team"]


@dataclass(frozen=True, slots=True)
class Distribution:
    mean: float | None
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        if not values:
            return cls(None, None, None)
        ordered = sorted(values)
        return cls(sum(ordered) / len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.9))


@dataclass(frozen=True, slots=True)
class ReportRow:
    group: str | None
    items: int
    replied: int
    awaiting: int
    unanswered: int
    reply_rate: float | None
    calendar: Distribution
    business: Distribution
    sla_breaches: int


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks of sorted values."""
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def sla_breaches(item: Item, status: Status, now: datetime, directory: Directory) -> int:
    """How many of its context's SLA thresholds an item's business time has passed."""
    context = directory.context(item.context)
    if context is None or not context.sla:
        return 0
    if status == "replied" and item.business_seconds is not None:
        business = item.business_seconds
    else:
        window_end = item.opened_at + timedelta(seconds=directory.organization.window_seconds)
        end = min(now, window_end) if status == "unanswered" else now
        business = context.schedule.business_seconds(item.opened_at, end)
    return sum(1 for sla in context.sla if business > sla.seconds)


def _groups(item: Item, by: GroupBy, directory: Directory) -> list[str | None]:
    if by == "mailbox":
        return [item.context]
    if item.agent is None:
        return [None]
    if by == "agent":
        return [item.agent]
    agent = directory.agent(item.agent)
    return list(agent.teams) if agent is not None and agent.teams else [None]


def summarise(items: Iterable[Item], by: GroupBy, directory: Directory, now: datetime) -> list[ReportRow]:
    """One row per group, sorted by group (the `null` group last)."""
    grouped: dict[str | None, list[tuple[Item, Status]]] = {}
    for item in items:
        status = judge(item, now, directory)
        for group in _groups(item, by, directory):
            grouped.setdefault(group, []).append((item, status))
    return [
        _row(group, grouped[group], directory, now)
        for group in sorted(grouped, key=lambda g: (g is None, g or ""))
    ]


def _row(
    group: str | None, members: list[tuple[Item, Status]], directory: Directory, now: datetime
) -> ReportRow:
    replied = [item for item, status in members if status == "replied"]
    count = {status: sum(1 for _, s in members if s == status) for status in ("awaiting", "unanswered")}
    return ReportRow(
        group=group,
        items=len(members),
        replied=len(replied),
        awaiting=count["awaiting"],
        unanswered=count["unanswered"],
        reply_rate=len(replied) / len(members) if members else None,
        calendar=Distribution.of([i.calendar_seconds for i in replied if i.calendar_seconds is not None]),
        business=Distribution.of([i.business_seconds for i in replied if i.business_seconds is not None]),
        sla_breaches=sum(sla_breaches(item, status, now, directory) for item, status in members),
    )
