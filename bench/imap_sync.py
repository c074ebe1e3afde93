"""First full IMAP sync of `ttrd run`, and the idle cost of an IMAP account, against a private Dovecot.

One private Dovecot (tests/integration/dovecot.py) with `--accounts` users (agent01@example.com, ...)
and `--messages` messages spread evenly over their INBOXes, about 3.5 KB of headers each (Received
lines, DKIM and ARC signatures, folded). The messages are written as Maildir files, owned by the mail
uid, before Dovecot starts (file mtime = INTERNALDATE); `doveadm mailbox status` then has to count
every one of them, which also builds Dovecot's index, and one bare pass (not counted) warms its cache.

Every INBOX message opens exactly one item: each comes from an external customer to the agent who
owns the INBOX. 60% are single questions (a customer and a subject of their own); 40% are threads of
up to 4 messages (In-Reply-To/References) whose messages lie in the INBOXes of different agents, so
each opens the first item of its own agent (context) in the conversation. Nothing is in Sent.

1. First full sync, `--rounds` times, alternating:
   - baseline: a bare aioimaplib loop on uvloop, one `IMAP4` per account, all concurrently: login,
     EXAMINE INBOX, UID SEARCH, `UID FETCH (UID INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])` in chunks
     of 200 UIDs as ttrd does, logout;
   - ttrd: a fresh `ttrd run` (fresh SQLite database) with one account per agent (poll_seconds 60,
     tls none, loopback), timed from its launch until the sum of `ttrd_imap_messages_total` is
     `--messages` ("fetched": copies durably spooled) and until the sum of
     `ttrd_inbound_messages_total` (items) is `--messages` ("measured": the ingest worker is through),
     /metrics polled every 0.2 s. Peak RSS (VmHWM) of the daemon and of its ingest worker.
   The figure that means something on this shared, noisy 2-core machine is the ratio of medians
   (ttrd msg/s / baseline msg/s), not the absolute rates.
2. Idle cost: the last round's daemon, fully synced, left alone for `--idle-seconds` (its pollers sit
   in IDLE on INBOX and read Sent every minute), next to a daemon with 0 IMAP accounts over the same
   window, on a copy of the same database: CPU seconds of each main process and ingest worker (utime+
   stime from /proc/PID/stat, and schedstat's nanoseconds: one clock tick is coarse for this), and of
   Dovecot's imap processes; the difference, per hour and per account, is what the accounts cost.

    .venv/bin/python bench/imap_sync.py [--messages 10000] [--accounts 10] [--rounds 3] [--idle-seconds 120]

Everything (daemons, Dovecot, temp folders) is stopped and removed at the end, also on Ctrl-C,
SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import aioimaplib
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.daemon import Ttrd, metric  # noqa: E402
from tests.integration.dovecot import MAIL_ID, PASSWORD, PREFIX, Dovecot  # noqa: E402
from tests.integration.test_imap import imap_accounts  # noqa: E402

FETCH_CHUNK = 200
"""UIDs per UID FETCH, as ttrd.imap.poller.FETCH_CHUNK."""
ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])"
THREAD_LENGTH = 4
SCRAPE_SECONDS = 0.2
SETTLE_SECONDS = 5.0
"""Pause before the idle window, so that start-up work and the last poll are not in it."""
TICKS = os.sysconf("SC_CLK_TCK")

HEADERS = [
    "Return-Path: <{customer}@cust.net>",
    "Delivered-To: {agent}@example.com",
    "Received: from mx.example.com by imap.example.com with LMTP id {n:08x}\n\tfor <{agent}@example.com>; "
    "{date}",
    "Received: from mail-{n}.cust.net (mail-{n}.cust.net [192.0.2.{m}])\n\tby mx.example.com (Postfix) "
    "with ESMTPS id {n:X}\n\tfor <{agent}@example.com>; {date}",
    "Received: from localhost (localhost [127.0.0.1])\n\tby mx.example.com (Postfix) with ESMTP id "
    "{n:08X}\n\tfor <{agent}@example.com>; {date}",
    "Received: by mail-{n}.cust.net with SMTP id abc{n}; {date}",
    "Received-SPF: pass (mx.example.com: domain of {customer}@cust.net designates 192.0.2.{m} as\n\t"
    "permitted sender) client-ip=192.0.2.{m}; envelope-from=<{customer}@cust.net>; helo=mail-{n}.cust.net",
    "X-Virus-Scanned: Debian amavisd-new at mx.example.com",
    "X-Spam-Flag: NO",
    "X-Spam-Score: -2.1",
    "X-Spam-Status: No, score=-2.1 tagged_above=-999 required=5 tests=[BAYES_00=-1.9,\n\t"
    "DKIM_SIGNED=0.1, DKIM_VALID=-0.1, DKIM_VALID_AU=-0.1, RCVD_IN_DNSWL_NONE=-0.0001,\n\t"
    "SPF_HELO_NONE=0.001, SPF_PASS=-0.001] autolearn=ham autolearn_force=no",
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=cust.net; s=2026;\n\t"
    "h=from:to:subject:date:message-id; bh={bh};\n\tb={sig}",
    "X-Google-DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=1e100.net; s=2026;\n\tb={sig}",
    "X-Gm-Message-State: AOJu0Y{state}",
    "X-Received: by 2002:a05:6000:1:b0:{n} with SMTP id {n:x}; {date}",
    "ARC-Seal: i=1; a=rsa-sha256; t=1772440000; cv=none; d=google.com; s=arc-2026;\n\tb={sig}",
    "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=google.com; s=arc-2026;\n\tb={sig}",
    "ARC-Authentication-Results: i=1; mx.google.com;\n\tdkim=pass header.i=@cust.net; spf=pass",
    "Authentication-Results: mx.example.com;\n\tdkim=pass (2048-bit key) header.d=cust.net; spf=pass",
    "MIME-Version: 1.0",
    "From: Customer {customer} <{customer}@cust.net>",
    "Date: {sent}",
    "Message-ID: <{mid}>",
    "Subject: {subject}",
    "To: Agent {agent} <{agent}@example.com>",
    "Content-Type: text/plain; charset=UTF-8",
    "Content-Transfer-Encoding: 7bit",
    "X-Mailer: Apple Mail (2.3774.600.62)",
]
BODY = "Hello,\n\n" + "my order has not arrived yet, could you look into it please.\n" * 6 + "\nThanks\n"


# --- the mail ----------------------------------------------------------------------------------------


def login(account: int) -> str:
    return f"agent{account + 1:02d}@example.com"


def _noise(n: int, what: str, length: int) -> str:
    """Base64 that differs from message to message, like a signature (and as incompressible)."""
    return base64.b64encode(hashlib.shake_256(f"{what}{n}".encode()).digest(length)).decode()[:length]


def _fold(value: str) -> str:
    return "\n\t".join(value[k : k + 72] for k in range(0, len(value), 72))


def thread_of(n: int, accounts: int) -> tuple[int, int] | None:
    """(thread number, position in it) of message `n`, or None for a single question.

    Two blocks of THREAD_LENGTH consecutive messages in five are threads. Message `n` goes to INBOX
    `n % accounts`, so a thread's messages (at most `accounts` of them) lie in distinct INBOXes."""
    length = min(THREAD_LENGTH, accounts)
    block, position = divmod(n, length)
    return (block, position) if length > 1 and block % 5 < 2 else None


