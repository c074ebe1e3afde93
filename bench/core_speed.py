"""Speed of the pure core, each as a ratio to a baseline measured in the same run.

- Judging mail: `Headers.parse` + `header_reasons` (ttrd.journal) over made-up messages like real
  ones (a dozen trace and signature fields; subjects plain, RFC 2047 encoded, and automatic), as a
  ratio to `email.parser.BytesHeaderParser` over the same raw messages: what any Python tool must at
  least do to read a header. Also `header_reasons` alone on already parsed headers, and what decoding
  every encoded subject would cost (`decode_words`): the work `header_reasons` must skip on human mail.
- Business time: `Schedule.business_seconds` over ten years (a New York schedule of two spans with US
  public holidays, already cached; a London one of one span), as a ratio to a trivial Python loop over
  the same local days that adds each weekday's open seconds.

Every round times each work once, in turn, so that the noise of this shared machine falls on all
alike; the figures are medians over the rounds.

    .venv/bin/python bench/core_speed.py [--rounds 15] [--messages 3000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email.parser import BytesHeaderParser

from ttrd.journal.automatic import header_reasons
from ttrd.journal.headers import Headers, decode_words, split_message
from ttrd.replytime.hours import Schedule, Span

HEADERS = [
    "Received: from mail-{n}.cust.net (mail-{n}.cust.net [192.0.2.{m}]) by mx.example.com (Postfix) "
    "with ESMTPS id {n:X}; Mon, 02 Mar 2026 09:{mi:02d}:00 +0000",
    "Received: by mail-{n}.cust.net with SMTP id abc{n}; Mon, 02 Mar 2026 09:{mi:02d}:00 +0000",
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=cust.net; s=2026; "
    "h=from:to:subject:date:message-id; bh=" + "A" * 44 + "; b=" + "B" * 340,
    "ARC-Authentication-Results: i=1; mx.google.com; dkim=pass header.i=@cust.net; spf=pass",
    "Authentication-Results: mx.example.com; dkim=pass (2048-bit key) header.d=cust.net; spf=pass",
    "Return-Path: <customer{c}@cust.net>",
    "MIME-Version: 1.0",
    "From: Customer {c} <customer{c}@cust.net>",
    "To: support@example.com",
    "Date: Mon, 02 Mar 2026 09:{mi:02d}:00 +0000",
    "Message-ID: <bench-{n}@cust.net>",
    "Subject: {subject}",
    "Content-Type: text/plain; charset=UTF-8",
    "X-Mailer: Microsoft Outlook 16.0",
    "Thread-Index: AQHZ{n}",
]

SUBJECTS = [
    "Question {n} about my order",
    "Re: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?= und mehr {n}",
    "=?utf-8?B?w4RuZGVydW5nIGRlciBSZWNobnVuZw==?= {n}",
    "[EXTERNAL] =?utf-8?q?Rechnung_{n}?=",
    "=?utf-8?q?Automatic_reply=3A_Invoice_{n}?=",  # an auto-reply: decoded, and flagged
    "Out of Office: invoice {n}",
]


def message(n: int) -> bytes:
    fields = {"n": n, "m": n % 250, "mi": n % 60, "c": n % 5000}
    subject = SUBJECTS[n % len(SUBJECTS)].format(**fields)
    head = "\r\n".join(line.format(subject=subject, **fields) for line in HEADERS)
    return (head + "\r\n\r\nHello,\r\nmy order has not arrived yet.\r\n").encode()


def interleaved(works: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each work, one of each per round, so that the machine's noise falls on all alike."""
    found: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(rounds):
        for name, work in works.items():
            started = time.perf_counter()
            work()
            found[name].append(time.perf_counter() - started)
    return found


def table(title: str, times: dict[str, list[float]], count: int, unit: str, baseline: str) -> None:
    """One line per work: the median per `unit` in µs, and its ratio to the baseline's median."""
    base = statistics.median(times[baseline])
    print(f"\n{title}")
    print(f"  {'':<58} {'µs/' + unit:>12} {'ratio':>8}")
    for label, found in times.items():
        median = statistics.median(found)
        print(f"  {label:<58} {median / count * 1e6:>12.2f} {median / base:>8.2f}")


def judging(count: int, rounds: int) -> None:
    raws = [message(n) for n in range(count)]
    parser = BytesHeaderParser()
    parsed = [Headers.parse(split_message(raw)[0]) for raw in raws]
    subjects = [headers.get("subject") or "" for headers in parsed]
    encoded = [subject for subject in subjects if "=?" in subject]
    flagged = sum(1 for headers in parsed if header_reasons(headers))
    print(f"messages: {count}, {len(encoded)} with an encoded subject, {flagged} flagged as automatic")

    def baseline() -> None:
        for raw in raws:
            parser.parsebytes(raw)

    def judge() -> None:
        for raw in raws:
            header_reasons(Headers.parse(split_message(raw)[0]))

    def reasons_only() -> None:
        for headers in parsed:
            header_reasons(headers)

    def decode_all() -> None:
        for subject in encoded:
            decode_words(subject)

    times = interleaved(
        {
            "baseline: BytesHeaderParser().parsebytes": baseline,
            "split_message + Headers.parse + header_reasons": judge,
            "header_reasons alone (headers parsed beforehand)": reasons_only,
            "for scale: decode_words of every encoded subject": decode_all,
        },
        rounds,
    )
    table("judging mail (per message)", times, count, "message", "baseline: BytesHeaderParser().parsebytes")


def day_loop(first: date, days: int, open_seconds: tuple[float, ...]) -> float:
    """The baseline: a plain loop over the same local days, adding each weekday's open seconds."""
    total = 0.0
    day = first
    step = timedelta(days=1)
    for _ in range(days):
        total += open_seconds[day.weekday()]
        day += step
    return total


def business_time(rounds: int) -> None:
    weekend: tuple[tuple[Span, ...], ...] = ((), ())
    split = ((Span(8 * 60, 12 * 60), Span(13 * 60, 17 * 60)),) * 5 + weekend
    new_york = Schedule("new_york", "America/New_York", split, country="US")
    london = Schedule("london", "Europe/London", ((Span(9 * 60, 17 * 60 + 30),),) * 5 + weekend)
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
    days = (end - start).days
    hours = new_york.business_seconds(start, end) / 3600  # builds the cached public holidays, untimed
    open_seconds = (8 * 3600.0,) * 5 + (0.0, 0.0)
    print(f"\nbusiness time over {days} days: {hours:.0f} h in New York")
    times = interleaved(
        {
            "baseline: a Python loop adding each day's open seconds": lambda: day_loop(
                start.date(), days, open_seconds
            ),
            "business_seconds, New York, 2 spans, US holidays": lambda: new_york.business_seconds(start, end),
            "business_seconds, London, 1 span, no holidays": lambda: london.business_seconds(start, end),
        },
        rounds,
    )
    table(
        "business time (per day of the interval)",
        times,
        days,
        "day",
        "baseline: a Python loop adding each day's open seconds",
    )
    ten_years = statistics.median(times["business_seconds, New York, 2 spans, US holidays"])
    print(f"  ten years in New York: {ten_years * 1000:.1f} ms a call")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    print(f"rounds: {args.rounds} (medians)")
    judging(args.messages, args.rounds)
    business_time(args.rounds)


if __name__ == "__main__":
    main()
