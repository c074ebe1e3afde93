"""The ingest worker under a mail flood: one sender, one subject, no threading headers, at two sizes.

A monitoring system writes N alerts "Disk almost full" from monitor@alerts.example.net to
support@example.com, each with its own Message-ID and none citing another (no In-Reply-To,
References or Thread-Index), so every one falls back to its subject (SPEC §3). Two shapes:

- same-date: every Date and Received the same. Nothing is strictly earlier than anything else, so
  nothing links and each message is a conversation of its own (N items), yet each still looks at the
  same-subject messages of the 7-day window;
- chain: one second apart. Each links to the one before it: one conversation of N messages (one
  item, open, until the 30-day window passes).

Each shape and size runs in a fresh `ttrd run` (fresh SQLite), fed at full speed by 20 SMTP sessions
of one asyncio client, and is timed from the first message sent until the last one is stored (the
SMTP sink accepted N, the spool is empty and the database holds N messages). The messages are made
lazily, the same bytes for the baseline and the run; their header blocks are about 3.5 KB (Received
hops, DKIM and ARC signatures, authentication results), like real mail.

Figures are ratios and exponents, which mean something on this shared, noisy machine where seconds
do not: the worker's CPU per message against `email.parser.BytesHeaderParser().parsebytes` of the
same messages, measured in this process at the start (CPU seconds per message; measured again at
the end for the smallest size, to show how much the machine drifted meanwhile), and the growth
exponent log(t2/t1)/log(n2/n1) between consecutive sizes (1.0 is linear), of the wall time and of the
worker's CPU (utime+stime from /proc, which other load on the machine disturbs less). The worker's
peak RSS is its VmRSS sampled every 0.5 s; "batches" counts the worker's transactions that stored
something (it takes up to 500 spooled copies at a time). `bench/realistic.py` uses the same machinery.

At full speed the worker falls behind and takes nearly full batches. A real flood trickles in: with
`--rate` (messages a second) the worker keeps up and takes one or two copies per batch, so what a
batch costs per same-subject message of the window is paid per message instead of per 500.

    .venv/bin/python bench/flood.py [--sizes 2500,10000] [--sessions 20] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import hashlib
import itertools
import math
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.daemon import CONFIG, Ttrd, metric  # noqa: E402

SENDER = "monitor@alerts.example.net"
MAILBOX = "support@example.com"
SUBJECT = "Disk almost full"
SHAPES = ("same-date", "chain")
POLL_SECONDS = 0.2
RSS_SECONDS = 0.5
PROGRESS_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message as the SMTP client sends it: reverse path, recipients, bytes (CRLF)."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    raw: bytes


Load = Callable[[int], Iterator[Envelope]]
"""N messages of one load, made lazily; the same bytes at every call."""


# --- header blocks that look like real mail ---


def noise(seed: str, length: int) -> str:
    """Base64 text that looks like a signature or a body hash, the same for the same seed."""
    digest = hashlib.sha512(seed.encode()).digest()
    text = base64.b64encode(digest + hashlib.sha512(digest).digest()).decode().rstrip("=")
    return (text * (length // len(text) + 1))[:length]


def signed(name: str, tags: str, signature: str) -> str:
    """A DKIM/ARC field as signers write it: its `; `-separated tags filled to 72 characters a line,
    then `b=` folded."""
    lines = [f"{name}:"]
    for tag in tags.split("; "):
        if len(lines[-1]) + len(tag) > 72:
            lines.append("\t")
        lines[-1] += f" {tag};"
    chunks = [signature[i : i + 72] for i in range(0, len(signature), 72)]
    return "\r\n".join([*lines, "\tb=" + "\r\n\t ".join(chunks)])


def message(fields: Sequence[str], body: str) -> bytes:
    """Header fields and a body as SMTP carries them, ending with CRLF; no line of it starts with a dot."""
    return ("\r\n".join(fields) + "\r\n\r\n" + body.removesuffix("\r\n") + "\r\n").encode()


def alert(shape: str, number: int, moment: datetime) -> bytes:
    """One "Disk almost full" alert of the monitoring system, received at `moment`."""
    date = format_datetime(moment)
    queue = hashlib.blake2b(f"{shape}-{number}".encode(), digest_size=6).hexdigest().upper()
    message_id = f"{moment:%Y%m%d%H%M%S}.{queue}.{shape}-{number}@monitor-7.alerts.example.net"
    stamp = int(moment.timestamp())
    fields = [
        f"Return-Path: <{SENDER}>",
        "Received: from mx-out-3.alerts.example.net (mx-out-3.alerts.example.net [198.51.100.23])\r\n"
        f"\tby mx.example.com (Postfix) with ESMTPS id 4T{queue[:10]}\r\n\tfor <{MAILBOX}>; {date}",
        "Received: from monitor-7.alerts.example.net (monitor-7.alerts.example.net [10.20.0.7])\r\n"
        f"\tby mx-out-3.alerts.example.net (Postfix) with ESMTP id {queue[2:]}\r\n\tfor <{MAILBOX}>; {date}",
        f"Received: by monitor-7.alerts.example.net (Postfix, from userid 998)\r\n\tid {queue}; {date}",
        signed(
            "DKIM-Signature",
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d=alerts.example.net; s=mail2026; t={stamp}; "
            f"h=from:to:subject:date:message-id:mime-version:content-type; bh={noise(queue, 44)}",
            noise(message_id, 344),
        ),
        signed(
            "ARC-Seal",
            f"i=1; a=rsa-sha256; t={stamp}; cv=none; d=example.com; s=arc-2026",
            noise("seal" + message_id, 344),
        ),
        signed(
            "ARC-Message-Signature",
            "i=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=arc-2026; "
            f"h=from:to:subject:date:message-id:dkim-signature; bh={noise(queue, 44)}",
            noise("ams" + message_id, 344),
        ),
        "ARC-Authentication-Results: i=1; mx.example.com;\r\n"
        "\tdkim=pass header.d=alerts.example.net header.s=mail2026;\r\n"
        "\tspf=pass smtp.mailfrom=alerts.example.net; dmarc=pass header.from=alerts.example.net",
        "Authentication-Results: mx.example.com;\r\n"
        "\tdkim=pass (2048-bit key; unprotected) header.d=alerts.example.net header.i=@alerts.example.net\r\n"
        f"\theader.a=rsa-sha256 header.s=mail2026 header.b={noise(message_id, 8)};\r\n"
        f"\tspf=pass (mx.example.com: domain of {SENDER} designates 198.51.100.23 as permitted sender)\r\n"
        f"\tsmtp.mailfrom={SENDER}; dmarc=pass (p=reject dis=none) header.from=alerts.example.net",
        "X-Spam-Checker-Version: SpamAssassin 3.4.6 (2021-04-09) on mx.example.com",
        "X-Spam-Status: No, score=-2.1 required=5.0 tests=BAYES_00,DKIM_SIGNED,DKIM_VALID,\r\n"
        "\tDKIM_VALID_AU,SPF_HELO_NONE,SPF_PASS autolearn=ham autolearn_force=no version=3.4.6",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 7bit",
        "X-Mailer: alertmanager/0.27.0",
        "From: Monitoring <monitor@alerts.example.net>",
        f"To: {MAILBOX}",
        f"Subject: {SUBJECT}",
        f"Date: {date}",
        f"Message-ID: <{message_id}>",
    ]
    body = (
        f"Host db-{number % 40}.prod.example.net: /var is {90 + number % 9}% full "
        f"({number % 20 + 1}.4 GB free of 200 GB).\r\n\r\n"
        "Runbook: https://wiki.example.net/runbooks/disk-almost-full\r\n"
        "Silence: https://alerts.example.net/#/silences/new\r\n"
    )
    return message(fields, body)


def flood(shape: str, count: int, start: datetime) -> Iterator[Envelope]:
    """`count` alerts: all at `start` (same-date), or one second apart from `start` (chain)."""
    for number in range(count):
        moment = start if shape == "same-date" else start + timedelta(seconds=number)
        yield Envelope(SENDER, (MAILBOX,), alert(shape, number, moment))


# --- the baseline ---


def parse_cost(messages: Iterator[Envelope], chunk: int = 250) -> float:
    """CPU seconds per message of `BytesHeaderParser().parsebytes` in this process: the median over
    chunks of `chunk` messages (a burst of other load on the machine moves one chunk, not the figure);
    making the messages is not timed."""
    parser = BytesHeaderParser()
    costs: list[float] = []
    while batch := [envelope.raw for envelope in itertools.islice(messages, chunk)]:
        if not costs:
            for raw in batch:  # warm up (lazy imports, caches), not timed
                parser.parsebytes(raw)
        started = time.process_time()
        for raw in batch:
            parser.parsebytes(raw)
        costs.append((time.process_time() - started) / len(batch))
    return statistics.median(costs)


# --- the SMTP client ---


class Pace:
    """Slots `1/rate` seconds apart for the sessions to send in; no waiting when `rate` is None."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.taken = 0

    async def wait(self) -> None:
        if self.rate is None:
            return
        due = self.start + self.taken / self.rate
        self.taken += 1
        await asyncio.sleep(max(0.0, due - time.monotonic()))