def make_message(n: int, accounts: int, moment: datetime) -> bytes:
    """Message `n` (to the agent of INBOX `n % accounts`), delivered at `moment`; LF line ends (Maildir)."""
    agent = login(n % accounts).split("@")[0]
    thread = thread_of(n, accounts)
    if thread is not None:
        block, position = thread
        customer, subject = f"t{block}", ("Re: " if position else "") + f"Order {block} has not arrived"
    else:
        customer, subject, position = f"s{n}", f"Question {n} about my order", 0
    fields = {
        "n": n, "m": n % 250, "agent": agent, "customer": customer, "subject": subject,
        "mid": f"imap-bench-{n}@cust.net", "date": format_datetime(moment),
        "sent": format_datetime(moment - timedelta(seconds=5)),
        "bh": _noise(n, "bh", 44), "sig": _fold(_noise(n, "b", 300)), "state": _noise(n, "gm", 110),
    }  # fmt: skip
    lines = [line.format(**fields) for line in HEADERS]
    if position:
        earlier = [f"<imap-bench-{k}@cust.net>" for k in range(n - position, n)]
        lines += [f"In-Reply-To: {earlier[-1]}", "References: " + "\n\t".join(earlier)]
    return ("\n".join(lines) + "\n\n" + BODY).encode()


