"""From raw copies to stored items: parse, deduplicate, merge, relink, replay (one transaction per batch).

Every path in (SMTP, IMAP, import) hands batches of (bytes, Delivery) to `Pipeline.ingest`. A batch:

1. parses each copy (pure); copies that cannot be understood are kept as rejects;
2. drops copies already seen (same bytes, same delivery) and merges the rest with the messages they
   are copies of (same Message-ID or X-Microsoft-Original-Message-ID);
3. finds the conversations the batch touches: through shared ids and Thread-Index keys, and through
   subject links, which a late message can move (it may be a more recent earlier message for others);
4. loads those conversations whole, regroups them, replays each group through the engine and
   replaces their items.

Because each touched conversation is replayed from all its messages, the stored items are the same
whatever order the copies came in; memory holds one batch and the conversations it touches.

No single message may stop measurement: a copy whose parsing raises anything is a parse error, and
when steps 2–4 raise anything but a StorageError (the database's trouble, retried by the caller),
the batch is split in halves until the copy that fails is alone; it is set aside among the rejects
(a processing error) and everything else is stored.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce

from ttrd.errors import ParseError, StorageError
from ttrd.journal.facts import Delivery, MessageFacts
from ttrd.journal.parse import KEPT_BODY_BYTES, parse_message, reduce_message
from ttrd.replytime.conversations import (
    SUBJECT_WINDOW,
    SubjectNode,
    components,
    conversation_id,
    normalise_subject,
    subject_link,
    tokens,
)
from ttrd.replytime.directory import Directory
from ttrd.replytime.engine import Classified, classify, conversation_items
from ttrd.replytime.histogram import bounds_key, difference, reply_bounds, tally
from ttrd.replytime.items import Item
from ttrd.storage.port import GENERATION, Batch, CopyRecord, Reject, Store, StoredMessage, SubjectEntry

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """What one or more batches did; results of several batches add up with `+=`."""

    read: int = 0
    parse_errors: int = 0
    """Copies that could not be understood (their bytes are kept among the rejects)."""
    processing_errors: int = 0
    """Copies understood but set aside because processing them failed (a bug; kept among the rejects)."""
    duplicates: int = 0
    """Copies already seen (the same bytes delivered the same way)."""
    new_messages: int = 0
    merged_copies: int = 0
    """New copies of messages already known (another journal copy, another mailbox)."""
    excluded: Counter[str] = field(default_factory=Counter)
    items_opened: int = 0
    items_closed: int = 0

    def __iadd__(self, other: IngestResult) -> IngestResult:
        for name in (
            "read",
            "parse_errors",
            "processing_errors",
            "duplicates",
            "new_messages",
            "merged_copies",
            "items_opened",
            "items_closed",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.excluded += other.excluded
        return self


@dataclass(frozen=True, slots=True)
class Copy:
    raw: bytes
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class ParsedCopy:
    facts: MessageFacts
    delivery: Delivery
    kept: bytes
    """What goes to the rejects should processing it fail: the copy, reduced when it is large."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A batch after step 1: the facts of each copy understood, and the copies that were not."""

    copies: list[ParsedCopy]
    rejects: list[Reject]


MAX_PROBLEM_CHARS = 1000
"""Of an error's text in a reject: an exception may quote a whole header."""


def parse_copies(copies: Iterable[Copy]) -> Parsed:
    """Step 1, pure, so a caller may run it in another process while the previous batch is stored.

    Whatever parsing one copy raises makes it a reject; the others go on.
    """
    parsed: list[ParsedCopy] = []
    rejects: list[Reject] = []
    for copy in copies:
        try:
            facts = parse_message(copy.raw, copy.delivery)
        except ParseError as error:
            log.warning("%s: not understood (%s); kept among the rejects", _origin(copy.delivery), error)
            rejects.append(_reject(copy.delivery, str(error), copy.raw))
        except Exception as error:  # a parser bug must cost one message, not the batch
            log.exception("%s: parsing failed; kept among the rejects", _origin(copy.delivery))
            rejects.append(_reject(copy.delivery, f"parsing failed: {_describe(error)}", copy.raw))
        else:
            parsed.append(ParsedCopy(facts, copy.delivery, _kept(copy.raw)))
    return Parsed(parsed, rejects)


