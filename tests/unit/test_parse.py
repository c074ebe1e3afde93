from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ttrd.errors import ParseError
from ttrd.journal.facts import Delivery
from ttrd.journal.parse import parse_message, thread_key

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def delivery(**overrides: object) -> Delivery:
    values: dict[str, object] = {"source": "import", "received_at": NOW}
    values.update(overrides)
    return Delivery(**values)  # type: ignore[arg-type]


def message(*lines: str, body: str = "Hello.\n") -> bytes:
    return ("\n".join(lines) + "\n\n" + body).encode()


def test_o365_journal_report_unwraps_to_the_original(shared: Path) -> None:
    raw = (shared / "corpus" / "journal" / "o365-journal-report.eml").read_bytes()
    facts = parse_message(raw, delivery(source="smtp", mail_from="journal.ndr@teamcompany.onmicrosoft.com"))
    assert facts.message_id == "13268020124593518925.93733CB7019D1C46@company.com"
    assert facts.from_address == "ap@someothercompany.com"
    assert "lulu.zingzing@company.com" in facts.recipients
    assert facts.event_time == datetime(2018, 7, 17, 12, 13, 28, tzinfo=UTC)
    # the report's own Auto-Submitted and X-MS-Exchange-Generated-Message-Source are not the original's
    assert facts.automatic == ()


REPORT = """\
Received: from journal.example.com by mx1.example.com; Mon, 02 Nov 2026 16:25:31 -0500
From: theo@bigcorp.test
To: sales@example.com
Subject: Delivery shipment
Sender: <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.com>
Message-ID: <report-1@journal.report.generator>
X-MS-Journal-Report:
Auto-Submitted: auto-generated
Content-Type: multipart/mixed; boundary="_jr_1"

--_jr_1
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: 7bit

Sender: alice@example.com
On-Behalf-Of: support@example.com
Subject: Delivery shipment
Message-Id: <orig-1@example.com>
To: jack@example.com, Expanded: sales@example.com
Cc: bob@example.net, Forwarded: carol@example.org
Bcc: dan@example.com
Recipient: erin@example.com

--_jr_1
Content-Type: message/rfc822
Content-Transfer-Encoding: binary

Received: from client by mx1.example.com; Mon, 02 Nov 2026 16:25:29 -0500
From: support@example.com
To: theo@bigcorp.test
Subject: Delivery shipment
Date: Mon, 02 Nov 2026 21:21:44 +0000
Message-ID: <orig-1@example.com>

Body \xe9 in 8 bit.

--_jr_1--
"""


def test_report_lines_give_recipients_and_transmitter() -> None:
    raw = REPORT.encode("latin-1")
    facts = parse_message(raw, delivery(source="smtp", mail_from="", rcpt_to=frozenset()))
    assert facts.message_id == "orig-1@example.com"
    assert facts.recipients == {
        "theo@bigcorp.test",
        "jack@example.com",
        "sales@example.com",
        "bob@example.net",
        "carol@example.org",
        "dan@example.com",
        "erin@example.com",
    }
    assert facts.sender == "alice@example.com"
    assert facts.event_time == datetime(2026, 11, 2, 21, 25, 29, tzinfo=UTC)
    # the null reverse path belongs to the report's delivery, not to the original
    assert "null-sender" not in facts.automatic


def test_report_without_original_is_a_parse_error() -> None:
    report_only = REPORT.split("--_jr_1\nContent-Type: message/rfc822", maxsplit=1)[0]
    raw = report_only.encode("latin-1") + b"--_jr_1--\n"
    with pytest.raises(ParseError, match="rfc822"):
        parse_message(raw, delivery())


def test_message_without_headers_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        parse_message(b"\nno headers at all\n", delivery())
    with pytest.raises(ParseError):
        parse_message(b"just some text without a colon\n", delivery())


