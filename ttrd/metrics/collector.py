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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from ttrd import __version__
from ttrd.config import UNKNOWN_AGENT
from ttrd.metrics.exposition import Histogram
from ttrd.replytime.directory import Directory
from ttrd.replytime.engine import judge
from ttrd.replytime.histogram import reply_bounds
from ttrd.replytime.items import Item
from ttrd.storage.port import GENERATION, MetricsSnapshot, Store

Histograms = Mapping[tuple[str, str | None, bool, str], tuple[list[int], float]]
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
        "Copies that could not be understood as e-mail (kept among the rejects, with the reason).",
        None,
    ),
    "processing_errors": (
        "ttrd_processing_errors",
        "Copies understood but set aside because processing them failed: a bug to report "
        "(kept among the rejects, with the error).",
        None,
    ),
    "duplicate_observations": (
        "ttrd_duplicate_observations",
        "Copies already seen (the same bytes delivered the same way), dropped.",
        None,
    ),
}


def _no_counters() -> Counts:
    return {}


class AccountHealth(Protocol):
    """What the daemon knows of one IMAP account (ttrd.imap.poller.AccountStatus)."""

    @property
    def up(self) -> bool: ...

    @property
    def last_success(self) -> datetime | None: ...


@dataclass(frozen=True)
class _Generation:
    """What the collector derived from one state of the items (one value of the generation counter)."""

    number: int
    snapshot: MetricsSnapshot
    reply_seconds: Metric
    """The same object while the items do not change, so the renderer reuses its text."""
    excluded: Metric


class TtrdCollector:
    """Register it in a fresh `CollectorRegistry`; each scrape calls `collect` (in a worker thread).

    What depends only on the stored items (the histogram, counts, exclusions) is read again only when
    the pipeline's generation counter moved; what depends on the clock is judged at every scrape.
    """

    def __init__(
        self,
        store: Store,
        directory: Directory,
        clock: Callable[[], datetime],
        extra_counters: Callable[[], Counts] = _no_counters,
        imap_accounts: Callable[[], Mapping[str, AccountHealth]] = dict,
    ) -> None:
        self._store = store
        self._imap_accounts = imap_accounts
        self._directory = directory
        self._clock = clock
        self._extra_counters = extra_counters
        self._window = timedelta(seconds=directory.organization.window_seconds)
        self.bounds = reply_bounds(directory)
        self._bucket = {bound: index for index, bound in enumerate(self.bounds)}
        # Smallest first: an item past k thresholds is past exactly the first k (ties pass together).
        self._thresholds = {
            context.id: sorted(context.sla, key=lambda sla: sla.seconds)
            for context in directory.contexts.values()
            if context.sla
        }
        self._generation: _Generation | None = None
        self._deadlines: dict[Item, list[datetime]] = {}
        """When each unreplied item passes each of its context's thresholds (within its window)."""

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        totals = Counter(self._store.counters())
        generation = self._current(totals[GENERATION])
        snapshot = generation.snapshot
        contexts = sorted(self._directory.contexts.keys() | {context for context, _ in snapshot.item_counts})
        waiting = _waiting(snapshot.unreplied, now, self._directory)
        yield _build_info()
        yield generation.reply_seconds
        yield from _awaiting(waiting, contexts)
        yield _unanswered(snapshot.item_counts, waiting, contexts)
        yield self._sla_breaches(snapshot, now)
        yield _inbound(snapshot.item_counts, contexts)
        yield generation.excluded
        totals.update(self._extra_counters())
        yield from _ingest_counters(totals)
        yield from _imap(self._imap_accounts(), totals)

    def _current(self, number: int) -> _Generation:
        if self._generation is None or self._generation.number != number:
            snapshot = self._store.metrics_snapshot(self.bounds)
            self._generation = _Generation(
                number,
                snapshot,
                _reply_seconds(snapshot.histograms, self.bounds),
                _excluded(snapshot.excluded),
            )
        return self._generation

    def _sla_breaches(self, snapshot: MetricsSnapshot, now: datetime) -> Metric:
        passed = Counter(
            {(context, sla.label): 0 for context, slas in self._thresholds.items() for sla in slas}
        )
        # A replied item is past a threshold when its business seconds are above it: all the items of
        # its series but those within the threshold, which is a bucket bound.
        for (context, _, _, clock), (cumulative, _) in snapshot.histograms.items():
            if clock == "business":
                for sla in self._thresholds.get(context, ()):
                    passed[(context, sla.label)] += cumulative[-1] - cumulative[self._bucket[sla.seconds]]
        deadlines: dict[Item, list[datetime]] = {}
        for item in snapshot.unreplied:
            if item.context in self._thresholds:
                known = self._deadlines.get(item)
                deadlines[item] = known if known is not None else self._item_deadlines(item)
                # Business time counts up to now, and for an item past its window up to the window's end.
                until = min(now, item.opened_at + self._window)
                for sla, deadline in zip(self._thresholds[item.context], deadlines[item], strict=False):
                    if deadline < until:
                        passed[(item.context, sla.label)] += 1
        self._deadlines = deadlines
        family = CounterMetricFamily(
            "ttrd_sla_breaches",
            "SLA thresholds passed, once per item and threshold: replied late, or waiting past it.",
            labels=("mailbox", "sla"),
        )
        for labels, value in sorted(passed.items()):
            family.add_metric(labels, value)
        return family

    def _item_deadlines(self, item: Item) -> list[datetime]:
        """The instants at which an item passes its context's thresholds, smallest threshold first.

        They do not depend on the clock, so each is computed once per item; a threshold not passed
        within the window has no deadline (the list is shorter).
        """
        context = self._directory.context(item.context)
        assert context is not None
        horizon = item.opened_at + self._window
        found: list[datetime] = []
        for sla in self._thresholds[item.context]:
            deadline = context.schedule.passing_instant(item.opened_at, sla.seconds, horizon)
            if deadline is None:
                break
            found.append(deadline)
        return found


