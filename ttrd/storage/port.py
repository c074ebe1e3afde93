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

from ttrd.journal.facts import MessageFacts, Source
from ttrd.replytime.histogram import Series, Tally
from ttrd.replytime.items import Item

GENERATION = ("generation", "")
"""The counter every batch that changed messages or items bumps: readers cache what depends on them by it."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    facts: MessageFacts
    conversation: str | None = None
    subject_link: str | None = None
    """The message this one joins by subject (SPEC §3 rule 3), when it has no threading headers."""
    automatic: str | None = None
    """Why the configuration excludes it as automatic mail, as of the last time it was replayed."""


@dataclass(frozen=True, slots=True)
class SubjectEntry:
    """What the subject fallback needs to know of a stored message before reading its facts."""

    message_id: str
    event_time: datetime
    subject_key: str
    threaded: bool
    subject_link: str | None
    conversation: str | None


@dataclass(frozen=True, slots=True)
class CopyRecord:
    """One observation of a message: which copy, how it came, when."""

    copy_key: str
    message_id: str
    source: Source
    received_at: datetime
    event_time: datetime


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


class Batch(Protocol):
    """One transaction: everything written through it becomes durable together, or not at all."""

    def known_copies(self, copy_keys: Collection[str]) -> set[str]: ...

    def add_copies(self, copies: Sequence[CopyRecord]) -> None: ...

    def add_rejects(self, rejects: Sequence[Reject]) -> None: ...

    def messages_by_ids(self, ids: Collection[str]) -> list[StoredMessage]:
        """Messages known by any of these ids (Message-ID or an alternative id)."""
        ...

    def messages(self, message_ids: Collection[str]) -> list[StoredMessage]:
        """Messages by their canonical ids."""
        ...

    def conversations_with_tokens(self, tokens: Collection[str]) -> set[str]: ...

    def subject_entries(
        self, subject_keys: Collection[str], since: datetime, until: datetime
    ) -> list[SubjectEntry]:
        """Messages with these normalised subjects and event times in [since, until]."""
        ...

    def messages_in(self, conversations: Collection[str]) -> list[StoredMessage]: ...

    def delete_messages(self, messages: Sequence[StoredMessage]) -> None:
        """Remove these messages' rows, with the tokens and ids that found them."""
        ...

    def insert_messages(self, messages: Sequence[StoredMessage]) -> None:
        """Write new message rows, with the tokens and ids that find them."""
        ...

    def update_messages(self, messages: Sequence[StoredMessage]) -> None:
        """Rewrite the conversation, subject link and exclusion of stored messages (facts unchanged)."""
        ...

    def replace_items(self, conversations: Collection[str], items: Sequence[Item]) -> list[Item]:
        """Replace every item of these conversations with `items`; return the items replaced."""
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

    def add_to_histogram(self, changes: Mapping[Series, Tally]) -> None: ...


class Store(Protocol):
    def batch(self) -> AbstractContextManager[Batch]: ...

    def items(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Item]:
        """Items opened in [since, until), in opening order."""
        ...

    def counters(self) -> dict[tuple[str, str], int]: ...

    def close(self) -> None: ...

    # --- reads for metrics ---

    def metrics_snapshot(self, bounds: Sequence[float]) -> MetricsSnapshot:
        """What the metrics need of the items, all read from one committed state."""
        ...
