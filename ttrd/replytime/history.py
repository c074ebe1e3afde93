"""What the reply-time rules know of the messages already stored, and how they ask for it.

`History` is the read side of storage as the rules see it: a handful of queries, each answering with
plain values. The storage adapters implement it (SQL, in memory); the rules never know which. It is a
port in the hexagonal sense: the rules decide what to read, in the order their decisions need it
(which stored messages a batch merges with, then which subject links move, then which conversations
that touches), and return what to write, so no adapter holds a decision.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ttrd.journal.facts import MessageFacts, Source
from ttrd.replytime.items import Item


@dataclass(frozen=True, slots=True)
class StoredMessage:
    facts: MessageFacts
    conversation: str | None = None
    subject_link: str | None = None
    """The message this one joins by subject (SPEC §3 rule 3), when it has no threading headers."""
    automatic: str | None = None
    """Why the configuration excludes it as automatic mail, as of the last time it was replayed."""


@dataclass(frozen=True, slots=True)
class SubjectEntry:
    """What the subject fallback needs to know of a stored message before reading its facts."""

    message_id: str
    event_time: datetime
    subject_key: str
    threaded: bool
    subject_link: str | None
    conversation: str | None


@dataclass(frozen=True, slots=True)
class CopyRecord:
    """One observation of a message: which copy, how it came, when."""

    copy_key: str
    message_id: str
    source: Source
    received_at: datetime
    event_time: datetime


class History(Protocol):
    """The stored messages and items, as one consistent state (one transaction)."""

    def messages_by_ids(self, ids: Collection[str]) -> list[StoredMessage]:
        """Messages known by any of these ids (Message-ID or an alternative id)."""
        ...

    def messages(self, message_ids: Collection[str]) -> list[StoredMessage]:
        """Messages by their canonical ids."""
        ...

    def subject_entries(
        self, subject_keys: Collection[str], since: datetime, until: datetime
    ) -> list[SubjectEntry]:
        """Messages with these normalised subjects and event times in [since, until]."""
        ...

    def conversations_with_tokens(self, tokens: Collection[str]) -> set[str]:
        """Conversations holding a message with any of these link tokens (`conversations.tokens`)."""
        ...

    def messages_in(self, conversations: Collection[str]) -> list[StoredMessage]: ...

    def items_in(self, conversations: Collection[str]) -> list[Item]: ...
