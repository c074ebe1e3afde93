"""The database schema: the only module that knows table and column names.

Times are stored as UTC epoch seconds (float): portable between SQLite and PostgreSQL, cheap to
compare and to index. Message facts are stored as one JSON document per message; only what queries
select or join on gets a column of its own. Bodies are never stored; a rejected copy keeps its raw
bytes so that an operator can see, fix and replay it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 1


class SchemaInfo(SQLModel, table=True):
    __tablename__ = "ttrd_schema"
    id: int = Field(default=1, primary_key=True)
    version: int


class MessageRow(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_subject", "subject_key", "event_ts"),)
    message_id: str = Field(primary_key=True)
    event_ts: float
    subject_key: str
    threaded: bool
    subject_link: str | None = None
    conversation: str | None = Field(default=None, index=True)
    automatic: str | None = None
    facts: str = Field(sa_column=Column(Text, nullable=False))


# Link tables are their own primary-key index on SQLite (no separate rowid b-tree): half the pages.
_NO_ROWID = {"sqlite_with_rowid": False}


class TokenRow(SQLModel, table=True):
    """What links messages into conversations: ids (own or cited) and Thread-Index keys, hashed.

    A 64-bit hash keeps the index small; two tokens colliding would join two conversations, with a
    chance of about one in 10^10 for a hundred million tokens.
    """

    __tablename__ = "message_tokens"
    __table_args__ = _NO_ROWID
    token: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    message_id: str = Field(primary_key=True)


class MessageIdRow(SQLModel, table=True):
    """Every id a message is known by (Message-ID and X-Microsoft-Original-Message-ID)."""

    __tablename__ = "message_ids"
    __table_args__ = _NO_ROWID
    alias: str = Field(primary_key=True)
    message_id: str


class CopyRow(SQLModel, table=True):
    """One observation of a message: a journal copy, a mailbox copy, an imported file."""

    __tablename__ = "copies"
    __table_args__ = _NO_ROWID
    copy_key: str = Field(primary_key=True)
    message_id: str
    source: str
    received_ts: float
    event_ts: float


class ItemRow(SQLModel, table=True):
    __tablename__ = "items"
    __table_args__ = _NO_ROWID
    conversation: str = Field(primary_key=True)
    context: str = Field(primary_key=True)
    inbound_message_id: str = Field(primary_key=True)
    customer: str | None = None
    opened_ts: float = Field(index=True)
    first: bool
    status: str
    agent: str | None = None
    reply_message_id: str | None = None
    replied_ts: float | None = None
    calendar_seconds: float | None = None
    business_seconds: float | None = None


class RejectRow(SQLModel, table=True):
    __tablename__ = "rejects"
    id: int | None = Field(default=None, primary_key=True)
    source: str
    received_ts: float
    origin: str
    problem: str
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CounterRow(SQLModel, table=True):
    __tablename__ = "counters"
    __table_args__ = _NO_ROWID
    name: str = Field(primary_key=True)
    label: str = Field(primary_key=True)
    value: int = 0


class SpoolRow(SQLModel, table=True):
    """A copy the daemon has taken (reduced to what ttrd keeps) and not yet ingested, with its delivery.

    Written before the SMTP sink's 250 (or before an IMAP folder's last seen UID moves past it) and
    removed once the pipeline has stored the message, so a crash in between loses nothing: ingesting
    a copy twice changes nothing.
    """

    __tablename__ = "spool"
    id: int | None = Field(default=None, primary_key=True)
    received_ts: float
    mail_from: str | None = None
    rcpt_to: str = Field(sa_column=Column(Text, nullable=False))
    """JSON list of envelope recipients, journal addresses already removed or decoded."""
    peer: str = ""
    """Where the copy came from, for logs (`Delivery.origin`)."""
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # Added with the IMAP poller; spools of older versions get them (ttrd.storage.spool).
    source: str = Field(default="smtp", sa_column=Column(Text, nullable=False, server_default="smtp"))
    owner: str | None = None
    folder: str | None = None
    internal_ts: float | None = None


class ImapFolderRow(SQLModel, table=True):
    """How far the IMAP poller has read one folder of one account (kept in the spool's database, so
    that the copies fetched and the UID they bring the folder to are committed together)."""

    __tablename__ = "imap_folders"
    __table_args__ = _NO_ROWID
    account: str = Field(primary_key=True)
    folder: str = Field(primary_key=True)
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    """Every message up to this UID is in the spool (or already ingested)."""
    synced_ts: float
    """When the folder was last read through to its end."""


class ReplyHistogramRow(SQLModel, table=True):
    """The reply-time tally of one series, kept up to date by every batch (ttrd.replytime.histogram)."""

    __tablename__ = "reply_histogram"
    __table_args__ = _NO_ROWID
    context: str = Field(primary_key=True)
    agent: str = Field(primary_key=True)
    """The agent id, "" when nobody known replied."""
    first: bool = Field(primary_key=True)
    clock: str = Field(primary_key=True)
    buckets: str = Field(sa_column=Column(Text, nullable=False))
    """JSON list of items per bucket (not cumulative), the last one above every bound."""
    sum_micros: int = Field(sa_column=Column(BigInteger, nullable=False))


class StateRow(SQLModel, table=True):
    """Small named values about the stored data (the bounds the histogram is tallied in)."""

    __tablename__ = "ttrd_state"
    __table_args__ = _NO_ROWID
    name: str = Field(primary_key=True)
    value: str


# The tables, for SQLAlchemy Core statements (sqlmodel types __table__ loosely).
MESSAGES = MessageRow.__table__  # type: ignore[attr-defined]
TOKENS = TokenRow.__table__  # type: ignore[attr-defined]
MESSAGE_IDS = MessageIdRow.__table__  # type: ignore[attr-defined]
COPIES = CopyRow.__table__  # type: ignore[attr-defined]
ITEMS = ItemRow.__table__  # type: ignore[attr-defined]
REJECTS = RejectRow.__table__  # type: ignore[attr-defined]
COUNTERS = CounterRow.__table__  # type: ignore[attr-defined]
SCHEMA = SchemaInfo.__table__  # type: ignore[attr-defined]
SPOOL = SpoolRow.__table__  # type: ignore[attr-defined]
IMAP_FOLDERS = ImapFolderRow.__table__  # type: ignore[attr-defined]
SPOOL_ONLY = (SPOOL, IMAP_FOLDERS)
"""Tables of the spool's database alone (the spool keeps its own counters too)."""
HISTOGRAM = ReplyHistogramRow.__table__  # type: ignore[attr-defined]
STATE = StateRow.__table__  # type: ignore[attr-defined]
