"""Arrival order never changes the items (SPEC §3, "Order does not matter").

Random stories of customers and agents are delivered as raw copies, in a random order and random
batches, through the whole pipeline into SQLite; the items must equal those of delivering every copy
at once in event-time order. The stories are built to hit the links that arrival order can disturb:
replies that arrive before what they cite, subject fallbacks that a late message re-targets, copies
of one message under two ids, follow-ups after the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttrd.ingest.pipeline import Copy, Pipeline
from ttrd.journal.facts import Delivery
from ttrd.replytime.directory import Agent, Directory, Mailbox, Organization, Sla
from ttrd.replytime.histogram import tally
from ttrd.replytime.items import Item
from ttrd.storage.memory import MemoryStore
from ttrd.storage.port import Store

DIRECTORY = Directory(
    Organization(domains=("example.com",), window_days=2),
    agents=(Agent("alice", "alice@example.com"), Agent("bob", "bob@example.com", aliases=("b@example.com",))),
    mailboxes=(
        Mailbox("support", "support@example.com", "shared", members=("alice", "bob"), sla=(Sla("1h", 3600),)),
        Mailbox("sales", "sales@example.com", "distribution", members=("bob",)),
    ),
)
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RECEIVED = datetime(2026, 6, 1, tzinfo=UTC)
PEOPLE = ["c1@cust.net", "c2@cust.net", "alice@example.com", "bob@example.com", "support@example.com"]
TRACKED = ["support@example.com", "sales@example.com", "alice@example.com", "b@example.com"]
SUBJECTS = ["Order 1", "Re: Order 1", "AW: order 1", "Invoice", "[EXTERNAL] Invoice"]


@dataclass(frozen=True)
class Story:
    copies: list[tuple[datetime, bytes, frozenset[str]]]
    """(event time, raw bytes, envelope recipients) of every copy, in event-time order."""


@st.composite
def stories(draw: st.DrawFn) -> Story:
    count = draw(st.integers(2, 9))
    copies: list[tuple[datetime, bytes, frozenset[str]]] = []
    for index in range(count):
        moment = START + timedelta(minutes=draw(st.integers(0, 60 * 24 * 4)))
        author = draw(st.sampled_from(PEOPLE))
        recipients = draw(st.lists(st.sampled_from(PEOPLE + TRACKED), min_size=1, max_size=3, unique=True))
        headers = [
            f"Received: from x by mx.example.com; {moment.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
            f"From: {author}",
            f"To: {', '.join(recipients)}",
            f"Subject: {draw(st.sampled_from(SUBJECTS))}",
            f"Message-ID: <m{index}@story>",
        ]
        if index and draw(st.integers(0, 2)) == 0:
            headers.append(f"In-Reply-To: <m{draw(st.integers(0, index - 1))}@story>")
        if draw(st.integers(0, 5)) == 0:
            headers.append("Auto-Submitted: auto-replied")
        alternative = draw(st.integers(0, 4)) == 0
        if alternative:
            headers.append(f"X-Microsoft-Original-Message-ID: <alt{index}@outlook>")
        raw = ("\n".join(headers) + "\n\nbody\n").encode()
        envelope = frozenset(draw(st.lists(st.sampled_from(TRACKED), max_size=1)))
        copies.append((moment, raw, envelope))
        if draw(st.integers(0, 3)) == 0:  # another journal copy of the same message
            copies.append((moment, raw, frozenset(draw(st.lists(st.sampled_from(TRACKED), max_size=2)))))
        if alternative and draw(st.booleans()):  # the sender's copy, under the original id
            copies.append(
                (
                    moment,
                    raw.replace(f"<m{index}@story>".encode(), f"<alt{index}@outlook>".encode()),
                    frozenset(),
                )
            )
    return Story(sorted(copies, key=lambda c: c[0]))


StoreFactory = Callable[[], AbstractContextManager[Store]]


@contextmanager
def memory_store() -> Iterator[Store]:
    yield MemoryStore()


def items_after(
    batches: list[list[tuple[datetime, bytes, frozenset[str]]]], store_factory: StoreFactory = memory_store
) -> list[Item]:
    with store_factory() as store:
        pipeline = Pipeline(store, DIRECTORY)
        for batch in batches:
            pipeline.ingest([Copy(raw, Delivery("smtp", RECEIVED, rcpt_to=rcpt)) for _, raw, rcpt in batch])
        items = sorted(store.items(), key=lambda i: (i.context, i.inbound_message_id))
        # The reply histogram kept up to date batch by batch is the one tallied from the items.
        tallied = {
            series: (list(accumulate(kept.buckets)), kept.sum_micros / 1_000_000)
            for series, kept in tally(items, pipeline.bounds).items()
        }
        assert store.metrics_snapshot(pipeline.bounds).histograms == tallied
        return items


def check_order_independence(story: Story, data: st.DataObject, store_factory: StoreFactory) -> None:
    expected = items_after([story.copies], store_factory)
    shuffled = data.draw(st.permutations(story.copies))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(shuffled) - 1)), max_size=4)))
    batches = [
        shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(shuffled)], strict=True) if shuffled[a:b]
    ]
    assert items_after(batches, store_factory) == expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(story=stories(), data=st.data())
def test_arrival_order_and_batching_do_not_change_items(story: Story, data: st.DataObject) -> None:
    check_order_independence(story, data, memory_store)


def test_a_story_where_order_matters_for_subject_links() -> None:
    """A late message becomes the most recent earlier one for a later unthreaded message."""

    def mail(
        minute: int, author: str, to: str, subject: str, message_id: str
    ) -> tuple[datetime, bytes, frozenset[str]]:
        moment = START + timedelta(minutes=minute)
        raw = (
            f"Received: from x by y; {moment.strftime('%a, %d %b %Y %H:%M:%S +0000')}\nFrom: {author}\n"
            f"To: {to}\nSubject: {subject}\nMessage-ID: <{message_id}>\n\nbody\n"
        ).encode()
        return (moment, raw, frozenset())

    first = mail(0, "c1@cust.net", "support@example.com", "Order 1", "a@x")
    answer = mail(30, "alice@example.com", "c1@cust.net", "Re: Order 1", "b@x")
    again = mail(60, "c1@cust.net", "support@example.com", "Re: Order 1", "c@x")
    in_order = items_after([[first, answer, again]])
    assert [(i.inbound_message_id, i.status, i.first) for i in in_order] == [
        ("a@x", "replied", True),
        ("c@x", "open", False),
    ]
    assert items_after([[first], [again], [answer]]) == in_order
    assert items_after([[again], [answer], [first]]) == in_order
