"""The metrics of SPEC §6, computed from storage at every scrape (docs/metrics.md describes each one).

A Prometheus custom collector: `collect()` reads storage and yields fresh metric families, so every
value is what the database says at that moment — the same after a restart — and never a running
total in memory that could drift from it. Items are aggregated in the database, one row per
histogram series; only the unreplied items of contexts with an SLA are read one by one, because
whether their business time has passed a threshold depends on the clock.

Label values are context and agent ids as the engine stored them on items (the configuration allows
only `[a-z0-9_-]+`), reasons and results that ttrd itself names, and the build's versions: never an
e-mail address.
"""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ttrd import __version__
from ttrd.journal.directory import Directory
from ttrd.journal.engine import judge
from ttrd.journal.facts import Item
from ttrd.journal.report import sla_breaches
from ttrd.storage.port import Store

DEFAULT_BUCKETS: tuple[float, ...] = tuple(
    60.0 * minutes for minutes in (1, 5, 15, 30, 60, 120, 240, 480, 1440, 2880, 4320, 10080)
)
"""1 minute to 1 week: from a desk that answers at once to one that takes days."""

UNKNOWN_AGENT = "unknown"
"""The `agent` label of replies that no configured agent sent (SPEC §3, "Who replied": null)."""

Histograms = Mapping[tuple[str, str | None, bool, str], tuple[list[int], float]]
Tallies = Mapping[tuple[str, str], tuple[int, int, datetime | None]]
Counts = Mapping[tuple[str, str], int]

_INGEST_COUNTERS: dict[str, tuple[str, str, str | None]] = {
    # name in the counters table: (metric name, help, label name for the counter's label or None)
    "smtp_messages": (
        "ttrd_smtp_messages",
        "Messages offered to the SMTP journaling sink, by result (accepted: stored and answered 250; "
        "tempfail: answered 4xx, the mail server retries).",
        "result",
    ),
    "parse_errors": (
        "ttrd_parse_errors",
        "Copies that could not be understood as e-mail (kept among the rejects).",
        None,
    ),
    "duplicate_observations": (
        "ttrd_duplicate_observations",
        "Copies already seen (the same bytes delivered the same way), dropped.",
        None,
    ),
}


def bucket_bounds(directory: Directory) -> tuple[float, ...]:
    """The default ladder and every configured SLA threshold, ascending: one set for all series, so
    that series add up, and a threshold is a bucket bound, so `le` reads the share within it."""
    thresholds = {float(sla.seconds) for context in directory.contexts.values() for sla in context.sla}
    return tuple(sorted(set(DEFAULT_BUCKETS) | thresholds))


def _no_counters() -> Counts:
    return {}


class TtrdCollector:
    """Register it in a fresh `CollectorRegistry`; each scrape calls `collect` (in a worker thread)."""

    def __init__(
        self,
        store: Store,
        directory: Directory,
        clock: Callable[[], datetime],
        extra_counters: Callable[[], Counts] = _no_counters,
    ) -> None:
        self._store = store
        self._directory = directory
        self._clock = clock
        self._extra_counters = extra_counters
        self._window = timedelta(seconds=directory.organization.window_seconds)
        self.bounds = bucket_bounds(directory)
        self._bucket = {bound: index for index, bound in enumerate(self.bounds)}
        # Smallest first: an item past k thresholds is past exactly the first k (ties pass together).
        self._thresholds = {
            context.id: sorted(context.sla, key=lambda sla: sla.seconds)
            for context in directory.contexts.values()
            if context.sla
        }
        self._settled: dict[Item, int] = {}
        """Thresholds passed by each unreplied item whose window has ended, as of the last scrape."""

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        histograms, tallies, unreplied = self._store.items_for_metrics(
            self.bounds, now - self._window, self._thresholds.keys()
        )
        contexts = sorted(self._directory.contexts.keys() | {context for context, _ in tallies})
        yield _build_info()
        yield _reply_seconds(histograms, self.bounds)
        yield from _awaiting(tallies, contexts)
        yield _unanswered(tallies, contexts)
        yield self._sla_breaches(histograms, unreplied, now)
        yield _inbound(tallies, contexts)
        yield _excluded(self._store.excluded_counts())
        totals = Counter(self._store.counters())
        totals.update(self._extra_counters())
        yield from _ingest_counters(totals)

    def _sla_breaches(self, histograms: Histograms, unreplied: Iterable[Item], now: datetime) -> Metric:
        passed = Counter(
            {(context, sla.label): 0 for context, slas in self._thresholds.items() for sla in slas}
        )
        # A replied item is past a threshold when its business seconds are above it: all the items of
        # its series but those within the threshold, which is a bucket bound.
        for (context, _, _, clock), (cumulative, _) in histograms.items():
            if clock == "business":
                for sla in self._thresholds.get(context, ()):
                    passed[(context, sla.label)] += cumulative[-1] - cumulative[self._bucket[sla.seconds]]
        settled: dict[Item, int] = {}
        for item in unreplied:
            for sla in self._thresholds[item.context][: self._passed(item, now, settled)]:
                passed[(item.context, sla.label)] += 1
        self._settled = settled
        family = CounterMetricFamily(
            "ttrd_sla_breaches",
            "SLA thresholds passed, once per item and threshold: replied late, or waiting past it.",
            labels=("mailbox", "sla"),
        )
        for labels, value in sorted(passed.items()):
            family.add_metric(labels, value)
        return family

    def _passed(self, item: Item, now: datetime, settled: dict[Item, int]) -> int:
        """How many of its context's thresholds an unreplied item has passed at `now`.

        Once its window has ended the business time counts up to the end of the window whatever the
        clock says, so the number is kept for the next scrape (in `settled`, which holds only the
        items read this time). An item is its whole stored row: a changed item is a new key.
        """
        if now < item.opened_at + self._window:
            return sla_breaches(item, judge(item, now, self._directory), now, self._directory)
        count = self._settled.get(item)
        if count is None:
            count = sla_breaches(item, judge(item, now, self._directory), now, self._directory)
        settled[item] = count
        return count


