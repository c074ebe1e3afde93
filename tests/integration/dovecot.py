"""A private Dovecot IMAP server for tests: its own config, ports, users, mail and faults.

`Dovecot(folder)` runs `dovecot -F -c folder/dovecot.conf` (Debian's dovecot-imapd, 2.3) with everything
under `folder`: the config, base_dir (`run/`, sockets and `master.pid`), state_dir, the log `dovecot.log`, a
self-signed certificate for localhost/127.0.0.1 and the mail (`maildir:folder/mail/%u`, owned by 65534).
It listens on 127.0.0.1 only: `port` (plain IMAP, STARTTLS offered, LOGIN allowed without TLS) and
`tls_port` (implicit TLS). Users live in a passwd-file (`{PLAIN}` passwords), re-read while it runs.

Use the `dovecot` fixture (tests/integration/conftest.py: alice@, bob@ and support@example.com, password
`secret`), or `with Dovecot(folder) as server:` for an instance of your own (set `special_folders` first
to give every user other folders, localised names say). Fill and inspect mailboxes with `append`, `uids`
and `uidvalidity` (standard `imaplib`, logged in as the user, not the code under test); break the server
with `reset_uidvalidity`, `kick`, `freeze`/`thaw` and `set_password`. Each says what a client sees.

Dovecot traps met here (2.3.19), each handled below:
- The mail processes run as the userdb uid (65534; uid 0 is refused: the login works, then every command
  fails) and other processes as `dovecot` and `dovenull`: they must reach `folder`, and pytest's
  `tmp_path` (under /tmp/pytest-of-root, mode 0700) is out of their reach. The fixture uses a folder of
  its own in /tmp and copies the log to `tmp_path`.
- passwd-file is re-read only when its mtime (whole seconds) or size changed, and at most once a second:
  `set_password` bumps the mtime and waits for the next second, so the very next login sees the change.
- A failed login puts the client's IP into anvil's "auth penalty": every later login from 127.0.0.1 (any
  user) waits 2 to 15 s before its password is even checked. `start()` unlinks the `anvil-auth-penalty`
  socket before the auth process first connects to it, which turns the penalty off (`auth_failure_delay
  = 0` too: a wrong password is refused in about 0.5 s).
- `mail_max_userip_connections` stays at Dovecot's default: 10 IMAP connections per user and IP.
- The hierarchy separator is "/" (`separator = /`); on disk Maildir++ (`.Sent`, `.Archiv.2024`).
- `doveadm mailbox status` prints the mailbox name first ("INBOX uidvalidity=..."), and Dovecot keeps a
  folder's STATUS in a list index: `reset_uidvalidity` rebuilds it at once, so nobody sees the old value.
"""

from __future__ import annotations

import base64
import contextlib
import imaplib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import pytest

from tests.conftest import require
from tests.integration.daemon import free_port

USERS = ("alice@example.com", "bob@example.com", "support@example.com")
"""The users of the `dovecot` fixture, each with the password `PASSWORD`."""
PASSWORD = "secret"
MAIL_ID = 65534
"""uid and gid of every mail user (Dovecot refuses uid 0: the login works, every command then fails)."""
PREFIX = "ttrd-dovecot-"
"""Folders of the `dovecot` fixture: `$TMPDIR/ttrd-dovecot-*`."""

CONFIG = """\
# A private Dovecot for tests, written by tests/integration/dovecot.py; nothing is shared with the
# system's Dovecot (whose service is not running).
protocols = imap
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
mail_location = maildir:{folder}/mail/%u
first_valid_uid = 1
ssl = yes
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth2_mechanisms}
auth_failure_delay = 0
# Any user name (Exchange's DOMAIN\\user\\alias form included): the client must quote it.
auth_username_chars =
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={folder}/mail/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
"""


