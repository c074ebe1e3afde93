"""The metrics of SPEC §6 from a real SQLite store filled through the real pipeline.

One small story, with every number worked out by hand below; then the same numbers from the pure
core (`judge`, `sla_breaches`) at other clocks, and from a second collector on the same database
(a restart).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from datetime import UTC, date, datetime
from typing import TypeVar

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ttrd.ingest.pipeline import Copy, Pipeline
from ttrd.journal.facts import Delivery
from ttrd.metrics.collector import TtrdCollector
from ttrd.replytime.aggregates import sla_breaches
from ttrd.replytime.directory import Agent, Directory, Mailbox, Organization, Sla
from ttrd.replytime.engine import judge
from ttrd.replytime.histogram import DEFAULT_BOUNDS, reply_bounds
from ttrd.replytime.hours import Schedule, Span
from ttrd.storage.memory import MemoryStore
from ttrd.storage.port import Store

S = TypeVar("S", bound=Store)

OFFICE = Schedule("office", "UTC", ((Span(9 * 60, 17 * 60),),) * 5 + ((), ()), frozenset({date(2026, 3, 18)}))
SUPPORT = Mailbox(
    "support",
    "support@example.com",
    "shared",
    members=("alice", "bob"),
    sla=(Sla("1h", 3600.0), Sla("5h", 18000.0), Sla("36h", 129600.0)),
    schedule="office",
)
SALES = Mailbox("sales", "sales@example.com", "shared", members=("bob",))
AGENTS = (Agent("alice", "alice@example.com"), Agent("bob", "bob@example.com"))
DIRECTORY = Directory(
    Organization(domains=("example.com",), window_days=7),
    agents=AGENTS,
    mailboxes=(SUPPORT, SALES),
    schedules={"office": OFFICE},
)
NOW = datetime(2026, 3, 13, 15, 0, tzinfo=UTC)
"""A Friday afternoon; 2026-03-02 is a Monday, 2026-03-18 a Wednesday off."""
EXTRA = {("smtp_messages", "accepted"): 12, ("smtp_messages", "tempfail"): 1}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def mail(message_id: str, when: datetime, author: str, to: str, *fields: str) -> bytes:
    head = [
        f"Received: from mx by mx.example.com; {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
        f"From: {author}",
        f"To: {to}",
        f"Subject: About {message_id}",
        f"Message-ID: <{message_id}>",
        *fields,
    ]
    return ("\r\n".join(head) + "\r\n\r\nHello.\r\n").encode()


def reply_to(message_id: str) -> str:
    return f"In-Reply-To: <{message_id}>"


STORY = [
    # support, first item: on behalf of the mailbox by alice, 45 min (all in office hours)
    mail("qa1", at(2, 9), "jo@cust.net", "support@example.com"),
    mail(
        "ra1",
        at(2, 9, 45),
        "support@example.com",
        "jo@cust.net",
        reply_to("qa1"),
        "Sender: alice@example.com",
    ),
    # support, a follow-up answered as the mailbox (no Sender: agent unknown), 5 h: exactly the 5h SLA
    mail("qa2", at(2, 11), "jo@cust.net", "support@example.com", reply_to("ra1")),
    mail("ra2", at(2, 16), "support@example.com", "jo@cust.net", reply_to("qa2")),
    # support, Friday 16:00 to Monday 14:00 by bob: 70 h on the calendar, 1 h + 5 h of business
    mail("qb", at(6, 16), "ann@cust.net", "support@example.com"),
    mail("rb", at(9, 14), "bob@example.com", "ann@cust.net", reply_to("qb")),
    # alice's own mailbox (24/7): 30 min
    mail("qc", at(3, 9), "kim@cust.net", "alice@example.com"),
    mail("rc", at(3, 9, 30), "alice@example.com", "kim@cust.net", reply_to("qc")),
    # support, never answered: unanswered by the clock; 40 business hours in its 7-day window
    mail("qd", at(3, 10), "lee@cust.net", "support@example.com"),
    # sales: unanswered, closed so by the customer's next message 8 days later, which now waits
    mail("qe1", at(2, 10), "max@cust.net", "sales@example.com"),
    mail("qe2", at(10, 10), "max@cust.net", "sales@example.com", reply_to("qe1")),
    # support, waiting since 11:00 with a reminder at 13:00: 4 business hours at NOW
    mail("qf1", at(13, 11), "sam@cust.net", "support@example.com"),
    mail("qf2", at(13, 13), "sam@cust.net", "support@example.com", reply_to("qf1")),
    # automatic mail
    mail("auto1", at(4, 8), "jo@cust.net", "support@example.com", "Auto-Submitted: auto-replied"),
    mail("bulk1", at(4, 8), "news@vendor.example.org", "sales@example.com", "Precedence: bulk"),
]


def fill(store: S) -> S:
    delivery = Delivery("smtp", NOW, origin="test")
    copies = [Copy(raw, delivery) for raw in STORY]
    # A second identical journal copy of the first question, and bytes that are not a message.
    Pipeline(store, DIRECTORY).ingest([*copies, copies[0], Copy(b"\r\n\r\nno header", delivery)])
    return store


@pytest.fixture
def store() -> MemoryStore:
    return fill(MemoryStore())


def scrape(store: Store, now: datetime = NOW, directory: Directory = DIRECTORY) -> bytes:
    registry = CollectorRegistry()
    registry.register(TtrdCollector(store, directory, lambda: now, extra_counters=lambda: EXTRA))
    return generate_latest(registry)


def samples(body: bytes) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def series(found: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: number for (sample, labels), number in found.items() if sample == name}


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum over the series of `name` that carry these labels (and maybe others)."""
    wanted = set(labels.items())
    return sum(number for key, number in series(found, name).items() if wanted <= key)


