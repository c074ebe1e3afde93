"""The ingest worker on realistic mail, and on the same mail with generic subjects, at two sizes.

Two loads, made lazily from one seed, through `bench/flood.py`'s machinery (a fresh `ttrd run` per
load and size, 20 SMTP sessions at full speed, timed until the worker has stored every message):

- realistic: conversations of 1 to 5 messages. A customer (thousands of them, from hundreds of
  domains and the big freemail providers) writes to support@ or sales@ with a subject of their own;
  agents answer (To the customer, usually Cc the mailbox) and customers follow up, each citing the
  messages before it (In-Reply-To, References). About 1,000 messages a day arrive in the order of
  their times, which spread over weeks (`--per-day`), so the 7-day subject window fills early on;
- generic: the same conversations, times, people and ids, except that 30% of the conversations have
  a generic subject ("question", "invoice", "help", "", "Re: question") and their replies and
  follow-ups carry no threading headers, so the subject fallback links them (SPEC §3). Every message
  of those subjects in the window is then a candidate for every unthreaded one.

Reported as in `bench/flood.py` (ratios to `BytesHeaderParser().parsebytes` of the same messages,
growth exponents between sizes; 1.0 is linear), and the generic/realistic ratio at each size. At full
speed the worker keeps up with realistic mail, so its wall time is the SMTP sink's; the worker's CPU
is the figure to compare. `--rate` paces the client (small batches), as in `bench/flood.py`.

    .venv/bin/python bench/realistic.py [--sizes 10000,100000] [--per-day 1000] [--seed 2026] [--rate 50]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import heapq
import random
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.flood import Envelope, Load, Options, Run, message, noise, report, run_all, signed, sizes_option  # noqa: E402

CONFIG = """
[organization]
domains = ["example.com"]
window_days = 30

[schedules.default]
timezone = "Europe/London"
monday = ["09:00-17:30"]
tuesday = ["09:00-17:30"]
wednesday = ["09:00-17:30"]
thursday = ["09:00-17:30"]
friday = ["09:00-17:30"]
country = "GB"
subdivision = "ENG"

[schedules.us]
timezone = "America/New_York"
monday = ["08:00-12:00", "13:00-17:00"]
tuesday = ["08:00-12:00", "13:00-17:00"]
wednesday = ["08:00-12:00", "13:00-17:00"]
thursday = ["08:00-12:00", "13:00-17:00"]
friday = ["08:00-12:00", "13:00-17:00"]
country = "US"

[[agents]]
id = "alice"
address = "alice@example.com"
name = "Alice Martin"

[[agents]]
id = "bob"
address = "bob@example.com"
name = "Bob Okafor"

[[agents]]
id = "erin"
address = "erin@example.com"
name = "Erin Novak"

[[agents]]
id = "carol"
address = "carol@example.com"
name = "Carol Diaz"
schedule = "us"

[[agents]]
id = "dave"
address = "dave@example.com"
name = "Dave Chen"
schedule = "us"

[[mailboxes]]
id = "support"
address = "support@example.com"
kind = "shared"
members = ["alice", "bob", "erin"]
sla = ["1h", "4h"]

[[mailboxes]]
id = "sales"
address = "sales@example.com"
kind = "distribution"
members = ["carol", "dave"]
sla = ["2h"]
schedule = "us"
"""

MAILBOXES = {"support": "support@example.com", "sales": "sales@example.com"}
AGENTS = {
    "support": (("alice", "Alice Martin"), ("bob", "Bob Okafor"), ("erin", "Erin Novak")),
    "sales": (("carol", "Carol Diaz"), ("dave", "Dave Chen")),
}
SUBJECTS = {
    "support": (
        "Order {n} has not arrived",
        "Refund for order {n}",
        "Cannot log in to account {n}",
        "Invoice INV-{n} charged twice",
        "Change of delivery address for order {n}",
        "Error 500 when uploading report {n}",
    ),
    "sales": (
        "Quote {n}: {q} licences of {p}",
        "Upgrade of contract {n} to {p}",
        "Pricing for {q} seats (ref {n})",
        "Renewal of contract {n}",
    ),
}
PRODUCTS = ("Ledger Pro", "Ledger Cloud", "Atlas", "Atlas Enterprise", "Beacon")
GENERIC = ("question", "invoice", "help", "", "Re: question")
GENERIC_SHARE = 0.3
LENGTHS = (1, 2, 3, 4, 5)
LENGTH_WEIGHTS = (25, 35, 20, 12, 8)
MEAN_LENGTH = sum(n * w for n, w in zip(LENGTHS, LENGTH_WEIGHTS, strict=True)) / sum(LENGTH_WEIGHTS)
AGENT_DELAY = 5_400.0
"""Mean seconds from a customer's message to the agent's answer (plus a minute)."""
FOLLOW_UP = 28_800.0
"""Mean seconds from an answer to the customer's follow-up (plus five minutes)."""
FIRST_NAMES = ("Anna", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal",
               "Lena", "Marco", "Nora", "Omar", "Paula", "Quentin", "Rosa", "Sven", "Tara")  # fmt: skip