def require_dovecot() -> None:
    """Skip the calling test where Dovecot is missing (fail it in CI, TTRD_REQUIRE_ALL=1)."""
    require(
        shutil.which("dovecot") is not None and shutil.which("doveadm") is not None,
        "Dovecot is not installed: install dovecot-imapd (Debian package)",
    )


def imap_mailbox(name: str) -> str:
    """`name` as an IMAP mailbox argument for `imaplib`: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    encoded: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            encoded.append("&" + base64.b64encode(utf16).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if " " <= char <= "~":
            flush()
            encoded.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    quoted = "".join(encoded).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}"'


@dataclass
class Dovecot:
    """One private Dovecot instance and its files; see the module's docstring."""

    folder: Path
    port: int = field(default_factory=free_port)
    """Plain IMAP on 127.0.0.1; offers STARTTLS and allows LOGIN before it."""
    tls_port: int = field(default_factory=free_port)
    """Implicit TLS (IMAPS) on 127.0.0.1."""
    special_folders: dict[str, str] = field(default_factory=lambda: {"Sent": "\\Sent"})
    """Folders every user gets (created and subscribed on first login), name -> SPECIAL-USE flag ("" for
    none). Change it before `start()` (or before a `restart()`): `{"Gesendete Objekte": "\\\\Sent"}`."""
    passwords: dict[str, str] = field(default_factory=dict)
    """Login -> password of every user; change them with `add_user` and `set_password`."""
    tokeninfo_url: str | None = None
    """Where Dovecot's oauth2 passdb checks XOAUTH2/OAUTHBEARER tokens (it appends the token); None:
    no OAuth 2.0. The answer must be JSON with `active` (true) and `username`, as Microsoft's and
    Google's token-info endpoints give."""
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _frozen: list[tuple[int, int]] = field(default_factory=list, init=False, repr=False)
    _users_mtime: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.folder = self.folder.resolve()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        _check_reachable(self.folder)
        for sub in ("run", "state"):
            (self.folder / sub).mkdir(exist_ok=True)
        mail = self.folder / "mail"
        mail.mkdir(exist_ok=True)
        os.chown(mail, MAIL_ID, MAIL_ID)
        self._claim()
        if not self.ca_file.exists():
            self._make_certificate()

    # --- files ----------------------------------------------------------------------------------------

    @property
    def config(self) -> Path:
        """The instance's dovecot.conf (give it to doveadm as `doveadm -c CONFIG ...`)."""
        return self.folder / "dovecot.conf"

    @property
    def log(self) -> Path:
        """Dovecot's log: logins, disconnects with their reasons, errors."""
        return self.folder / "dovecot.log"

    @property
    def ca_file(self) -> Path:
        """The self-signed certificate (PEM) of both ports, for localhost and 127.0.0.1: trust it."""
        return self.folder / "cert.pem"

    @property
    def base_dir(self) -> Path:
        return self.folder / "run"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts `ca_file` only and checks the host name (use 127.0.0.1)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def log_tail(self, lines: int = 40) -> str:
        """The end of Dovecot's log and of what the master process printed, for error messages."""
        text = ""
        for path in (self.folder / "dovecot.out", self.log):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                text += f"--- {path.name}\n" + "\n".join(tail) + "\n"
        return text

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> Dovecot:
        """Start Dovecot; return once the plain port greets and the TLS port listens.

        An instance of the same folder left running (a crashed test) is stopped first. Raises
        AssertionError with the log's tail when Dovecot exits or is not ready within `timeout`.
        """
        if self.running:
            raise RuntimeError("this Dovecot is running already")
        _stop_folder(self.folder, timeout)
        self._claim()
        self._write_config()
        self._write_users()
        (self.base_dir / "anvil-auth-penalty").unlink(missing_ok=True)  # a stale one would fool _wait_ready
        command = [shutil.which("dovecot") or "/usr/sbin/dovecot", "-F", "-c", str(self.config)]
        # If the test run dies without its finalizers, its Dovecot gets SIGTERM (a clean shutdown): a parent
        # death signal, set by setpriv before it execs dovecot. It fires when the *thread* that started the
        # process ends, so only the main thread (pytest's) asks for it.
        setpriv = shutil.which("setpriv")
        if setpriv is not None and threading.current_thread() is threading.main_thread():
            command = [setpriv, "--pdeathsig", "TERM", *command]
        with (self.folder / "dovecot.out").open("ab") as out:  # what the master prints before its log works
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop Dovecot (thawing it first) and wait until its processes are gone and its ports closed.

        Connected clients get `* BYE Server shutting down.` and then end of file. Does nothing when stopped.
        """
        self.thaw()
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            _end((process.pid, _start_time(process.pid)), timeout, process)
        _stop_folder(self.folder, timeout)
        _wait_for(lambda: not _listening(self.port) and not _listening(self.tls_port), timeout,
                  f"ports {self.port}/{self.tls_port} still open after stop")  # fmt: skip

    def restart(self, timeout: float = 30.0) -> Dovecot:
        """`stop()` then `start()`: same ports, users and mail; every connection is cut on the way."""
        self.stop(timeout)
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        self.stop()

    # --- users and folders ----------------------------------------------------------------------------

    def add_user(self, login: str, password: str) -> None:
        """Add a user (or change its password); a running Dovecot accepts the login at once."""
        if any(bad in login + password for bad in ":\r\n") or not login:
            raise ValueError(f"passwd-file cannot hold {login!r} / {password!r}")
        self.passwords[login] = password
        self._write_users()

    def set_password(self, user: str, password: str) -> None:
        """Change a password: from now on a LOGIN with the old one gets `NO [AUTHENTICATIONFAILED]
        Authentication failed.` (after about 0.5 s); open sessions stay logged in."""
        if user not in self.passwords:
            raise KeyError(user)
        self.add_user(user, password)

    def create_folder(self, user: str, name: str, *, subscribe: bool = True) -> None:
        """Create a folder (UTF-8 name, "/" separates levels: "Archiv/2024", "Éléments envoyés").

        It gets no SPECIAL-USE flag; for that, name it in `special_folders` (then every user has it).
        """
        self.doveadm("mailbox", "create", *(["-s"] if subscribe else []), "-u", user, name)

    # --- filling and inspecting mailboxes -------------------------------------------------------------

    @contextlib.contextmanager
    def client(self, user: str, *, password: str | None = None, tls: bool = False,
               timeout: float = 30.0) -> Iterator[imaplib.IMAP4]:  # fmt: skip
        """An `imaplib` client logged in as `user` (on `tls_port` when `tls`), logged out afterwards."""
        imap: imaplib.IMAP4
        if tls:
            context = self.ssl_context()
            imap = imaplib.IMAP4_SSL("127.0.0.1", self.tls_port, ssl_context=context, timeout=timeout)
        else:
            imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=timeout)
        try:
            imap.login(user, self.passwords[user] if password is None else password)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(self, user: str, folder: str, raw: bytes, internal_date: datetime | None = None,
               flags: str = "") -> int:  # fmt: skip
        """Store `raw` in `folder` (APPEND) and return its UID (from UIDPLUS's APPENDUID).

        `internal_date` becomes the INTERNALDATE (naive means UTC; whole seconds); default: now. `flags`
        like "\\\\Seen" or "\\\\Seen \\\\Answered".
        """
        if internal_date is not None and internal_date.tzinfo is None:
            internal_date = internal_date.replace(tzinfo=UTC)
        with self.client(user) as imap:
            kind, data = imap.append(imap_mailbox(folder), flags or None, internal_date, raw)
        answer = b" ".join(item for item in data if isinstance(item, bytes))
        found = re.search(rb"\[APPENDUID \d+ (\d+)\]", answer)
        if kind != "OK" or found is None:
            raise AssertionError(f"APPEND to {folder!r} of {user}: {kind} {answer!r}")
        return int(found.group(1))

    def uids(self, user: str, folder: str) -> list[int]:
        """The UIDs of the messages in `folder`, ascending (EXAMINE, UID SEARCH ALL)."""
        with self.client(user) as imap:
            kind, data = imap.select(imap_mailbox(folder), readonly=True)
            if kind != "OK":
                raise AssertionError(f"EXAMINE {folder!r} of {user}: {kind} {data!r}")
            kind, data = imap.uid("SEARCH", "ALL")
        if kind != "OK" or not isinstance(data[0], bytes):
            raise AssertionError(f"UID SEARCH in {folder!r} of {user}: {kind} {data!r}")
        return sorted(int(uid) for uid in data[0].split())

    def uidvalidity(self, user: str, folder: str) -> int:
        """The folder's UIDVALIDITY, as STATUS tells it to a new session."""
        return self._status(user, folder)["UIDVALIDITY"]

    def _status(self, user: str, folder: str) -> dict[str, int]:
        with self.client(user) as imap:
            kind, data = imap.status(imap_mailbox(folder), "(MESSAGES UIDNEXT UIDVALIDITY)")
        if kind != "OK" or not isinstance(data[0], bytes):
            raise AssertionError(f"STATUS {folder!r} of {user}: {kind} {data!r}")
        return {key.decode(): int(value) for key, value in re.findall(rb"([A-Z]+) (\d+)", data[0])}

    # --- faults ---------------------------------------------------------------------------------------

    def reset_uidvalidity(self, user: str, folder: str, *, uidvalidity: int | None = None,
                          first_uid: int | None = None, kick: bool = True) -> int:  # fmt: skip
        """Give `folder` a new UIDVALIDITY and its messages new UIDs, keeping the messages; return it.

        As on a server that lost its index (a restore, a migration): the messages (files, flags,
        INTERNALDATE) stay, renumbered in their old order from `first_uid` (default: the old UIDNEXT, so
        no old UID is reused and a client that ignores UIDVALIDITY takes every message for a new one;
        pass 1 for a fresh count), under UIDVALIDITY `uidvalidity` (default: the old one + 1).

        What a client sees: a new session's SELECT/EXAMINE/STATUS reports the new UIDVALIDITY and UIDs.
        With `kick` (the default) every open session of `user` is then cut as by `kick()`: `* BYE Server
        shutting down.` and end of file, also in IDLE (which is told nothing about the change otherwise).
        With `kick=False` open sessions stay and stumble on the change at their next command, in Dovecot's
        own ways (seen: an untagged `NO Internal error occurred`, `BYE IMAP session state is inconsistent,
        please relogin.`, or the old UIDs and then `BYE ... Mailbox was deleted under us`): no contract.
        Don't write to the folder meanwhile (nothing locks it against this).
        """
        before = self._status(user, folder)
        validity = before["UIDVALIDITY"] + 1 if uidvalidity is None else uidvalidity
        first = before["UIDNEXT"] if first_uid is None else first_uid
        path = Path(self.doveadm("mailbox", "path", "-u", user, folder).strip())
        # Maildir keeps UIDs in dovecot-uidlist: a list with no message in it makes Dovecot number every
        # file again from N, under UIDVALIDITY V. The index files would contradict it: they go.
        uidlist = path / "dovecot-uidlist"
        fresh = path / "dovecot-uidlist.ttrd-reset"
        fresh.write_text(f"3 V{validity} N{first}\n")
        os.chown(fresh, MAIL_ID, MAIL_ID)
        fresh.chmod(0o600)
        for index in path.glob("dovecot.index*"):
            index.unlink()
        fresh.replace(uidlist)
        # Rebuild the index (and the STATUS kept in the list index) now, before anyone asks.
        status = self.doveadm("mailbox", "status", "-u", user, "uidvalidity", folder)
        if f"uidvalidity={validity}" not in status.split():
            raise AssertionError(f"reset_uidvalidity of {folder!r}: doveadm says {status.strip()!r}")
        if kick:
            self.kick(user)
        return validity

    def kick(self, user: str, timeout: float = 10.0) -> None:
        """Cut every logged-in IMAP connection of `user` now (`doveadm kick`), and wait until they are gone.

        What a client sees: `* BYE Server shutting down.` (also in IDLE or instead of a command's tagged
        answer), then end of file; `imaplib` raises `IMAP4.abort`. Other users are not touched; new logins
        work at once. Not while frozen.
        """
        if self._frozen:
            raise RuntimeError("thaw() before kick(): frozen processes cannot end")
        pids = self._session_pids(user)
        done = self._doveadm_run("kick", user)
        if done.returncode not in (0, 68):  # 68: nobody was logged in
            raise AssertionError(f"doveadm kick {user}: {done.returncode} {done.stdout}{done.stderr}")
        _wait_for(lambda: not any(_alive(proc) for proc in pids), timeout, f"sessions of {user} still alive")

    def freeze(self) -> None:
        """Stop answering without closing anything: SIGSTOP this instance's master, imap and imap-login.

        What a client sees: nothing at all. Open connections stay open; a command (NOOP, FETCH, LOGIN, the
        DONE of IDLE) gets no answer and IDLE no update; a new connection is accepted by the kernel but
        gets no greeting. Everything resumes where it stopped at `thaw()`. Only the processes under this
        instance's master (its base_dir/master.pid) are stopped.
        """
        if self._frozen:
            return
        master = self._master()
        os.kill(master[0], signal.SIGSTOP)  # first: a stopped master starts no new imap-login
        self._frozen = [master]
        _wait_for(lambda: _state(master[0]) in ("T", "t"), 10, "the master did not stop")
        for proc in _descendants(master[0]):
            if _comm(proc[0]) in ("imap", "imap-login") and _alive(proc):
                os.kill(proc[0], signal.SIGSTOP)
                self._frozen.append(proc)
        _wait_for(
            lambda: all(_state(pid) in ("T", "t", None) for pid, _ in self._frozen), 10, "SIGSTOP not taken"
        )

    def thaw(self) -> None:
        """Undo `freeze()`: the processes go on; pending commands get their answers, late but whole."""
        procs, self._frozen = self._frozen, []
        for proc in procs:
            if _alive(proc):
                os.kill(proc[0], signal.SIGCONT)

    # --- doveadm --------------------------------------------------------------------------------------

    def doveadm(self, *args: str) -> str:
        """Run `doveadm -c CONFIG ARGS...` on this instance; return its output, raise when it fails."""
        done = self._doveadm_run(*args)
        if done.returncode != 0:
            output = done.stdout + done.stderr
            raise AssertionError(f"doveadm {' '.join(args)}: exit {done.returncode}\n{output}")
        return done.stdout

    def _doveadm_run(self, *args: str) -> subprocess.CompletedProcess[str]:
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        return subprocess.run([doveadm, "-c", str(self.config), *args], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip

    # --- internals ------------------------------------------------------------------------------------

    def _claim(self) -> None:
        """Name this process the folder's owner: `sweep_stale()` leaves it alone while the process lives."""
        (self.folder / "owner").write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")

    def _make_certificate(self) -> None:
        key = self.folder / "key.pem"
        done = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "7", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(key), "-out", str(self.ca_file)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"openssl could not make a test certificate: {done.stderr}")
        key.chmod(0o600)

    def _write_config(self) -> None:
        mailboxes = ""
        for name, special_use in self.special_folders.items():
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            use = f"    special_use = {special_use}\n" if special_use else ""
            mailboxes += f'  mailbox "{quoted}" {{\n{use}    auto = subscribe\n  }}\n'
        self.config.write_text(CONFIG.format(folder=self.folder, uid=MAIL_ID, port=self.port,
                                             tls_port=self.tls_port, mailboxes=mailboxes,
                                             **self._oauth2()))  # fmt: skip

    def _oauth2(self) -> dict[str, str]:
        if self.tokeninfo_url is None:
            return {"oauth2_mechanisms": "", "oauth2_passdb": ""}
        settings = self.folder / "oauth2.conf"
        settings.write_text(
            f"tokeninfo_url = {self.tokeninfo_url}\nusername_attribute = username\n"
            "active_attribute = active\nactive_value = true\n"
        )
        settings.chmod(0o644)
        passdb = (
            f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {settings}\n}}\n"
        )
        return {"oauth2_mechanisms": " xoauth2 oauthbearer", "oauth2_passdb": passdb}

    def _write_users(self) -> None:
        users = self.folder / "users"
        fresh = self.folder / "users.new"
        fresh.write_text("".join(f"{login}:{{PLAIN}}{secret}\n" for login, secret in self.passwords.items()))
        fresh.chmod(0o644)  # read by the auth process, which runs as the `dovecot` user
        # Dovecot notices a change by mtime (seconds) and size: make the mtime new even within a second.
        written = time.time()
        self._users_mtime = max(int(written), self._users_mtime + 1)
        os.utime(fresh, (self._users_mtime, self._users_mtime))
        fresh.replace(users)
        if self.running:
            # ... and looks at the file at most once a second: from the next second on it sees this one.
            while time.time() < int(written) + 1:
                time.sleep(0.02)

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        penalty = self.base_dir / "anvil-auth-penalty"
        unlinked = False
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"dovecot exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"dovecot not ready after {timeout} s:\n{self.log_tail()}")
            if not unlinked:
                # The master creates every socket before it starts a process; the auth process starts with
                # the first login connection and then finds no penalty socket: the auth penalty is off.
                if penalty.exists():
                    penalty.unlink()
                    unlinked = True
            elif _greets(self.port) and _listening(self.tls_port):
                return
            time.sleep(0.02)

    def _master(self) -> tuple[int, int]:
        if not self.running:
            raise RuntimeError("this Dovecot is not running")
        assert self.process is not None
        return self.process.pid, _start_time(self.process.pid)

    def _session_pids(self, user: str) -> list[tuple[int, int]]:
        """The imap processes of `user`, from `doveadm who` (anvil)."""
        procs: list[tuple[int, int]] = []
        for line in self.doveadm("who", user).splitlines()[1:]:
            if line.split() and line.split()[0] == user:
                found = re.search(r"\(([\d ]+)\)", line)
                for pid in found.group(1).split() if found else []:
                    with contextlib.suppress(OSError):
                        procs.append((int(pid), _start_time(int(pid))))
        return procs


