"""Reply times of items as histogram tallies, one per series (context, agent, first, clock). Pure.

Kept in storage and brought up to date by every batch (the difference between a conversation's
items before and after its replay), so that reading the histogram costs one row per series.
Sums are whole microseconds: adding and taking away floats would drift.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ttrd.replytime.directory import Directory
from ttrd.replytime.items import Item

DEFAULT_BOUNDS: tuple[float, ...] = tuple(
    60.0 * minutes for minutes in (1, 5, 15, 30, 60, 120, 240, 480, 1440, 2880, 4320, 10080)
)
"""1 minute to 1 week: from a desk that answers at once to one that takes days."""

CLOCKS = ("calendar", "business")

Series = tuple[str, str | None, bool, str]
"""(context, agent or None, first, clock)."""


def reply_bounds(directory: Directory) -> tuple[float, ...]:
    """The default ladder and every configured SLA threshold, ascending: one set for all series, so
    that series add up, and a threshold is a bucket bound, so `le` reads the share within it."""
    thresholds = {float(sla.seconds) for context in directory.contexts.values() for sla in context.sla}
    return tuple(sorted(set(DEFAULT_BOUNDS) | thresholds))


def bounds_key(bounds: Iterable[float]) -> str:
    """The bounds as stored beside the tallies: tallies of other bounds are not comparable."""
    return ",".join(map(repr, bounds))


@dataclass(frozen=True, slots=True)
class Tally:
    buckets: tuple[int, ...]
    """Items per bucket (not cumulative); the last bucket is above the last bound."""
    sum_micros: int

    @property
    def count(self) -> int:
        return sum(self.buckets)

    def plus(self, other: Tally) -> Tally:
        return Tally(
            tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
            self.sum_micros + other.sum_micros,
        )

    def negated(self) -> Tally:
        return Tally(tuple(-number for number in self.buckets), -self.sum_micros)


def tally(items: Iterable[Item], bounds: tuple[float, ...]) -> dict[Series, Tally]:
    """The tallies of the replied items among `items`."""
    counts: dict[Series, list[int]] = {}
    sums: dict[Series, int] = {}
    for item in items:
        if item.status != "replied":
            continue
        for clock, seconds in zip(CLOCKS, (item.calendar_seconds, item.business_seconds), strict=True):
            if seconds is None:
                continue
            series = (item.context, item.agent, item.first, clock)
            buckets = counts.setdefault(series, [0] * (len(bounds) + 1))
            # A reply that took exactly a bound is within it (Prometheus' `le`).
            buckets[bisect_left(bounds, seconds)] += 1
            sums[series] = sums.get(series, 0) + round(seconds * 1_000_000)
    return {series: Tally(tuple(buckets), sums[series]) for series, buckets in counts.items()}


def difference(after: Mapping[Series, Tally], before: Mapping[Series, Tally]) -> dict[Series, Tally]:
    """What to add to stored tallies to go from `before` to `after`; series that do not change left out."""
    found: dict[Series, Tally] = {}
    for series in after.keys() | before.keys():
        if series in after and series in before:
            change = after[series].plus(before[series].negated())
        else:
            change = after[series] if series in after else before[series].negated()
        if any(change.buckets) or change.sum_micros:
            found[series] = change
    return found
