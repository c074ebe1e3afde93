"""Cost of `ttrd.systemd.notify` (a watchdog ping), as a ratio to a plain `socket.sendto`, same run.

A datagram socket in a temporary folder stands in for systemd's notify socket ($NOTIFY_SOCKET).
Baseline: `sendto` of the same datagram on a socket kept open. Measured: a socket opened, made
non-blocking, used and closed per message (what notify() must at least do, as it keeps no socket),
and `systemd.watchdog()` itself. Each round times a burst of sends of each kind in turn, then reads
the socket empty (untimed; the kernel queues only net.unix.max_dgram_qlen datagrams); medians.

Then systemd stops reading: once the queue is full, how long notify() takes to drop a message, as a
ratio to a plain send (it must not wait: the daemon's event loop calls it).

    .venv/bin/python bench/sd_notify.py [--rounds 2000] [--stalls 5]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ttrd import systemd

DATAGRAM = b"WATCHDOG=1"


def queue_length() -> int:
    try:
        return int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
    except (OSError, ValueError):
        return 10


def drain(receiver: socket.socket) -> int:
    count = 0
    while True:
        try:
            receiver.recv(4096)
        except BlockingIOError:
            return count
        count += 1


def sends(receiver: socket.socket, path: str, rounds: int, burst: int) -> float:
    """The median seconds of one plain send (the baseline)."""
    kept = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    def plain() -> None:
        for _ in range(burst):
            kept.sendto(DATAGRAM, path)

    def fresh() -> None:
        for _ in range(burst):
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)
                sock.sendto(DATAGRAM, path)

    def notify() -> None:
        for _ in range(burst):
            if not systemd.watchdog():
                raise RuntimeError("watchdog() failed: the queue was not read empty")

    works: dict[str, Callable[[], None]] = {
        "baseline: sendto on a socket kept open": plain,
        "socket + setblocking + sendto + close": fresh,
        "systemd.watchdog()": notify,
    }
    times: dict[str, list[float]] = {name: [] for name in works}
    try:
        for _ in range(rounds):
            for name, work in works.items():
                started = time.perf_counter()
                work()
                times[name].append(time.perf_counter() - started)
                if drain(receiver) != burst:
                    raise RuntimeError(f"{name}: datagrams lost")
    finally:
        kept.close()
    base = statistics.median(times["baseline: sendto on a socket kept open"])
    print(f"\nsends, in bursts of {burst} (medians of {rounds} rounds)")
    print(f"  {'':<42} {'µs/send':>9} {'ratio':>8}")
    for name, found in times.items():
        median = statistics.median(found)
        print(f"  {name:<42} {median / burst * 1e6:>9.2f} {median / base:>8.2f}")
    return base / burst


def stalls(receiver: socket.socket, count: int, send: float) -> None:
    queued = 0
    while systemd.watchdog():  # fill the queue
        queued += 1
    found = []
    for _ in range(count):
        started = time.perf_counter()
        delivered = systemd.watchdog()
        found.append(time.perf_counter() - started)
        if delivered:
            raise RuntimeError("a send to a full queue went through")
    drain(receiver)
    median = statistics.median(found)
    print(f"\na full queue ({queued} datagrams), {count} calls")
    print(
        f"  notify() drops a message in {median * 1e6:.1f} µs (median), {median / send:.2f} × a plain send;"
    )
    print(f"  longest {max(found) * 1e6:.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--stalls", type=int, default=5, help="calls timed against a full queue")
    args = parser.parse_args()
    burst = max(1, min(8, queue_length() - 1))
    with tempfile.TemporaryDirectory(prefix="ttrd-bench-") as folder:
        path = str(Path(folder) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
            receiver.bind(path)
            receiver.setblocking(False)
            os.environ["NOTIFY_SOCKET"] = path
            send = sends(receiver, path, args.rounds, burst)
            stalls(receiver, args.stalls, send)


if __name__ == "__main__":
    main()