def buckets(found: Samples, **labels: str) -> dict[str, float]:
    """le → cumulative count, of the one histogram series with these labels."""
    return {
        dict(key)["le"]: number
        for key, number in series(found, "ttrd_reply_seconds_bucket").items()
        if key - {("le", dict(key)["le"])} == set(labels.items())
    }


def test_buckets_are_the_ladder_and_every_sla_threshold() -> None:
    assert reply_bounds(DIRECTORY) == tuple(sorted({*DEFAULT_BOUNDS, 18000.0, 129600.0}))


def test_reply_histogram_by_mailbox_agent_first_and_clock(store: MemoryStore) -> None:
    found = samples(scrape(store))
    expected_sums = {
        ("support", "alice", "true", "calendar"): 2700.0,
        ("support", "alice", "true", "business"): 2700.0,
        ("support", "unknown", "false", "calendar"): 18000.0,
        ("support", "unknown", "false", "business"): 18000.0,
        ("support", "bob", "true", "calendar"): 70 * 3600.0,
        ("support", "bob", "true", "business"): 6 * 3600.0,
        ("alice", "alice", "true", "calendar"): 1800.0,
        ("alice", "alice", "true", "business"): 1800.0,
    }
    names = ("mailbox", "agent", "first", "clock")
    sums = {
        tuple(dict(labels)[name] for name in names): number
        for labels, number in series(found, "ttrd_reply_seconds_sum").items()
    }
    assert sums == expected_sums
    assert set(series(found, "ttrd_reply_seconds_count").values()) == {1.0}
    # One reply each: its bucket and every larger one hold it; a bound equal to it holds it (le).
    for labels, seconds in expected_sums.items():
        cumulative = buckets(found, **dict(zip(names, labels, strict=True)))
        assert list(cumulative) == [*map(repr, reply_bounds(DIRECTORY)), "+Inf"]
        assert cumulative == {le: float(le == "+Inf" or seconds <= float(le)) for le in cumulative}
    exactly_5h = buckets(found, mailbox="support", agent="unknown", first="false", clock="business")
    assert (exactly_5h["14400.0"], exactly_5h["18000.0"]) == (0.0, 1.0)


def test_queue_unanswered_inbound_and_sla_breaches(store: MemoryStore) -> None:
    found = samples(scrape(store))
    assert series(found, "ttrd_awaiting_replies") == {
        frozenset({("mailbox", "support")}): 1.0,
        frozenset({("mailbox", "sales")}): 1.0,
        frozenset({("mailbox", "alice")}): 0.0,
        frozenset({("mailbox", "bob")}): 0.0,
    }
    # No series where nothing waits (a zero would read as "waiting since 1970").
    assert series(found, "ttrd_oldest_awaiting_reply_timestamp_seconds") == {
        frozenset({("mailbox", "support")}): at(13, 11).timestamp(),
        frozenset({("mailbox", "sales")}): at(10, 10).timestamp(),
    }
    assert value(found, "ttrd_unanswered_total", mailbox="support") == 1.0  # qd, open past its window
    assert value(found, "ttrd_unanswered_total", mailbox="sales") == 1.0  # qe1, closed by qe2
    assert value(found, "ttrd_unanswered_total", mailbox="alice") == 0.0
    # Items, not messages: sam's reminder qf2 opened nothing (docs/metrics.md says why).
    assert value(found, "ttrd_inbound_messages_total", mailbox="support") == 5.0
    assert value(found, "ttrd_inbound_messages_total", mailbox="sales") == 2.0
    assert value(found, "ttrd_inbound_messages_total", mailbox="alice") == 1.0
    assert value(found, "ttrd_inbound_messages_total", mailbox="bob") == 0.0
    # 1h: ra2 (5 h), rb (6 h), qd (40 h), qf1 (4 h so far); 5h: rb and qd — ra2 took exactly 5 h.
    assert series(found, "ttrd_sla_breaches_total") == {
        frozenset({("mailbox", "support"), ("sla", "1h")}): 4.0,
        frozenset({("mailbox", "support"), ("sla", "5h")}): 2.0,
        frozenset({("mailbox", "support"), ("sla", "36h")}): 1.0,
    }


