"""The persistence port: what the ingest pipeline and the views need from storage, and nothing more.

One implementation (`ttrd.storage.sql`) serves SQLite and PostgreSQL. Everything the engine needs
about closed conversations lives behind this interface, so no process keeps history in memory and
several processes can share one database.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ttrd.journal.facts import Source
from ttrd.replytime.batch import BatchChanges
from ttrd.replytime.histogram import Series
from ttrd.replytime.history import History
from ttrd.replytime.items import Item

GENERATION = ("generation", "")
"""The counter every batch that changed messages or items bumps: readers cache what depends on them by it."""


@dataclass(frozen=True, slots=True)
class Reject:
    """A copy that could not be understood; its bytes are kept so nothing is lost."""

    source: Source
    received_at: datetime
    origin: str
    problem: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """The items as the metrics see them, read in one transaction so that the numbers agree."""

    histograms: Mapping[Series, tuple[list[int], float]]
    """Per series of replied items: how many took at most each bound (ascending), then how many
    there are; and the sum of their seconds."""
    item_counts: Mapping[tuple[str, str], int]
    """Items by (context, stored status)."""
    unreplied: list[Item]
    """Every item without a reply (stored `open` or `unanswered`): what the clock judges."""
    excluded: Mapping[str, int]
    """Messages excluded as automatic mail, by reason."""


class Batch(History, Protocol):
    """One transaction: everything written through it becomes durable together, or not at all.

    Its reads (`History`) see the database as the transaction does, writes of the batch included.
    """

    def known_copies(self, copy_keys: Collection[str]) -> set[str]: ...

    def add_rejects(self, rejects: Sequence[Reject]) -> None: ...

    def apply(self, changes: BatchChanges) -> None:
        """Write what `ttrd.replytime.batch.decide` decided: copies, messages, items, histogram."""
        ...

    def add_to_counters(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add to persistent counters, keyed by (name, label)."""
        ...

    def histogram_bounds(self) -> str | None:
        """The bounds (histogram.bounds_key) the stored reply histogram is tallied in, if any."""
        ...

    def rebuild_histogram(self, bounds: tuple[float, ...]) -> None:
        """Tally every replied item again, in these bounds."""
        ...


class Store(Protocol):
    def batch(self) -> AbstractContextManager[Batch]: ...

    def items(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Item]:
        """Items opened in [since, until), in opening order."""
        ...

    def counters(self) -> dict[tuple[str, str], int]: ...

    def rejects(self) -> list[Reject]:
        """Copies set aside (not understood, or failed to process), oldest first."""
        ...

    def close(self) -> None: ...

    # --- reads for metrics ---

    def metrics_snapshot(self, bounds: Sequence[float]) -> MetricsSnapshot:
        """What the metrics need of the items, all read from one committed state."""
        ...
