from __future__ import annotations

from email.utils import getaddresses
from pathlib import Path

import pytest

from ttrd.ingest.sources import read_messages
from ttrd.journal.headers import Headers, addresses, decode_words, received_date, split_message


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