def test_excluded_and_ingestion_counters(store: MemoryStore) -> None:
    found = samples(scrape(store))
    assert series(found, "ttrd_excluded_messages_total") == {
        frozenset({("reason", "auto-submitted")}): 1.0,
        frozenset({("reason", "precedence")}): 1.0,
    }
    assert value(found, "ttrd_parse_errors_total") == 1.0
    assert value(found, "ttrd_processing_errors_total") == 0.0
    assert value(found, "ttrd_duplicate_observations_total") == 1.0
    assert value(found, "ttrd_smtp_messages_total", result="accepted") == 12.0
    assert value(found, "ttrd_smtp_messages_total", result="tempfail") == 1.0
    (build,) = series(found, "ttrd_build_info").items()
    assert build[1] == 1.0
    assert dict(build[0]).keys() == {"version", "python"}


def test_counters_end_in_total_and_labels_are_ids(store: MemoryStore) -> None:
    body = scrape(store)
    types = {family.name: family.type for family in text_string_to_metric_families(body.decode())}
    assert types == {
        "ttrd_build_info": "gauge",
        "ttrd_reply_seconds": "histogram",
        "ttrd_awaiting_replies": "gauge",
        "ttrd_oldest_awaiting_reply_timestamp_seconds": "gauge",
        "ttrd_unanswered": "counter",
        "ttrd_sla_breaches": "counter",
        "ttrd_inbound_messages": "counter",
        "ttrd_excluded_messages": "counter",
        "ttrd_processing_errors": "counter",
        "ttrd_smtp_messages": "counter",
        "ttrd_parse_errors": "counter",
        "ttrd_duplicate_observations": "counter",
    }
    assert b"# TYPE ttrd_unanswered_total counter" in body
    labels = {label for _, key in samples(body) for label in key}
    assert not [label for label in labels if "@" in label[1]]
    ids = set(DIRECTORY.contexts) | {"unknown"}
    for name in ("mailbox", "agent"):
        assert {v for n, v in labels if n == name} <= ids


@pytest.mark.parametrize(
    "now",
    [
        NOW,
        at(13, 16, 1),  # qf1 passes 5 business hours
        at(17, 10),  # qe2's window ends exactly: still awaiting (judge: "more than" the window)
        at(17, 10, 1),  # now it is unanswered
        at(20, 11, 1),
        datetime(2026, 6, 1, tzinfo=UTC),
    ],
)
def test_clock_dependent_values_agree_with_the_core(store: MemoryStore, now: datetime) -> None:
    """Awaiting, unanswered and SLA breaches as `judge` and `report.sla_breaches` see every item."""
    found = samples(scrape(store, now))
    items = list(store.items())
    statuses = Counter((i.context, judge(i, now, DIRECTORY)) for i in items)
    breaches: Counter[str] = Counter()
    for item in items:
        breaches[item.context] += sla_breaches(item, judge(item, now, DIRECTORY), now, DIRECTORY)
    for context in DIRECTORY.contexts:
        assert value(found, "ttrd_awaiting_replies", mailbox=context) == statuses[(context, "awaiting")]
        assert value(found, "ttrd_unanswered_total", mailbox=context) == statuses[(context, "unanswered")]
        assert total(found, "ttrd_sla_breaches_total", mailbox=context) == breaches[context]