def _kept(raw: bytes) -> bytes:
    # A small copy is kept as it is; reducing it would cost more than it saves.
    return raw if len(raw) <= 2 * KEPT_BODY_BYTES else reduce_message(raw)


def _reject(delivery: Delivery, problem: str, raw: bytes) -> Reject:
    return Reject(delivery.source, delivery.received_at, delivery.origin, problem[:MAX_PROBLEM_CHARS], raw)


def _origin(delivery: Delivery) -> str:
    return delivery.origin or f"a message received by {delivery.source}"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Pipeline:
    def __init__(self, store: Store, directory: Directory) -> None:
        self.store = store
        self.directory = directory
        self.bounds = reply_bounds(directory)

    def ingest(self, copies: Sequence[Copy]) -> IngestResult:
        """Store a batch durably and bring the items of every conversation it touches up to date."""
        return self.store_parsed(parse_copies(copies))

    def store_parsed(self, parsed: Parsed) -> IngestResult:
        """Steps 2 to 4 of a parsed batch, in one transaction; a copy that fails them is set aside.

        Raises StorageError only: when the database fails, nothing of the batch is stored.
        """
        try:
            return self._store(parsed)
        except StorageError:
            raise
        except Exception as error:
            failure = error
        if len(parsed.copies) > 1:
            # Halves until the failing copy is alone: log2(batch) extra transactions per bad copy.
            half = len(parsed.copies) // 2
            result = self.store_parsed(Parsed(parsed.copies[:half], parsed.rejects))
            result += self.store_parsed(Parsed(parsed.copies[half:], []))
            return result
        # A failure that an empty batch meets too is not this copy's: it propagates, and the
        # caller keeps the batch to try again, rather than every copy being set aside one by one.
        self._store(Parsed([], []))
        return self._set_aside(parsed, failure)

    def _store(self, parsed: Parsed) -> IngestResult:
        result = IngestResult(read=len(parsed.copies) + len(parsed.rejects), parse_errors=len(parsed.rejects))
        with self.store.batch() as batch:
            if batch.histogram_bounds() != bounds_key(self.bounds):  # new database, or SLAs changed
                batch.rebuild_histogram(self.bounds)
            batch.add_rejects(parsed.rejects)
            known = batch.known_copies({copy.facts.copy_key for copy in parsed.copies})
            fresh = _fresh(parsed.copies, known)
            result.duplicates = len(parsed.copies) - len(fresh)
            if fresh:
                _Replay(batch, self.directory, self.bounds, result).run(fresh)
            batch.add_to_counters(_counters(result, changed=bool(fresh)))
        return result

    def _set_aside(self, parsed: Parsed, error: Exception) -> IngestResult:
        """The batch's rejects, and its one copy (if any) as a processing error."""
        rejects = list(parsed.rejects)
        result = IngestResult(read=len(parsed.copies) + len(rejects), parse_errors=len(rejects))
        for copy in parsed.copies:
            log.error("%s: processing failed; kept among the rejects", _origin(copy.delivery), exc_info=error)
            rejects.append(_reject(copy.delivery, f"processing failed: {_describe(error)}", copy.kept))
            result.processing_errors += 1
        with self.store.batch() as batch:
            batch.add_rejects(rejects)
            batch.add_to_counters(_counters(result, changed=False))
        return result


def _fresh(parsed: Iterable[ParsedCopy], known: set[str]) -> list[tuple[MessageFacts, Delivery]]:
    fresh: dict[str, tuple[MessageFacts, Delivery]] = {}
    for copy in parsed:
        if copy.facts.copy_key not in known:
            fresh.setdefault(copy.facts.copy_key, (copy.facts, copy.delivery))
    return list(fresh.values())


def _counters(result: IngestResult, *, changed: bool) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter(
        {
            ("parse_errors", ""): result.parse_errors,
            ("processing_errors", ""): result.processing_errors,
            ("duplicate_observations", ""): result.duplicates,
            GENERATION: int(changed),
        }
    )
    return +counts


