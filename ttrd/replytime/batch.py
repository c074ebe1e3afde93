"""A batch of new copies against what is stored: every decision, and what to write. Pure.

`decide` is the one call an ingest adapter makes per batch. Given the copies storage has not seen and
the stored history (read through the `History` port, in the order the decisions need it), it:

1. merges: copies that share any id are one message (SPEC §2), and merge with the stored messages
   they are copies of; a stored id now known under another canonical id is renamed;
2. relinks: a new message gets its subject link (SPEC §3 rule 3), and may become the most recent
   earlier message for unthreaded messages up to SUBJECT_WINDOW after it, whose links move too;
3. replays: the conversations the batch touches (through merges, shared tokens and moved links) are
   regrouped, each replayed whole through the engine; their items replace the old ones, and the
   reply histogram changes by the difference.

Because every touched conversation is replayed from all its messages, the result is the same whatever
order the copies came in.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce

from ttrd.journal.facts import Delivery, MessageFacts
from ttrd.replytime.conversations import (
    SUBJECT_WINDOW,
    SubjectNode,
    components,
    connected_groups,
    conversation_id,
    normalise_subject,
    shared_key_edges,
    subject_link,
    tokens,
)
from ttrd.replytime.directory import Directory
from ttrd.replytime.engine import Classified, classify, conversation_items
from ttrd.replytime.histogram import Series, Tally, difference, tally
from ttrd.replytime.history import CopyRecord, History, StoredMessage, SubjectEntry
from ttrd.replytime.items import Item


@dataclass
class BatchChanges:
    """What one batch writes, and what it did, for the counters and the import summary."""

    copies: list[CopyRecord] = field(default_factory=list)
    deleted: list[StoredMessage] = field(default_factory=list)
    """Stored messages whose rows merged messages replace."""
    inserted: list[StoredMessage] = field(default_factory=list)
    updated: list[StoredMessage] = field(default_factory=list)
    """Stored messages whose conversation, subject link or exclusion changed (facts unchanged)."""
    conversations: set[str] = field(default_factory=set)
    """Conversations whose items `items` replace."""
    items: list[Item] = field(default_factory=list)
    histogram: dict[Series, Tally] = field(default_factory=dict)
    """What to add to the stored reply histogram."""
    new_messages: int = 0
    merged_copies: int = 0
    """New copies of messages already known (another journal copy, another mailbox)."""
    excluded: Counter[str] = field(default_factory=Counter)
    """New messages excluded as automatic mail, by reason."""
    items_opened: int = 0
    items_closed: int = 0


def decide(
    fresh: Sequence[tuple[MessageFacts, Delivery]],
    history: History,
    directory: Directory,
    bounds: tuple[float, ...],
) -> BatchChanges:
    """Everything a batch of copies not seen before changes, given the stored history."""
    return _Decision(history, directory, bounds).run(fresh)


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


class _Decision:
    """The decisions of one batch; classification is cached by message for the whole batch."""

    def __init__(self, history: History, directory: Directory, bounds: tuple[float, ...]) -> None:
        self.history = history
        self.directory = directory
        self.bounds = bounds
        self.changes = BatchChanges()
        self._classified: dict[str, Classified] = {}

    def run(self, fresh: Sequence[tuple[MessageFacts, Delivery]]) -> BatchChanges:
        merged = self._merge([facts for facts, _ in fresh])
        canonical = {alias: mid for mid, facts in merged.messages.items() for alias in facts.ids}
        self.changes.copies = [
            CopyRecord(f.copy_key, canonical[f.message_id], d.source, d.received_at, f.event_time)
            for f, d in fresh
        ]
        new_links, link_conversations = self._relink(merged)
        batch_tokens = {t for m in merged.messages.values() for t in tokens(m.ids, m.links, m.thread_key)}
        affected = (
            merged.conversations | link_conversations | self.history.conversations_with_tokens(batch_tokens)
        )
        stored = {
            s.facts.message_id: s
            for s in self.history.messages_in(affected)
            if s.facts.message_id not in merged.replacing
        }
        links: dict[str, str | None] = {
            mid: merged.renamed.get(s.subject_link, s.subject_link)
            for mid, s in stored.items()
            if s.subject_link
        }
        links.update(new_links)
        self._replay(stored, merged, {m: t for m, t in links.items() if t is not None}, affected)
        return self.changes

    def _merge(self, fresh: list[MessageFacts]) -> _Merged:
        """Group new copies with each other and with stored messages that share an id."""
        stored = self.history.messages_by_ids({i for facts in fresh for i in facts.ids})
        stored_ids = {s.facts.message_id: s for s in stored}
        copies = [s.facts for s in stored] + fresh
        messages: dict[str, MessageFacts] = {}
        renamed: dict[str, str] = {}
        for group in connected_groups(
            range(len(copies)), shared_key_edges(dict(enumerate(c.ids for c in copies)))
        ):
            facts = reduce(MessageFacts.merge, (copies[index] for index in group))
            messages[facts.message_id] = facts
            old = [copies[i].message_id for i in group if copies[i].message_id in stored_ids]
            renamed.update({mid: facts.message_id for mid in old if mid != facts.message_id})
            self._count_merge(facts, new_copies=len(group) - len(old), known=bool(old))
        return _Merged(messages, stored_ids, renamed, {s.conversation for s in stored if s.conversation})

    def _count_merge(self, facts: MessageFacts, new_copies: int, known: bool) -> None:
        if known:
            self.changes.merged_copies += new_copies
            return
        self.changes.new_messages += 1
        self.changes.merged_copies += new_copies - 1
        reason = self._classify(facts).automatic
        if reason:
            self.changes.excluded[reason] += 1

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
        entries = self._subject_entries(new_entries, merged)
        by_key: dict[str, list[SubjectEntry]] = {}
        for entry in entries.values():
            by_key.setdefault(entry.subject_key, []).append(entry)
        new_times = _times_by_key(new_entries)
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

    def _subject_entries(self, new_entries: list[SubjectEntry], merged: _Merged) -> dict[str, SubjectEntry]:
        """The stored messages under the batch's subjects within the window, and the batch's own."""
        times = [entry.event_time for entry in new_entries]
        keys = {entry.subject_key for entry in new_entries}
        stored = self.history.subject_entries(keys, min(times) - SUBJECT_WINDOW, max(times) + SUBJECT_WINDOW)
        entries = {entry.message_id: entry for entry in stored if entry.message_id not in merged.replacing}
        entries.update({entry.message_id: entry for entry in new_entries})
        return entries

    def _subject_nodes(
        self, keys: set[str], by_key: dict[str, list[SubjectEntry]], merged: _Merged
    ) -> dict[str, SubjectNode]:
        """Subject nodes, with their external participants, of every message under these subjects."""
        wanted = [entry for key in keys for entry in by_key[key]]
        facts = dict(merged.messages)
        missing = {e.message_id for e in wanted} - facts.keys()
        facts.update({s.facts.message_id: s.facts for s in self.history.messages(missing)})
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
        """Regroup the touched conversations, replay each, and note what changed."""
        facts = {mid: s.facts for mid, s in stored.items()} | merged.messages
        message_tokens = {mid: tokens(f.ids, f.links, f.thread_key) for mid, f in facts.items()}
        changes = self.changes
        for group in components(message_tokens, {m: t for m, t in links.items() if m in facts}):
            conversation = conversation_id(group)
            classified = [self._classify(facts[mid]) for mid in group]
            changes.items.extend(conversation_items(conversation, classified, self.directory))
            for message in classified:
                mid = message.facts.message_id
                new = StoredMessage(message.facts, conversation, links.get(mid), message.automatic)
                if mid in merged.messages:
                    changes.inserted.append(new)
                elif new != stored[mid]:
                    changes.updated.append(new)
        changes.deleted = list(merged.replacing.values())
        changes.conversations = affected
        replaced = self.history.items_in(affected)
        changes.histogram = difference(tally(changes.items, self.bounds), tally(replaced, self.bounds))
        self._count_items(replaced, changes.items)

    def _count_items(self, old_items: list[Item], new_items: list[Item]) -> None:
        before = {(i.context, i.inbound_message_id): i.status for i in old_items}
        for item in new_items:
            status = before.get((item.context, item.inbound_message_id))
            if status is None:
                self.changes.items_opened += 1
            if item.status != "open" and status in (None, "open"):
                self.changes.items_closed += 1


def _entry(facts: MessageFacts) -> SubjectEntry:
    return SubjectEntry(
        facts.message_id, facts.event_time, normalise_subject(facts.subject), facts.threaded, None, None
    )


def _times_by_key(entries: list[SubjectEntry]) -> dict[str, list[datetime]]:
    times: dict[str, list[datetime]] = {}
    for entry in entries:
        times.setdefault(entry.subject_key, []).append(entry.event_time)
    for times_of_key in times.values():
        times_of_key.sort()
    return times


def _follows(entry: SubjectEntry, new_times: dict[str, list[datetime]]) -> bool:
    """Whether a batch message with the entry's subject falls in the window before it."""
    times = new_times.get(entry.subject_key, [])
    index = bisect_left(times, entry.event_time - SUBJECT_WINDOW)
    return index < len(times) and times[index] < entry.event_time
