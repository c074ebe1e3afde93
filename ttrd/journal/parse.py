"""Bytes of one copy of a message, and how it arrived, into `MessageFacts` (SPEC §2). Pure.

Only the header block is parsed. The body is read for two things: an Exchange journal report's
envelope and original, and the first 4 KiB that a message without a Message-ID is identified by.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime, timedelta

from ttrd.errors import ParseError
from ttrd.journal import exchange
from ttrd.journal.automatic import header_reasons
from ttrd.journal.facts import Delivery, MessageFacts
from ttrd.journal.headers import (
    Headers,
    address_set,
    addresses,
    decode_words,
    message_ids,
    parse_date,
    received_date,
    split_message,
)

CLOCK_SKEW = timedelta(hours=1)
"""A message time further than this after its receipt is a sender's wrong clock (SPEC §2)."""

SYNTHETIC_BODY_BYTES = 4096
KEPT_BODY_BYTES = 2 * SYNTHETIC_BODY_BYTES
"""What `reduce_message` keeps of a body: all that the synthetic id reads before line ends are
normalised (CR LF pairs can double the bytes of 4 KiB of text)."""
UNPARSED_KEPT_BYTES = 64 * 1024
"""What is kept of a message whose header block cannot be found, so an operator can look at it."""
MAX_REFERENCES = 100
"""Ids read from References: the first (the thread's root) and the last 99 (the nearest ancestors).
Mail clients trim References to a few dozen ids (the usrp-users list: 37 at most); each id costs a
link to store and follow, so a header of a million ids would stall ingestion for everyone."""
THREAD_KEY_BYTES = 22
"""An Outlook Thread-Index starts with a 6-byte time and a 16-byte conversation GUID."""


def parse_message(raw: bytes, delivery: Delivery) -> MessageFacts:
    """Facts of one copy; raises ParseError when the bytes are not a message at all."""
    block, body = split_message(raw)
    headers = Headers.parse(block)
    if not len(headers):
        raise ParseError("no header fields")
    recipients = set(delivery.rcpt_to)
    transmitter: str | None = None
    journaled = exchange.is_journal_report(headers)
    if journaled:
        report = exchange.unwrap(headers, body)
        block, body = split_message(report.original)
        headers = Headers.parse(block)
        if not len(headers):
            raise ParseError("journal report original has no header fields")
        recipients |= report.recipients
        transmitter = report.transmitter
    return _facts(
        headers,
        body,
        delivery,
        recipients=recipients,
        transmitter=transmitter,
        journaled=journaled,
        key=copy_key(raw, delivery),
    )


def reduce_message(raw: bytes) -> bytes:
    """The part of a message that ttrd keeps: `parse_message` gives the same facts from it.

    That is the header block and the start of the body; for an Exchange journal report, its
    envelope part and its original reduced the same way (one level: `parse_message` unwraps one,
    so a report nested in a report costs no recursion). ttrd needs headers, not bodies (privacy),
    and a journaling sink must not hold every attachment of the company's mail.
    """
    block, body = split_message(raw)
    if block and body and b"x-ms-journal-report" in block.lower():
        headers = Headers.parse(block)
        if exchange.is_journal_report(headers):
            report = exchange.reduced_report(headers, body, _reduce_plain)
            if report is not None:
                return block + _newline(block) * 2 + report
    return _reduce_plain(raw)


def _reduce_plain(raw: bytes) -> bytes:
    """The header block and the first KEPT_BODY_BYTES of the body, whatever the message holds."""
    block, body = split_message(raw)
    if not block:
        return raw[:UNPARSED_KEPT_BYTES]
    if not body:
        return raw  # all of it is the header block
    return block + _newline(block) * 2 + body[:KEPT_BODY_BYTES]


def _newline(block: bytes) -> bytes:
    return b"\r\n" if b"\r\n" in block[:1000] else b"\n"


def copy_key(raw: bytes, delivery: Delivery) -> str:
    """Fingerprint of one copy: the same bytes delivered the same way again are a duplicate observation."""
    digest = hashlib.sha256(raw)
    for part in (
        delivery.source,
        delivery.mail_from,
        delivery.owner,
        delivery.folder,
        delivery.internal_date,
    ):
        digest.update(b"\0" + str(part).encode())
    for address in sorted(delivery.rcpt_to):
        digest.update(b"\0" + address.encode())
    return digest.hexdigest()


