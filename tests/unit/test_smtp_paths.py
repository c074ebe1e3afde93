"""The sink's fast reading of MAIL FROM / RCPT TO paths agrees with aiosmtpd's parser."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiosmtpd.smtp import SMTP
from hypothesis import given, settings
from hypothesis import strategies as st

from ttrd.config import SmtpSettings
from ttrd.smtp.server import Sessions, SinkSession

ALPHABET = 'ab.@<> "\\()[]:;,+-=SIZE1öé\t'


def outcome(read: Callable[[str], object], arg: str) -> object:
    """The result, or the kind of exception (aiosmtpd's parser raises IndexError on some input)."""
    try:
        return read(arg)
    except Exception as error:
        return type(error)


@settings(max_examples=3000, deadline=None)
@given(arg=st.text(alphabet=ALPHABET, max_size=16), bracket=st.booleans())
def test_paths_read_as_aiosmtpd_reads_them(arg: str, bracket: bool) -> None:
    arg = "<" + arg if bracket else arg
    loop = asyncio.new_event_loop()
    try:
        reference = SMTP(object(), loop=loop, hostname="x")
        sink = SinkSession(object(), Sessions(1, ()), SmtpSettings(), hostname="x", loop=loop)  # type: ignore[arg-type]
        assert outcome(sink._getaddr, arg) == outcome(reference._getaddr, arg)
    finally:
        loop.close()


def test_common_paths() -> None:
    loop = asyncio.new_event_loop()
    try:
        sink = SinkSession(object(), Sessions(1, ()), SmtpSettings(), hostname="x", loop=loop)  # type: ignore[arg-type]
        assert sink._getaddr("<jo@cust.net> SIZE=4096 BODY=8BITMIME") == (
            "jo@cust.net",
            "SIZE=4096 BODY=8BITMIME",
        )
        assert sink._getaddr("<>") == ("<>", "")
        assert sink._getaddr('<"a b"@x.org>') == ('"a b"@x.org', "")
    finally:
        loop.close()


def test_help_lists_data_as_aiosmtpd_does() -> None:
    from aiosmtpd.smtp import SMTP

    from ttrd.smtp.server import SinkSession

    assert SinkSession.smtp_DATA.__smtp_syntax__ == SMTP.smtp_DATA.__smtp_syntax__  # type: ignore[attr-defined]
