"""The private Dovecot of tests/integration/dovecot.py does what IMAP tests need (imaplib as the client)."""

from __future__ import annotations

import imaplib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.dovecot import PREFIX, USERS, Dovecot, imap_mailbox, require_dovecot, sweep_stale

ALICE = "alice@example.com"
BOB = "bob@example.com"


def message(number: int) -> bytes:
    return (
        f"From: jo@cust.net\r\nTo: support@example.com\r\nSubject: Case {number}\r\n"
        f"Message-ID: <dovecot{number}@test>\r\n\r\nHello.\r\n"
    ).encode()


class Raw:
    """A bare IMAP connection: commands as lines, answers as they come (an `imaplib` object is broken for
    good once a read timed out)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        self.eof = False

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def read(self, seconds: float) -> list[bytes]:
        """The lines that arrive within `seconds`, then b"EOF" if the server closed the connection."""
        deadline = time.monotonic() + seconds
        while not self.eof and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            self.eof = not chunk
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\r\n")
        return lines + ([b"EOF"] if self.eof else [])

    def until(self, prefix: bytes, seconds: float = 10.0) -> list[bytes]:
        """Lines up to the first that starts with `prefix` (a tag, b"+"), or to the end of the connection."""
        lines: list[bytes] = []
        deadline = time.monotonic() + seconds
        while not any(line.startswith(prefix) for line in lines) and not self.eof:
            assert time.monotonic() < deadline, f"no {prefix!r} within {seconds} s: {lines}"
            lines += self.read(0.05)
        return lines

    def login(self, user: str, mailbox: str = "INBOX") -> Raw:
        self.until(b"* OK")
        self.send(f"a LOGIN {user} secret")
        assert self.until(b"a ")[-1].startswith(b"a OK")
        self.send(f"b SELECT {mailbox}")
        assert self.until(b"b ")[-1].startswith(b"b OK")
        return self

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder for an instance of a test's own (Dovecot's unprivileged processes cannot enter tmp_path)."""
    require_dovecot()
    made = Path(tempfile.mkdtemp(prefix=PREFIX))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def internal_dates(imap: imaplib.IMAP4) -> dict[int, datetime]:
    kind, data = imap.uid("FETCH", "1:*", "(UID INTERNALDATE)")
    assert kind == "OK"
    found: dict[int, datetime] = {}
    for item in data:
        assert isinstance(item, bytes)
        uid, date = re.search(rb'UID (\d+) INTERNALDATE "([^"]+)"', item).groups()  # type: ignore[union-attr]
        found[int(uid)] = datetime.strptime(date.decode(), "%d-%b-%Y %H:%M:%S %z")
    return found


def message_ids(imap: imaplib.IMAP4) -> list[tuple[int, bytes]]:
    kind, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    assert kind == "OK"
    found: list[tuple[int, bytes]] = []
    for item in data:
        if isinstance(item, tuple):
            uid = re.search(rb"UID (\d+)", item[0])
            assert uid is not None
            found.append((int(uid.group(1)), item[1].strip()))
    return sorted(found)


# --- connecting ------------------------------------------------------------------------------------------


def test_login_on_the_plain_and_the_tls_port(dovecot: Dovecot) -> None:
    with dovecot.client(ALICE) as imap:
        assert imap.state == "AUTH"
        assert not isinstance(imap.sock, ssl.SSLSocket)
    for host in ("127.0.0.1", "localhost"):  # the certificate names both
        imap = imaplib.IMAP4_SSL(host, dovecot.tls_port, ssl_context=dovecot.ssl_context(), timeout=10)
        assert isinstance(imap.sock, ssl.SSLSocket) and imap.sock.version() in ("TLSv1.2", "TLSv1.3")
        assert imap.login(BOB, "secret")[0] == "OK"
        imap.logout()
    with pytest.raises(ssl.SSLCertVerificationError):  # the certificate is checked: the system CAs refuse it
        imaplib.IMAP4_SSL("127.0.0.1", dovecot.tls_port, ssl_context=ssl.create_default_context(), timeout=10)