async def _session(port: int, source: Iterator[Envelope], pace: Pace) -> None:
    """One SMTP session sending messages from `source`, shared by every session, until it runs out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def expect(prefix: bytes) -> None:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("the SMTP server closed the connection")
            if line[3:4] != b"-":
                if not line.startswith(prefix):
                    raise RuntimeError(f"unexpected answer {line!r}")
                return

    await expect(b"220")
    writer.write(b"EHLO bench\r\n")
    await expect(b"250")
    for envelope in source:  # no await inside the generator: each session takes the next message
        await pace.wait()
        recipients = "".join(f"RCPT TO:<{address}>\r\n" for address in envelope.rcpt_to)
        writer.write(f"MAIL FROM:<{envelope.mail_from}>\r\n{recipients}DATA\r\n".encode())
        for _ in range(1 + len(envelope.rcpt_to)):
            await expect(b"250")
        await expect(b"354")
        writer.write(envelope.raw + b".\r\n")  # the raw message ends with CRLF
        await expect(b"250")
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()


async def send(port: int, source: Iterator[Envelope], sessions: int, rate: float | None = None) -> None:
    """Every message of `source` over `sessions` SMTP sessions, at full speed or `rate` messages a second."""
    pace = Pace(rate)
    await asyncio.gather(*(_session(port, source, pace) for _ in range(sessions)))


# --- what the daemon's processes and files say ---


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, every thread of it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid: int, timeout: float = 60.0) -> float:
    """The CPU seconds of a process once it has settled (done importing, polling an empty spool)."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pid)
    while True:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - before < 0.05 or time.monotonic() > deadline:
            return now
        before = now


