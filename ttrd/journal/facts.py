"""The facts ttrd keeps about messages: what one copy says, and how it reached ttrd.

Everything here is a frozen value. `MessageFacts` depend only on the bytes of one copy of a message
and on how that copy reached ttrd (`Delivery`), never on the configuration, so stored facts stay true
when the configuration changes; the reply-time rules (`ttrd.replytime`) apply the configuration when
they read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

Source = Literal["smtp", "imap", "import"]
Folder = Literal["inbox", "sent"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one copy of a message reached ttrd."""

    source: Source
    received_at: datetime
    """When ttrd received this copy (for `ttrd import`: the time of the import). Aware, UTC."""
    mail_from: str | None = None
    """The SMTP reverse path; "" is the null sender `<>`; None when unknown (files, IMAP)."""
    rcpt_to: frozenset[str] = frozenset()
    """Envelope recipients, journal addresses already removed or decoded."""
    internal_date: datetime | None = None
    """IMAP INTERNALDATE of this copy."""
    owner: str | None = None
    """Address of the mailbox whose folder held this copy (IMAP account owner, `--mailbox-owner`)."""
    folder: Folder | None = None
    origin: str = ""
    """Where the copy came from, for logs and error messages (a file path, an SMTP peer…)."""


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What one message says about itself, merged over every copy of it that ttrd has seen."""

    message_id: str
    """Message-ID without angle brackets, or a synthetic id."""
    ids: frozenset[str]
    """Every id this message is known by: its Message-ID and any X-Microsoft-Original-Message-ID."""
    synthetic: bool
    event_time: datetime
    """Aware UTC; the earliest over all copies."""
    subject: str
    from_address: str | None
    from_name: str
    reply_to: tuple[str, ...]
    sender: str | None
    """The transmitter candidate: `Sender:` (or a journal report's Sender with On-Behalf-Of)."""
    to_cc: frozenset[str]
    recipients: frozenset[str]
    """To, Cc, Bcc, envelope recipients and INBOX owners, over all copies."""
    links: frozenset[str]
    """Ids cited in In-Reply-To and References."""
    thread_key: str | None
    """Outlook Thread-Index conversation key: its first 22 decoded bytes, hex."""
    list_id: str | None
    """The List-Id value inside its angle brackets, lower-cased."""
    automatic: tuple[str, ...]
    """Reasons, found in the headers or the delivery, that this is automatic mail; sorted, unique."""
    threaded: bool = False
    """It has an In-Reply-To, References or Thread-Index header (with a value, parsable or not):
    only mail without any falls back to its subject to find its conversation (SPEC §3)."""
    sent_by: frozenset[str] = frozenset()
    """Owners of Sent folders in which this message was found."""
    copy_key: str = field(default="", compare=False)
    """Fingerprint of the copy whose single-valued facts these are (ties between copies)."""

    def merge(self, other: MessageFacts) -> MessageFacts:
        """The facts of one message seen as two copies; commutative and associative.

        Sets are united; single values come from the copy with the earliest event time (then the
        smaller copy fingerprint), so the result does not depend on the order copies arrive in.
        """
        first, second = sorted((self, other), key=lambda f: (f.event_time, f.copy_key))
        return replace(
            first,
            ids=first.ids | second.ids,
            to_cc=first.to_cc | second.to_cc,
            recipients=first.recipients | second.recipients,
            links=first.links | second.links,
            thread_key=first.thread_key or second.thread_key,
            threaded=first.threaded or second.threaded,
            list_id=first.list_id or second.list_id,
            automatic=tuple(sorted(set(first.automatic) | set(second.automatic))),
            sent_by=first.sent_by | second.sent_by,
        )