def test_starttls_on_the_plain_port(dovecot: Dovecot) -> None:
    imap = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    assert "STARTTLS" in imap.capabilities and "LOGINDISABLED" not in imap.capabilities
    assert imap.starttls(ssl_context=dovecot.ssl_context())[0] == "OK"
    assert isinstance(imap.sock, ssl.SSLSocket)
    assert imap.login(ALICE, "secret")[0] == "OK"
    imap.logout()


def test_every_user_has_inbox_and_a_sent_folder_with_special_use(dovecot: Dovecot) -> None:
    for user in USERS:
        with dovecot.client(user) as imap:
            kind, data = imap.capability()
            assert kind == "OK" and isinstance(data[0], bytes)
            assert {b"SPECIAL-USE", b"UIDPLUS", b"IDLE", b"CONDSTORE"} <= set(data[0].split())
            assert imap.xatom("LIST", "(SPECIAL-USE)", '""', '"*"')[0] == "OK"
            assert imap.response("LIST")[1] == [b'(\\Sent) "/" Sent']
            kind, data = imap.list()
            assert kind == "OK" and set(data) == {
                b'(\\HasNoChildren \\Sent) "/" Sent',
                b'(\\HasNoChildren) "/" INBOX',
            }
            assert imap.lsub()[1] == [b'(\\Sent) "/" Sent']  # subscribed


def test_localised_and_nested_folders(dovecot: Dovecot) -> None:
    dovecot.append(ALICE, "Sent", message(0))  # Sent exists from alice's first login on
    dovecot.special_folders = {"Gesendete Objekte": "\\Sent", "Entwürfe": "\\Drafts", "Archiv": ""}
    dovecot.restart()
    dovecot.create_folder(ALICE, "Éléments envoyés")
    dovecot.create_folder(ALICE, "Archiv/2024")
    with dovecot.client(ALICE) as imap:
        assert imap.xatom("LIST", "(SPECIAL-USE)", '""', '"*"')[0] == "OK"
        assert sorted(imap.response("LIST")[1]) == [
            b'(\\Drafts) "/" Entw&APw-rfe',
            b'(\\Sent) "/" "Gesendete Objekte"',
        ]
        _, data = imap.list()
        names = {line.rsplit(b' "/" ', 1)[1] for line in data if isinstance(line, bytes)}
        # Sent is still there (a folder on disk), no longer special-use.
        assert names == {
            *(b"INBOX", b"Sent", b'"Gesendete Objekte"', b"Entw&APw-rfe", b"Archiv", b"Archiv/2024"),
            b'"&AMk-l&AOk-ments envoy&AOk-s"',  # Éléments envoyés in modified UTF-7
        }
        assert imap.xatom("LIST", "(SPECIAL-USE)", '""', imap_mailbox("Gesendete Objekte"))[0] == "OK"
        assert imap.response("LIST")[1] == [b'(\\Sent) "/" "Gesendete Objekte"']
    uid = dovecot.append(ALICE, "Éléments envoyés", message(1))
    assert dovecot.uids(ALICE, "Éléments envoyés") == [uid]
    assert dovecot.uids(ALICE, "Archiv/2024") == []
    assert dovecot.uidvalidity(ALICE, "Éléments envoyés") != dovecot.uidvalidity(ALICE, "Archiv/2024")


# --- filling mailboxes -----------------------------------------------------------------------------------


def test_append_returns_increasing_uids_and_keeps_internaldate(dovecot: Dovecot) -> None:
    dates = [
        datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC),
        datetime(2026, 3, 2, 10, 30, tzinfo=timezone(timedelta(hours=1))),
        datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),  # older than the one before: UIDs still grow
    ]
    uids = [dovecot.append(ALICE, "INBOX", message(number), date) for number, date in enumerate(dates)]
    assert uids == sorted(uids) and len(set(uids)) == 3
    assert dovecot.uids(ALICE, "INBOX") == uids
    sent = dovecot.append(ALICE, "Sent", message(9), datetime(2026, 3, 2, 9, 1), flags="\\Seen")  # naive: UTC
    assert dovecot.uids(ALICE, "Sent") == [sent]
    assert dovecot.uids(BOB, "INBOX") == []
    with dovecot.client(ALICE) as imap:
        kind, data = imap.select("INBOX", readonly=True)
        assert kind == "OK" and data == [b"3"]
        assert imap.untagged_responses["UIDVALIDITY"] == [str(dovecot.uidvalidity(ALICE, "INBOX")).encode()]
        assert internal_dates(imap) == dict(zip(uids, dates, strict=True))
        assert [mid for _, mid in message_ids(imap)] == [
            f"Message-ID: <dovecot{n}@test>".encode() for n in range(3)
        ]
        imap.select("Sent", readonly=True)
        assert internal_dates(imap) == {sent: datetime(2026, 3, 2, 9, 1, tzinfo=UTC)}
        assert b"\\Seen" in imap.uid("FETCH", str(sent), "(FLAGS)")[1][0]  # type: ignore[operator]


