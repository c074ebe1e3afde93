"""One IMAP session over aioimaplib, with a deadline on every call and every failure named.

aioimaplib has known hangs: IDLE waits forever when the server closes the connection, a TLS
mismatch can hang the connect, and only some commands honour its timeout. So every call here runs
under an outer deadline and against the connection's "lost" event, and whatever goes wrong comes out
as one `ImapFailure` whose `kind` says what it was: `auth`, `tls`, `network`, `timeout`, `protocol`
or `throttled` (with the pause the server asked for). A session that failed is thrown away; the
poller opens a new one. aioimaplib has no STARTTLS, so it is done here on the connection: the
command, then `loop.start_tls` on the protocol's transport, then CAPABILITY again.

Secrets come from files, read at every connect (so an external token refresher just rewrites its
file), and never appear in a log line or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import aioimaplib

from ttrd.config import ImapAccount
from ttrd.imap.responses import (
    Fetched,
    ListedFolder,
    ProtocolError,
    Selected,
    parse_fetch,
    parse_list,
    parse_search,
    parse_select,
    throttle_seconds,
)

log = logging.getLogger(__name__)

FailureKind = Literal["auth", "tls", "network", "timeout", "protocol", "throttled"]
T = TypeVar("T")


class ImapFailure(Exception):
    def __init__(self, kind: FailureKind, problem: str, retry_after: float | None = None) -> None:
        super().__init__(f"{kind}: {problem}")
        self.kind = kind
        self.problem = problem
        self.retry_after = retry_after
        """Seconds the server asked to be left alone (throttled)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    secret: str
    oauth2: bool

    @classmethod
    def read(cls, account: ImapAccount) -> Credentials:
        path = account.oauth2_token_file or account.password_file
        assert path is not None  # the configuration requires one of them
        return cls(account.username, _read_secret(path), account.oauth2_token_file is not None)


def _read_secret(path: Path) -> str:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ImapFailure("auth", f"cannot read {path}: {error.strerror or error}") from None
    if not secret:
        raise ImapFailure("auth", f"{path} is empty")
    return secret


