"""The SMTP listener on the running event loop: aiosmtpd's protocol through `loop.create_server`.

Not aiosmtpd's threaded `Controller`: the daemon owns one loop and everything runs on it. This
module adds what a journaling sink needs around the protocol: lines of any length up to the size
limit, a limit on concurrent sessions, an allow-list of client networks, optional STARTTLS and
AUTH, and a bounded drain for shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, syntax

from ttrd.config import SmtpSettings
from ttrd.errors import ConfigError, cannot_listen
from ttrd.smtp.data import DataGatherer, Gathered
from ttrd.smtp.handler import JournalHandler

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 300.0
"""Seconds a session may stay silent (RFC 5321 §4.5.3.2 suggests 5 minutes for the server)."""
BUSY = "421 4.7.0 Too many connections, try again later\r\n"
DENIED = "554 5.7.1 Your network may not send mail to this server\r\n"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
CHUNK = 64 * 1024
_ATOM = r"[^\s<>()\[\]\\\",;:@.]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
_PLAIN_PATH = re.compile(rf"\s*<({_DOT_ATOM}@{_DOT_ATOM}|)>(?=\s|$)(?!\s*\()")
"""A reverse or forward path that needs no parser: <local@domain>, or <> (the null sender)."""


class SinkSession(SMTP):
    """One SMTP session of the sink."""

    def __init__(
        self, handler: JournalHandler, sessions: Sessions, settings: SmtpSettings, **options: Any
    ) -> None:
        # Lines longer than SMTP's 1,000 bytes are taken (SPEC §4): only the size limit bounds them.
        self.line_length_limit = settings.max_message_bytes + 2
        super().__init__(
            handler,
            data_size_limit=settings.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=IDLE_TIMEOUT,
            **options,
        )
        self.sessions = sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # not the second call that STARTTLS makes
            refusal = self.sessions.refusal(transport)
            if refusal is not None:
                transport.write(refusal.encode())  # type: ignore[attr-defined]
                transport.close()
                return
            self.sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self.sessions.discard(self):
            super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        """aiosmtpd answers 530 when STARTTLS or AUTH is missing; the sink answers 4xx instead.

        SPEC §4: never a 5xx for mail it could take later. A mail server that does not yet use
        TLS or AUTH (a configuration to fix) keeps its journal copies queued instead of bouncing them.
        """
        if isinstance(status, str) and status.startswith("530 "):
            reason = status[4:].removeprefix("5.7.0 ")
            await super().push(f"451 4.7.0 {reason}, try again later")
            return
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """`<local@domain> PARAMS` as aiosmtpd reads it, without its full RFC 5322 parser.

        aiosmtpd builds a parse tree (and a class) for every MAIL and RCPT, a third of a sink's time;
        a plain address in angle brackets is by far the common case. Anything else (quoted local
        parts, source routes, no brackets) still goes through aiosmtpd.
        """
        match = _PLAIN_PATH.match(arg)
        if match is None:
            return super()._getaddr(arg)
        address, rest = match[1], arg[match.end() :]
        if not address:
            return "<>", rest  # what aiosmtpd answers for the null path, leading space and all
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest.lstrip()

    @syntax("DATA")  # as aiosmtpd's own smtp_DATA: HELP lists it
    async def smtp_DATA(self, arg: str) -> None:
        """DATA read in chunks (ttrd.smtp.data), not one awaited line at a time; otherwise aiosmtpd's."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        gathered = await self._gather()
        if gathered is None:
            return
        if gathered.leftover:
            # Only a client that pipelines without PIPELINING sends on; give it back to the reader.
            self._reader._buffer[:0] = gathered.leftover  # type: ignore[attr-defined]
        if gathered.content is None:
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            await self.push("552 Error: Too much mail data")
            return
        self.envelope.content = self.envelope.original_content = gathered.content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _gather(self) -> Gathered | None:
        """The message, or None when the client went away before its end."""
        gatherer = DataGatherer(self.data_size_limit)
        while True:
            chunk = await self._reader.read(CHUNK)
            if not chunk:
                return None
            gathered = gatherer.feed(chunk)
            if gathered is not None:
                return gathered

    @property
    def in_transaction(self) -> bool:
        """A message is on its way (MAIL FROM given): let it finish before closing."""
        return self.envelope is not None and self.envelope.mail_from is not None


