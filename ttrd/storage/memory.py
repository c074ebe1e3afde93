"""The storage port in memory: what the SQL store does, with dicts, for tests and dry runs.

It keeps the SQL store's contract (tests/storage_contract.py runs one suite against both): a batch
is all or nothing, reads inside a batch see its writes, a key written twice is an error. Nothing
survives the process.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import accumulate
from typing import TypeVar

from ttrd.errors import StorageError
from ttrd.replytime.batch import BatchChanges
from ttrd.replytime.conversations import normalise_subject, tokens
from ttrd.replytime.histogram import Series, Tally, bounds_key, tally
from ttrd.replytime.history import CopyRecord, StoredMessage, SubjectEntry
from ttrd.replytime.items import Item
from ttrd.storage.port import MetricsSnapshot, Reject

ItemKey = tuple[str, str, str]
"""(conversation, context, inbound message id): an item's identity, as the SQL table's key."""


@dataclass
class _State:
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    """Every id a message is known by → its canonical id."""
    holders: dict[str, set[str]] = field(default_factory=dict)
    """Link token → the messages that hold it."""
    copies: dict[str, CopyRecord] = field(default_factory=dict)
    items: dict[ItemKey, Item] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    counters: Counter[tuple[str, str]] = field(default_factory=Counter)
    histogram: dict[Series, Tally] = field(default_factory=dict)
    bounds: str | None = None

    def copy(self) -> _State:
        return replace(
            self,
            messages=dict(self.messages),
            aliases=dict(self.aliases),
            holders={token: set(holders) for token, holders in self.holders.items()},
            copies=dict(self.copies),
            items=dict(self.items),
            rejects=list(self.rejects),
            counters=Counter(self.counters),
            histogram=dict(self.histogram),
        )


class MemoryStore:
    def __init__(self) -> None:
        self._state = _State()

    @contextmanager
    def batch(self) -> Iterator[MemoryBatch]:
        working = self._state.copy()
        yield MemoryBatch(working)
        self._state = working  # only when the block ended without an exception: a commit

    def items(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Item]:
        chosen = [
            item
            for item in self._state.items.values()
            if (since is None or item.opened_at >= since) and (until is None or item.opened_at < until)
        ]
        return iter(sorted(chosen, key=lambda i: (i.opened_at, i.context, i.inbound_message_id)))

    def counters(self) -> dict[tuple[str, str], int]:
        return dict(+self._state.counters)

    def rejects(self) -> list[Reject]:
        return list(self._state.rejects)

    def close(self) -> None:
        pass

    def metrics_snapshot(self, bounds: Sequence[float]) -> MetricsSnapshot:
        state = self._state
        items = list(state.items.values())
        kept = state.histogram if state.bounds == bounds_key(bounds) else tally(items, tuple(bounds))
        return MetricsSnapshot(
            histograms={series: _cumulative(t) for series, t in kept.items() if t.count},
            item_counts=Counter((item.context, item.status) for item in items),
            unreplied=[replace(item, customer=None) for item in items if item.status != "replied"],
            excluded=Counter(m.automatic for m in state.messages.values() if m.automatic is not None),
        )


def _cumulative(kept: Tally) -> tuple[list[int], float]:
    return list(accumulate(kept.buckets)), kept.sum_micros / 1_000_000


class MemoryBatch:
    def __init__(self, state: _State) -> None:
        self._state = state

    # --- History ---

    def messages_by_ids(self, ids: Collection[str]) -> list[StoredMessage]:
        return self.messages({self._state.aliases[i] for i in ids if i in self._state.aliases})

    def messages(self, message_ids: Collection[str]) -> list[StoredMessage]:
        return [self._state.messages[mid] for mid in sorted(message_ids) if mid in self._state.messages]

    def subject_entries(
        self, subject_keys: Collection[str], since: datetime, until: datetime
    ) -> list[SubjectEntry]:
        wanted = set(subject_keys)
        return [
            SubjectEntry(mid, m.facts.event_time, key, m.facts.threaded, m.subject_link, m.conversation)
            for mid, m in self._state.messages.items()
            if (key := normalise_subject(m.facts.subject)) in wanted and since <= m.facts.event_time <= until
        ]

    def conversations_with_tokens(self, tokens: Collection[str]) -> set[str]:
        holders = {mid for token in tokens for mid in self._state.holders.get(token, ())}
        return {c for mid in holders if (c := self._state.messages[mid].conversation) is not None}

    def messages_in(self, conversations: Collection[str]) -> list[StoredMessage]:
        wanted = set(conversations)
        return [m for m in self._state.messages.values() if m.conversation in wanted]

    def items_in(self, conversations: Collection[str]) -> list[Item]:
        wanted = set(conversations)
        return [item for item in self._state.items.values() if item.conversation in wanted]

    # --- writes ---

    def known_copies(self, copy_keys: Collection[str]) -> set[str]:
        return set(copy_keys) & self._state.copies.keys()

    def add_rejects(self, rejects: Sequence[Reject]) -> None:
        self._state.rejects.extend(rejects)

    def apply(self, changes: BatchChanges) -> None:
        state = self._state
        for record in changes.copies:
            _add(state.copies, record.copy_key, record)
        for message in changes.deleted:
            self._forget(message)
        for message in changes.inserted:
            self._remember(message)
        for message in changes.updated:
            state.messages[message.facts.message_id] = message
        state.items = {key: i for key, i in state.items.items() if key[0] not in changes.conversations}
        for item in changes.items:
            _add(state.items, (item.conversation, item.context, item.inbound_message_id), item)
        self._add_to_histogram(changes.histogram)

    def _remember(self, message: StoredMessage) -> None:
        facts = message.facts
        _add(self._state.messages, facts.message_id, message)
        for alias in facts.ids:
            _add(self._state.aliases, alias, facts.message_id)
        for token in tokens(facts.ids, facts.links, facts.thread_key):
            self._state.holders.setdefault(token, set()).add(facts.message_id)

    def _forget(self, message: StoredMessage) -> None:
        facts = message.facts
        del self._state.messages[facts.message_id]
        for alias in facts.ids:
            self._state.aliases.pop(alias, None)
        for token in tokens(facts.ids, facts.links, facts.thread_key):
            self._state.holders.get(token, set()).discard(facts.message_id)

    def add_to_counters(self, counts: Mapping[tuple[str, str], int]) -> None:
        self._state.counters.update(counts)

    def histogram_bounds(self) -> str | None:
        return self._state.bounds

    def rebuild_histogram(self, bounds: tuple[float, ...]) -> None:
        self._state.histogram = {}
        self._add_to_histogram(tally(self._state.items.values(), bounds))
        self._state.bounds = bounds_key(bounds)

    def _add_to_histogram(self, changes: Mapping[Series, Tally]) -> None:
        kept = self._state.histogram
        for series, change in changes.items():
            total = change.plus(kept[series]) if series in kept else change
            if total.count:
                kept[series] = total
            else:
                kept.pop(series, None)


K = TypeVar("K")
V = TypeVar("V")


def _add(table: dict[K, V], key: K, value: V) -> None:
    """Insert a new key; a key written twice is an error, as a primary key is in SQL."""
    if key in table:
        raise StorageError(f"duplicate key {key!r}")
    table[key] = value