@dataclass
class _Merged:
    """The batch's messages after merging copies with each other and with stored messages."""

    messages: dict[str, MessageFacts]
    replacing: dict[str, StoredMessage]
    """Stored messages whose rows the merged messages replace, by id."""
    renamed: dict[str, str]
    """Stored ids that are now known under another canonical id."""
    conversations: set[str]
    """Conversations the stored messages were in."""


class _Replay:
    """Steps 2–4 of a batch, inside its transaction."""

    def __init__(
        self, batch: Batch, directory: Directory, bounds: tuple[float, ...], result: IngestResult
    ) -> None:
        self.batch = batch
        self.directory = directory
        self.bounds = bounds
        self.result = result
        self._classified: dict[str, Classified] = {}

    def run(self, fresh: list[tuple[MessageFacts, Delivery]]) -> None:
        merged = self._merge([facts for facts, _ in fresh])
        canonical = {alias: mid for mid, facts in merged.messages.items() for alias in facts.ids}
        self.batch.add_copies(
            [
                CopyRecord(f.copy_key, canonical[f.message_id], d.source, d.received_at, f.event_time)
                for f, d in fresh
            ]
        )
        new_links, link_conversations = self._relink(merged)
        affected = (
            merged.conversations
            | link_conversations
            | self.batch.conversations_with_tokens(
                {t for m in merged.messages.values() for t in tokens(m.ids, m.links, m.thread_key)}
            )
        )
        stored = {
            s.facts.message_id: s
            for s in self.batch.messages_in(affected)
            if s.facts.message_id not in merged.replacing
        }
        links: dict[str, str | None] = {
            mid: merged.renamed.get(s.subject_link, s.subject_link)
            for mid, s in stored.items()
            if s.subject_link
        }
        links.update(new_links)
        self._replay(stored, merged, {m: t for m, t in links.items() if t is not None}, affected)

    def _merge(self, fresh: list[MessageFacts]) -> _Merged:
        """Group new copies with each other and with stored messages that share an id."""
        stored = self.batch.messages_by_ids({i for facts in fresh for i in facts.ids})
        stored_ids = {s.facts.message_id: s for s in stored}
        messages: dict[str, MessageFacts] = {}
        renamed: dict[str, str] = {}
        for group in _group_by_ids([s.facts for s in stored] + fresh):
            facts = reduce(MessageFacts.merge, group)
            messages[facts.message_id] = facts
            old = [g.message_id for g in group if g.message_id in stored_ids]
            renamed.update({mid: facts.message_id for mid in old if mid != facts.message_id})
            if old:
                self.result.merged_copies += len(group) - len(old)
                continue
            self.result.new_messages += 1
            self.result.merged_copies += len(group) - 1
            reason = self._classify(facts).automatic
            if reason:
                self.result.excluded[reason] += 1
        return _Merged(messages, stored_ids, renamed, {s.conversation for s in stored if s.conversation})

    def _classify(self, facts: MessageFacts) -> Classified:
        found = self._classified.get(facts.message_id)
        if found is None or found.facts is not facts:
            found = self._classified[facts.message_id] = classify(facts, self.directory)
        return found

    def _relink(self, merged: _Merged) -> tuple[dict[str, str | None], set[str]]:
        """Subject links the batch may change, recomputed, and the conversations of those that moved.

        A new message gets its own link, and may become the most recent earlier message for
        unthreaded messages up to SUBJECT_WINDOW after it, so those are recomputed too. Facts are
        read only for subjects where some unthreaded message needs a link.
        """
        new_entries = [_entry(facts) for facts in merged.messages.values()]
        times = [entry.event_time for entry in new_entries]
        entries = {
            entry.message_id: entry
            for entry in self.batch.subject_entries(
                {e.subject_key for e in new_entries}, min(times) - SUBJECT_WINDOW, max(times) + SUBJECT_WINDOW
            )
            if entry.message_id not in merged.replacing
        }
        entries.update({entry.message_id: entry for entry in new_entries})
        by_key: dict[str, list[SubjectEntry]] = {}
        for entry in entries.values():
            by_key.setdefault(entry.subject_key, []).append(entry)
        new_times: dict[str, list[datetime]] = {}
        for entry in new_entries:
            new_times.setdefault(entry.subject_key, []).append(entry.event_time)
        for times_of_key in new_times.values():
            times_of_key.sort()
        due = [
            entry
            for entry in entries.values()
            if not entry.threaded and (entry.message_id in merged.messages or _follows(entry, new_times))
        ]
        nodes = self._subject_nodes({e.subject_key for e in due}, by_key, merged)
        links: dict[str, str | None] = {}
        conversations: set[str] = set()
        for entry in due:
            candidates = [nodes[other.message_id] for other in by_key[entry.subject_key]]
            target = links[entry.message_id] = subject_link(nodes[entry.message_id], candidates)
            if target != merged.renamed.get(entry.subject_link or "", entry.subject_link):
                touched = (entry, entries[target]) if target else (entry,)
                conversations.update(e.conversation for e in touched if e.conversation)
        return links, conversations

    def _subject_nodes(
        self, keys: set[str], by_key: dict[str, list[SubjectEntry]], merged: _Merged
    ) -> dict[str, SubjectNode]:
        """Subject nodes, with their external participants, of every message under these subjects."""
        wanted = [entry for key in keys for entry in by_key[key]]
        facts = dict(merged.messages)
        missing = {e.message_id for e in wanted} - facts.keys()
        facts.update({s.facts.message_id: s.facts for s in self.batch.messages(missing)})
        return {
            e.message_id: SubjectNode(
                e.message_id,
                e.event_time,
                e.subject_key,
                e.threaded,
                self._classify(facts[e.message_id]).external_participants,
            )
            for e in wanted
        }

    def _replay(
        self, stored: dict[str, StoredMessage], merged: _Merged, links: dict[str, str], affected: set[str]
    ) -> None:
        facts = {mid: s.facts for mid, s in stored.items()} | merged.messages
        message_tokens = {mid: tokens(f.ids, f.links, f.thread_key) for mid, f in facts.items()}
        items: list[Item] = []
        updated: list[StoredMessage] = []
        inserted: list[StoredMessage] = []
        for group in components(message_tokens, {m: t for m, t in links.items() if m in facts}):
            conversation = conversation_id(group)
            classified = [self._classify(facts[mid]) for mid in group]
            items.extend(conversation_items(conversation, classified, self.directory))
            for message in classified:
                mid = message.facts.message_id
                new = StoredMessage(message.facts, conversation, links.get(mid), message.automatic)
                if mid in merged.messages:
                    inserted.append(new)
                elif new != stored[mid]:
                    updated.append(new)
        self.batch.delete_messages(list(merged.replacing.values()))
        self.batch.insert_messages(inserted)
        self.batch.update_messages(updated)
        replaced = self.batch.replace_items(affected, items)
        self.batch.add_to_histogram(difference(tally(items, self.bounds), tally(replaced, self.bounds)))
        self._count_items(replaced, items)

    def _count_items(self, old_items: list[Item], new_items: list[Item]) -> None:
        before = {(i.context, i.inbound_message_id): i.status for i in old_items}
        for item in new_items:
            status = before.get((item.context, item.inbound_message_id))
            if status is None:
                self.result.items_opened += 1
            if item.status != "open" and status in (None, "open"):
                self.result.items_closed += 1


def _entry(facts: MessageFacts) -> SubjectEntry:
    return SubjectEntry(
        facts.message_id, facts.event_time, normalise_subject(facts.subject), facts.threaded, None, None
    )


def _follows(entry: SubjectEntry, new_times: dict[str, list[datetime]]) -> bool:
    """Whether a batch message with the entry's subject falls in the window before it."""
    times = new_times.get(entry.subject_key, [])
    index = bisect_left(times, entry.event_time - SUBJECT_WINDOW)
    return index < len(times) and times[index] < entry.event_time


def _group_by_ids(copies: list[MessageFacts]) -> list[list[MessageFacts]]:
    """Copies that share any id are copies of one message."""
    owner: dict[str, int] = {}
    parent = list(range(len(copies)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for index, facts in enumerate(copies):
        for message_id in facts.ids:
            parent[root(index)] = root(owner.setdefault(message_id, index))
    groups: dict[int, list[MessageFacts]] = {}
    for index, facts in enumerate(copies):
        groups.setdefault(root(index), []).append(facts)
    return list(groups.values())