@dataclass
class Sessions:
    """The open sessions, their limit and who may open one."""

    limit: int
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    def __post_init__(self) -> None:
        self.open: set[SinkSession] = set()

    def refusal(self, transport: asyncio.BaseTransport) -> str | None:
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) else None
        if host is None or not self._allowed(host):
            log.warning("refused SMTP connection from %s: not in smtp.allow_networks", host)
            return DENIED
        if len(self.open) >= self.limit:
            log.warning(
                "refused SMTP connection from %s: %d sessions open (smtp.max_sessions)", host, self.limit
            )
            return BUSY
        return None

    def _allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def add(self, session: SinkSession) -> None:
        self.open.add(session)

    def discard(self, session: SinkSession) -> bool:
        if session in self.open:
            self.open.remove(session)
            return True
        return False


class SmtpServer:
    """The listening socket and its sessions."""

    def __init__(self, server: asyncio.Server, sessions: Sessions) -> None:
        self.server = server
        self.sessions = sessions

    @property
    def port(self) -> int:
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def drain(self, timeout: float) -> None:
        """Stop listening, let sessions finish the message they are sending, then close the rest.

        Bounded by `timeout`; cancelling it (a forced stop) closes the remaining sessions at once.
        """
        self.server.close()
        try:
            async with asyncio.timeout(timeout):
                while self.sessions.open:
                    for session in list(self.sessions.open):
                        if not session.in_transaction:
                            await _hang_up(session)
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pass
        finally:
            for session in list(self.sessions.open):
                log.warning("closing SMTP session from %s mid-message at shutdown", _peer(session))
                if session.transport is not None:
                    session.transport.close()
        await self.server.wait_closed()


async def _hang_up(session: SinkSession) -> None:
    if session.transport is None or session.transport.is_closing():
        return
    with contextlib.suppress(ConnectionError, RuntimeError):  # gone already
        await session.push(SHUTTING_DOWN)
    session.transport.close()


def _peer(session: SinkSession) -> str:
    peer = session.session.peer if session.session is not None else None
    return str(peer[0]) if isinstance(peer, tuple) else "?"


async def start_smtp_server(settings: SmtpSettings, handler: JournalHandler, hostname: str) -> SmtpServer:
    sessions = Sessions(
        settings.max_sessions, tuple(ipaddress.ip_network(n) for n in settings.allow_networks)
    )
    options = _tls_and_auth(settings)
    loop = asyncio.get_running_loop()

    def factory() -> SinkSession:
        return SinkSession(handler, sessions, settings, hostname=hostname, loop=loop, **options)

    try:
        server = await loop.create_server(
            factory, host=settings.listen.host, port=settings.listen.port, reuse_address=True
        )
    except OSError as error:
        raise cannot_listen("SMTP", str(settings.listen), error) from None
    return SmtpServer(server, sessions)


def _tls_and_auth(settings: SmtpSettings) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if settings.tls_certificate is not None and settings.tls_key is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(settings.tls_certificate, settings.tls_key)
        except (OSError, ssl.SSLError) as error:
            problem = f"cannot load the certificate and key: {error}"
            raise ConfigError(str(settings.tls_certificate), "smtp.tls_certificate", problem) from None
        options.update(tls_context=context, require_starttls=settings.require_starttls)
    if settings.auth_file is not None:
        options.update(
            authenticator=_PasswordFile(settings.auth_file), auth_required=True, auth_require_tls=True
        )
    return options


class _PasswordFile:
    """AUTH PLAIN/LOGIN against `user:password` lines (read at each attempt: edits apply at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, server: SMTP, session: Any, envelope: Any, _mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            log.error("cannot read smtp.auth_file %s: %s", self.path, error)
            return AuthResult(success=False, handled=False)
        wanted = f"{data.login.decode('utf-8', 'replace')}:{data.password.decode('utf-8', 'replace')}"
        return AuthResult(success=any(_same(line.rstrip("\r"), wanted) for line in lines), handled=False)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
