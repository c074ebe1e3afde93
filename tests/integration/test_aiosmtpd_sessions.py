"""aiosmtpd's internals used together as `SinkSession` uses them, in live sessions over loopback.

The member-by-member checks are in tests/unit/test_aiosmtpd_contract.py; these run a server.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import ssl
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AnyStr

import aiosmtpd.smtp
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import require
from tests.unit.test_aiosmtpd_contract import revisit

# --- a live session: the members used together, as SinkSession uses them ------------------------------


@dataclass
class Client:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def answer(self) -> str:
        """The last line of one reply."""
        while True:
            line = (await self.reader.readline()).decode()
            if not line:
                raise ConnectionError("the server closed the connection")
            if line[3:4] != "-":
                return line.rstrip("\r\n")

    async def command(self, line: str) -> str:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.answer()


class Handler:
    def __init__(self) -> None:
        self.calls: list[tuple[object, object, bytes | None]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.calls.append((server, session, envelope.original_content))
        return "250 2.0.0 Stored"


class Probe(SMTP):
    """Uses aiosmtpd's internals the way SinkSession does, and notes what it finds."""

    def __init__(self, handler: object, seen: dict[str, Any], **options: Any) -> None:
        super().__init__(handler, **options)
        self.seen = seen
        seen["probe"] = self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.seen.setdefault("first_call", []).append(self.transport is None)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.seen["transport_after_lost"] = self.transport
        self.seen["lost"].set()

    async def push(self, status: AnyStr) -> None:
        self.seen.setdefault("pushed", []).append(status)
        await super().push(status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        self.seen.setdefault("paths", []).append(arg)
        return super()._getaddr(arg)

    async def smtp_DATA(self, arg: str) -> None:
        seen = self.seen
        seen["needed"] = (await self.check_helo_needed(), await self.check_auth_needed("DATA"))
        assert self.envelope is not None and self.session is not None
        seen["envelope"] = (self.envelope.mail_from, list(self.envelope.rcpt_tos))
        seen["peer"] = self.session.peer
        seen["connected"] = self.transport is not None
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        data = b""
        while b"\r\n.\r\nNOOP\r\n" not in data:  # the client pipelines a NOOP after the message
            chunk = await self._reader.read(65536)
            if not chunk:
                return
            data += chunk
        message, _, leftover = data.partition(b"\r\n.\r\n")
        self._reader._buffer[:0] = leftover  # type: ignore[attr-defined]
        self.envelope.content = self.envelope.original_content = message + b"\r\n"
        status = await self._call_handler_hook("DATA")
        before = self.envelope
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        seen["fresh"] = (
            self.envelope is not before and self.envelope is not None and not self.envelope.rcpt_tos
        )
        await self.push("250 OK" if status is aiosmtpd.smtp.MISSING else status)


def run_session(
    script: Callable[[Client], Awaitable[None]], seen: dict[str, Any], handler: object, **options: Any
) -> None:
    async def main() -> None:
        seen["lost"] = asyncio.Event()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Probe(handler, seen, hostname="x", loop=loop, **options), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        try:
            async with asyncio.timeout(60):  # a hang guard, not a measure: these take milliseconds
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                client = Client(reader, writer)
                assert (await client.answer()).startswith("220 ")
                await script(client)
                writer.close()
                await seen["lost"].wait()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def test_a_session_through_the_overridden_data_command() -> None:
    seen: dict[str, Any] = {}
    handler = Handler()

    async def script(client: Client) -> None:
        assert (await client.command("EHLO client")).startswith("250 ")
        assert (await client.command("MAIL FROM:<jo@cust.net> SIZE=100")).startswith("250 ")
        assert (await client.command("RCPT TO:<support@example.com>")).startswith("250 ")
        assert (await client.command("DATA")).startswith("354 ")
        client.writer.write(b"Subject: x\r\n\r\nHello.\r\n.\r\nNOOP\r\n")
        seen["answers"] = [await client.answer(), await client.answer()]

    run_session(script, seen, handler)
    probe = seen["probe"]
    assert seen["paths"] == ["<jo@cust.net> SIZE=100", "<support@example.com>"], revisit(
        "SMTP._getaddr", "is not how MAIL and RCPT read their paths"
    )
    assert "needed" in seen, revisit("SMTP.smtp_DATA", "is not what the DATA command calls")
    assert seen["needed"] == (False, False), revisit(
        "SMTP.check_helo_needed / check_auth_needed", "answer otherwise after EHLO without AUTH required"
    )
    assert seen["envelope"] == ("jo@cust.net", ["support@example.com"]), revisit(
        "SMTP.envelope", "does not hold MAIL FROM and RCPT TO"
    )
    assert isinstance(seen["peer"], tuple) and seen["peer"][0] == "127.0.0.1", revisit(
        "Session.peer", "is not the peer's address"
    )
    assert seen["connected"], revisit("SMTP.transport", "is not set while connected")
    assert handler.calls == [(probe, probe.session, b"Subject: x\r\n\r\nHello.\r\n")], revisit(
        "SMTP._call_handler_hook", "does not call handle_DATA(server, session, envelope)"
    )
    assert seen["fresh"], revisit("SMTP._set_post_data_state", "does not give a fresh envelope")
    assert seen["answers"] == ["250 2.0.0 Stored", "250 OK"], revisit(
        "SMTP._reader / asyncio.StreamReader._buffer", f"lost the pipelined NOOP: {seen['answers']}"
    )
    assert seen["first_call"] == [True], revisit(
        "SMTP.connection_made", "ran more than once without STARTTLS"
    )
    assert seen["transport_after_lost"] is None, revisit(
        "SMTP.transport", "is not None after connection_lost"
    )


def test_authentication_required_is_a_530_through_push() -> None:
    seen: dict[str, Any] = {}

    async def script(client: Client) -> None:
        assert (await client.command("EHLO client")).startswith("250 ")
        seen["mail"] = await client.command("MAIL FROM:<jo@cust.net>")

    run_session(script, seen, Handler(), auth_required=True)
    assert seen["mail"] == "530 5.7.0 Authentication required", revisit(
        "SMTP.check_auth_needed", seen["mail"]
    )
    assert "530 5.7.0 Authentication required" in seen["pushed"], revisit("SMTP.push", "did not send the 530")


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_the_authenticator_gets_server_session_envelope_mechanism_and_login_password(mechanism: str) -> None:
    seen: dict[str, Any] = {}
    calls: list[tuple[Any, ...]] = []

    def authenticator(*args: Any) -> Any:
        calls.append(args)
        return aiosmtpd.smtp.AuthResult(success=True)

    def b64(text: bytes) -> str:
        return base64.b64encode(text).decode()

    async def script(client: Client) -> None:
        assert (await client.command("EHLO client")).startswith("250 ")
        if mechanism == "PLAIN":
            seen["auth"] = await client.command("AUTH PLAIN " + b64(b"\0postfix\0s3cret"))
        else:
            assert (await client.command("AUTH LOGIN " + b64(b"postfix"))).startswith("334 ")
            seen["auth"] = await client.command(b64(b"s3cret"))

    run_session(script, seen, Handler(), authenticator=authenticator, auth_require_tls=False)
    label = "the authenticator option"
    assert seen["auth"].startswith("235 "), revisit(label, f"did not log in: {seen['auth']}")
    [(server, session, envelope, name, data)] = calls
    assert (server, session) == (seen["probe"], seen["probe"].session), revisit(label, "gets other arguments")
    assert isinstance(envelope, Envelope) and name == mechanism, revisit(label, "gets other arguments")
    assert data == aiosmtpd.smtp.LoginPassword(b"postfix", b"s3cret"), revisit(
        label, f"gets {data!r}, not a LoginPassword"
    )


def test_starttls_calls_connection_made_again_with_the_transport_set(tmp_path: Path) -> None:
    require(shutil.which("openssl") is not None, "openssl is needed to make a test certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=localhost", "-keyout", str(tmp_path / "key.pem"),
         "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_context = ssl.create_default_context(cafile=tmp_path / "cert.pem")
    seen: dict[str, Any] = {}

    async def script(client: Client) -> None:
        assert (await client.command("EHLO client")).startswith("250 ")
        seen["mail"] = await client.command("MAIL FROM:<jo@cust.net>")
        assert (await client.command("STARTTLS")).startswith("220 ")
        await client.writer.start_tls(client_context, server_hostname="localhost")
        assert (await client.command("EHLO client")).startswith("250 ")
        seen["after"] = await client.command("MAIL FROM:<jo@cust.net>")

    run_session(script, seen, Handler(), tls_context=server_context, require_starttls=True)
    assert seen["mail"] == "530 Must issue a STARTTLS command first", revisit("SMTP.push", seen["mail"])
    assert seen["after"].startswith("250 "), revisit("STARTTLS", f"then MAIL answers {seen['after']}")
    assert seen["first_call"] == [True, False], revisit(
        "SMTP.connection_made",
        f"is not called again with the transport set after STARTTLS: {seen['first_call']}",
    )