def place(dovecot: Dovecot, messages: int, accounts: int) -> tuple[int, int]:
    """Write every INBOX as Maildir files (owned by the mail uid) before Dovecot starts.

    File mtime = INTERNALDATE = delivery time, spread over the last two days, oldest first; names as
    Dovecot's own deliveries have them (`S=` size, `W=` size with CRLF). Returns (bytes of the first
    message's header block as BODY[HEADER] sends it, with CRLF, and total bytes written)."""
    now = datetime.now(UTC).replace(microsecond=0)
    spacing = timedelta(days=2) / max(messages, 1)
    header_bytes = written = 0
    for account in range(accounts):
        home = dovecot.folder / "mail" / login(account)
        for folder in (home, home / "cur", home / "new", home / "tmp"):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, MAIL_ID, MAIL_ID)
            folder.chmod(0o700)
    for n in range(messages):
        moment = now - timedelta(days=2) + spacing * n
        raw = make_message(n, accounts, moment)
        head = raw[: raw.index(b"\n\n") + 2]
        header_bytes = header_bytes or len(head) + head.count(b"\n")
        stamp, crlf_size = int(moment.timestamp()), len(raw) + raw.count(b"\n")
        name = f"{stamp}.M{n}P{os.getpid()}.bench,S={len(raw)},W={crlf_size}:2,"
        path = dovecot.folder / "mail" / login(n % accounts) / "cur" / name
        path.write_bytes(raw)
        os.chown(path, MAIL_ID, MAIL_ID)
        os.utime(path, (stamp, stamp))
        written += len(raw)
    return header_bytes, written


def check_placed(dovecot: Dovecot, messages: int, accounts: int) -> None:
    """Dovecot must count every placed message (this also builds its index of each INBOX)."""
    for account in range(accounts):
        status = dovecot.doveadm("mailbox", "status", "-u", login(account), "messages", "INBOX")
        wanted = len(range(account, messages, accounts))
        if f"messages={wanted}" not in status.split():
            raise SystemExit(f"Dovecot sees {status.strip()!r} for {login(account)}, not {wanted} messages")


# --- baseline: a bare aioimaplib loop ----------------------------------------------------------------


def _ok(response: aioimaplib.Response, what: str) -> list[bytes | bytearray]:
    if response.result != "OK":
        raise RuntimeError(f"{what}: {response.result} {response.lines[-1:]!r}")
    return list(response.lines)


def _uid_set(chunk: list[int]) -> str:
    contiguous = chunk[-1] - chunk[0] + 1 == len(chunk)
    return f"{chunk[0]}:{chunk[-1]}" if contiguous else ",".join(map(str, chunk))


async def bare_account(port: int, user: str) -> int:
    """Fetch the headers of every message of `user`'s INBOX; the number of header blocks received."""
    client = aioimaplib.IMAP4(host="127.0.0.1", port=port, timeout=60)
    await client.wait_hello_from_server()
    _ok(await client.login(user, PASSWORD), "LOGIN")
    _ok(await client.examine("INBOX"), "EXAMINE")
    client.protocol.state = aioimaplib.SELECTED  # aioimaplib only tracks SELECT (ttrd does the same)
    lines = _ok(await client.uid_search("ALL", charset=None), "UID SEARCH")
    uids = sorted(int(word) for line in lines[:-1] for word in bytes(line).split() if word.isdigit())
    fetched = 0
    for start in range(0, len(uids), FETCH_CHUNK):
        chunk = uids[start : start + FETCH_CHUNK]
        lines = _ok(await client.uid("fetch", _uid_set(chunk), ITEMS), "UID FETCH")
        fetched += sum(1 for line in lines if isinstance(line, bytearray))
    await client.logout()
    return fetched