# --- faults ----------------------------------------------------------------------------------------------


def test_reset_uidvalidity_renumbers_and_keeps_the_messages(dovecot: Dovecot) -> None:
    old_uids = [dovecot.append(ALICE, "INBOX", message(number)) for number in range(3)]
    old_validity = dovecot.uidvalidity(ALICE, "INBOX")
    idle = Raw(dovecot.port).login(ALICE)
    idle.send("c IDLE")
    idle.until(b"+")
    other = Raw(dovecot.port).login(BOB)

    validity = dovecot.reset_uidvalidity(ALICE, "INBOX")
    assert validity != old_validity and dovecot.uidvalidity(ALICE, "INBOX") == validity
    new_uids = dovecot.uids(ALICE, "INBOX")
    assert len(new_uids) == 3 and min(new_uids) > max(old_uids)
    assert idle.read(2) == [b"* BYE Server shutting down.", b"EOF"]  # kicked, as a restored server would
    other.send("n NOOP")
    assert other.until(b"n ")[-1].startswith(b"n OK")  # other users are not touched
    with dovecot.client(ALICE) as imap:
        imap.select("INBOX")
        assert imap.untagged_responses["UIDVALIDITY"] == [str(validity).encode()]
        assert [uid for uid, _ in message_ids(imap)] == new_uids
        assert [mid for _, mid in message_ids(imap)] == [
            f"Message-ID: <dovecot{n}@test>".encode() for n in range(3)
        ]

    again = dovecot.reset_uidvalidity(ALICE, "INBOX", uidvalidity=validity + 10, first_uid=1, kick=False)
    assert again == validity + 10 == dovecot.uidvalidity(ALICE, "INBOX")
    assert dovecot.uids(ALICE, "INBOX") == [1, 2, 3]
    assert dovecot.append(ALICE, "INBOX", message(3)) == 4


def test_kick_drops_the_users_connections_only(dovecot: Dovecot) -> None:
    plain = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    plain.login(ALICE, "secret")
    plain.select("INBOX")
    tls = imaplib.IMAP4_SSL("127.0.0.1", dovecot.tls_port, ssl_context=dovecot.ssl_context(), timeout=10)
    tls.login(ALICE, "secret")
    other = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    other.login(BOB, "secret")

    dovecot.kick(ALICE)
    for imap in (plain, tls):
        with pytest.raises(imaplib.IMAP4.abort, match="Server shutting down"):
            imap.noop()
    assert other.noop()[0] == "OK"
    other.logout()
    with dovecot.client(ALICE) as imap:  # new logins work at once
        assert imap.noop()[0] == "OK"
    dovecot.kick(ALICE)  # nobody logged in: nothing to do


def test_freeze_stops_answers_and_thaw_brings_them(dovecot: Dovecot) -> None:
    busy = Raw(dovecot.port).login(ALICE)
    idle = Raw(dovecot.port).login(ALICE)
    idle.send("i IDLE")
    idle.until(b"+")

    dovecot.freeze()
    try:
        busy.send("n NOOP")
        assert busy.read(1.0) == []  # no answer, and the connection stays open
        idle.send("DONE")
        assert idle.read(0.2) == []
        with pytest.raises(TimeoutError):  # a new connection is accepted, and then nothing: no greeting
            imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=0.5)
        with pytest.raises(TimeoutError):  # no TLS handshake
            imaplib.IMAP4_SSL("127.0.0.1", dovecot.tls_port, ssl_context=dovecot.ssl_context(), timeout=0.5)
    finally:
        dovecot.thaw()
    assert busy.until(b"n ")[-1].startswith(b"n OK NOOP completed")  # the same NOOP, answered late
    assert idle.until(b"i ")[-1].startswith(b"i OK Idle completed")
    with dovecot.client(ALICE) as imap:
        assert imap.noop()[0] == "OK"
    busy.close()
    idle.close()


