"""SMTP ingest rate of `ttrd run` against a bare aiosmtpd + uvloop sink that discards, same run.

4 KiB messages (about 3.5 KB of headers, like real mail) from 20 concurrent sessions of one asyncio
client. The ratio ttrd/bare is the figure that means something on this shared, noisy machine; the
RSS of ttrd's processes is sampled as the messages go by, to show whether it stays flat.

    .venv/bin/python bench/smtp_ingest.py [--messages 100000] [--sessions 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.daemon import Ttrd, free_port  # noqa: E402

BARE_SINK = """
import asyncio, sys, uvloop
from aiosmtpd.smtp import SMTP

class Discard:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Discard(), hostname="bare", loop=loop), "127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()

uvloop.run(main(int(sys.argv[1])))
"""

HEADERS = [
    "Received: from mail-{n}.cust.net (mail-{n}.cust.net [192.0.2.{m}]) by mx.example.com (Postfix) "
    "with ESMTPS id {n:X}; Mon, 02 Mar 2026 {h:02d}:{mi:02d}:{s:02d} +0000",
    "Received: by mail-{n}.cust.net with SMTP id abc{n}; Mon, 02 Mar 2026 {h:02d}:{mi:02d}:{s:02d} +0000",
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=cust.net; s=2026; "
    "h=from:to:subject:date:message-id; bh=" + "A" * 44 + "; b=" + "B" * 340,
    "X-Google-DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=1e100.net; s=2026; b=" + "C" * 340,
    "X-Gm-Message-State: " + "D" * 120,
    "X-Received: by 2002:a05:6000:1:b0:{n}; Mon, 02 Mar 2026 {h:02d}:{mi:02d}:{s:02d} +0000",
    "ARC-Seal: i=1; a=rsa-sha256; t=1772440000; cv=none; d=google.com; s=arc-2026; b=" + "E" * 340,
    "ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=google.com; s=arc-2026; b=" + "F" * 340,
    "ARC-Authentication-Results: i=1; mx.google.com; dkim=pass header.i=@cust.net; spf=pass",
    "Authentication-Results: mx.example.com; dkim=pass (2048-bit key) header.d=cust.net; spf=pass",
    "MIME-Version: 1.0",
    "From: Customer {c} <customer{c}@cust.net>",
    "Date: Mon, 02 Mar 2026 {h:02d}:{mi:02d}:{s:02d} +0000",
    "Message-ID: <bench-{run}-{n}@cust.net>",
    "Subject: Question {n} about my order",
    "To: support@example.com",
    "Content-Type: text/plain; charset=UTF-8",
]


def make_message(run: str, n: int) -> bytes:
    fields = {
        "n": n,
        "m": n % 250,
        "h": 9 + n % 8,
        "mi": n % 60,
        "s": (n * 7) % 60,
        "c": n % 5000,
        "run": run,
    }
    head = "\r\n".join(line.format(**fields) for line in HEADERS)
    body = "Hello,\r\n" + ("my order has not arrived yet, could you look into it please. " * 8 + "\r\n") * 1
    raw = (head + "\r\n\r\n" + body).encode()
    return raw + b"." * max(0, 4096 - len(raw) - 2) + b"\r\n"


async def session(port: int, messages: list[bytes], sent: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def expect(prefix: bytes) -> None:
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionError("closed")
            if line[3:4] != b"-":
                if not line.startswith(prefix):
                    raise RuntimeError(f"unexpected answer {line!r}")
                return

    await expect(b"220")
    writer.write(b"EHLO bench\r\n")
    await expect(b"250")
    for raw in messages:
        writer.write(b"MAIL FROM:<customer@cust.net>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n")
        await expect(b"250")
        await expect(b"250")
        await expect(b"354")
        writer.write(raw + b".\r\n")
        await expect(b"250")
        sent[0] += 1
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()


async def load(
    port: int, messages: list[bytes], sessions: int, sample: Callable[[int], None] | None = None
) -> float:
    sent = [0]
    shares = [messages[k::sessions] for k in range(sessions)]
    started = time.perf_counter()
    tasks = [asyncio.create_task(session(port, share, sent)) for share in shares]
    if sample is not None:
        tasks.append(asyncio.create_task(_sampler(sample, sent, len(messages))))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


async def _sampler(sample: Callable[[int], None], sent: list[int], total: int) -> None:
    marks = [total * k // 10 for k in range(1, 11)]
    while marks:
        if sent[0] >= marks[0]:
            sample(sent[0])
            marks.pop(0)
        await asyncio.sleep(0.05)


def rss_mb(pid: int) -> float:
    """Resident memory of one process, in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def measure_bare(messages: list[bytes], sessions: int) -> float:
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", BARE_SINK, str(port)], stdout=subprocess.PIPE)
    try:
        assert sink.stdout is not None and sink.stdout.readline().startswith(b"ready")
        return len(messages) / asyncio.run(load(port, messages, sessions))
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(10)


def measure_ttrd(work: Path, messages: list[bytes], sessions: int) -> tuple[float, list[str], float]:
    ttrd = Ttrd(work).start()
    samples: list[str] = []
    assert ttrd.process is not None
    pid = ttrd.process.pid

    def sample(sent: int) -> None:
        # The worker is the one child that is not multiprocessing's resource tracker: the larger.
        worker = max((rss_mb(child) for child in _children(pid)), default=0.0)
        samples.append(f"{sent}: {rss_mb(pid):.0f} + {worker:.0f} MB")

    try:
        seconds = asyncio.run(load(ttrd.smtp_port, messages, sessions, sample))
        started = time.perf_counter()
        ttrd.stop(timeout=600)
        drained = time.perf_counter() - started
    finally:
        ttrd.close()
    return len(messages) / seconds, samples, drained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--baseline-messages", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ttrd-smtp-bench-"))
    try:
        baseline = [make_message("base", n) for n in range(args.baseline_messages)]
        bare_before = measure_bare(baseline, args.sessions)
        messages = [make_message(str(os.getpid()), n) for n in range(args.messages)]
        rate, samples, drained = measure_ttrd(work, messages, args.sessions)
        bare_after = measure_bare(baseline, args.sessions)
        bare = (bare_before + bare_after) / 2
        print(f"message size: {len(messages[0])} bytes; sessions: {args.sessions}")
        print(f"bare aiosmtpd+uvloop sink: {bare_before:,.0f} and {bare_after:,.0f} msg/s (before/after)")
        print(
            f"ttrd run, durable 250s: {rate:,.0f} msg/s over {args.messages:,} messages; "
            f"ratio {rate / bare:.2f}"
        )
        print("ttrd RSS (main process + ingest worker) after n messages: " + ", ".join(samples))
        print(f"stop (drain + worker ingesting the spooled rest): {drained:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
