"""Scrape time of /metrics with 200 agents and 50 mailboxes, as a ratio to rendering the same samples.

Builds a configuration in memory (200 agents; 50 shared mailboxes of 4 members each, with SLAs, on
two business-hours schedules), writes half a year of mail through the real pipeline into a fresh
SQLite database (about 20,000 replied items, follow-ups, customers' reminders, items awaiting a reply
and unanswered ones, automatic mail, duplicate journal copies), then times scrapes the way
/metrics makes them (the collector and ttrd's renderer), with no mail since the last scrape and
right after new mail.

Baseline, measured in the same run: prometheus_client's `generate_latest` of the very metric
families of one scrape, already built: what rendering alone costs with the reference library.

    .venv/bin/python bench/metrics_scrape.py [--conversations 17400] [--scrapes 50]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

from ttrd.ingest.pipeline import Copy, Pipeline
from ttrd.journal.facts import Delivery
from ttrd.metrics.collector import TtrdCollector
from ttrd.metrics.exposition import Renderer
from ttrd.replytime.directory import Agent, Directory, Mailbox, Organization, Sla
from ttrd.replytime.engine import judge
from ttrd.replytime.hours import Schedule, Span
from ttrd.storage.sql import SqlStore

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
AGENTS = 200
MAILBOXES = 50
MEMBERS = 4
HISTORY_DAYS = 180
BATCH = 2000


def directory() -> Directory:
    weekdays = ((Span(9 * 60, 17 * 60 + 30),),) * 5 + ((), ())
    schedules = {
        "default": Schedule("default", "Europe/London", weekdays, country="GB"),
        "us": Schedule("us", "America/New_York", ((Span(8 * 60, 18 * 60),),) * 5 + ((), ()), country="US"),
    }
    slas = [
        (Sla("1h", 3600.0), Sla("4h", 14400.0), Sla("1d", 86400.0)),
        (Sla("45m", 2700.0), Sla("12h", 43200.0)),
    ]
    agents = [Agent(f"a{n:03d}", f"a{n:03d}@example.com", name=f"Agent {n}") for n in range(AGENTS)]
    mailboxes = [
        Mailbox(
            f"mb{n:02d}",
            f"mb{n:02d}@example.com",
            "shared",
            members=tuple(f"a{m:03d}" for m in range(n * MEMBERS, (n + 1) * MEMBERS)),
            sla=slas[n % 2],
            schedule="us" if n % 3 == 0 else None,
        )
        for n in range(MAILBOXES)
    ]
    return Directory(Organization(("example.com",), window_days=30), agents, mailboxes, schedules)


class Mail:
    """Raw messages of made-up conversations, numbered so every Message-ID is unique."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.count = 0

    def message(
        self, moment: datetime, author: str, to: str, *fields: str, subject: str = "Question"
    ) -> bytes:
        self.count += 1
        head = [
            f"Received: from mx by mx.example.com; {moment.strftime('%a, %d %b %Y %H:%M:%S +0000')}",
            f"From: {author}",
            f"To: {to}",
            f"Subject: {subject} {self.count}",
            f"Message-ID: <m{self.count}@bench>",
            *fields,
        ]
        return ("\r\n".join(head) + "\r\n\r\nHello.\r\n").encode()

    def moment(self, oldest_days: float, newest_days: float) -> datetime:
        return NOW - timedelta(days=self.random.uniform(newest_days, oldest_days))

    def delay(self) -> timedelta:
        """Reply delays from a minute to about two days, most within hours."""
        return timedelta(seconds=60 * 10 ** (self.random.random() * 3.5))


def conversations(mail: Mail, count: int) -> Iterator[bytes]:
    """Questions and their replies; some with a reminder, some with a follow-up question."""
    pick = mail.random
    for number in range(count):
        customer = f"customer{number}@client{number % 997}.example.net"
        team = pick.randrange(MAILBOXES)
        agent = f"a{team * MEMBERS + pick.randrange(MEMBERS):03d}"
        mailbox = f"mb{team:02d}@example.com" if pick.random() < 0.75 else None
        context = mailbox or f"{agent}@example.com"
        start = mail.moment(HISTORY_DAYS, 3)
        yield mail.message(start, customer, context)
        thread = f"In-Reply-To: <m{mail.count}@bench>"
        if pick.random() < 0.05:  # a reminder while the item is open: inbound, opens nothing
            yield mail.message(start + timedelta(minutes=30), customer, context, thread)
        replied = start + mail.delay()
        yield reply(mail, replied, agent=agent, mailbox=mailbox, customer=customer, thread=thread)
        if pick.random() < 0.15:  # a follow-up question after the reply, answered too
            later = replied + timedelta(hours=pick.uniform(1, 48))
            yield mail.message(later, customer, context, f"In-Reply-To: <m{mail.count}@bench>")
            thread = f"In-Reply-To: <m{mail.count}@bench>"
            yield reply(
                mail, later + mail.delay(), agent=agent, mailbox=None, customer=customer, thread=thread
            )