def test_wrong_password_is_refused(dovecot: Dovecot) -> None:
    with (
        pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"),
        dovecot.client(ALICE, password="wrong"),
    ):
        pass
    started = time.monotonic()
    with dovecot.client(ALICE) as imap:  # no auth penalty for 127.0.0.1 after a failure
        assert imap.noop()[0] == "OK"
    assert time.monotonic() - started < 1.5

    session = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    session.login(ALICE, "secret")
    dovecot.set_password(ALICE, "changed")
    with (
        pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"),
        dovecot.client(ALICE, password="secret"),
    ):
        pass
    with dovecot.client(ALICE) as imap:  # the new password, from `passwords`
        assert imap.noop()[0] == "OK"
    assert session.noop()[0] == "OK"  # an open session stays logged in
    session.logout()
    dovecot.add_user("new@example.com", "fresh")  # while it runs
    assert dovecot.append("new@example.com", "Sent", message(1)) == 1


def test_restart_keeps_the_mail(dovecot: Dovecot) -> None:
    uids = [dovecot.append(ALICE, "INBOX", message(number)) for number in range(2)]
    validity = dovecot.uidvalidity(ALICE, "INBOX")
    ports = dovecot.port, dovecot.tls_port
    session = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    session.login(ALICE, "secret")

    dovecot.restart()
    with pytest.raises(imaplib.IMAP4.abort, match="Server shutting down"):
        session.noop()
    assert (dovecot.port, dovecot.tls_port) == ports
    assert dovecot.uids(ALICE, "INBOX") == uids
    assert dovecot.uidvalidity(ALICE, "INBOX") == validity
    with dovecot.client(ALICE, tls=True) as imap:
        assert imap.select("INBOX")[1] == [b"2"]
    assert dovecot.append(ALICE, "INBOX", message(2)) > max(uids)


# --- lifecycle -------------------------------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += tree(int(child))
    return found


def gone(pid: int) -> bool:
    """No such process any more, or a zombie (ended, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


def test_stop_leaves_nothing_behind(folder: Path) -> None:
    with Dovecot(folder) as server:
        server.add_user(ALICE, "secret")
        session = Raw(server.port).login(ALICE)
        assert server.process is not None
        processes = tree(server.process.pid)
        assert len(processes) > 3  # master, log, config, anvil, auth, imap-login, imap, ...
    assert session.read(5)[-2:] == [b"* BYE Server shutting down.", b"EOF"]
    assert refused(server.port) and refused(server.tls_port)
    assert all(gone(pid) for pid in processes)
    assert not server.running
    server.stop()  # again: nothing to do

    # A Dovecot of the same folder left running (a test that crashed) is stopped by the next start.
    first = Dovecot(folder)
    first.start()
    assert first.process is not None
    second = Dovecot(folder, passwords={BOB: "secret"})
    try:
        second.start()
        assert first.process.wait(10) == 0 and refused(first.port)
        with second.client(BOB) as imap:
            assert imap.noop()[0] == "OK"
    finally:
        second.stop()
        first.stop()


def test_a_dead_test_run_leaves_no_daemon(folder: Path) -> None:
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from tests.integration.dovecot import Dovecot\n"
        "server = Dovecot(Path(sys.argv[1])).start()\n"
        "print(server.process.pid, server.port, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"  # no finalizer, no stop()
    )
    command = [sys.executable, "-c", script, str(folder)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr
    master, port = (int(word) for word in done.stdout.split())
    deadline = time.monotonic() + 30
    while not (gone(master) and refused(port)):  # the parent death signal stopped it
        assert time.monotonic() < deadline, "Dovecot outlived its test run"
        time.sleep(0.05)
    assert folder.exists()
    sweep_stale()  # what the next `dovecot` fixture does
    assert not folder.exists()