LAST_NAMES = ("Schmidt", "Dubois", "Rossi", "Garcia", "Smith", "Jansen", "Nowak", "Silva", "Berg", "Kowalski",
              "Murphy", "Moreau", "Weber", "Costa", "Larsen", "Ivanova", "Haas", "Brown")  # fmt: skip
WORDS = ("acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne", "wonka", "tyrell",
         "cyberdyne", "soylent", "oscorp", "aperture", "monarch", "nakatomi", "gekko", "dunder", "prestige",
         "sirius", "weyland", "massive", "virtucon", "zorg")  # fmt: skip
TLDS = ("com", "net", "org", "de", "fr", "co.uk", "nl", "it", "es", "io", "se", "pl")
FREEMAIL = ("gmail.com", "outlook.com", "yahoo.com", "gmx.de", "orange.fr", "web.de")


@dataclass(slots=True)
class Conversation:
    number: int
    mailbox: str
    customer: int
    subject: str
    threaded: bool
    """Whether its answers and follow-ups cite the messages before them."""
    length: int
    ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Customer:
    name: str
    address: str
    domain: str


def customer(number: int, customers: int) -> Customer:
    """Customer `number` of `customers`: a quarter on freemail, the rest on one of many company domains."""
    first = FIRST_NAMES[number % len(FIRST_NAMES)]
    last = LAST_NAMES[number // len(FIRST_NAMES) % len(LAST_NAMES)]
    if number % 4 == 0:
        domain = FREEMAIL[number // 4 % len(FREEMAIL)]
    else:
        company = number * 7_919 % max(200, customers // 8)
        suffix = f"-{company // len(WORDS)}" if company >= len(WORDS) else ""
        domain = f"{WORDS[company % len(WORDS)]}{suffix}.{TLDS[company // len(WORDS) % len(TLDS)]}"
    return Customer(f"{first} {last}", f"{first.lower()}.{last.lower()}{number}@{domain}", domain)


def start_conversation(rng: random.Random, number: int, customers: int, generic: bool) -> Conversation:
    """A new conversation. The same draws whatever `generic` is, so both loads share everything else."""
    mailbox = "support" if rng.random() < 0.7 else "sales"
    template = rng.choice(SUBJECTS[mailbox])
    subject = template.format(n=rng.randrange(100_000, 1_000_000), q=rng.randrange(5, 500),
                              p=rng.choice(PRODUCTS))  # fmt: skip
    length = rng.choices(LENGTHS, LENGTH_WEIGHTS)[0]
    who = rng.randrange(customers)
    roll, pick = rng.random(), rng.randrange(len(GENERIC))
    if generic and roll < GENERIC_SHARE:
        return Conversation(number, mailbox, who, GENERIC[pick], False, length)
    return Conversation(number, mailbox, who, subject, True, length)


def conversations(
    count: int, *, generic: bool, seed: int, per_day: float, now: datetime
) -> Iterator[Envelope]:
    """`count` messages of interleaved conversations in the order of their times, ending before `now`."""
    rng = random.Random(seed)
    clock = (now - timedelta(days=count / per_day + 3)).replace(second=0, microsecond=0)
    gap = 86_400 * MEAN_LENGTH / per_day
    customers = max(2_000, count // 4)
    pending: list[tuple[datetime, int, Conversation]] = []
    started = 0
    for _ in range(count):
        if pending and pending[0][0] <= clock:
            moment, _, conversation = heapq.heappop(pending)
        else:
            conversation = start_conversation(rng, started, customers, generic)
            started += 1
            moment = clock
            clock += timedelta(seconds=rng.expovariate(1 / gap))
        yield next_message(rng, conversation, moment, customers)
        if len(conversation.ids) < conversation.length:
            answer = len(conversation.ids) % 2 == 1
            delay = 60 + rng.expovariate(1 / AGENT_DELAY) if answer else 300 + rng.expovariate(1 / FOLLOW_UP)
            heapq.heappush(pending, (moment + timedelta(seconds=delay), conversation.number, conversation))


def next_message(
    rng: random.Random, conversation: Conversation, moment: datetime, customers: int
) -> Envelope:
    """The conversation's next message: the question, then answers and follow-ups by turns."""
    who = customer(conversation.customer, customers)
    mailbox = MAILBOXES[conversation.mailbox]
    position = len(conversation.ids)
    subject = conversation.subject if position == 0 else f"Re: {conversation.subject}"
    cites = conversation.ids[-10:] if conversation.threaded else []
    if position % 2 == 0:
        message_id = f"CA{rng.getrandbits(64):016X}{conversation.number}x{position}@mail.{who.domain}"
        fields = customer_fields(who, mailbox, subject, message_id, moment)
        envelope = Envelope(
            who.address, (mailbox,), message(fields + threading(cites), body(who.name, answer=False))
        )
    else:
        agent, name = rng.choice(AGENTS[conversation.mailbox])
        copy = rng.random() < 0.7
        host = f"AM{rng.randrange(1, 10)}PR07MB{rng.randrange(1000, 10_000)}"
        message_id = f"{host}{rng.getrandbits(64):016X}{conversation.number}x{position}@{host}.eurprd07.prod"
        to = f"{who.name} <{who.address}>"
        answer = Answer(
            f"{name} <{agent}@example.com>", to, mailbox if copy else None, subject, message_id, host
        )
        recipients = (who.address, mailbox) if copy else (who.address,)
        raw = message(agent_fields(answer, moment) + threading(cites), body(name, answer=True))
        envelope = Envelope(f"{agent}@example.com", recipients, raw)
    conversation.ids.append(message_id)
    return envelope


def threading(cites: Sequence[str]) -> list[str]:
    if not cites:
        return []
    return [f"In-Reply-To: <{cites[-1]}>", "References: " + "\r\n ".join(f"<{c}>" for c in cites)]


def body(author: str, answer: bool) -> str:
    if answer:
        text = (
            "thank you for your message. We have looked into it and will come back to you with the\r\n"
            "details as soon as we have them; the reference of this request is in the subject."
        )
    else:
        text = (
            "could you please look into this for us? We have been waiting for a few days now and\r\n"
            "would like to know where things stand. The reference is in the subject."
        )
    return f"Hello,\r\n\r\n{text}\r\n\r\nKind regards,\r\n{author}\r\n"


def customer_fields(
    who: Customer, mailbox: str, subject: str, message_id: str, moment: datetime
) -> list[str]:
    """The header fields of a customer's message as it reaches the company's MX (Google-style hops)."""
    date, sent = format_datetime(moment), format_datetime(moment - timedelta(seconds=2))
    queue = hashlib.blake2b(message_id.encode(), digest_size=6).hexdigest().upper()
    host, ip, stamp = f"mail-{queue[:6].lower()}.{who.domain}", int(queue[:2], 16), int(moment.timestamp())
    signature = f"s=20230601; t={stamp}; x={stamp + 604_800}; h=to:subject:message-id:date:from:mime-version"
    return [
        f"Return-Path: <{who.address}>",
        f"Received: from {host} ({host} [203.0.113.{ip}])\r\n"
        f"\tby mx.example.com (Postfix) with ESMTPS id 4T{queue[:10]}\r\n\tfor <{mailbox}>; {date}",
        f"Received: by {host} with SMTP id {queue.lower()}so{ip}\r\n\tfor <{mailbox}>; {sent}",
        f"X-Received: by 2002:a05:6000:{queue[:4].lower()}:b0:{queue[4:8].lower()} with SMTP id\r\n"
        f"\t{queue.lower()}mr{ip}; {sent}",
        signed(
            "DKIM-Signature",
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={who.domain}; {signature}:cc; bh={noise(queue, 44)}",
            noise(message_id, 344),
        ),
        signed(
            "X-Google-DKIM-Signature",
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d=1e100.net; {signature}:x-gm-message-state; "
            f"bh={noise(queue, 44)}",
            noise("g" + message_id, 344),
        ),
        f"X-Gm-Message-State: AOJu0Y{noise('s' + message_id, 62)}",
        f"X-Google-Smtp-Source: AGHT+IF{noise('x' + message_id, 60)}",
        signed(
            "ARC-Seal",
            f"i=1; a=rsa-sha256; t={stamp}; cv=none; d=example.com; s=arc-2026",
            noise("seal" + message_id, 344),
        ),
        "ARC-Authentication-Results: i=1; mx.example.com;\r\n"
        f"\tdkim=pass header.d={who.domain} header.s=20230601;\r\n"
        f"\tspf=pass smtp.mailfrom={who.domain}; dmarc=pass header.from={who.domain}",
        "Authentication-Results: mx.example.com;\r\n"
        f"\tdkim=pass (2048-bit key; unprotected) header.d={who.domain} header.i=@{who.domain}\r\n"
        f"\theader.a=rsa-sha256 header.s=20230601 header.b={noise(message_id, 8)};\r\n"
        f"\tspf=pass (mx.example.com: domain of {who.address} designates 203.0.113.{ip} as\r\n"
        f"\tpermitted sender) smtp.mailfrom={who.address}; dmarc=pass (p=none dis=none)\r\n"
        f"\theader.from={who.domain}",
        "MIME-Version: 1.0",
        f"From: {who.name} <{who.address}>",
        f"Date: {sent}",
        f"Message-ID: <{message_id}>",
        f"Subject: {subject}",
        f"To: {mailbox}",
        'Content-Type: text/plain; charset="UTF-8"',
    ]


@dataclass(frozen=True, slots=True)
class Answer:
    author: str
    to: str
    cc: str | None
    subject: str
    message_id: str
    host: str
    """The Exchange Online mailbox server it was written on."""


def agent_fields(answer: Answer, moment: datetime) -> list[str]:
    """The header fields of an agent's answer as the journal sees it (Microsoft 365-style hops)."""
    date, sent = format_datetime(moment), format_datetime(moment - timedelta(seconds=1))
    server = f"{answer.host}.eurprd07.prod.outlook.com"
    message_id = answer.message_id
    hashed = hashlib.blake2b(message_id.encode(), digest_size=16).hexdigest()
    signature = f"h=From:Date:Subject:Message-ID:Content-Type; bh={noise(hashed, 44)}"
    return [
        f"Received: from {server} (2603:10a6:20b:2f::12) by mx.example.com with HTTPS;\r\n\t{date}",
        f"Received: from {server} ([fe80::6c2a:1b4:8d0e:a1c]) by {server}\r\n"
        f"\t([fe80::6c2a:1b4:8d0e:a1c%5]) with mapi id 15.20.7362.019; {date}",
        signed(
            "ARC-Seal",
            "i=1; a=rsa-sha256; s=arcselector9901; d=microsoft.com; cv=none",
            noise("s" + message_id, 344),
        ),
        signed(
            "ARC-Message-Signature",
            f"i=1; a=rsa-sha256; c=relaxed/relaxed; d=microsoft.com; s=arcselector9901; {signature}",
            noise("ams" + message_id, 344),
        ),
        "ARC-Authentication-Results: i=1; mx.microsoft.com 1; spf=pass\r\n"
        "\tsmtp.mailfrom=example.com; dmarc=pass action=none header.from=example.com;\r\n"
        "\tdkim=pass header.d=example.com; arc=none",
        signed(
            "DKIM-Signature",
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=selector1; t={int(moment.timestamp())}; "
            + signature,
            noise(message_id, 344),
        ),
        f"From: {answer.author}",
        f"To: {answer.to}",
        *([f"CC: {answer.cc}"] if answer.cc else []),
        f"Subject: {answer.subject}",
        f"Thread-Topic: {answer.subject.removeprefix('Re: ')}",
        f"Date: {sent}",
        f"Message-ID: <{message_id}>",
        "Accept-Language: en-GB, en-US",
        "Content-Language: en-GB",
        "X-MS-Has-Attach:",
        "X-MS-TNEF-Correlator:",
        "x-ms-publictraffictype: Email",
        f"x-ms-traffictypediagnostic: {answer.host}:EE_|DB9PR07MB5678:EE_",
        f"x-ms-office365-filtering-correlation-id: {uuid.UUID(hashed)}",
        "x-microsoft-antispam: BCL:0;ARA:13230031|366004|1800799015|376002|38070700009;",
        "x-forefront-antispam-report: CIP:255.255.255.255;CTRY:;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;\r\n"
        f"\tH:{server};PTR:;CAT:NONE;SFS:(13230031)(366004)(1800799015)(376002);DIR:OUT;SFP:1102;",
        'Content-Type: text/plain; charset="us-ascii"',
        "Content-Transfer-Encoding: quoted-printable",
        "MIME-Version: 1.0",
    ]


def ratios(runs: Sequence[Run]) -> None:
    by_load = {(run.load, run.messages): run for run in runs}
    print("generic / realistic at each size (the same conversations, 30% of them with a generic subject):")
    for size in sorted({run.messages for run in runs}):
        generic, realistic = by_load[("generic", size)], by_load[("realistic", size)]
        print(
            f"  {size:>9,}: wall {generic.wall / realistic.wall:.2f}, "
            f"worker CPU {generic.worker_cpu / realistic.worker_cpu:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=sizes_option, default=[10_000, 100_000], help="e.g. 10000,100000")
    parser.add_argument("--per-day", type=float, default=1_000.0, help="messages a day (event times)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for one run")
    parser.add_argument("--rate", type=float, help="messages a second (default: as fast as the sink answers)")
    args = parser.parse_args()
    now = datetime.now(UTC)
    loads: dict[str, Load] = {
        load: functools.partial(
            conversations, generic=load == "generic", seed=args.seed, per_day=args.per_day, now=now
        )
        for load in ("realistic", "generic")
    }
    options = Options(args.sessions, args.timeout, CONFIG, args.rate)
    results = run_all(loads, args.sizes, options)
    print(f"{args.per_day:,.0f} messages a day (event times); seed {args.seed}")
    report(results, options)
    ratios(results.runs)


if __name__ == "__main__":
    main()