# --- the fixture -----------------------------------------------------------------------------------------


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    """A started private Dovecot with USERS (password `secret`), stopped and removed after the test.

    It lives in a folder of its own under $TMPDIR (Dovecot's unprivileged processes cannot enter pytest's
    tmp_path); its log is copied to `tmp_path/dovecot.log` at the end, for a failed test's report.
    """
    require_dovecot()
    sweep_stale()
    server = Dovecot(Path(tempfile.mkdtemp(prefix=PREFIX)))
    try:
        for user in USERS:
            server.add_user(user, PASSWORD)
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            if server.log.exists():
                shutil.copy(server.log, tmp_path / "dovecot.log")
            shutil.rmtree(server.folder, ignore_errors=True)


def sweep_stale() -> None:
    """Stop and remove the fixture folders of test runs that died (their owner process is gone)."""
    for folder in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        with contextlib.suppress(OSError, ValueError):
            pid, started = (int(part) for part in (folder / "owner").read_text().split())
            if _alive((pid, started)):
                continue
            _stop_folder(folder, 30)
            shutil.rmtree(folder, ignore_errors=True)


# --- processes -------------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None when there is no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _state(pid: int) -> str | None:
    fields = _stat(pid)
    return None if fields is None else fields[0]


def _start_time(pid: int) -> int:
    fields = _stat(pid)
    if fields is None:
        raise ProcessLookupError(pid)
    return int(fields[19])