async def _bare_all(port: int, accounts: int) -> int:
    counts = await asyncio.gather(*(bare_account(port, login(account)) for account in range(accounts)))
    return sum(counts)


def measure_bare(port: int, accounts: int, messages: int) -> float:
    """Wall seconds of one bare sync of every account (uvloop, as `ttrd run`)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        started = time.perf_counter()
        fetched = runner.run(_bare_all(port, accounts))
        seconds = time.perf_counter() - started
    if fetched != messages:
        raise SystemExit(f"the bare loop fetched {fetched} header blocks, not {messages}")
    return seconds


# --- ttrd --------------------------------------------------------------------------------------------


def agents_config(accounts: int) -> str:
    return "".join(
        f'\n[[agents]]\nid = "{login(k).split("@")[0]}"\naddress = "{login(k)}"\n' for k in range(accounts)
    )


def ttrd_config(folder: Path, dovecot: Dovecot, accounts: int) -> str:
    owners = {login(k).split("@")[0]: login(k) for k in range(accounts)}
    options = {"poll_seconds": 60, "timeout_seconds": 60}
    return agents_config(accounts) + (imap_accounts(folder, dovecot, owners, **options) if owners else "")


def status_kb(pid: int, key: str) -> float:
    """A `key:` line of /proc/PID/status in kB (VmHWM: peak RSS), 0 when the process is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads, not its children), from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run_seconds(pid: int) -> float:
    """Time on CPU of the process's live threads, to the nanosecond (/proc/PID/task/*/schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


class Daemons:
    """The `ttrd run` processes of a run: started, and stopped even when the run fails.

    The Ttrd helper reads each daemon's sd_notify socket all along, as systemd does (and ttrd drops a
    notification systemd has no room for rather than wait), so idle figures are the daemon's own.
    """

    def __init__(self) -> None:
        self._all: list[Ttrd] = []
        self._workers: dict[int, int] = {}
        """Daemon pid -> its ingest worker's pid."""

    def start(self, ttrd: Ttrd) -> None:
        self._all.append(ttrd)
        ttrd.start()
        assert ttrd.process is not None
        self._workers[ttrd.process.pid] = ttrd.worker_pid()

    def shut(self, ttrd: Ttrd) -> None:
        """Stop a daemon (SIGTERM, then SIGKILL if it hangs) and close its notify socket."""
        try:
            if ttrd.process is not None and ttrd.process.poll() is None:
                ttrd.stop(timeout=60)
        except (subprocess.TimeoutExpired, OSError):
            pass
        finally:
            ttrd.close()  # SIGKILL if it still runs (a stop cut short by Ctrl-C, say)
            worker = self._workers.pop(ttrd.process.pid, None) if ttrd.process is not None else None
            if worker is not None:
                _end_orphan(worker)

    def close(self) -> None:
        for ttrd in self._all:
            self.shut(ttrd)


def _end_orphan(pid: int) -> None:
    """A worker whose daemon was killed stops by itself within 20 ms; kill it if it has not in 5 s."""

    def running() -> bool:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return text[text.rindex(")") + 2 :].split()[0] != "Z"  # a zombie waits for init to reap it

    deadline = time.monotonic() + 5
    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    if running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class SyncRound:
    ready: float
    """Launch to READY=1 (the pollers start just before it)."""
    fetched: float
    """Launch until `ttrd_imap_messages_total` sums to the messages placed."""
    measured: float
    """Launch until `ttrd_inbound_messages_total` (items) sums to the messages placed."""
    rss_main_mb: float
    rss_worker_mb: float
    scrape_ms: float
    """Median time of one /metrics scrape while it synced (the daemon answers them on the same loop)."""
    failed_polls: float