def status_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory field of /proc/PID/status in MB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


class PeakRss:
    """The largest VmRSS of a process, sampled every RSS_SECONDS by a thread while in `with`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, status_mb(self.pid))
            if self._done.wait(RSS_SECONDS):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


class Database:
    """Read-only looks at the daemon's SQLite database and its spool."""

    def __init__(self, folder: Path) -> None:
        self.store = sqlite3.connect(f"{(folder / 'ttrd.db').as_uri()}?mode=ro", uri=True)
        self.spool = sqlite3.connect(f"{(folder / 'ttrd.spool.db').as_uri()}?mode=ro", uri=True)

    def count(self, query: str, spool: bool = False) -> int:
        row = (self.spool if spool else self.store).execute(query).fetchone()
        return int(row[0])

    def close(self) -> None:
        self.store.close()
        self.spool.close()


# --- one run ---


@dataclass(frozen=True, slots=True)
class Run:
    load: str
    messages: int
    parse: float
    """CPU seconds per message of BytesHeaderParser over the same messages, in this process."""
    wall: float
    """Seconds from the first message sent to the last one stored."""
    worker_cpu: float
    """CPU seconds the ingest worker spent over the run."""
    peak_rss: float
    items: int
    conversations: int
    batches: int
    """Worker batches that stored something (the generation counter); the worker takes up to 500."""

    @property
    def rate(self) -> float:
        return self.messages / self.wall

    @property
    def cpu_per_1k(self) -> float:
        return self.worker_cpu / self.messages * 1000

    @property
    def parse_ratio(self) -> float:
        return self.worker_cpu / self.messages / self.parse


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _wait(
    what: str, done: Callable[[], bool], ttrd: Ttrd, timeout: float, progress: Callable[[], str]
) -> None:
    """Poll `done` until it holds; fails when the daemon exits or after `timeout` seconds."""
    started = time.monotonic()
    noted = started
    while not done():
        assert ttrd.process is not None
        if ttrd.process.poll() is not None:
            raise RuntimeError(
                f"ttrd run exited {ttrd.process.returncode} waiting for {what}:\n{_tail(ttrd)}"
            )
        now = time.monotonic()
        if now - started > timeout:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s ({progress()}):\n{_tail(ttrd)}")
        if now - noted > PROGRESS_SECONDS:
            noted = now
            _note(f"  … {progress()} after {now - started:.0f} s")
        time.sleep(POLL_SECONDS)


