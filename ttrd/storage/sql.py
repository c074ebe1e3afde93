"""The Store on SQLAlchemy Core over the sqlmodel tables: SQLite (WAL) now, PostgreSQL by URL.

Bulk statements only (executemany, `IN` lists in chunks): an import touches thousands of rows per
batch, and one round trip per row would cost more than parsing the mail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel

from ttrd.errors import SchemaError
from ttrd.replytime.batch import BatchChanges
from ttrd.replytime.conversations import normalise_subject, tokens
from ttrd.replytime.histogram import Series, Tally, bounds_key, tally
from ttrd.replytime.history import CopyRecord, StoredMessage, SubjectEntry
from ttrd.replytime.items import Item
from ttrd.storage import models
from ttrd.storage.codec import dump_facts, load_facts
from ttrd.storage.database import DriverStatement, connect, safe_url, storage_errors
from ttrd.storage.models import (
    COPIES,
    COUNTERS,
    HISTOGRAM,
    ITEMS,
    MESSAGE_IDS,
    MESSAGES,
    REJECTS,
    SCHEMA,
    SPOOL_ONLY,
    STATE,
    TOKENS,
)
from ttrd.storage.port import MetricsSnapshot, Reject

CHUNK = 500
"""Bound parameters per `IN` list: far below every backend's limit."""


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _time(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _chunks(values: Collection[str]) -> Iterator[list[str]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


class SqlStore:
    """A Store on one database URL. `durable=True` makes every commit survive a power cut."""

    def __init__(self, url: str, *, durable: bool = False) -> None:
        self.url = url
        self.engine: Engine = connect(url, durable=durable)
        with storage_errors(f"cannot open the database {safe_url(url)}", self.engine):
            self._check_schema()

    def _check_schema(self) -> None:
        with self.engine.begin() as connection:
            # The spool has a database of its own on SQLite (ttrd.storage.spool says why).
            SQLModel.metadata.create_all(
                connection, tables=[t for t in SQLModel.metadata.sorted_tables if t not in SPOOL_ONLY]
            )
            version = connection.execute(select(SCHEMA.c.version)).scalar()
            if version is None:
                connection.execute(insert(SCHEMA).values(id=1, version=models.SCHEMA_VERSION))
            elif version > models.SCHEMA_VERSION:
                raise SchemaError(
                    f"the database {safe_url(self.url)} has schema version {version}, newer than this "
                    f"ttrd understands ({models.SCHEMA_VERSION}); upgrade ttrd"
                )

    @contextmanager
    def batch(self) -> Iterator[SqlBatch]:
        with storage_errors("database write failed", self.engine), self.engine.begin() as connection:
            yield SqlBatch(connection)

    def _read(self, statement: Any) -> list[Any]:
        with storage_errors("database read failed", self.engine), self.engine.connect() as connection:
            return list(connection.execute(statement))

    def items(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Item]:
        conditions: list[ColumnElement[bool]] = []
        if since is not None:
            conditions.append(ITEMS.c.opened_ts >= since.timestamp())
        if until is not None:
            conditions.append(ITEMS.c.opened_ts < until.timestamp())
        statement = (
            select(ITEMS)
            .where(*conditions)
            .order_by(ITEMS.c.opened_ts, ITEMS.c.context, ITEMS.c.inbound_message_id)
        )
        return (_item(row) for row in self._read(statement))

    def counters(self) -> dict[tuple[str, str], int]:
        return {(name, label): value for name, label, value in self._read(select(COUNTERS))}

    def rejects(self) -> list[Reject]:
        return [
            Reject(row.source, datetime.fromtimestamp(row.received_ts, UTC), row.origin, row.problem, row.raw)
            for row in self._read(select(REJECTS).order_by(REJECTS.c.id))
        ]

    def close(self) -> None:
        self.engine.dispose()

    # --- reads for metrics ---

    def metrics_snapshot(self, bounds: Sequence[float]) -> MetricsSnapshot:
        with storage_errors("database read failed", self.engine), self._snapshot() as connection:
            stored = _stored_histograms(connection, bounds)
            return MetricsSnapshot(
                histograms=stored if stored is not None else self._reply_histograms(connection, bounds),
                item_counts=self._item_counts(connection),
                unreplied=_unreplied(connection),
                excluded=self._excluded(connection),
            )

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """A connection whose reads all see one committed state, so that numbers read apart agree."""
        with self.engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # pysqlite runs a SELECT outside any transaction, each on the latest commit; an explicit
                # BEGIN holds one snapshot until the connection goes back to the pool (and rolls back).
                connection.exec_driver_sql("BEGIN")
            else:
                connection.execution_options(isolation_level="REPEATABLE READ")
            yield connection

    @staticmethod
    def _reply_histograms(
        connection: Connection, bounds: Sequence[float]
    ) -> dict[tuple[str, str | None, bool, str], tuple[list[int], float]]:
        # One pass over the replied items, aggregated in the database: a scrape reads one row per
        # series instead of one per item.
        clocks = {"calendar": ITEMS.c.calendar_seconds, "business": ITEMS.c.business_seconds}
        keys = (ITEMS.c.context, ITEMS.c.agent, ITEMS.c.first)
        aggregates: list[Any] = [func.count()]
        for column in clocks.values():
            aggregates.append(func.sum(column))
            aggregates.extend(func.count().filter(column <= bound) for bound in bounds)
        statement = select(*keys, *aggregates).where(ITEMS.c.status == "replied").group_by(*keys)
        width = len(bounds) + 1
        histograms: dict[tuple[str, str | None, bool, str], tuple[list[int], float]] = {}
        for context, agent, first, count, *values in connection.execute(statement):
            for index, clock in enumerate(clocks):
                total, *cumulative = values[index * width : (index + 1) * width]
                histograms[(context, agent, bool(first), clock)] = ([*cumulative, count], float(total))
        return histograms

    @staticmethod
    def _item_counts(connection: Connection) -> dict[tuple[str, str], int]:
        statement = select(ITEMS.c.context, ITEMS.c.status, func.count()).group_by(
            ITEMS.c.context, ITEMS.c.status
        )
        return {(context, status): count for context, status, count in connection.execute(statement)}

    @staticmethod
    def _excluded(connection: Connection) -> dict[str, int]:
        statement = (
            select(MESSAGES.c.automatic, func.count())
            .where(MESSAGES.c.automatic.is_not(None))
            .group_by(MESSAGES.c.automatic)
        )
        return {str(reason): int(count) for reason, count in connection.execute(statement)}


_BOUNDS = "reply_histogram_bounds"


def _series_order(entry: tuple[Series, Tally]) -> tuple[str, str, bool, str]:
    context, agent, first, clock = entry[0]
    return (context, agent or "", first, clock)


def _histogram_bounds(connection: Connection) -> str | None:
    value = connection.execute(select(STATE.c.value).where(STATE.c.name == _BOUNDS)).scalar()
    return None if value is None else str(value)


def _stored_histograms(
    connection: Connection, bounds: Sequence[float]
) -> dict[Series, tuple[list[int], float]] | None:
    """The kept tallies as cumulative counts and sums, or None when they are in other bounds."""
    if _histogram_bounds(connection) != bounds_key(bounds):
        return None
    return {
        (context, agent or None, bool(first), clock): (
            list(accumulate(json.loads(buckets))),
            total / 1_000_000,
        )
        for context, agent, first, clock, buckets, total in connection.execute(select(HISTOGRAM))
    }


def _unreplied(connection: Connection) -> list[Item]:
    """The items without a reply, with only what the metrics judge them by (no customer)."""
    columns = (ITEMS.c.conversation, ITEMS.c.context, ITEMS.c.inbound_message_id, ITEMS.c.opened_ts,
               ITEMS.c.first, ITEMS.c.status)  # fmt: skip
    return [
        Item(conversation, context, inbound, None, datetime.fromtimestamp(opened, UTC), bool(first), status)
        for conversation, context, inbound, opened, first, status in connection.execute(
            select(*columns).where(ITEMS.c.status != "replied")
        )
    ]


def _item(row: Any) -> Item:
    opened = _time(row.opened_ts)
    assert opened is not None
    return Item(
        conversation=row.conversation,
        context=row.context,
        inbound_message_id=row.inbound_message_id,
        customer=row.customer,
        opened_at=opened,
        first=row.first,
        status=row.status,
        agent=row.agent,
        reply_message_id=row.reply_message_id,
        replied_at=_time(row.replied_ts),
        calendar_seconds=row.calendar_seconds,
        business_seconds=row.business_seconds,
    )


def _stored(row: Any) -> StoredMessage:
    return StoredMessage(load_facts(row.facts), row.conversation, row.subject_link, row.automatic)


class SqlBatch:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def _rows(self, statement: Any) -> list[Any]:
        return list(self.connection.execute(statement))

    def _insert(self, table: Any, rows: list[dict[str, Any]]) -> None:
        """INSERT many rows straight through the driver's executemany.

        SQLAlchemy's executemany processes every parameter of every row in Python, which costs
        more than the database does for an import; the statement is still compiled by SQLAlchemy
        for whichever dialect this is, so no driver's parameter style is assumed.
        """
        if not rows:
            return
        statement = DriverStatement(insert(table), self.connection.dialect, list(rows[0]))
        cursor = self.connection.connection.cursor()
        try:
            cursor.executemany(statement.sql, statement.parameters(rows))
        finally:
            cursor.close()

    def known_copies(self, copy_keys: Collection[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(copy_keys):
            found.update(
                self.connection.scalars(select(COPIES.c.copy_key).where(COPIES.c.copy_key.in_(chunk)))
            )
        return found

    def _add_copies(self, copies: Sequence[CopyRecord]) -> None:
        self._insert(
            COPIES,
            [
                {
                    "copy_key": c.copy_key,
                    "message_id": c.message_id,
                    "source": c.source,
                    "received_ts": c.received_at.timestamp(),
                    "event_ts": c.event_time.timestamp(),
                }
                for c in copies
            ],
        )

    def add_rejects(self, rejects: Sequence[Reject]) -> None:
        self._insert(
            REJECTS,
            [
                {
                    "source": r.source,
                    "received_ts": r.received_at.timestamp(),
                    "origin": r.origin,
                    "problem": r.problem,
                    "raw": r.raw,
                }
                for r in rejects
            ],
        )

    def messages_by_ids(self, ids: Collection[str]) -> list[StoredMessage]:
        owners: set[str] = set()
        for chunk in _chunks(ids):
            owners.update(
                self.connection.scalars(
                    select(MESSAGE_IDS.c.message_id).where(MESSAGE_IDS.c.alias.in_(chunk))
                )
            )
        return self.messages(owners)

    def messages(self, message_ids: Collection[str]) -> list[StoredMessage]:
        return self._messages_where(MESSAGES.c.message_id, message_ids)

    def _messages_where(self, column: Any, values: Collection[str]) -> list[StoredMessage]:
        found: list[StoredMessage] = []
        for chunk in _chunks(values):
            found.extend(_stored(row) for row in self._rows(select(MESSAGES).where(column.in_(chunk))))
        return found

    def conversations_with_tokens(self, tokens: Collection[str]) -> set[str]:
        found: set[str] = set()
        keys = sorted({_token_key(token) for token in tokens})
        for start in range(0, len(keys), CHUNK):
            statement = (
                select(MESSAGES.c.conversation)
                .join(TOKENS, TOKENS.c.message_id == MESSAGES.c.message_id)
                .where(TOKENS.c.token.in_(keys[start : start + CHUNK]), MESSAGES.c.conversation.is_not(None))
                .distinct()
            )
            found.update(self.connection.scalars(statement))
        return found

    def subject_entries(
        self, subject_keys: Collection[str], since: datetime, until: datetime
    ) -> list[SubjectEntry]:
        found: list[SubjectEntry] = []
        columns = (
            MESSAGES.c.message_id,
            MESSAGES.c.event_ts,
            MESSAGES.c.subject_key,
            MESSAGES.c.threaded,
            MESSAGES.c.subject_link,
            MESSAGES.c.conversation,
        )
        for chunk in _chunks(subject_keys):
            statement = select(*columns).where(
                MESSAGES.c.subject_key.in_(chunk),
                MESSAGES.c.event_ts >= since.timestamp(),
                MESSAGES.c.event_ts <= until.timestamp(),
            )
            found.extend(
                SubjectEntry(row[0], datetime.fromtimestamp(row[1], UTC), *row[2:])
                for row in self._rows(statement)
            )
        return found

    def messages_in(self, conversations: Collection[str]) -> list[StoredMessage]:
        return self._messages_where(MESSAGES.c.conversation, conversations)

    def _delete_messages(self, messages: Sequence[StoredMessage]) -> None:
        """Remove these messages' rows, with the tokens and ids that found them."""
        # Link rows are found from the facts, so the link tables need no index by message id.
        for message in messages:
            facts = message.facts
            keys = [_token_key(t) for t in tokens(facts.ids, facts.links, facts.thread_key)]
            self.connection.execute(delete(MESSAGES).where(MESSAGES.c.message_id == facts.message_id))
            self.connection.execute(
                delete(TOKENS).where(TOKENS.c.token.in_(keys), TOKENS.c.message_id == facts.message_id)
            )
            self.connection.execute(delete(MESSAGE_IDS).where(MESSAGE_IDS.c.alias.in_(sorted(facts.ids))))

    def _insert_messages(self, messages: Sequence[StoredMessage]) -> None:
        if not messages:
            return
        self._insert(MESSAGES, [_message_row(message) for message in messages])
        self._insert(
            TOKENS,
            [
                {"token": key, "message_id": m.facts.message_id}
                for m in messages
                for key in {_token_key(t) for t in tokens(m.facts.ids, m.facts.links, m.facts.thread_key)}
            ],
        )
        self._insert(
            MESSAGE_IDS,
            [{"alias": alias, "message_id": m.facts.message_id} for m in messages for alias in m.facts.ids],
        )

    def _update_messages(self, messages: Sequence[StoredMessage]) -> None:
        if not messages:
            return
        statement = (
            update(MESSAGES)
            .where(MESSAGES.c.message_id == bindparam("key"))
            .values(
                conversation=bindparam("conversation"),
                subject_link=bindparam("link"),
                automatic=bindparam("reason"),
            )
        )
        self.connection.execute(
            statement,
            [
                {
                    "key": m.facts.message_id,
                    "conversation": m.conversation,
                    "link": m.subject_link,
                    "reason": m.automatic,
                }
                for m in messages
            ],
        )

    def items_in(self, conversations: Collection[str]) -> list[Item]:
        found: list[Item] = []
        for chunk in _chunks(conversations):
            found.extend(
                _item(row) for row in self._rows(select(ITEMS).where(ITEMS.c.conversation.in_(chunk)))
            )
        return found

    def apply(self, changes: BatchChanges) -> None:
        self._add_copies(changes.copies)
        self._delete_messages(changes.deleted)
        self._insert_messages(changes.inserted)
        self._update_messages(changes.updated)
        for chunk in _chunks(changes.conversations):
            self.connection.execute(delete(ITEMS).where(ITEMS.c.conversation.in_(chunk)))
        self._insert(ITEMS, [_item_row(item) for item in changes.items])
        self._add_to_histogram(changes.histogram)

    def add_to_counters(self, counts: Mapping[tuple[str, str], int]) -> None:
        for (name, label), value in sorted(counts.items()):
            if not value:
                continue
            updated = self.connection.execute(
                update(COUNTERS)
                .where(COUNTERS.c.name == name, COUNTERS.c.label == label)
                .values(value=COUNTERS.c.value + value)
            )
            if updated.rowcount == 0:
                self.connection.execute(insert(COUNTERS).values(name=name, label=label, value=value))

    def histogram_bounds(self) -> str | None:
        return _histogram_bounds(self.connection)

    def rebuild_histogram(self, bounds: tuple[float, ...]) -> None:
        replied = (
            _item(row) for row in self.connection.execute(select(ITEMS).where(ITEMS.c.status == "replied"))
        )
        self.connection.execute(delete(HISTOGRAM))
        self._add_to_histogram(tally(replied, bounds))
        self.connection.execute(delete(STATE).where(STATE.c.name == _BOUNDS))
        self.connection.execute(insert(STATE).values(name=_BOUNDS, value=bounds_key(bounds)))

    def _add_to_histogram(self, changes: Mapping[Series, Tally]) -> None:
        for (context, agent, first, clock), change in sorted(changes.items(), key=_series_order):
            key = (
                HISTOGRAM.c.context == context,
                HISTOGRAM.c.agent == (agent or ""),
                HISTOGRAM.c.first == first,
                HISTOGRAM.c.clock == clock,
            )
            row = self.connection.execute(
                select(HISTOGRAM.c.buckets, HISTOGRAM.c.sum_micros).where(*key)
            ).first()
            total = change if row is None else change.plus(Tally(tuple(json.loads(row[0])), row[1]))
            if row is not None:
                self.connection.execute(delete(HISTOGRAM).where(*key))
            if total.count:
                self.connection.execute(
                    insert(HISTOGRAM).values(
                        context=context, agent=agent or "", first=first, clock=clock,
                        buckets=json.dumps(total.buckets), sum_micros=total.sum_micros,
                    )
                )  # fmt: skip


def _token_key(token: str) -> int:
    """A token as a signed 64-bit integer (models.TokenRow says why)."""
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "big", signed=True)


def _message_row(message: StoredMessage) -> dict[str, Any]:
    facts = message.facts
    return {
        "message_id": facts.message_id,
        "event_ts": facts.event_time.timestamp(),
        "subject_key": normalise_subject(facts.subject),
        "threaded": facts.threaded,
        "subject_link": message.subject_link,
        "conversation": message.conversation,
        "automatic": message.automatic,
        "facts": dump_facts(facts),
    }


def _item_row(item: Item) -> dict[str, Any]:
    return {
        "conversation": item.conversation,
        "context": item.context,
        "inbound_message_id": item.inbound_message_id,
        "customer": item.customer,
        "opened_ts": item.opened_at.timestamp(),
        "first": item.first,
        "status": item.status,
        "agent": item.agent,
        "reply_message_id": item.reply_message_id,
        "replied_ts": _ts(item.replied_at),
        "calendar_seconds": item.calendar_seconds,
        "business_seconds": item.business_seconds,
    }