def _waiting(unreplied: Iterable[Item], now: datetime, directory: Directory) -> dict[str, list[datetime]]:
    """Opening times of the items that await a reply at `now`, by context."""
    waiting: dict[str, list[datetime]] = {}
    for item in unreplied:
        if judge(item, now, directory) == "awaiting":
            waiting.setdefault(item.context, []).append(item.opened_at)
    return waiting


def _build_info() -> Metric:
    family = GaugeMetricFamily(
        "ttrd_build_info", "The running ttrd and Python versions; always 1.", labels=("version", "python")
    )
    family.add_metric([__version__, platform.python_version()], 1)
    return family


def _reply_seconds(histograms: Histograms, bounds: tuple[float, ...]) -> Metric:
    series = {
        (context, agent or UNKNOWN_AGENT, "true" if first else "false", clock): values
        for (context, agent, first, clock), values in histograms.items()
    }
    return Histogram(
        "ttrd_reply_seconds",
        "Seconds from an item's opening to its reply, on the calendar or within business hours.",
        ("mailbox", "agent", "first", "clock"),
        bounds,
        dict(sorted(series.items())),
    )


def _awaiting(waiting: Mapping[str, list[datetime]], contexts: Iterable[str]) -> Iterator[Metric]:
    count = GaugeMetricFamily(
        "ttrd_awaiting_replies", "Items waiting for a reply, within the window.", labels=("mailbox",)
    )
    oldest = GaugeMetricFamily(
        "ttrd_oldest_awaiting_reply_timestamp_seconds",
        "Opening time of the oldest item waiting for a reply; no series when none waits.",
        labels=("mailbox",),
    )
    for context in contexts:
        opened = waiting.get(context, [])
        count.add_metric([context], len(opened))
        if opened:
            oldest.add_metric([context], min(opened).timestamp())
    yield count
    yield oldest


def _unanswered(
    item_counts: Mapping[tuple[str, str], int], waiting: Mapping[str, list[datetime]], contexts: Iterable[str]
) -> Metric:
    family = CounterMetricFamily(
        "ttrd_unanswered",
        "Items with no reply within the window: closed so by later mail, or still open past it.",
        labels=("mailbox",),
    )
    for context in contexts:
        closed = item_counts.get((context, "unanswered"), 0)
        still_open = item_counts.get((context, "open"), 0)
        family.add_metric([context], closed + still_open - len(waiting.get(context, [])))
    return family


def _inbound(item_counts: Mapping[tuple[str, str], int], contexts: Iterable[str]) -> Metric:
    family = CounterMetricFamily(
        "ttrd_inbound_messages",
        "Inbound messages that opened an item (a customer's further message to an open item is not counted).",
        labels=("mailbox",),
    )
    per_context = Counter(dict.fromkeys(contexts, 0))
    for (context, _), count in item_counts.items():
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


def _imap(accounts: Mapping[str, AccountHealth], totals: Counts) -> Iterator[Metric]:
    """The IMAP accounts of this node: every configured one, with zeros until it is first polled."""
    if not accounts:
        return
    up = GaugeMetricFamily(
        "ttrd_imap_up",
        "1 while the account's last IMAP session works, 0 after a failure.",
        labels=("account",),
    )
    success = GaugeMetricFamily(
        "ttrd_imap_last_success_timestamp_seconds",
        "When the account's folders were last all read to their end (Unix time).",
        labels=("account",),
    )
    polls = CounterMetricFamily(
        "ttrd_imap_polls",
        "IMAP polls by result: ok, or the kind of failure (auth, tls, network, timeout, protocol, "
        "throttled, storage, error).",
        labels=("account", "result"),
    )
    fetched = CounterMetricFamily(
        "ttrd_imap_messages", "Message copies fetched over IMAP and spooled, by account.", labels=("account",)
    )
    for account, health in sorted(accounts.items()):
        up.add_metric([account], int(health.up))
        if health.last_success is not None:
            success.add_metric([account], health.last_success.timestamp())
        fetched.add_metric([account], totals.get(("imap_messages", account), 0))
        results = {label.partition("/")[2]: n for (name, label), n in totals.items()
                   if name == "imap_polls" and label.partition("/")[0] == account}  # fmt: skip
        for result, count in sorted({"ok": 0, **results}.items()):
            polls.add_metric([account, result], count)
    yield from (up, success, polls, fetched)