def _alive(proc: tuple[int, int]) -> bool:
    """Whether the process (pid, start time) still runs: not ended, not a zombie, not a reused pid."""
    fields = _stat(proc[0])
    return fields is not None and fields[0] != "Z" and int(fields[19]) == proc[1]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _descendants(pid: int) -> list[tuple[int, int]]:
    found: list[tuple[int, int]] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        found.append((int(child), _start_time(int(child))))
                        found.extend(_descendants(int(child)))
    return found


def _end(master: tuple[int, int], timeout: float, child: subprocess.Popen[bytes] | None = None) -> None:
    """Stop a master (SIGTERM: Dovecot's shutdown, which ends its processes) and wait until the master and
    every process under it are gone; SIGKILL what is left after `timeout`. SIGCONT too, for a frozen one."""
    procs = [master, *_descendants(master[0])]
    sessions = [proc for proc in procs if _comm(proc[0]) in ("imap", "imap-login")]

    def signal_all(targets: list[tuple[int, int]], sig: signal.Signals) -> None:
        for proc in targets:
            if _alive(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc[0], sig)

    # SIGTERM to the master alone leaves an imap process with a client running for seconds, and the master
    # waits for it, and then a second for its log process. So the sessions first (an imap process says BYE
    # and ends at once), then the master and its log process together.
    signal_all(sessions, signal.SIGTERM)
    signal_all(procs, signal.SIGCONT)  # a frozen process gets its SIGTERM now
    _poll(lambda: not any(_alive(proc) for proc in sessions), min(timeout, 2.0))
    signal_all([proc for proc in procs if proc == master or _comm(proc[0]) == "log"], signal.SIGTERM)

    def gone() -> bool:
        if child is not None:
            child.poll()  # reaps it
        return not any(_alive(proc) for proc in procs)

    if _poll(gone, timeout):
        return
    for proc in procs:
        if _alive(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc[0], signal.SIGKILL)
    _wait_for(gone, timeout, f"dovecot {master[0]} or its processes survive SIGKILL")