def _facts(
    headers: Headers,
    body: bytes,
    delivery: Delivery,
    *,
    recipients: set[str],
    transmitter: str | None,
    journaled: bool,
    key: str,
) -> MessageFacts:
    own_ids = message_ids(headers.get("message-id"))[:1]
    message_id = own_ids[0] if own_ids else _synthetic_id(headers, body)
    ids = {message_id, *message_ids(headers.get("x-microsoft-original-message-id"))[:1]}
    froms = addresses(headers.get("from") or "")
    from_name, from_address = froms[0] if froms else ("", None)
    to_cc = address_set(headers.get("to") or "", headers.get("cc") or "")
    recipients |= to_cc | address_set(headers.get("bcc") or "")
    if delivery.owner and delivery.folder != "sent":
        recipients.add(delivery.owner)
    return MessageFacts(
        message_id=message_id,
        ids=frozenset(ids),
        synthetic=not own_ids,
        event_time=event_time(headers, delivery),
        subject=decode_words(headers.get("subject") or ""),
        from_address=from_address,
        from_name=from_name,
        reply_to=tuple(address for _, address in addresses(headers.get("reply-to") or "")),
        sender=transmitter or _first_address(headers.get("sender")),
        to_cc=to_cc,
        recipients=frozenset(recipients),
        links=frozenset(_links(headers)) - ids,
        thread_key=thread_key(headers.get("thread-index")),
        list_id=_list_id(headers.get("list-id")),
        automatic=_automatic(headers, delivery, journaled),
        threaded=any(headers.get(name) for name in ("in-reply-to", "references", "thread-index")),
        sent_by=frozenset({delivery.owner}) if delivery.owner and delivery.folder == "sent" else frozenset(),
        copy_key=key,
    )


def _automatic(headers: Headers, delivery: Delivery, journaled: bool) -> tuple[str, ...]:
    reasons = set(header_reasons(headers))
    if delivery.mail_from == "" and not journaled:  # a journal report's own MAIL FROM says nothing
        reasons.add("null-sender")
    return tuple(sorted(reasons))


def event_time(headers: Headers, delivery: Delivery) -> datetime:
    """Topmost parsable Received date, else INTERNALDATE, else Date, else receipt; never far after receipt."""
    found = next(filter(None, map(received_date, headers.get_all("received"))), None)
    found = found or delivery.internal_date or parse_date(headers.get("date")) or delivery.received_at
    return delivery.received_at if found - delivery.received_at > CLOCK_SKEW else found


def thread_key(value: str | None) -> str | None:
    """The conversation part of an Outlook Thread-Index, or None when it does not decode."""
    if not value:
        return None
    try:
        decoded = base64.b64decode("".join(value.split()), validate=False)
    except (binascii.Error, ValueError):
        return None
    return decoded[:THREAD_KEY_BYTES].hex() if len(decoded) >= THREAD_KEY_BYTES else None


def _links(headers: Headers) -> list[str]:
    references = message_ids(headers.get("references"))
    if len(references) > MAX_REFERENCES:
        references = references[:1] + references[1 - MAX_REFERENCES :]
    return message_ids(headers.get("in-reply-to")) + references


def _list_id(value: str | None) -> str | None:
    if not value:
        return None
    inside = value[value.rfind("<") + 1 : value.rfind(">")] if "<" in value and ">" in value else value
    return inside.strip().lower() or None


def _first_address(value: str | None) -> str | None:
    found = addresses(value or "")
    return found[0][1] if found else None


def _synthetic_id(headers: Headers, body: bytes) -> str:
    """A stable id for a message without Message-ID: Date, From, Subject and the start of the body.

    Line ends are normalised first so a copy received over SMTP (CRLF) and one read from a file (LF)
    get the same id.
    """
    start = body[: SYNTHETIC_BODY_BYTES * 2].replace(b"\r\n", b"\n")[:SYNTHETIC_BODY_BYTES]
    digest = hashlib.sha256()
    for name in ("date", "from", "subject"):
        digest.update((headers.get(name) or "").encode("utf-8", "surrogateescape") + b"\0")
    digest.update(start)
    return f"{digest.hexdigest()[:40]}@synthetic.ttrd.invalid"