def test_one_collector_over_time_equals_a_fresh_one_each_time(store: MemoryStore) -> None:
    """Breaches of items past their window are kept between scrapes; never stale ones."""
    registry = CollectorRegistry()
    clock = [NOW]
    registry.register(TtrdCollector(store, DIRECTORY, lambda: clock[0], extra_counters=lambda: EXTRA))
    for now in (NOW, at(20, 11, 1), NOW, datetime(2026, 6, 1, tzinfo=UTC)):
        clock[0] = now
        assert generate_latest(registry) == scrape(store, now)
    # In their windows qd had 40 business hours, qf1 32 (the Wednesday off): 36h passed by qd only.
    passed = samples(generate_latest(registry))
    assert value(passed, "ttrd_sla_breaches_total", mailbox="support", sla="5h") == 3  # rb, qd, qf1
    assert value(passed, "ttrd_sla_breaches_total", mailbox="support", sla="36h") == 1
    # New mail changes a settled item: a delayed journal copy of a reply to qd, 2 hours after it.
    late = mail("rd", at(3, 12), "bob@example.com", "lee@cust.net", reply_to("qd"))
    Pipeline(store, DIRECTORY).ingest([Copy(late, Delivery("smtp", NOW))])
    fresh = scrape(store, clock[0])
    assert generate_latest(registry) == fresh
    assert value(samples(fresh), "ttrd_sla_breaches_total", mailbox="support", sla="5h") == 2
    assert value(samples(fresh), "ttrd_sla_breaches_total", mailbox="support", sla="36h") == 0


def test_a_context_removed_from_the_configuration_keeps_its_history(store: MemoryStore) -> None:
    without_sales = Directory(DIRECTORY.organization, AGENTS, (SUPPORT,), {"office": OFFICE})
    found = samples(scrape(store, directory=without_sales))
    assert value(found, "ttrd_unanswered_total", mailbox="sales") == 1.0
    assert value(found, "ttrd_awaiting_replies", mailbox="sales") == 1.0


def test_an_empty_database_exposes_zeros_for_every_configured_context() -> None:
    found = samples(scrape(MemoryStore()))
    assert set(series(found, "ttrd_unanswered_total").values()) == {0.0}
    assert len(series(found, "ttrd_unanswered_total")) == len(DIRECTORY.contexts)
    assert set(series(found, "ttrd_sla_breaches_total")) == {
        frozenset({("mailbox", "support"), ("sla", label)}) for label in ("1h", "5h", "36h")
    }
    assert set(series(found, "ttrd_sla_breaches_total").values()) == {0.0}
    assert series(found, "ttrd_reply_seconds_count") == {}
    assert value(found, "ttrd_parse_errors_total") == 0.0


def test_histogram_counts_match_a_recount_of_the_items(store: MemoryStore) -> None:
    """The database's bucket counts against bisecting every replied item's seconds."""
    found = samples(scrape(store))
    bounds = reply_bounds(DIRECTORY)
    expected: Counter[tuple[str, str, str]] = Counter()
    for item in store.items():
        if item.status != "replied":
            continue
        for clock, seconds in (("calendar", item.calendar_seconds), ("business", item.business_seconds)):
            assert seconds is not None
            for le in [*map(repr, bounds[bisect_left(bounds, seconds) :]), "+Inf"]:
                expected[(item.context, clock, le)] += 1
    counted: Counter[tuple[str, str, str]] = Counter()
    for key, number in series(found, "ttrd_reply_seconds_bucket").items():
        labels = dict(key)
        counted[(labels["mailbox"], labels["clock"], labels["le"])] += int(number)
    assert +counted == expected


def test_imap_accounts_of_this_node_with_their_polls_and_messages(store: MemoryStore) -> None:
    from dataclasses import dataclass

    @dataclass
    class Health:
        up: bool
        last_success: datetime | None

    counters = {
        ("imap_polls", "alice-imap/ok"): 3,
        ("imap_polls", "alice-imap/auth"): 1,
        ("imap_messages", "alice-imap"): 7,
    }
    accounts = {"alice-imap": Health(True, at(13, 9)), "bob-imap": Health(False, None)}
    registry = CollectorRegistry()
    registry.register(
        TtrdCollector(
            store, DIRECTORY, lambda: NOW, extra_counters=lambda: counters, imap_accounts=lambda: accounts
        )
    )
    found = samples(generate_latest(registry))
    assert series(found, "ttrd_imap_up") == {
        frozenset({("account", "alice-imap")}): 1.0,
        frozenset({("account", "bob-imap")}): 0.0,
    }
    assert series(found, "ttrd_imap_last_success_timestamp_seconds") == {
        frozenset({("account", "alice-imap")}): at(13, 9).timestamp()
    }
    assert value(found, "ttrd_imap_polls_total", account="alice-imap", result="ok") == 3
    assert value(found, "ttrd_imap_polls_total", account="alice-imap", result="auth") == 1
    assert value(found, "ttrd_imap_polls_total", account="bob-imap", result="ok") == 0
    assert value(found, "ttrd_imap_messages_total", account="alice-imap") == 7
    assert value(found, "ttrd_imap_messages_total", account="bob-imap") == 0