def _tail(ttrd: Ttrd) -> str:
    return "\n".join(ttrd.log.read_text(errors="replace").splitlines()[-20:])


@dataclass(frozen=True, slots=True)
class Options:
    sessions: int
    timeout: float
    """Seconds to wait for one run's messages to be stored."""
    config: str
    """Organisation, agents and mailboxes of the daemon's configuration (storage and ports are added)."""
    rate: float | None = None
    """Messages a second the client sends; None: as fast as the sink answers."""


def measure(
    work: Path, load: str, messages: Iterator[Envelope], count: int, parse: float, *, options: Options
) -> Run:
    """Send `messages` to a fresh `ttrd run` and time them until the worker has stored every one."""
    folder = work / f"{load}-{count}"
    folder.mkdir()
    ttrd = Ttrd(folder, base_config=options.config)
    try:
        ttrd.start()
        worker = ttrd.worker_pid()
        database = Database(folder)
        try:
            cpu_before = idle_cpu(worker)
            with PeakRss(worker) as rss:
                started = time.perf_counter()
                asyncio.run(send(ttrd.smtp_port, messages, options.sessions, options.rate))
                _wait(
                    "the SMTP sink to count every message accepted",
                    lambda: metric(ttrd.metrics(), "ttrd_smtp_messages_total", result="accepted") >= count,
                    ttrd, 120, lambda: "accepted count short",
                )  # fmt: skip

                def stored() -> bool:
                    if database.count("SELECT count(*) FROM rejects"):
                        raise RuntimeError(f"{load}: messages were rejected:\n{_tail(ttrd)}")
                    return (
                        database.count("SELECT count(*) FROM messages") >= count
                        and database.count("SELECT count(*) FROM spool", spool=True) == 0
                    )

                def progress() -> str:
                    return f"{load} {count:,}: {database.count('SELECT count(*) FROM messages'):,} stored"

                _wait("the worker to store every message", stored, ttrd, options.timeout, progress)
                wall = time.perf_counter() - started
                worker_cpu = cpu_seconds(worker) - cpu_before
            items = int(metric(ttrd.metrics(), "ttrd_inbound_messages_total"))
            conversations = database.count("SELECT count(DISTINCT conversation) FROM messages")
            batches = database.count("SELECT coalesce(sum(value), 0) FROM counters WHERE name = 'generation'")
        finally:
            database.close()
        code = ttrd.stop(timeout=120)
        if code != 0:
            raise RuntimeError(f"ttrd run exited {code}:\n{_tail(ttrd)}")
    finally:
        ttrd.close()
    run = Run(load, count, parse, wall, worker_cpu, rss.peak, items, conversations, batches)
    _note(f"  {load} {count:,}: {wall:.1f} s, worker {worker_cpu:.1f} s CPU")
    return run


def _terminate(signum: int, frame: FrameType | None) -> None:
    del frame
    raise SystemExit(128 + signum)  # so that `finally` blocks stop the daemon and remove the folders


