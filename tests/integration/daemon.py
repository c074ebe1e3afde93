"""A real `ttrd run` for tests: a temp config, random loopback ports, systemd's notify socket."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import require

TTRD = Path(sys.executable).parent / "ttrd"

CONFIG = """
[organization]
domains = ["example.com"]

[[agents]]
id = "alice"
address = "alice@example.com"

[[agents]]
id = "bob"
address = "bob@example.com"

[[mailboxes]]
id = "support"
address = "support@example.com"
kind = "shared"
members = ["alice", "bob"]
sla = ["1h"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def message(number: int, *, author: str = "jo@cust.net", to: str = "support@example.com", minute: int = 0,
            in_reply_to: str | None = None, size: int = 0) -> bytes:  # fmt: skip
    """A small raw message (CRLF, as SMTP carries it) with a predictable Message-ID."""
    lines = [
        f"Received: from x by mx.example.com; Mon, 02 Mar 2026 09:{minute:02d}:00 +0000",
        f"From: {author}",
        f"To: {to}",
        f"Subject: Case {number}",
        f"Message-ID: <m{number}@test>",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    body = "Hello.\r\n" + ("x" * 76 + "\r\n") * (size // 78)
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


@dataclass
class Ttrd:
    """One `ttrd run` process and its files."""

    folder: Path
    extra_config: str = ""
    smtp_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    storage_url: str = ""
    process: subprocess.Popen[bytes] | None = None
    notifications: list[str] = field(default_factory=list)
    _listener: threading.Thread | None = field(default=None, init=False, repr=False)
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment variables of the daemon (PYTHONPATH to inject a fault, say)."""
    base_config: str = CONFIG
    """Organisation, agents and mailboxes (a scenario's own, say); storage and ports are added."""

    def __post_init__(self) -> None:
        self.storage_url = self.storage_url or f"sqlite:///{self.folder / 'ttrd.db'}"
        self.config = self.folder / "ttrd.toml"
        self.config.write_text(
            self.base_config
            + self.extra_config.replace("{port}", str(self.smtp_port))
            + f'\n[storage]\nurl = "{self.storage_url}"\n'
            + f'\n[metrics]\nlisten = "127.0.0.1:{self.metrics_port}"\n'
            + ("" if "[smtp]" in self.extra_config else f'\n[smtp]\nlisten = "127.0.0.1:{self.smtp_port}"\n')
        )
        self.log = self.folder / "ttrd.log"
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(self.folder / "notify.sock"))
        self._notify.settimeout(0.2)

    def start(self, timeout: float = 60.0) -> Ttrd:
        env = dict(os.environ, NOTIFY_SOCKET=str(self.folder / "notify.sock"), **self.env)
        self.notifications.clear()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(TTRD), "run", "--config", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT, env=env)  # fmt: skip
        if self._listener is None:  # read the notify socket all along, as systemd does
            self._listener = threading.Thread(target=self._listen, daemon=True)
            self._listener.start()
        deadline = time.monotonic() + timeout
        while "READY=1" not in self.notifications:
            if self.process.poll() is not None:
                raise AssertionError(f"ttrd run exited {self.process.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no READY=1 after {timeout} s:\n{self.log.read_text()}")
            time.sleep(0.02)
        return self

    def _listen(self) -> None:
        with contextlib.suppress(OSError):  # closed
            while True:
                with contextlib.suppress(TimeoutError):
                    self.notifications.extend(self._notify.recv(4096).decode().splitlines())

    def stop(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        time.sleep(0.3)  # the listener reads what came last
        return code

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
        self._notify.close()

    def rss_mb(self) -> float:
        """Resident memory of the daemon's main process."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def worker_pid(self, timeout: float = 30.0) -> int:
        """The ingest worker: the daemon's child that multiprocessing spawned (not its resource tracker)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            workers = [pid for pid in _children(self.process.pid) if b"spawn_main" in _cmdline(pid)]
            if len(workers) == 1:
                return workers[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"the daemon has {len(workers)} ingest workers")
            time.sleep(0.1)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=30) as answer:
            text: str = answer.read().decode()
            return text

    def replies(self) -> list[dict[str, object]]:
        done = subprocess.run([str(TTRD), "replies", "--config", str(self.config), "--json"],
                              capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        return [json.loads(line) for line in done.stdout.splitlines()]


def _children(pid: int) -> list[int]:
    """Child processes of every thread of `pid`."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it ended meanwhile
        return b""


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        if series.split("{")[0] != name:
            continue
        if all(f'{key}="{wanted}"' in series for key, wanted in labels.items()):
            total += float(value)
    return total


@contextlib.contextmanager
def small_disk(folder: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted at `folder/disk`, to fill; skipped (failed in CI) where mounting is denied."""
    disk = folder / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=False,
                             capture_output=True)  # fmt: skip
    require(mounted.returncode == 0, f"cannot mount a small tmpfs to fill: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
        shutil.rmtree(disk, ignore_errors=True)


@contextlib.contextmanager
def running(folder: Path, extra_config: str = "") -> Iterator[Ttrd]:
    ttrd = Ttrd(folder, extra_config)
    try:
        yield ttrd.start()
    finally:
        ttrd.close()
