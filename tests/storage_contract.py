"""The storage port's contract: one suite, run against every store (memory in unit, SQL in integration).

A subclass provides the `store` fixture; every test here goes through the port only (`Store`,
`Batch`, `History`), so what passes for one store holds for the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from ttrd.errors import StorageError
from ttrd.journal.facts import Delivery, MessageFacts
from ttrd.journal.parse import parse_message
from ttrd.replytime.batch import BatchChanges
from ttrd.replytime.conversations import tokens
from ttrd.replytime.histogram import Tally, bounds_key
from ttrd.replytime.history import CopyRecord, StoredMessage
from ttrd.replytime.items import Item
from ttrd.storage.port import Reject, Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BOUNDS = (60.0, 3600.0)


def facts(number: int, minute: int = 0, subject: str = "Order", *extra: str) -> MessageFacts:
    moment = (T0 + timedelta(minutes=minute)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    lines = [f"Received: from x by y; {moment}", f"From: c{number}@cust.net", "To: support@example.com",
             f"Subject: {subject}", f"Message-ID: <m{number}@x>", *extra]  # fmt: skip
    return parse_message(("\r\n".join(lines) + "\r\n\r\nHi.\r\n").encode(), Delivery("smtp", T0))


def stored(
    number: int, conversation: str, minute: int = 0, *extra: str, subject: str = "Order"
) -> StoredMessage:
    return StoredMessage(facts(number, minute, subject, *extra), conversation)


def item(conversation: str, number: int, minute: int, *, replied: bool = False) -> Item:
    opened = T0 + timedelta(minutes=minute)
    if not replied:
        return Item(conversation, "support", f"m{number}@x", f"c{number}@cust.net", opened, True, "open")
    return Item(conversation, "support", f"m{number}@x", f"c{number}@cust.net", opened, True, "replied",
                "alice", f"r{number}@x", opened + timedelta(minutes=30), 1800.0, 1800.0)  # fmt: skip


def changes(*messages: StoredMessage, items: list[Item] | None = None, **more: object) -> BatchChanges:
    found = BatchChanges(inserted=list(messages), items=items or [])
    found.conversations = {i.conversation for i in found.items}
    for name, value in more.items():
        setattr(found, name, value)
    return found


class StoreContract:
    """Subclasses define the `store` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError

    def test_a_batch_is_all_or_nothing_and_reads_its_own_writes(self, store: Store) -> None:
        with pytest.raises(RuntimeError), store.batch() as batch:
            batch.apply(changes(stored(1, "c1"), items=[item("c1", 1, 0)]))
            assert [m.facts.message_id for m in batch.messages(["m1@x"])] == ["m1@x"]
            assert batch.items_in(["c1"]) == [item("c1", 1, 0)]
            raise RuntimeError("abort")
        assert list(store.items()) == []
        with store.batch() as batch:
            assert batch.messages(["m1@x"]) == []

    def test_messages_are_found_by_every_id_by_token_and_by_conversation(self, store: Store) -> None:
        outlook = stored(1, "c1", 0, "X-Microsoft-Original-Message-ID: <alt1@outlook>")
        reply = stored(2, "c1", 5, "In-Reply-To: <m1@x>")
        with store.batch() as batch:
            batch.apply(changes(outlook, reply, stored(3, "c3", 9)))
        with store.batch() as batch:
            assert [m.facts.message_id for m in batch.messages_by_ids(["alt1@outlook", "nope@x"])] == ["m1@x"]
            assert batch.messages_by_ids(["m2@x"]) == [reply]
            assert batch.conversations_with_tokens(tokens(["m1@x"], [], None)) == {"c1"}
            assert batch.conversations_with_tokens({"id:unknown@x"}) == set()
            assert sorted(m.facts.message_id for m in batch.messages_in(["c1"])) == ["m1@x", "m2@x"]

    def test_subject_entries_are_those_of_the_subjects_in_the_closed_window(self, store: Store) -> None:
        subjects = ((1, "Order"), (2, "Re: order"), (3, "Order"), (4, "Other"))
        with store.batch() as batch:
            batch.apply(changes(*(stored(n, f"c{n}", n * 10, subject=s) for n, s in subjects)))
        with store.batch() as batch:
            found = batch.subject_entries({"order"}, T0 + timedelta(minutes=10), T0 + timedelta(minutes=30))
        assert sorted((e.message_id, e.subject_key, e.conversation) for e in found) == [
            ("m1@x", "order", "c1"),
            ("m2@x", "order", "c2"),
            ("m3@x", "order", "c3"),
        ]

    def test_deleted_messages_are_gone_with_their_ids_and_tokens(self, store: Store) -> None:
        first = stored(1, "c1", 0, "X-Microsoft-Original-Message-ID: <alt1@outlook>")
        with store.batch() as batch:
            batch.apply(changes(first))
        with store.batch() as batch:
            batch.apply(BatchChanges(deleted=[first]))
        with store.batch() as batch:
            assert batch.messages_by_ids(["m1@x", "alt1@outlook"]) == []
            assert batch.conversations_with_tokens(tokens(["m1@x"], [], None)) == set()

    def test_updates_move_a_message_and_items_are_replaced_by_conversation(self, store: Store) -> None:
        with store.batch() as batch:
            batch.apply(
                changes(stored(1, "c1"), stored(2, "c2", 5), items=[item("c1", 1, 0), item("c2", 2, 5)])
            )
        moved = StoredMessage(facts(2, 5), "c1", "m1@x", None)
        replied = [item("c1", 1, 0, replied=True)]
        with store.batch() as batch:
            batch.apply(BatchChanges(updated=[moved], conversations={"c1", "c2"}, items=replied))
        with store.batch() as batch:
            assert batch.messages(["m2@x"]) == [moved]
            assert batch.items_in(["c2"]) == []
        assert list(store.items()) == [item("c1", 1, 0, replied=True)]

    def test_items_are_read_by_opening_time_half_open_and_sorted(self, store: Store) -> None:
        items = [item(f"c{n}", n, minute) for n, minute in ((1, 20), (2, 0), (3, 10))]
        with store.batch() as batch:
            batch.apply(changes(items=items))
        assert [i.inbound_message_id for i in store.items()] == ["m2@x", "m3@x", "m1@x"]
        window = store.items(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
        assert [i.inbound_message_id for i in window] == ["m3@x"]

    def test_copies_are_known_and_a_copy_written_twice_is_a_storage_error(self, store: Store) -> None:
        record = CopyRecord("k1", "m1@x", "smtp", T0, T0)
        with store.batch() as batch:
            batch.apply(changes(copies=[record]))
        with store.batch() as batch:
            assert batch.known_copies({"k1", "k2"}) == {"k1"}
        with pytest.raises(StorageError), store.batch() as batch:
            batch.apply(changes(copies=[record]))

    def test_counters_add_up_and_rejects_are_kept_in_order(self, store: Store) -> None:
        rejects = [Reject("smtp", T0, f"peer {n}", "no header fields", b"\x00junk%d" % n) for n in range(3)]
        with store.batch() as batch:
            batch.add_to_counters({("parse_errors", ""): 2, ("smtp_messages", "accepted"): 1})
            batch.add_rejects(rejects[:2])
        with store.batch() as batch:
            batch.add_to_counters({("parse_errors", ""): 1, ("other", "x"): 0})
            batch.add_rejects(rejects[2:])
        assert store.counters() == {("parse_errors", ""): 3, ("smtp_messages", "accepted"): 1}
        assert store.rejects() == rejects

    def test_the_histogram_is_kept_in_its_bounds_and_rebuilt_when_they_change(self, store: Store) -> None:
        replied = item("c1", 1, 0, replied=True)
        with store.batch() as batch:
            assert batch.histogram_bounds() is None
            batch.rebuild_histogram(BOUNDS)
            series = ("support", "alice", True, "calendar")
            batch.apply(changes(items=[replied], histogram={series: Tally((0, 1, 0), 1_800_000_000)}))
        assert store.metrics_snapshot(BOUNDS).histograms[series] == ([0, 1, 1], 1800.0)
        with store.batch() as batch:
            assert batch.histogram_bounds() == bounds_key(BOUNDS)
            batch.rebuild_histogram((10.0,))
            assert batch.histogram_bounds() == bounds_key((10.0,))
        assert store.metrics_snapshot((10.0,)).histograms[series] == ([0, 1], 1800.0)

    def test_the_metrics_snapshot_counts_items_unreplied_and_exclusions(self, store: Store) -> None:
        automatic = StoredMessage(facts(9, 1), "c9", None, "auto-submitted")
        items = [item("c1", 1, 0, replied=True), item("c2", 2, 5)]
        with store.batch() as batch:
            batch.apply(changes(automatic, items=items))
        snapshot = store.metrics_snapshot(BOUNDS)
        assert dict(snapshot.item_counts) == {("support", "replied"): 1, ("support", "open"): 1}
        assert [(i.inbound_message_id, i.status, i.customer) for i in snapshot.unreplied] == [
            ("m2@x", "open", None)
        ]
        assert dict(snapshot.excluded) == {"auto-submitted": 1}
