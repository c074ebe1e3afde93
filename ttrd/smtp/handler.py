"""The aiosmtpd handler of the journaling sink (SPEC §4): 250 only once the message is durable.

What a message becomes is decided here: its envelope (MAIL FROM, the RCPT TO addresses minus the
sink's own journal addresses, `journal+alice=example.com@…` decoded), and the part of it ttrd keeps
(`reduce_message`: headers and the start of the body). Everything that goes wrong on our side is a
4xx, so the mail server keeps the message and tries again; aiosmtpd would answer 500 to an
unhandled exception, which would bounce the journal copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from aiosmtpd.smtp import SMTP, Envelope, Session

from ttrd.errors import StorageError
from ttrd.ingest.spooler import Spooler
from ttrd.journal.facts import Delivery
from ttrd.journal.parse import UNPARSED_KEPT_BYTES, reduce_message
from ttrd.storage.spool import SpoolEntry

log = logging.getLogger(__name__)

STORED = "250 2.0.0 Stored"
TRY_LATER = "451 4.3.0 Cannot store the message now, try again later"


def envelope_recipients(rcpt_tos: Iterable[str], journal_addresses: Iterable[str]) -> tuple[str, ...]:
    """RCPT TO addresses as envelope recipients: journal addresses dropped, encoded ones decoded.

    With the journal address `journal@sink.example`, `journal+alice=example.com@sink.example`
    carries the original recipient `alice@example.com` (Postfix recipient_bcc_maps can write it).
    """
    journal = {address.lower() for address in journal_addresses}
    encoded = {tuple(address.split("@", 1)) for address in journal}
    found: list[str] = []
    for rcpt in rcpt_tos:
        address = rcpt.strip().strip("<>").lower()
        if address in journal:
            continue
        local, _, domain = address.rpartition("@")
        base, plus, original = local.partition("+")
        if plus and (base, domain) in encoded:
            original_local, equals, original_domain = original.rpartition("=")
            if not equals or not original_local or not original_domain:
                continue  # a journal address with a broken encoding carries no recipient
            address = f"{original_local}@{original_domain}"
        if address not in found:
            found.append(address)
    return tuple(found)


def _reduced(raw: bytes) -> bytes:
    """What is kept of a message; its start when reducing fails (the worker then sets it aside).

    A 451 would make the mail server offer the same message again and again, for days.
    """
    try:
        return reduce_message(raw)
    except Exception:
        log.exception("cannot reduce a message of %d bytes; keeping its start as it is", len(raw))
        return raw[:UNPARSED_KEPT_BYTES]


class JournalHandler:
    def __init__(
        self, spooler: Spooler, journal_addresses: Iterable[str], clock: Callable[[], datetime]
    ) -> None:
        self.spooler = spooler
        self.journal_addresses = tuple(journal_addresses)
        self.clock = clock

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer or "")
        delivery = Delivery(
            "smtp",
            self.clock(),
            mail_from=(envelope.mail_from or "").strip("<>"),
            rcpt_to=frozenset(envelope_recipients(envelope.rcpt_tos, self.journal_addresses)),
            origin=f"smtp from {peer}",
        )
        entry = SpoolEntry(delivery, _reduced(bytes(raw)))
        try:
            await self.spooler.put(entry)
        except StorageError:
            self.spooler.count("smtp_messages", "tempfail")
            return TRY_LATER
        return STORED

    async def handle_exception(self, error: Exception) -> str:
        """Whatever else fails on our side: the sender keeps the message and retries."""
        log.error("SMTP session failed: %s: %s", type(error).__name__, error, exc_info=error)
        self.spooler.count("smtp_messages", "tempfail")
        return "451 4.3.0 Temporary failure, try again later"