def _build_info() -> Metric:
    family = GaugeMetricFamily(
        "ttrd_build_info", "The running ttrd and Python versions; always 1.", labels=("version", "python")
    )
    family.add_metric([__version__, platform.python_version()], 1)
    return family


def _reply_seconds(histograms: Histograms, bounds: tuple[float, ...]) -> Metric:
    family = HistogramMetricFamily(
        "ttrd_reply_seconds",
        "Seconds from an item's opening to its reply, on the calendar or within business hours.",
        labels=("mailbox", "agent", "first", "clock"),
    )
    edges = [*map(repr, bounds), "+Inf"]
    series = {
        (context, agent or UNKNOWN_AGENT, "true" if first else "false", clock): values
        for (context, agent, first, clock), values in histograms.items()
    }
    for labels, (cumulative, total) in sorted(series.items()):
        family.add_metric(labels, list(zip(edges, cumulative, strict=True)), total)
    return family


def _awaiting(tallies: Tallies, contexts: Iterable[str]) -> Iterator[Metric]:
    count = GaugeMetricFamily(
        "ttrd_awaiting_replies", "Items waiting for a reply, within the window.", labels=("mailbox",)
    )
    oldest = GaugeMetricFamily(
        "ttrd_oldest_awaiting_reply_timestamp_seconds",
        "Opening time of the oldest item waiting for a reply; no series when none waits.",
        labels=("mailbox",),
    )
    for context in contexts:
        _, waiting, earliest = tallies.get((context, "open"), (0, 0, None))
        count.add_metric([context], waiting)
        if earliest is not None:
            oldest.add_metric([context], earliest.timestamp())
    yield count
    yield oldest


def _unanswered(tallies: Tallies, contexts: Iterable[str]) -> Metric:
    family = CounterMetricFamily(
        "ttrd_unanswered",
        "Items with no reply within the window: closed so by later mail, or still open past it.",
        labels=("mailbox",),
    )
    for context in contexts:
        closed, _, _ = tallies.get((context, "unanswered"), (0, 0, None))
        still_open, waiting, _ = tallies.get((context, "open"), (0, 0, None))
        family.add_metric([context], closed + still_open - waiting)
    return family


def _inbound(tallies: Tallies, contexts: Iterable[str]) -> Metric:
    family = CounterMetricFamily(
        "ttrd_inbound_messages",
        "Inbound messages that opened an item (a customer's further message to an open item is not counted).",
        labels=("mailbox",),
    )
    per_context = Counter(dict.fromkeys(contexts, 0))
    for (context, _), (count, _, _) in tallies.items():
        per_context[context] += count
    for context, count in sorted(per_context.items()):
        family.add_metric([context], count)
    return family


def _excluded(counts: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(
        "ttrd_excluded_messages", "Messages left out as automatic mail, by reason.", labels=("reason",)
    )
    for reason, count in sorted(counts.items()):
        family.add_metric([reason], count)
    return family


def _ingest_counters(totals: Counts) -> Iterator[Metric]:
    for name, (metric, documentation, label) in _INGEST_COUNTERS.items():
        if label is None:
            yield CounterMetricFamily(metric, documentation, value=totals.get((name, ""), 0))
            continue
        family = CounterMetricFamily(metric, documentation, labels=(label,))
        for (counter, value), count in sorted(totals.items()):
            if counter == name:
                family.add_metric([value], count)
        yield family