@dataclass(frozen=True, slots=True)
class Results:
    runs: list[Run]
    drift: dict[str, float]
    """Per load, the parse baseline of its smallest size measured again at the end, over the one at the
    start: how much the machine's speed moved during the script (1.00: not at all)."""


def run_all(loads: Mapping[str, Load], sizes: Sequence[int], options: Options) -> Results:
    """Every load at every size, each in a fresh daemon; the parse baselines first, in this process."""
    signal.signal(signal.SIGTERM, _terminate)
    _note("baseline: BytesHeaderParser over the same messages…")
    parse = {(load, size): parse_cost(make(size)) for size in sizes for load, make in loads.items()}
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="ttrd-bench-", ignore_cleanup_errors=True) as work:
        for size in sizes:
            for load, make in loads.items():
                _note(f"{load} {size:,}: a fresh ttrd run…")
                messages = make(size)
                baseline = parse[(load, size)]
                runs.append(measure(Path(work), load, messages, size, baseline, options=options))
    drift = {load: parse_cost(make(sizes[0])) / parse[(load, sizes[0])] for load, make in loads.items()}
    return Results(runs, drift)


# --- the report ---


def exponent(small: Run, large: Run, value: Callable[[Run], float]) -> float:
    """log(t2/t1) / log(n2/n1): 1.0 when the cost grows linearly with the messages, 2.0 quadratically."""
    return math.log(value(large) / value(small)) / math.log(large.messages / small.messages)


def report(results: Results, options: Options) -> None:
    runs = results.runs
    pace = "at full speed" if options.rate is None else f"paced at {options.rate:,.0f} messages a second"
    print(f"SMTP: {options.sessions} sessions {pace}; one fresh `ttrd run` (fresh SQLite) per row")
    print(
        f"{'load':<10} {'messages':>9} {'wall s':>8} {'msg/s':>7} {'parse µs/msg':>13} "
        f"{'worker CPU s/1k':>16} {'× parse':>8} {'worker peak RSS MB':>19} {'items':>8} "
        f"{'conversations':>14} {'batches':>8}"
    )
    for run in runs:
        print(
            f"{run.load:<10} {run.messages:>9,} {run.wall:>8.1f} {run.rate:>7,.0f} {run.parse * 1e6:>13.0f} "
            f"{run.cpu_per_1k:>16.2f} {run.parse_ratio:>8.1f} {run.peak_rss:>19.0f} {run.items:>8,} "
            f"{run.conversations:>14,} {run.batches:>8,}"
        )
    print("growth exponent, log(t2/t1)/log(n2/n1) (1.0 = linear, 2.0 = quadratic):")
    for load in dict.fromkeys(run.load for run in runs):
        ordered = sorted((run for run in runs if run.load == load), key=lambda run: run.messages)
        pairs = list(itertools.pairwise(ordered)) + ([(ordered[0], ordered[-1])] if len(ordered) > 2 else [])
        for small, large in pairs:
            print(
                f"  {load:<10} {small.messages:,} → {large.messages:,}: "
                f"wall {exponent(small, large, lambda run: run.wall):.2f}, "
                f"worker CPU {exponent(small, large, lambda run: run.worker_cpu):.2f}"
            )
    drift = ", ".join(f"{load} {ratio:.2f}" for load, ratio in results.drift.items())
    print(f"parse baseline measured again at the end, over the start (machine drift; 1.00 = none): {drift}")


def sizes_option(text: str) -> list[int]:
    sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] <= 0:
        raise argparse.ArgumentTypeError("sizes are positive whole numbers, comma-separated")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=sizes_option, default=[2_500, 10_000], help="e.g. 2500,10000")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for one run")
    parser.add_argument("--rate", type=float, help="messages a second (default: as fast as the sink answers)")
    args = parser.parse_args()
    # In the past (SMTP copies dated after their receipt count from the receipt), within every window.
    start = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)
    loads: dict[str, Load] = {shape: functools.partial(flood, shape, start=start) for shape in SHAPES}
    options = Options(args.sessions, args.timeout, CONFIG, args.rate)
    report(run_all(loads, args.sizes, options), options)


if __name__ == "__main__":
    main()