class ImapConnection:
    """A logged-in IMAP session; `open` makes one."""

    def __init__(self, client: aioimaplib.IMAP4, lost: asyncio.Event, deadline: float) -> None:
        self._client = client
        self._lost = lost
        self._deadline = deadline

    @classmethod
    async def open(cls, account: ImapAccount, credentials: Credentials, deadline: float) -> ImapConnection:
        """Connect (TLS as configured), authenticate, and return the session; ImapFailure otherwise.

        `deadline`: the longest any one command of the session may take (a FETCH of a few hundred
        header blocks takes well under a second).
        """
        lost = asyncio.Event()
        context = _tls_context(account.tls_ca_file) if account.tls != "none" else None
        try:
            # IMAP4 itself takes the context (IMAP4_SSL would drop the lost-connection callback).
            client = aioimaplib.IMAP4(
                host=account.host, port=account.port, timeout=deadline,
                conn_lost_cb=lambda _error: lost.set(),
                ssl_context=context if account.tls == "implicit" else None,
            )  # fmt: skip
        except (OSError, ValueError) as error:
            raise ImapFailure(
                "network", f"cannot connect to {account.host}:{account.port}: {error}"
            ) from None
        connection = cls(client, lost, deadline)
        try:
            await connection._call(client.wait_hello_from_server())
            if account.tls == "starttls":
                await connection._starttls(account.host, context)
            await connection._authenticate(credentials)
        except BaseException:
            connection.abort()
            raise
        return connection

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(name.upper() for name in self._client.protocol.capabilities)

    async def list_folders(self) -> list[ListedFolder]:
        # RFC 6154: LIST ... RETURN (SPECIAL-USE) marks the special folders; a plain LIST of a
        # server with SPECIAL-USE marks them too, and one without gives names alone.
        arguments = (
            ('""', '"*"', "RETURN", "(SPECIAL-USE)") if "SPECIAL-USE" in self.capabilities else ('""', '"*"')
        )
        return parse_list(await self._command(self._client.protocol.simple_command("LIST", *arguments)))

    async def examine(self, folder: str) -> Selected:
        """Open a folder read-only (EXAMINE: no flag can change, not even \\Recent)."""
        lines = await self._command(self._client.protocol.simple_command("EXAMINE", _quoted(folder)))
        self._client.protocol.state = aioimaplib.SELECTED  # aioimaplib only tracks SELECT
        return parse_select(lines)

    async def uids_after(self, uid: int) -> list[int]:
        lines = await self._command(self._client.uid_search(f"UID {uid + 1}:*", charset=None))
        return [found for found in parse_search(lines) if found > uid]  # `n:*` includes the last UID

    async def fetch_headers(self, uids: list[int]) -> list[Fetched]:
        return await self._fetch(uids, "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER])")

    async def fetch_text_start(self, uids: list[int], size: int) -> list[Fetched]:
        return await self._fetch(uids, f"(UID BODY.PEEK[TEXT]<0.{size}>)")

    async def _fetch(self, uids: list[int], items: str) -> list[Fetched]:
        if not uids:
            return []
        lines = await self._command(self._client.uid("fetch", _uid_set(uids), items))
        try:
            return parse_fetch(lines)
        except ProtocolError as error:
            raise ImapFailure("protocol", str(error)) from None

    async def idle(self, seconds: float) -> bool:
        """Wait in IDLE for at most `seconds`; True when the server announced a change."""
        idle = await self._call(self._client.idle_start(timeout=seconds))
        try:
            pushed = await self._call(self._client.wait_server_push(timeout=seconds + 5), seconds + 10)
        except ImapFailure as failure:
            if failure.kind != "timeout":
                raise
            pushed = aioimaplib.STOP_WAIT_SERVER_PUSH
        self._send("DONE")
        await self._call(_result_of(idle))
        return bool(pushed != aioimaplib.STOP_WAIT_SERVER_PUSH)

    def _send(self, line: str) -> None:
        """A line outside any command (IDLE's DONE); the server may have said BYE and closed."""
        transport = self._client.protocol.transport
        if self._lost.is_set() or transport is None or transport.is_closing():
            raise ImapFailure("network", "the connection was lost")
        self._client.protocol.send(line)

    async def logout(self) -> None:
        """Say goodbye, briefly and without complaint: the session is being thrown away anyway."""
        with contextlib.suppress(ImapFailure):
            await self._call(self._client.logout(), 2.0)
        self.abort()

    def abort(self) -> None:
        transport = self._client.protocol.transport
        if transport is not None:
            transport.close()

    async def _starttls(self, host: str, context: ssl.SSLContext | None) -> None:
        protocol = self._client.protocol
        if "STARTTLS" not in {name.upper() for name in protocol.capabilities}:
            raise ImapFailure("tls", f"{host} does not offer STARTTLS")
        response = await self._call(
            protocol.execute(aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop))
        )
        _check(response, "STARTTLS")
        loop = asyncio.get_running_loop()
        assert context is not None
        protocol.transport = await self._call(
            loop.start_tls(protocol.transport, protocol, context, server_hostname=host)
        )
        await self._call(protocol.capability())  # what the server offers after TLS may differ

    async def _authenticate(self, credentials: Credentials) -> None:
        client = self._client
        if credentials.oauth2:
            _answer_sasl_challenges(client.protocol)
            response = await self._call(client.xoauth2(credentials.username, credentials.secret))
        else:
            # aioimaplib quotes the password only; a user name such as DOMAIN\user must be quoted too.
            response = await self._call(client.login(_quoted(credentials.username), credentials.secret))
        if response.result != "OK":
            text = _text(response)
            raise _refusal("auth", f"{credentials.username} was refused ({text})", text)

    async def _command(self, command: Awaitable[Any]) -> list[bytes | bytearray]:
        response = await self._call(command)
        _check(response, "command")
        return list(response.lines)

    async def _call(self, awaitable: Awaitable[T], deadline: float | None = None) -> T:
        """`awaitable` under the deadline and against a lost connection; failures as ImapFailure."""
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait({task, lost}, timeout=deadline or self._deadline,
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            lost.cancel()
        if task not in done:
            task.cancel()
            kind: FailureKind = "network" if self._lost.is_set() else "timeout"
            raise ImapFailure(kind, "the connection was lost" if kind == "network" else "no answer in time")
        try:
            return task.result()
        except ssl.SSLError as error:
            raise ImapFailure("tls", str(error)) from None
        except (OSError, EOFError, ConnectionError) as error:
            raise ImapFailure("network", str(error) or type(error).__name__) from None
        except TimeoutError:
            raise ImapFailure("timeout", "no answer in time") from None
        except (aioimaplib.AioImapException, ProtocolError, ValueError) as error:
            raise ImapFailure("protocol", str(error)) from None


def _answer_sasl_challenges(protocol: Any) -> None:
    """Refused XOAUTH2 credentials come as a `+` challenge (the error, base64) that waits for an empty
    line before the tagged NO (RFC 7628 §3.2.3; Google, Microsoft and Dovecot do it). aioimaplib never
    answers it, so the AUTHENTICATE would hang; this protocol instance answers it."""
    continuation = protocol._continuation

    def answer(line: bytes) -> None:
        command = protocol.pending_sync_command
        if command is not None and command.name == "AUTHENTICATE":
            protocol.transport.write(b"\r\n")
            return
        continuation(line)

    protocol._continuation = answer


async def _result_of(future: Awaitable[Any]) -> Any:
    return await future


def _check(response: Any, what: str) -> None:
    if response.result != "OK":
        text = _text(response)
        raise _refusal("protocol", f"{what} answered {response.result}: {text}", text)


def _refusal(kind: FailureKind, problem: str, text: str) -> ImapFailure:
    pause = throttle_seconds(text)
    if pause is not None or "THROTTLED" in text.upper():
        return ImapFailure("throttled", problem, pause)
    return ImapFailure(kind, problem)


def _text(response: Any) -> str:
    last = response.lines[-1] if response.lines else b""
    return bytes(last).decode("utf-8", "replace")[:300]


def _tls_context(ca_file: Path | None) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _uid_set(uids: list[int]) -> str:
    """`1:3,7,9:10` for UIDs 1, 2, 3, 7, 9, 10 (sorted): short command lines for long runs."""
    ranges: list[str] = []
    start = previous = uids[0]
    for uid in [*uids[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        ranges.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(ranges)
