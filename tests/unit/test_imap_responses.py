"""IMAP responses as aioimaplib hands them over, read into values; folders chosen from a LIST."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ttrd.imap.connection import _uid_set
from ttrd.imap.folders import choose
from ttrd.imap.responses import (
    ListedFolder,
    ProtocolError,
    decode_modified_utf7,
    parse_fetch,
    parse_internaldate,
    parse_list,
    parse_search,
    parse_select,
    throttle_seconds,
)

HEADER = b"From: jo@cust.net\r\nMessage-ID: <a@x>\r\n\r\n"


def test_fetch_records_in_any_item_order_with_literals_and_unsolicited_updates() -> None:
    lines = [
        b'1 FETCH (UID 5 RFC822.SIZE 300 INTERNALDATE "02-Mar-2026 10:00:00 +0100" BODY[HEADER] {%d}'
        % len(HEADER),
        bytearray(HEADER),
        b")",
        b"2 FETCH (FLAGS (\\Seen))",  # another client set a flag meanwhile: no UID, left out
        b"3 FETCH (BODY[HEADER] {%d}" % len(HEADER),
        bytearray(HEADER),
        b' INTERNALDATE "02-Mar-2026 09:00:00 +0000" UID 7 RFC822.SIZE 12)',
        b"4 FETCH (UID 9 BODY[TEXT]<0> {4}",
        bytearray(b"Hi\r\n"),
        b")",
        b"5 FETCH (UID 11 BODY[HEADER] NIL)",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    found = parse_fetch(lines)
    assert [(f.uid, f.size, f.header, f.text_start) for f in found] == [
        (5, 300, HEADER, None),
        (7, 12, HEADER, None),
        (9, None, None, b"Hi\r\n"),
        (11, None, b"", None),
    ]
    assert found[0].internal_date == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert found[1].internal_date == found[0].internal_date


def test_a_literal_that_does_not_match_its_announced_size_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        parse_fetch([b"1 FETCH (UID 5 BODY[HEADER] {99}", bytearray(b"short"), b")"])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("02-Mar-2026 09:00:00 +0000", datetime(2026, 3, 2, 9, tzinfo=UTC)),
        (" 2-Mar-2026 09:00:00 -0500", datetime(2026, 3, 2, 14, tzinfo=UTC)),
        ("01-Jan-1900 00:00:00 +0000", None),  # before e-mail's dates begin, as for Date:
        ("31-Dec-9999 23:59:59 -1200", None),  # past year 9999 in UTC
        ("garbage", None),
    ],
)
def test_internaldate(value: str, expected: datetime | None) -> None:
    assert parse_internaldate(value) == expected


def test_select_search_and_list() -> None:
    selected = parse_select(
        [
            b"FLAGS (\\Seen)",
            b"OK [UIDVALIDITY 1700000000] UIDs valid",
            b"3 EXISTS",
            b"OK [UIDNEXT 4] Predicted",
        ]
    )
    assert (selected.uidvalidity, selected.uidnext, selected.exists) == (1700000000, 4, 3)
    with pytest.raises(ProtocolError):
        parse_select([b"3 EXISTS"])
    assert parse_search([b"SEARCH 4 2 9", b"Search completed"]) == [2, 4, 9]
    assert parse_search([b"SEARCH", b"Search completed"]) == []
    listed = parse_list(
        [
            b'LIST (\\HasNoChildren \\Sent) "/" Sent',
            b'LIST (\\Noselect \\HasChildren) "/" "[Gmail]"',
            b'LIST (\\HasNoChildren) "." {7}',
            bytearray(b"Archiv\xc3\xa9"),
            b'LIST () NIL "INBOX"',
        ]
    )
    assert [(f.name, f.delimiter, f.selectable) for f in listed] == [
        ("Sent", "/", True),
        ("[Gmail]", "/", False),
        ("Archivé", ".", True),
        ("INBOX", None, True),
    ]
    assert "\\sent" in listed[0].flags


def test_modified_utf7_names_and_throttling() -> None:
    assert decode_modified_utf7("&AMk-l&AOk-ments envoy&AOk-s") == "Éléments envoyés"
    assert decode_modified_utf7("Tom &- Jerry") == "Tom & Jerry"
    assert decode_modified_utf7("&broken") == "&broken"
    assert throttle_seconds("BAD Request is throttled. Suggested Backoff Time: 2500 milliseconds") == 2.5
    assert throttle_seconds("NO [AUTHENTICATIONFAILED] Authentication failed") is None


def folder(name: str, *flags: str, delimiter: str = "/") -> ListedFolder:
    return ListedFolder(name, frozenset(flag.lower() for flag in flags), delimiter)


def test_folders_by_name_by_special_use_and_by_localised_sent_names() -> None:
    listed = [folder("INBOX"), folder("Sent", "\\Sent"), folder("Archive", "\\Archive"), folder("Junk")]
    chosen, missing = choose(["INBOX", "\\Sent", "\\Archive", "Nowhere"], listed)
    assert [(c.name, c.role) for c in chosen] == [("INBOX", "inbox"), ("Sent", "sent"), ("Archive", "inbox")]
    assert missing == ["Nowhere"]
    # A server without SPECIAL-USE: \\Sent is the folder with a Sent name, localised or not.
    plain = [
        folder("INBOX"),
        folder("INBOX.Gesendete Objekte", delimiter="."),
        folder("INBOX.Drafts", delimiter="."),
    ]
    assert [(c.name, c.role) for c in choose(["INBOX", "\\Sent"], plain)[0]] == [
        ("INBOX", "inbox"),
        ("INBOX.Gesendete Objekte", "sent"),
    ]
    # A Sent folder named explicitly is still a Sent folder; a folder named twice is read once.
    assert [(c.name, c.role) for c in choose(["Sent", "\\Sent", "inbox"], listed)[0]] == [
        ("Sent", "sent"),
        ("INBOX", "inbox"),
    ]
    assert choose(["\\Sent"], [folder("INBOX"), folder("Sent", "\\Noselect")]) == ([], ["\\Sent"])
    # A Sent folder named by its (localised) name is a Sent folder, flagged or not.
    unflagged = [folder("INBOX"), folder("Sent Items"), folder("Archive")]
    assert [(c.name, c.role) for c in choose(["Sent Items", "Archive"], unflagged)[0]] == [
        ("Sent Items", "sent"),
        ("Archive", "inbox"),
    ]


def test_uid_sets_are_short() -> None:
    assert _uid_set([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert _uid_set([4]) == "4"


def test_backoff_grows_with_jitter_honours_a_server_s_pause_and_resets() -> None:
    import random

    from ttrd.imap.poller import BACKOFF_MAX_SECONDS, _Backoff

    backoff = _Backoff(rng=random.Random(1))
    pauses = [backoff.next(None) for _ in range(12)]
    assert all(0 <= pause <= BACKOFF_MAX_SECONDS for pause in pauses)
    assert backoff.delay == BACKOFF_MAX_SECONDS  # doubled up to the ceiling
    assert backoff.next(900.0) == 900.0  # a throttling server's pause wins over a shorter jitter
    backoff.reset()
    assert backoff.next(None) <= 1.0