def measure_ttrd(folder: Path, dovecot: Dovecot, accounts: int, messages: int,
                 daemons: Daemons) -> tuple[SyncRound, Ttrd]:  # fmt: skip
    """One first full sync by a fresh `ttrd run`; the daemon is left running."""
    ttrd = Ttrd(folder, ttrd_config(folder, dovecot, accounts))
    started = time.perf_counter()
    daemons.start(ttrd)
    ready = time.perf_counter() - started
    assert ttrd.process is not None
    fetched: float | None = None
    measured: float | None = None
    scrapes: list[float] = []
    deadline = time.monotonic() + max(300.0, messages / 20)
    while measured is None or fetched is None:
        if ttrd.process.poll() is not None:
            raise SystemExit(f"ttrd exited with {ttrd.process.returncode}:\n{ttrd.log.read_text()[-3000:]}")
        before = time.perf_counter()
        text = ttrd.metrics()
        now = time.perf_counter()
        scrapes.append(now - before)
        if fetched is None and metric(text, "ttrd_imap_messages_total") >= messages:
            fetched = now - started
        if measured is None and metric(text, "ttrd_inbound_messages_total") >= messages:
            measured = now - started
        if time.monotonic() > deadline:
            raise SystemExit(
                f"ttrd did not finish in time: {metric(text, 'ttrd_imap_messages_total'):.0f} fetched, "
                f"{metric(text, 'ttrd_inbound_messages_total'):.0f} items of {messages}"
            )
        time.sleep(SCRAPE_SECONDS)
    polls = metric(text, "ttrd_imap_polls_total")
    failed = polls - metric(text, "ttrd_imap_polls_total", result="ok")
    worker = ttrd.worker_pid()
    main_mb, worker_mb = (status_kb(pid, "VmHWM") / 1024 for pid in (ttrd.process.pid, worker))
    scrape_ms = statistics.median(scrapes) * 1000
    return SyncRound(ready, fetched, measured, main_mb, worker_mb, scrape_ms, failed), ttrd


# --- idle cost ---------------------------------------------------------------------------------------


@dataclass
class IdleCost:
    seconds: float
    used: dict[str, tuple[float, float]]
    """CPU seconds over the window, (utime+stime, schedstat), of IDLE_ROLES."""
    polls: float
    """Polls that read every folder, of all accounts, during the window."""