def reply(
    mail: Mail, moment: datetime, *, agent: str, mailbox: str | None, customer: str, thread: str
) -> bytes:
    """From the agent; or on behalf of the mailbox; or, now and then, as the mailbox (agent unknown)."""
    if mailbox is None:
        return mail.message(moment, f"{agent}@example.com", customer, thread)
    if mail.random.random() < 0.06:
        return mail.message(moment, mailbox, customer, thread)
    return mail.message(moment, mailbox, customer, thread, f"Sender: {agent}@example.com")


def unreplied(mail: Mail, awaiting: int, unanswered: int) -> Iterator[bytes]:
    for number in range(awaiting + unanswered):
        oldest, newest = (3, 0) if number < awaiting else (HISTORY_DAYS, 31)
        context = f"mb{mail.random.randrange(MAILBOXES):02d}@example.com"
        yield mail.message(mail.moment(oldest, newest), f"waiting{number}@example.org", context)


def automatic(mail: Mail, count: int) -> Iterator[bytes]:
    for number in range(count):
        moment = mail.moment(HISTORY_DAYS, 0)
        context = f"mb{number % MAILBOXES:02d}@example.com"
        if number % 2:
            yield mail.message(moment, f"ooo{number}@example.org", context, "Auto-Submitted: auto-replied")
        else:
            yield mail.message(moment, "mailer-daemon@example.org", context, subject="Undeliverable:")


def fill(store: SqlStore, messages: Iterable[bytes]) -> int:
    """Ingest in batches, every 50th message delivered twice (a duplicate journal copy)."""
    pipeline = Pipeline(store, directory())
    delivery = Delivery("smtp", NOW, origin="bench")
    batch: list[Copy] = []
    total = 0
    for number, raw in enumerate(messages):
        batch.extend([Copy(raw, delivery)] * (2 if number % 50 == 0 else 1))
        if len(batch) >= BATCH:
            pipeline.ingest(batch)
            total += len(batch)
            batch = []
    pipeline.ingest(batch)
    return total + len(batch)


class Frozen:
    """A collector that returns metric families built beforehand: rendering alone."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def milliseconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return (time.perf_counter() - start) * 1000


def interleaved(works: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Times of each work, one of each per round, so that the machine's noise falls on all alike."""
    found: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(rounds):
        for name, work in works.items():
            found[name].append(milliseconds(work))
    return found


def summary(label: str, found: list[float]) -> str:
    p95 = statistics.quantiles(found, n=20)[-1]
    return f"{label}: median {statistics.median(found):.1f} ms, p95 {p95:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=17400, help="answered conversations")
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ttrd-bench-") as work:
        store = SqlStore(f"sqlite:///{Path(work) / 'ttrd.db'}")
        try:
            mail = Mail(seed=7)
            started = time.perf_counter()
            messages = [
                *conversations(mail, args.conversations),
                *unreplied(mail, awaiting=400, unanswered=1500),
                *automatic(mail, 1000),
            ]
            copies = fill(store, messages)
            print(f"ingested {copies} copies in {time.perf_counter() - started:.0f} s")
            measure(store, args.scrapes)
        finally:
            store.close()


def measure(store: SqlStore, scrapes: int) -> None:
    config = directory()
    statuses = Counter(judge(item, NOW, config) for item in store.items())
    print("items:", ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))
    collector = TtrdCollector(store, config, lambda: NOW)
    registry = CollectorRegistry()
    registry.register(collector)
    renderer = Renderer()
    body = renderer.render(registry.collect())
    assert body == generate_latest(registry), "the endpoint must render what prometheus_client renders"
    frozen = CollectorRegistry()
    frozen.register(Frozen(list(collector.collect())))
    samples = [line for line in body.split(b"\n") if line and not line.startswith(b"#")]
    histograms = sum(1 for line in samples if line.startswith(b"ttrd_reply_seconds_count"))
    print(f"exposition: {len(samples)} samples, {histograms} histogram series, {len(body) / 1024:.0f} KiB")

    more = Mail(seed=99)

    def after_new_mail() -> bytes:
        """A scrape after a batch of mail changed the items: one more conversation, not timed."""
        fill(store, conversations(more, 1))
        started = time.perf_counter()
        body = renderer.render(registry.collect())
        after_mail_ms.append((time.perf_counter() - started) * 1000)
        return body

    after_mail_ms: list[float] = []
    times = interleaved(
        {
            "scrape, no mail since the last one (what /metrics does)": lambda: renderer.render(
                registry.collect()
            ),
            "untimed": after_new_mail,
            "baseline: generate_latest of the same families, prebuilt": lambda: generate_latest(frozen),
        },
        scrapes,
    )
    times["scrape right after new mail (items read and rendered again)"] = after_mail_ms
    del times["untimed"]
    for label, found in times.items():
        print(summary(label, found))
    steady, render, after_mail = (statistics.median(found) for found in times.values())
    print(f"ratio to baseline: steady {steady / render:.2f}, after new mail {after_mail / render:.2f}")


if __name__ == "__main__":
    main()
