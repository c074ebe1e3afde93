from __future__ import annotations

from datetime import UTC, datetime
from email.utils import getaddresses
from pathlib import Path

import pytest

from ttrd.ingest.sources import read_messages
from ttrd.journal.headers import (
    EARLIEST,
    FAR_FUTURE,
    MAX_ID_LENGTH,
    Headers,
    addresses,
    decode_words,
    message_ids,
    parse_date,
    received_date,
    split_message,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice@example.com", [("", "alice@example.com")]),
        ("Alice <Alice@Example.COM>", [("Alice", "alice@example.com")]),
        (
            '"Doe, Jane" <jane@x.net>, bob@y.net (Bob B)',
            [("Doe, Jane", "jane@x.net"), ("Bob B", "bob@y.net")],
        ),
        ("undisclosed-recipients:;", []),
        ("Team: a@x.net, b@y.net;, c@z.net", [("", "a@x.net"), ("", "b@y.net"), ("", "c@z.net")]),
        ("=?utf-8?q?J=C3=B6rg?= <j@x.net>", [("Jörg", "j@x.net")]),
        ('"say \\"hi\\"" <q@x.net>', [('say "hi"', "q@x.net")]),
        ("<>", []),
        ("MAILER-DAEMON", []),
    ],
)
def test_addresses(value: str, expected: list[tuple[str, str]]) -> None:
    assert addresses(value) == expected


def test_addresses_agree_with_the_standard_library_over_the_corpora(shared: Path) -> None:
    """The fast tokenizer gives what email.utils.getaddresses gives, on every real address header."""
    roots = [
        shared / "corpus" / "usrp-users" / "usrp-users-headers.mbox.xz",
        shared / "corpus" / "automatic" / "maildir",
        shared / "scenarios",
    ]
    checked = 0
    for message, _ in read_messages(roots):
        headers = Headers.parse(split_message(message.data)[0])
        for name in ("from", "to", "cc", "bcc", "reply-to", "sender"):
            for value in headers.get_all(name):
                expected = [
                    (" ".join(decode_words(display).split()), address.strip().lower())
                    for display, address in getaddresses([value])
                    if "@" in address
                ]
                assert addresses(value) == expected, value
                checked += 1
    assert checked > 30000


def test_split_message_handles_lf_crlf_and_no_body() -> None:
    assert split_message(b"A: 1\nB: 2\n\nbody\n") == (b"A: 1\nB: 2", b"body\n")
    assert split_message(b"A: 1\r\nB: 2\r\n\r\nbody\r\n") == (b"A: 1\r\nB: 2", b"body\r\n")
    assert split_message(b"A: 1\nB: 2\n") == (b"A: 1\nB: 2\n", b"")
    assert split_message(b"\nbody") == (b"", b"body")


def test_headers_unfold_and_skip_non_fields() -> None:
    headers = Headers.parse(b"From mboxrd@z Thu Jan  1 00:00:00 1970\r\nSubject: one\r\n two\r\nX-A : b\r\n")
    assert headers.get("subject") == "one two"
    assert headers.get("x-a") == "b"
    assert "from" not in headers


def test_received_date_is_after_the_last_semicolon() -> None:
    moment = received_date("from a (b; c) by d; Tue, 17 Jul 2018 08:13:25 -0400 (EDT)")
    assert moment is not None and moment.isoformat() == "2018-07-17T12:13:25+00:00"
    assert received_date("from a by b") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Fri, 31 Dec 9999 23:59:59 -1200", FAR_FUTURE),  # past year 9999 once in UTC
        ("Sun, 31 Dec 9999 23:59:59 +0000", FAR_FUTURE),
        ("Tue, 19 Jan 2038 03:14:08 +0000", datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC)),
        ("Thu, 1 Jan 1970 00:00:00 +0000", EARLIEST),
        ("Wed, 31 Dec 1969 23:59:59 +0000", None),  # before e-mail's dates begin: a broken clock
        # Years under 100 are two-digit years, as RFC 5322 §4.3 says: 0001 is 2001.
        ("Mon, 1 Jan 0001 00:00:00 +1400", datetime(2000, 12, 31, 10, 0, tzinfo=UTC)),
        ("Mon, 1 Jan 1900 00:00:00 +0000", None),
        ("31 Dec 99999 23:59:59 +0000", None),
        ("Mon, 30 Feb 2026 25:61:61 +9999", None),
        ("Mon, 02 Mar 18446744073709551616 09:00:00 +0000", None),
    ],
)
def test_dates_outside_what_a_clock_can_mean_never_raise(value: str, expected: datetime | None) -> None:
    assert parse_date(value) == expected


def test_absurd_ids_are_no_ids_and_nul_characters_are_dropped() -> None:
    assert message_ids("<" + "m" * MAX_ID_LENGTH + "@x>") == []
    assert message_ids("<ok@x> <" + "r" * 10_000 + "@x> <also@x>") == ["ok@x", "also@x"]
    headers = Headers.parse(b"From: jo@x.net\r\nSubject: a\x00b\r\nMessage-ID: <n\x00ul@x>\r\n")
    assert headers.get("subject") == "ab"
    assert message_ids(headers.get("message-id")) == ["nul@x"]


@pytest.mark.parametrize(
    "value", ["=?utf-8?b?!!!not base64?=", "=?x-unknown?q?abc?=", "=?utf-8?q?=ED=A0=80?="]
)
def test_broken_encoded_words_come_back_as_written(value: str) -> None:
    decoded = decode_words(value)
    assert decoded == value or not any("\ud800" <= c <= "\udfff" for c in decoded)
    decoded.encode("utf-8")  # storable


def test_ids_hold_no_white_space_or_control_characters() -> None:
    assert message_ids("<a\x0bb@x> <ok@x> <c\x85d@x>") == ["ok@x"]
    assert message_ids("bare\x8b@x") == [] and message_ids("bare@x") == ["bare@x"]