IDLE_ROLES = ("busy main", "busy worker", "quiet main", "quiet worker", "dovecot imap")
"""The processes watched while idle: daemon and worker with the accounts and without, and Dovecot's
imap processes (the server side of the idle sessions)."""


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (WAL), with the backup API."""
    with (
        contextlib.closing(sqlite3.connect(source)) as old,
        contextlib.closing(sqlite3.connect(target)) as new,
    ):
        old.backup(new)


def _cpu(pids: list[int], dovecot: Dovecot) -> list[tuple[float, float]]:
    """(utime+stime, schedstat) seconds of each of `pids`, then of Dovecot's imap processes together."""
    assert dovecot.process is not None
    imap = []
    for pid in _descendants(dovecot.process.pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "imap":
                imap.append((cpu_seconds(pid), run_seconds(pid)))
    server = (sum(stat for stat, _ in imap), sum(sched for _, sched in imap))
    return [(cpu_seconds(pid), run_seconds(pid)) for pid in pids] + [server]


def _descendants(pid: int) -> Iterator[int]:
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    yield int(child)
                    yield from _descendants(int(child))


def measure_idle(busy: Ttrd, quiet_folder: Path, dovecot: Dovecot, accounts: int, seconds: float, *,
                 daemons: Daemons) -> IdleCost:  # fmt: skip
    """CPU of the synced daemon `busy` and of a daemon with no IMAP account, side by side, `seconds`.

    The daemon without accounts gets a copy of `busy`'s database, so that only the accounts differ."""
    for name in ("ttrd.db", "ttrd.spool.db"):
        _copy_database(busy.folder / name, quiet_folder / name)
    quiet = Ttrd(quiet_folder, agents_config(accounts))
    daemons.start(quiet)
    time.sleep(SETTLE_SECONDS)
    assert busy.process is not None and quiet.process is not None
    procs = [busy.process.pid, busy.worker_pid(), quiet.process.pid, quiet.worker_pid()]
    polls_before = metric(busy.metrics(), "ttrd_imap_polls_total", result="ok")
    before = _cpu(procs, dovecot)
    window_start = time.perf_counter()
    time.sleep(seconds)
    after = _cpu(procs, dovecot)
    window = time.perf_counter() - window_start
    polls = metric(busy.metrics(), "ttrd_imap_polls_total", result="ok") - polls_before
    used = {
        role: (end[0] - start[0], end[1] - start[1])
        for role, start, end in zip(IDLE_ROLES, before, after, strict=True)
    }
    return IdleCost(window, used, polls)


# --- running it all ----------------------------------------------------------------------------------


def table(rows: list[tuple[str, ...]]) -> None:
    """Print rows as columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(row[k]) for row in rows if k < len(row)) for k in range(max(map(len, rows)))]
    for row in rows:
        cells = [cell.ljust(widths[0]) if k == 0 else cell.rjust(widths[k]) for k, cell in enumerate(row)]
        print("  ".join(cells).rstrip())


def sync_rows(messages: int, bare: list[float], rounds: list[SyncRound]) -> list[tuple[str, ...]]:
    base = statistics.median(bare)

    def row(label: str, runs: list[float]) -> tuple[str, ...]:
        seconds = statistics.median(runs)
        each = " ".join(f"{run:.2f}" for run in runs)
        return (label, f"{seconds:.2f}", f"{messages / seconds:,.0f}", f"{base / seconds:.2f}", each)

    ready = statistics.median(r.ready for r in rounds)
    return [
        ("first full sync (median)", "wall s", "msg/s", "ratio", "rounds (s)"),
        row("baseline: bare aioimaplib on uvloop", bare),
        row("ttrd: fetched (imap_messages_total)", [r.fetched for r in rounds]),
        row("ttrd: measured (inbound items)", [r.measured for r in rounds]),
        ("  of which launch to READY=1", f"{ready:.2f}", "", "", ""),
        ("peak RSS ttrd daemon (max, MB)", f"{max(r.rss_main_mb for r in rounds):.0f}"),
        ("peak RSS ttrd ingest worker (max, MB)", f"{max(r.rss_worker_mb for r in rounds):.0f}"),
        ("/metrics scrape while syncing (ms)", f"{statistics.median(r.scrape_ms for r in rounds):.0f}"),
        ("failed polls (all rounds)", f"{sum(r.failed_polls for r in rounds):.0f}"),
    ]


def idle_rows(accounts: int, idle: IdleCost) -> list[tuple[str, ...]]:
    per_hour = 3600 / idle.seconds
    used = idle.used
    rows: list[tuple[str, ...]] = [
        (f"idle, {idle.seconds:.0f} s window", "CPU s", "CPU s/h", "sched ms", "sched s/h"),
    ]
    for label, role in (
        (f"ttrd daemon, {accounts} accounts", "busy main"),
        (f"ttrd worker, {accounts} accounts", "busy worker"),
        ("ttrd daemon, 0 accounts (baseline)", "quiet main"),
        ("ttrd worker, 0 accounts (baseline)", "quiet worker"),
        (f"Dovecot imap processes ({accounts})", "dovecot imap"),
    ):
        stat, sched = used[role]
        rows.append(
            (label, f"{stat:.2f}", f"{stat * per_hour:.2f}", f"{sched * 1000:.1f}", f"{sched * per_hour:.3f}")
        )
    for label, role, baseline in (
        ("per account: daemon, minus baseline", "busy main", "quiet main"),
        ("per account: worker, minus baseline", "busy worker", "quiet worker"),
        ("per account: Dovecot", "dovecot imap", None),
    ):
        stat, sched = (used[role][k] - (used[baseline][k] if baseline else 0.0) for k in (0, 1))
        rows.append(
            (label, "", f"{stat * per_hour / accounts:.3f}", "", f"{sched * per_hour / accounts:.4f}")
        )
    rows.append(
        ("per account: one clock tick (resolution)", "", f"{per_hour / TICKS / accounts:.3f}", "", "")
    )
    rows.append(("polls that read every folder", f"{idle.polls:.0f}", "", "", ""))
    return rows


def run(args: argparse.Namespace, work: Path, dovecot: Dovecot, daemons: Daemons) -> None:
    for account in range(args.accounts):
        dovecot.add_user(login(account), PASSWORD)
    began = time.perf_counter()
    header_bytes, written = place(dovecot, args.messages, args.accounts)
    placed = time.perf_counter() - began
    dovecot.start()
    check_placed(dovecot, args.messages, args.accounts)
    threads = [thread_of(n, args.accounts) for n in range(args.messages)]
    followups = sum(1 for thread in threads if thread is not None and thread[1] > 0)
    singles = threads.count(None)
    print(
        f"messages: {args.messages:,} in {args.accounts} INBOXes ({header_bytes:,}-byte header blocks), "
        f"{written / 1e6:.1f} MB written as Maildir files in {placed:.2f} s before Dovecot started; "
        "doveadm mailbox status counts them all"
    )
    print(
        f"expected items: {args.messages:,}, one per INBOX message ({singles:,} single questions, "
        f"{args.messages - singles:,} in threads across agents, {followups:,} of them follow-ups)"
    )
    warm = measure_bare(dovecot.port, args.accounts, args.messages)
    print(f"warm-up bare pass (not counted): {warm:.2f} s; rounds: {args.rounds}, alternating", flush=True)
    bare: list[float] = []
    rounds: list[SyncRound] = []
    busy: Ttrd | None = None
    for number in range(args.rounds):
        bare.append(measure_bare(dovecot.port, args.accounts, args.messages))
        folder = work / f"ttrd-{number}"
        folder.mkdir()
        result, busy = measure_ttrd(folder, dovecot, args.accounts, args.messages, daemons)
        rounds.append(result)
        print(
            f"round {number + 1}: bare {bare[-1]:.2f} s, ttrd fetched {result.fetched:.2f} s, "
            f"measured {result.measured:.2f} s",
            flush=True,
        )
        if number + 1 < args.rounds:
            daemons.shut(busy)
    print()
    table(sync_rows(args.messages, bare, rounds))
    print("ratio = ttrd msg/s / baseline msg/s; ttrd times run from its launch")
    if busy is not None and args.idle_seconds > 0:
        quiet_folder = work / "ttrd-quiet"
        quiet_folder.mkdir()
        idle = measure_idle(busy, quiet_folder, dovecot, args.accounts, args.idle_seconds, daemons=daemons)
        print()
        table(idle_rows(args.accounts, idle))
        print(
            "CPU s = utime+stime (/proc/PID/stat, whole clock ticks); sched = time on CPU of the live "
            "threads (/proc/PID/task/*/schedstat, ns); per account = difference to the baseline, per hour "
            "and account"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=120.0)
    args = parser.parse_args()
    if args.accounts < 1 or args.messages < args.accounts or args.rounds < 1:
        parser.error("need --accounts >= 1, --messages >= --accounts and --rounds >= 1")
    if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        raise SystemExit("Dovecot is not installed: install dovecot-imapd (Debian package)")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up as Ctrl-C does
    work = Path(tempfile.mkdtemp(prefix="ttrd-imap-bench-"))
    mail_server = Path(tempfile.mkdtemp(prefix=PREFIX))  # Dovecot's unprivileged processes can enter it
    daemons = Daemons()
    dovecot: Dovecot | None = None
    try:
        dovecot = Dovecot(mail_server)
        run(args, work, dovecot, daemons)
    finally:
        try:
            daemons.close()
            if dovecot is not None:
                dovecot.stop()
        finally:
            shutil.rmtree(mail_server, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