def _stop_folder(folder: Path, timeout: float) -> None:
    """Stop the instance of `folder` left running by an earlier start (master.pid names it, and its command
    line has this folder's config); nothing when there is none."""
    try:
        pid = int((folder / "run" / "master.pid").read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        master = (pid, _start_time(pid))
    except (OSError, ValueError, IndexError):
        return
    if str(folder / "dovecot.conf").encode() in cmdline.split(b"\0"):
        _end(master, timeout)


def _check_reachable(folder: Path) -> None:
    """Dovecot's unprivileged processes (mail uid 65534, `dovecot`, `dovenull`) must be able to enter it."""
    for parent in folder.parents:
        if not parent.stat().st_mode & 0o001:
            raise ValueError(
                f"{parent} is mode {parent.stat().st_mode & 0o777:o}: Dovecot's unprivileged processes "
                f"cannot reach {folder}; use a folder under {tempfile.gettempdir()} (pytest's tmp_path is "
                "private)"
            )


def _listening(port: int) -> bool:
    """Whether something listens on TCP `port` (from /proc/net/tcp: no connection made)."""
    wanted = f":{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if local.endswith(wanted) and state == "0A":
            return True
    return False


def _greets(port: int) -> bool:
    """Whether an IMAP server on 127.0.0.1:`port` sends its greeting (its login and auth processes work)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            return connection.recv(4096).startswith(b"* OK")
    except OSError:
        return False


def _poll(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _wait_for(condition: Callable[[], bool], timeout: float, message: str) -> None:
    if not _poll(condition, timeout):
        raise AssertionError(message)
