"""What ttrd/smtp/server.py takes from aiosmtpd (and asyncio) beyond their public API, member by member.

`SinkSession` overrides `SMTP._getaddr`, `SMTP.smtp_DATA`, `push`, `connection_made` and
`connection_lost`; calls `check_helo_needed`, `check_auth_needed`, `_call_handler_hook` and
`_set_post_data_state`; sets `line_length_limit` before `SMTP.__init__`; reads `local_part_limit`,
`data_size_limit`, `transport`, `envelope` and `session`; reads the client through `_reader` and gives
bytes back by writing into `_reader._buffer`; compares with `MISSING`; and its authenticator takes
aiosmtpd's `(server, session, envelope, mechanism, data)` and `LoginPassword`, and returns `AuthResult`.

None of that is promised across aiosmtpd versions. pyproject.toml pins aiosmtpd to the minor version
these tests were written against; each test names the member it checks and, when it fails, says that
ttrd/smtp/server.py must be revisited for the aiosmtpd installed.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect
import re
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import aiosmtpd.smtp
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import ROOT

VERSION = importlib.metadata.version("aiosmtpd")


def revisit(label: str, problem: str) -> str:
    return (
        f"aiosmtpd {VERSION}: {label} {problem}. ttrd/smtp/server.py relies on it: "
        f"revisit ttrd/smtp/server.py for aiosmtpd {VERSION} before moving the pin in pyproject.toml"
    )


def parameters(function: Callable[..., Any]) -> list[str]:
    return [
        ("*" if p.kind is p.VAR_POSITIONAL else "") + name
        for name, p in inspect.signature(function).parameters.items()
    ]


# --- the pin ----------------------------------------------------------------------------------------


def aiosmtpd_requirement() -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = [Requirement(line) for line in project["dependencies"] if Requirement(line).name == "aiosmtpd"]
    assert len(found) == 1, f"pyproject.toml should list aiosmtpd once among the dependencies: {found}"
    return found[0]


def test_the_installed_aiosmtpd_is_within_the_pin_of_pyproject() -> None:
    requirement = aiosmtpd_requirement()
    installed = Version(VERSION)
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"aiosmtpd {installed} is installed but pyproject.toml asks for {requirement}: "
        "install a version within the pin, or revisit ttrd/smtp/server.py and this file, then move the pin"
    )
    next_minor = Version(f"{installed.major}.{installed.minor + 1}")
    assert not requirement.specifier.contains(next_minor, prereleases=True), (
        f"pyproject.toml's {requirement} lets aiosmtpd {next_minor} in, whose private members nobody has "
        f"checked: pin aiosmtpd below {next_minor}"
    )


# --- members, one by one ----------------------------------------------------------------------------


def member(owner: object, name: str) -> Any:
    """`owner.name`, failing with the revisit message when aiosmtpd (or asyncio) no longer has it."""
    label = f"{getattr(owner, '__name__', type(owner).__name__)}.{name}"
    assert hasattr(owner, name), revisit(label, "is gone")
    return getattr(owner, name)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_the_names_the_sink_imports() -> None:
    for name in ("SMTP", "MISSING", "AuthResult", "LoginPassword", "Envelope", "Session"):
        member(aiosmtpd.smtp, name)


def test_getaddr(loop: asyncio.AbstractEventLoop) -> None:
    label = "SMTP._getaddr"
    getaddr = member(SMTP, "_getaddr")
    assert parameters(getaddr) == ["self", "arg"], revisit(label, f"takes {parameters(getaddr)}")
    assert not inspect.iscoroutinefunction(getaddr), revisit(label, "became a coroutine")
    smtp = SMTP(object(), loop=loop, hostname="x")
    # SinkSession answers what aiosmtpd answers: (address, rest), "<>" for the null path, (None, None)
    assert smtp._getaddr("<jo@cust.net> SIZE=10") == ("jo@cust.net", "SIZE=10"), revisit(label, "reads anew")
    assert smtp._getaddr("<> SIZE=10") == ("<>", " SIZE=10"), revisit(label, "reads the null path anew")
    assert smtp._getaddr("<jo@@cust.net>") == (None, None), revisit(label, "no longer answers (None, None)")


def test_local_part_limit(loop: asyncio.AbstractEventLoop) -> None:
    label = "SMTP.local_part_limit"
    assert isinstance(member(SMTP, "local_part_limit"), int), revisit(label, "is no longer an int")
    smtp = SMTP(object(), loop=loop, hostname="x")
    smtp.local_part_limit = 3
    assert smtp._getaddr("<abcd@x.org>") == (None, None), revisit(
        label, "no longer refuses a longer local part"
    )
    assert smtp._getaddr("<abc@x.org>") == ("abc@x.org", ""), revisit(
        label, "refuses a local part at the limit"
    )


def test_line_length_limit_is_read_from_the_instance_by_init(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    label = "SMTP.line_length_limit"
    assert isinstance(member(SMTP, "line_length_limit"), int), revisit(label, "is no longer an int")
    limits: list[int] = []
    real = asyncio.StreamReader

    class Recording(real):  # type: ignore[valid-type, misc]
        def __init__(self, limit: int = 2**16, loop: asyncio.AbstractEventLoop | None = None) -> None:
            limits.append(limit)
            super().__init__(limit=limit, loop=loop)

    class Long(SMTP):
        def __init__(self, handler: Any, **options: Any) -> None:
            self.line_length_limit = 123_456  # as SinkSession does, before SMTP.__init__
            super().__init__(handler, **options)

    monkeypatch.setattr(asyncio, "StreamReader", Recording)
    Long(object(), loop=loop, hostname="x")
    assert limits == [123_456], revisit(
        label, f"is not the limit of the reader SMTP.__init__ makes: {limits}"
    )


def test_init_takes_the_options_the_sink_passes() -> None:
    wanted = {
        "data_size_limit", "enable_SMTPUTF8", "decode_data", "timeout", "hostname", "loop",
        "tls_context", "require_starttls", "authenticator", "auth_required", "auth_require_tls",
    }  # fmt: skip
    missing = wanted - set(parameters(SMTP.__init__))
    assert not missing, revisit("SMTP.__init__", f"lost the options {sorted(missing)}")


def test_a_new_session_has_no_transport_session_or_envelope_yet(loop: asyncio.AbstractEventLoop) -> None:
    smtp = SMTP(object(), loop=loop, hostname="x", data_size_limit=1234)
    # SinkSession.connection_made tells the first call from STARTTLS's second by `transport is None`.
    assert member(smtp, "transport") is None, revisit("SMTP.transport", "is set before connection_made")
    assert member(smtp, "session") is None, revisit("SMTP.session", "is set before connection_made")
    assert member(smtp, "envelope") is None, revisit("SMTP.envelope", "is set before connection_made")
    assert member(smtp, "data_size_limit") == 1234, revisit("SMTP.data_size_limit", "is not the option")


@pytest.mark.parametrize(
    ("name", "names"),
    [
        ("smtp_DATA", ["self", "arg"]),
        ("push", ["self", "status"]),
        ("check_helo_needed", ["self", "helo"]),
        ("check_auth_needed", ["self", "caller_method"]),
        ("_call_handler_hook", ["self", "command", "*args"]),
    ],
)
def test_coroutines_and_their_parameters(name: str, names: list[str]) -> None:
    function = member(SMTP, name)
    assert inspect.iscoroutinefunction(function), revisit(f"SMTP.{name}", "is no longer a coroutine function")
    assert parameters(function) == names, revisit(
        f"SMTP.{name}", f"takes {parameters(function)}, not {names}"
    )


@pytest.mark.parametrize(
    ("name", "names"),
    [
        ("_set_post_data_state", ["self"]),
        ("_cb_client_connected", ["self", "reader", "writer"]),
        ("connection_made", ["self", "transport"]),
        ("connection_lost", ["self", "error"]),
    ],
)
def test_plain_methods_and_their_parameters(name: str, names: list[str]) -> None:
    function = member(SMTP, name)
    assert not inspect.iscoroutinefunction(function), revisit(f"SMTP.{name}", "became a coroutine function")
    assert parameters(function) == names, revisit(
        f"SMTP.{name}", f"takes {parameters(function)}, not {names}"
    )


def test_call_handler_hook_answers_missing_without_a_hook(loop: asyncio.AbstractEventLoop) -> None:
    smtp = SMTP(object(), loop=loop, hostname="x")
    found = loop.run_until_complete(smtp._call_handler_hook("DATA"))
    assert found is member(aiosmtpd.smtp, "MISSING"), revisit("SMTP._call_handler_hook", f"answers {found!r}")


def test_the_reader_is_the_stream_reader_given_on_connection(loop: asyncio.AbstractEventLoop) -> None:
    smtp = SMTP(object(), loop=loop, hostname="x")
    reader = asyncio.StreamReader(loop=loop)
    smtp._cb_client_connected(reader, None)  # type: ignore[arg-type]  # what StreamReaderProtocol calls
    assert member(smtp, "_reader") is reader, revisit("SMTP._reader", "is not the connection's stream reader")


def test_envelope_and_session_fields(loop: asyncio.AbstractEventLoop) -> None:
    envelope = Envelope()
    for name, value in (("mail_from", None), ("rcpt_tos", []), ("content", None), ("original_content", None)):
        assert member(envelope, name) == value, revisit(
            f"Envelope.{name}", f"starts as {getattr(envelope, name)}"
        )
    session = Session(loop)
    for name in ("peer", "authenticated"):
        member(session, name)


def test_every_530_answer_goes_through_push() -> None:
    # SinkSession.push turns aiosmtpd's "530 ..." into a 451: only answers sent through push can be.
    source = inspect.getsource(aiosmtpd.smtp)
    answers = [line.strip() for line in source.splitlines() if re.search(r"""['"]530[ -]""", line)]
    assert answers, revisit("SMTP.push", "has no 530 answer left to turn into 451")
    for line in answers:
        assert line.startswith("await self.push('530 "), revisit("SMTP.push", f"is bypassed by {line!r}")


def test_auth_result_and_login_password() -> None:
    login_password = member(aiosmtpd.smtp, "LoginPassword")
    assert login_password._fields == ("login", "password"), revisit("LoginPassword", "has other fields")
    result = member(aiosmtpd.smtp, "AuthResult")(success=False, handled=False)
    assert (result.success, result.handled) == (False, False), revisit("AuthResult", "keeps other fields")


def test_stream_reader_buffer_takes_bytes_given_back_in_front() -> None:
    """DATA reads in chunks; what follows the message is written back into the reader's buffer."""

    async def check() -> bytes:
        reader = asyncio.StreamReader()
        assert isinstance(member(reader, "_buffer"), bytearray), revisit(
            "asyncio.StreamReader._buffer", "is no longer a bytearray"
        )
        reader.feed_data(b"QUIT\r\n")
        reader._buffer[:0] = b"NOOP\r\n"  # type: ignore[attr-defined]
        return await reader.readuntil(b"\r\n")

    assert asyncio.run(check()) == b"NOOP\r\n", revisit("asyncio.StreamReader._buffer", "is not read first")
