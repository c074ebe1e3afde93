"""The spool: messages the SMTP sink has promised to keep, waiting for the ingest worker.

The sink's `250` needs only this one durable insert; parsing and replaying happen later in the
worker, so a burst of mail costs the sink a group commit, not the whole pipeline. On SQLite the
spool is a file of its own next to the database (`ttrd.db` → `ttrd.spool.db`): SQLite has one writer
at a time, and the sink must not wait behind the worker's transactions.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update
from sqlmodel import SQLModel

from ttrd.storage.database import DriverStatement, connect, storage_errors
from ttrd.storage.models import COUNTERS, SPOOL


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    received_at: datetime
    mail_from: str | None
    rcpt_to: tuple[str, ...]
    peer: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Spooled:
    id: int
    entry: SpoolEntry


def spool_url(storage_url: str) -> str:
    """Where the spool of a database lives: a sibling file for SQLite, the same database otherwise."""
    prefix = "sqlite:///"
    if not storage_url.startswith(prefix) or storage_url == prefix + ":memory:":
        return storage_url
    path = PurePosixPath(storage_url.removeprefix(prefix))
    return prefix + str(path.with_name(f"{path.stem}.spool{path.suffix or '.db'}"))


class SqlSpool:
    def __init__(self, url: str) -> None:
        self.engine = connect(url, durable=True)
        with storage_errors("cannot open the spool", self.engine), self.engine.begin() as connection:
            SQLModel.metadata.create_all(connection, tables=[SPOOL, COUNTERS])
        dialect = self.engine.dialect
        self._insert = DriverStatement(insert(SPOOL), dialect, _COLUMNS)
        where = (COUNTERS.c.name == bindparam("name"), COUNTERS.c.label == bindparam("label"))
        self._bump = DriverStatement(
            update(COUNTERS).where(*where).values(value=COUNTERS.c.value + bindparam("add")), dialect, ()
        )
        self._first = DriverStatement(insert(COUNTERS), dialect, ("name", "label", "value"))
        self._writer: Any = None
        """The driver connection `append` keeps: a group commit is on the path of every 250."""

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with storage_errors("spool write failed", self.engine), self.engine.begin() as connection:
            yield connection

    def append(self, entries: Sequence[SpoolEntry], counts: Mapping[tuple[str, str], int]) -> None:
        """Keep these entries and add to these counters, durably, in one transaction.

        Straight through the driver: SQLAlchemy's work per call cost more than SQLite's commit.
        Call it from one thread at a time (the Spooler's).
        """
        with storage_errors("spool write failed", self.engine):
            try:
                self._write(entries, counts)
            except Exception:
                self._discard_writer()
                raise

    def _write(self, entries: Sequence[SpoolEntry], counts: Mapping[tuple[str, str], int]) -> None:
        if self._writer is None:
            self._writer = self.engine.raw_connection()
        connection = self._writer
        cursor = connection.cursor()
        if entries:
            cursor.executemany(self._insert.sql, self._insert.parameters([_row(e) for e in entries]))
        for (name, label), value in sorted(counts.items()):
            if not value:
                continue
            bump = {"name": name, "label": label, "add": value}
            cursor.execute(self._bump.sql, self._bump.parameters([bump])[0])
            if cursor.rowcount == 0:
                first = {"name": name, "label": label, "value": value}
                cursor.execute(self._first.sql, self._first.parameters([first])[0])
        cursor.close()
        connection.commit()

    def _discard_writer(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection may fail to roll back too
            self._writer.rollback()
            self._writer.close()
        self._writer = None

    def take(self, limit: int) -> list[Spooled]:
        """The oldest entries, at most `limit`."""
        with self._transaction() as connection:
            rows = connection.execute(select(SPOOL).order_by(SPOOL.c.id).limit(limit))
            return [Spooled(row.id, _entry(row)) for row in rows]

    def remove(self, ids: Sequence[int]) -> None:
        with self._transaction() as connection:
            connection.execute(delete(SPOOL).where(SPOOL.c.id.in_(list(ids))))

    def pending(self) -> int:
        with self._transaction() as connection:
            return int(connection.execute(select(func.count()).select_from(SPOOL)).scalar_one())

    def counters(self) -> dict[tuple[str, str], int]:
        with self._transaction() as connection:
            return {(row.name, row.label): row.value for row in connection.execute(select(COUNTERS))}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.engine.dispose()


_COLUMNS = ("received_ts", "mail_from", "rcpt_to", "peer", "data")


def _row(entry: SpoolEntry) -> dict[str, Any]:
    return {
        "received_ts": entry.received_at.timestamp(),
        "mail_from": entry.mail_from,
        "rcpt_to": json.dumps(list(entry.rcpt_to)),
        "peer": entry.peer,
        "data": entry.data,
    }


def _entry(row: Any) -> SpoolEntry:
    return SpoolEntry(
        datetime.fromtimestamp(row.received_ts, UTC),
        row.mail_from,
        tuple(json.loads(row.rcpt_to)),
        row.peer,
        row.data,
    )