def test_event_time_prefers_topmost_received_then_internaldate_then_date() -> None:
    received = "Received: from a by b; Mon, 02 Nov 2026 10:00:00 +0000"
    broken = "Received: from c by d; not a date"
    older = "Received: from e by f; Mon, 02 Nov 2026 09:00:00 +0000"
    date = "Date: Mon, 02 Nov 2026 08:00:00 +0000"
    imap = delivery(internal_date=datetime(2026, 11, 2, 8, 30, tzinfo=UTC))
    assert parse_message(message(broken, received, older, date, "From: a@x.net"), imap).event_time.hour == 10
    assert parse_message(message(broken, date, "From: a@x.net"), imap).event_time.minute == 30
    assert parse_message(message(date, "From: a@x.net"), delivery()).event_time.hour == 8
    assert parse_message(message("From: a@x.net"), delivery()).event_time == NOW


def test_clock_skew_guard_replaces_times_far_after_receipt() -> None:
    late = (NOW + timedelta(hours=1, seconds=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    barely = (NOW + timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    assert parse_message(message(f"Date: {late}", "From: a@x.net"), delivery()).event_time == NOW
    assert parse_message(message(f"Date: {barely}", "From: a@x.net"), delivery()).event_time > NOW


def test_synthetic_id_is_stable_across_line_endings() -> None:
    lf = message("From: a@x.net", "Subject: hi", "Date: Mon, 02 Nov 2026 08:00:00 +0000", body="line\nline\n")
    crlf = lf.replace(b"\n", b"\r\n")
    one = parse_message(lf, delivery())
    other = parse_message(crlf, delivery(source="smtp"))
    assert one.synthetic and one.message_id == other.message_id
    assert one.message_id != parse_message(lf.replace(b"hi", b"ho"), delivery()).message_id


def test_addresses_links_and_ids() -> None:
    raw = message(
        "From: =?utf-8?q?J=C3=B6rg?= via Users <Users@Lists.Example.com>",
        "Reply-To: Jorg <jorg@example.net>",
        "Sender: users-bounces@lists.example.com",
        'To: "Support, Team" <support@example.com>, bob@example.com',
        "Cc: undisclosed-recipients:;",
        "Message-ID: <a@x>",
        "X-Microsoft-Original-Message-ID: <b@outlook>",
        "In-Reply-To: <p@x>",
        "References: <q@x>\n <p@x>",
        "List-Id: Users list <Users.Lists.Example.com>",
        "Subject: =?utf-8?q?Re=3A_caf=C3=A9?=",
    )
    facts = parse_message(raw, delivery())
    assert facts.from_address == "users@lists.example.com"
    assert facts.from_name == "Jörg via Users"
    assert facts.reply_to == ("jorg@example.net",)
    assert facts.sender == "users-bounces@lists.example.com"
    assert facts.to_cc == {"support@example.com", "bob@example.com"}
    assert facts.ids == {"a@x", "b@outlook"}
    assert facts.links == {"p@x", "q@x"}
    assert facts.list_id == "users.lists.example.com"
    assert facts.subject == "Re: café"


def test_folder_owner_is_a_recipient_of_an_inbox_copy_and_the_sender_of_a_sent_copy() -> None:
    raw = message("From: a@x.net", "To: b@y.net", "Message-ID: <m@x>")
    inbox = parse_message(raw, delivery(owner="alice@example.com", folder="inbox"))
    sent = parse_message(raw, delivery(owner="alice@example.com", folder="sent"))
    assert "alice@example.com" in inbox.recipients and not inbox.sent_by
    assert "alice@example.com" not in sent.recipients and sent.sent_by == {"alice@example.com"}
    assert inbox.copy_key != sent.copy_key


def test_null_reverse_path_is_automatic_for_plain_deliveries() -> None:
    raw = message("From: a@x.net", "To: b@example.com", "Message-ID: <m@x>")
    assert "null-sender" in parse_message(raw, delivery(source="smtp", mail_from="")).automatic
    assert parse_message(raw, delivery(source="smtp", mail_from="a@x.net")).automatic == ()


def test_thread_index_key_is_the_first_22_bytes() -> None:
    assert thread_key("ASOvTYlDU7Yu9ifednUvK56rcUw2vA==") == "0123af4d894353b62ef627de76752f2b9eab714c36bc"
    longer = thread_key("ASOvTYlDU7Yu9ifednUvK56rcUw2vAAAAAABAAAAAQ==")
    assert longer == "0123af4d894353b62ef627de76752f2b9eab714c36bc"
    assert thread_key("AAAA") is None
    assert thread_key("!!!") is None


def test_merging_copies_is_order_independent() -> None:
    first = parse_message(
        message(
            "Received: x; Mon, 02 Nov 2026 10:00:00 +0000",
            "From: a@x.net",
            "To: s@example.com",
            "Message-ID: <m@x>",
        ),
        delivery(source="smtp", rcpt_to=frozenset({"alice@example.com"})),
    )
    second = parse_message(
        message(
            "Received: y; Mon, 02 Nov 2026 10:00:05 +0000",
            "From: a@x.net",
            "To: s@example.com",
            "Message-ID: <m@x>",
            "X-Microsoft-Original-Message-ID: <o@x>",
        ),
        delivery(source="smtp", rcpt_to=frozenset({"bob@example.com"})),
    )
    merged = first.merge(second)
    assert merged == second.merge(first)
    assert merged.event_time == first.event_time
    assert merged.ids == {"m@x", "o@x"}
    assert {"alice@example.com", "bob@example.com", "s@example.com"} <= merged.recipients


def test_reduced_messages_give_the_same_facts_and_keep_no_body(shared: Path) -> None:
    """What the SMTP sink keeps (headers and the start of the body) parses exactly like the whole."""
    from ttrd.ingest.sources import read_messages
    from ttrd.journal.parse import KEPT_BODY_BYTES, reduce_message

    roots = [shared / "scenarios", shared / "corpus" / "automatic" / "maildir", shared / "corpus" / "journal"]
    checked = 0
    for message, _ in read_messages(roots):
        raw = message.data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # as SMTP delivers it
        reduced = reduce_message(raw)
        try:
            whole = parse_message(raw, delivery())
        except ParseError:
            assert reduced == raw[: len(reduced)]
            continue
        assert parse_message(reduced, delivery()) == whole, message.origin
        assert len(reduced) <= len(raw) + 64
        checked += 1
    assert checked > 900
    big = ("From: a@x.net\nMessage-ID: <big@x>\n\n" + "x" * 10**6).encode()
    assert len(reduce_message(big)) < KEPT_BODY_BYTES + 100
    assert parse_message(reduce_message(big), delivery()) == parse_message(big, delivery())


def test_reduced_journal_report_keeps_the_envelope_and_drops_the_original_body() -> None:
    from ttrd.journal.parse import reduce_message

    raw = REPORT.replace("Body \xe9 in 8 bit.", "attachment " * 100_000).encode("latin-1")
    reduced = reduce_message(raw)
    assert len(reduced) < 20_000
    assert b"Expanded: sales@example.com" in reduced
    assert parse_message(reduced, delivery()) == parse_message(raw, delivery())


def test_a_date_past_year_9999_is_the_far_future_and_so_the_receipt_time() -> None:
    far = "Fri, 31 Dec 9999 23:59:59 -1200"
    older = "Received: from e by f; Mon, 02 Nov 2026 09:00:00 +0000"
    assert parse_message(message(f"Date: {far}", "From: a@x.net"), delivery()).event_time == NOW
    topmost = message(f"Received: from a by b; {far}", older, "From: a@x.net")
    assert parse_message(topmost, delivery()).event_time == NOW  # it parses: the skew guard applies


def test_journal_reports_nested_deep_reduce_without_recursion_to_the_same_facts() -> None:
    import random

    from tests.hostile import journal_report
    from ttrd.journal.parse import reduce_message

    rng = random.Random(7)
    inner = message("From: jo@cust.net", "To: support@example.com", "Message-ID: <core@x>").replace(
        b"\n", b"\r\n"
    )
    for depth in range(1, 2001):
        inner = journal_report(rng, inner)
        if depth in (1, 3, 2000):  # 2000 levels: past Python's recursion limit
            assert parse_message(reduce_message(inner), delivery()) == parse_message(inner, delivery())


def test_references_keep_the_root_and_the_nearest_ancestors() -> None:
    from ttrd.journal.parse import MAX_REFERENCES

    chain = " ".join(f"<r{n}@x>" for n in range(1000))
    facts = parse_message(message("From: a@x.net", "In-Reply-To: <p@x>", f"References: {chain}"), delivery())
    kept = {"p@x", "r0@x", *(f"r{n}@x" for n in range(1000 - MAX_REFERENCES + 1, 1000))}
    assert facts.links == kept
