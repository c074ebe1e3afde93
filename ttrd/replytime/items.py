"""Items: one inbound message of one context, waiting for or having got a reply (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Status = Literal["replied", "awaiting", "unanswered"]
"""What a reader sees: an `open` item is awaiting, or unanswered once its window has passed."""


@dataclass(frozen=True, slots=True)
class Item:
    """One inbound message of one context waiting for, or having got, a reply (SPEC §3)."""

    conversation: str
    context: str
    inbound_message_id: str
    customer: str | None
    opened_at: datetime
    first: bool
    status: Literal["replied", "open", "unanswered"]
    """`open` items are judged against the wall clock when read: awaiting, or unanswered."""
    agent: str | None = None
    reply_message_id: str | None = None
    replied_at: datetime | None = None
    calendar_seconds: float | None = None
    business_seconds: float | None = None
