"""ttrd.systemd against real AF_UNIX datagram sockets standing in for systemd's notify socket."""

from __future__ import annotations

import array
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ttrd import systemd

_WATCHDOG_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start outside systemd, even when pytest itself runs under a unit."""
    for name in _WATCHDOG_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: AF_UNIX paths end at 107 bytes, pytest's tmp_path can be longer."""
    with tempfile.TemporaryDirectory(prefix="ttrd-sd-") as name:
        yield Path(name)


@pytest.fixture
def path_socket(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket bound to a file, announced as $NOTIFY_SOCKET."""
    path = short_dir / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket in the abstract namespace, announced as "@name" the way systemd does."""
    name = f"ttrd-test-{os.getpid()}-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield sock


def _nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    return False


def test_notify_delivers_exactly_the_states_to_a_socket_file(path_socket: socket.socket) -> None:
    assert systemd.notify("READY=1", "STATUS=accepting mail on 127.0.0.1:2525") is True
    assert path_socket.recv(4096) == b"READY=1\nSTATUS=accepting mail on 127.0.0.1:2525"
    assert _nothing_waiting(path_socket)


def test_notify_delivers_exactly_the_states_to_an_abstract_socket(abstract_socket: socket.socket) -> None:
    assert systemd.notify("WATCHDOG=1") is True
    assert abstract_socket.recv(4096) == b"WATCHDOG=1"
    assert _nothing_waiting(abstract_socket)


@pytest.mark.parametrize(
    ("helper", "arguments", "expected"),
    [
        (systemd.ready, (), b"READY=1"),
        (systemd.ready, ("accepting mail",), b"READY=1\nSTATUS=accepting mail"),
        (systemd.stopping, (), b"STOPPING=1"),
        (systemd.stopping, ("draining 3 sessions",), b"STOPPING=1\nSTATUS=draining 3 sessions"),
        (systemd.watchdog, (), b"WATCHDOG=1"),
        (systemd.status, ("Prüfung läuft",), "STATUS=Prüfung läuft".encode()),
        # A newline in a free text must not smuggle in another assignment.
        (systemd.status, ("storage error:\nREADY=1",), b"STATUS=storage error: READY=1"),
        (systemd.ready, ("a\r\nb",), b"READY=1\nSTATUS=a b"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_helpers_send_the_documented_messages(
    path_socket: socket.socket, helper: Callable[..., bool], arguments: tuple[object, ...], expected: bytes
) -> None:
    assert helper(*arguments) is True
    assert path_socket.recv(4096) == expected


def test_the_datagram_comes_from_the_calling_process(path_socket: socket.socket) -> None:
    """systemd's NotifyAccess=main trusts the kernel's sender credentials: they must be ours."""
    path_socket.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    assert systemd.ready()
    credentials = array.array("i")
    _, ancillary, _, _ = path_socket.recvmsg(4096, socket.CMSG_SPACE(3 * credentials.itemsize))
    level, kind, data = ancillary[0]
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
    credentials.frombytes(data[: 3 * credentials.itemsize])
    assert credentials[0] == os.getpid()


def test_not_under_systemd_is_false_and_silent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ttrd.systemd")
    assert systemd.notify("READY=1") is False
    assert systemd.ready("x") is False
    assert systemd.watchdog() is False
    assert caplog.records == []


def test_empty_notify_socket_is_not_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "")
    assert systemd.notify("READY=1") is False


def test_nothing_to_send_sends_nothing(path_socket: socket.socket) -> None:
    assert systemd.notify() is False
    assert _nothing_waiting(path_socket)


def _broken_address(kind: str, directory: Path) -> str:
    """A $NOTIFY_SOCKET value that cannot take the message."""
    if kind == "missing file":
        return str(directory / "gone" / "notify")
    if kind == "regular file":
        (directory / "file").write_text("not a socket")
        return str(directory / "file")
    if kind == "directory":
        return str(directory)
    if kind == "path too long":
        return "/" + "x" * 200
    if kind == "abstract name nobody listens on":
        return f"@ttrd-test-nobody-{uuid.uuid4().hex}"
    if kind == "relative path":
        return "notify"
    if kind == "bare @":
        return "@"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing file",
        "regular file",
        "directory",
        "path too long",
        "abstract name nobody listens on",
        "relative path",
        "bare @",
    ],
)
def test_a_broken_socket_is_false_logged_at_debug_and_never_raises(
    kind: str, short_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ttrd.systemd")
    monkeypatch.setenv("NOTIFY_SOCKET", _broken_address(kind, short_dir))
    assert systemd.notify("READY=1") is False
    assert systemd.stopping("draining") is False
    assert [record.levelno for record in caplog.records] == [logging.DEBUG, logging.DEBUG]


def test_a_stream_socket_is_broken_too(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = short_dir / "stream"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen()
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        assert systemd.notify("READY=1") is False


def test_a_full_receive_queue_makes_notify_drop_at_once_then_recover(
    path_socket: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    """A systemd that does not read must not stall the daemon's event loop: with its queue full a
    message is dropped at once (notify() returns False and logs why), and sending works again once
    systemd has read. The alarm only turns a send that blocks into a failure."""
    caplog.set_level(logging.DEBUG, logger=systemd.__name__)

    def hung(signum: int, frame: object) -> None:
        pytest.fail("notify() blocked on a full socket")

    sent = 0
    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 60)
    try:
        while systemd.watchdog():  # the kernel queues only so many datagrams (net.unix.max_dgram_qlen)
            sent += 1
            if sent == 100_000:
                pytest.fail("the receive queue never filled up")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert sent > 0
    [record] = caplog.records
    assert record.levelno == logging.DEBUG and "Resource temporarily unavailable" in record.getMessage()
    path_socket.setblocking(False)
    for _ in range(sent):
        assert path_socket.recv(4096) == b"WATCHDOG=1"
    assert _nothing_waiting(path_socket)
    assert systemd.watchdog() is True


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("1000", "self", 0.0005),
        ("30000000", "other", None),
        ("30000000", "not a pid", None),
        (None, None, None),
        (None, "self", None),
        ("0", None, None),
        ("-30000000", None, None),
        ("30s", None, None),
        ("", None, None),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_the_watched_process(
    usec: str | None, pid: str | None, expected: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        value = {"self": str(os.getpid()), "other": str(os.getpid() + 1)}.get(pid, pid)
        monkeypatch.setenv("WATCHDOG_PID", value)
    assert systemd.watchdog_interval() == expected


def test_a_forked_child_has_no_watchdog_duty(monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd sets WATCHDOG_PID to the main process; a child process inherits the variables."""
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_interval() == 15.0
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write_end, repr(systemd.watchdog_interval()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        reported = pipe.read()
    os.waitpid(child, 0)
    assert reported == b"None"


def test_unset_environment_makes_a_worker_forget_systemd(
    path_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    systemd.unset_environment()
    assert not any(name in os.environ for name in _WATCHDOG_VARIABLES)
    assert systemd.ready() is False
    assert systemd.watchdog_interval() is None
    assert _nothing_waiting(path_socket)
    systemd.unset_environment()  # idempotent


def test_the_module_does_not_import_asyncio() -> None:
    probe = "import sys, ttrd.systemd; print(sorted(m for m in sys.modules if m.split('.')[0] == 'asyncio'))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
