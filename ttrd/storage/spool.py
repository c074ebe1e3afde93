"""The spool: copies the daemon has promised to keep, waiting for the ingest worker.

The SMTP sink's `250` needs only this one durable insert; parsing and replaying happen later in the
worker, so a burst of mail costs the sink a group commit, not the whole pipeline. The IMAP poller
writes the copies it fetched together with how far it has read each folder (`FolderState`), so a
crash fetches again rather than loses. On SQLite the spool is a file of its own next to the database
(`ttrd.db` → `ttrd.spool.db`): SQLite has one writer at a time, and the sink must not wait behind the
worker's transactions.
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

from sqlalchemy import Connection, bindparam, delete, func, insert, inspect, select, update
from sqlmodel import SQLModel

from ttrd.journal.facts import Delivery
from ttrd.storage.database import DriverStatement, connect, storage_errors
from ttrd.storage.models import COUNTERS, IMAP_FOLDERS, SPOOL


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    delivery: Delivery
    data: bytes
    """The copy, reduced to what ttrd keeps (`reduce_message`)."""


@dataclass(frozen=True, slots=True)
class FolderState:
    """How far the IMAP poller has read one folder: every UID up to `last_uid` is spooled."""

    account: str
    folder: str
    uidvalidity: int
    last_uid: int
    synced_at: datetime


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
            SQLModel.metadata.create_all(connection, tables=[SPOOL, COUNTERS, IMAP_FOLDERS])
            _add_missing_columns(connection, SPOOL)
        dialect = self.engine.dialect
        self._insert = DriverStatement(insert(SPOOL), dialect, _COLUMNS)
        self._forget_folder = DriverStatement(
            delete(IMAP_FOLDERS).where(
                IMAP_FOLDERS.c.account == bindparam("account"), IMAP_FOLDERS.c.folder == bindparam("folder")
            ),
            dialect,
            (),
        )
        self._remember_folder = DriverStatement(insert(IMAP_FOLDERS), dialect, _FOLDER_COLUMNS)
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

    def append(
        self,
        entries: Sequence[SpoolEntry],
        counts: Mapping[tuple[str, str], int],
        folders: Sequence[FolderState] = (),
    ) -> None:
        """Keep these entries, add to these counters and record these folder states, durably, at once.

        Straight through the driver: SQLAlchemy's work per call cost more than SQLite's commit.
        Call it from one thread at a time (the Spooler's).
        """
        with storage_errors("spool write failed", self.engine):
            try:
                self._write(entries, counts, folders)
            except Exception:
                self._discard_writer()
                raise

    def _write(
        self,
        entries: Sequence[SpoolEntry],
        counts: Mapping[tuple[str, str], int],
        folders: Sequence[FolderState],
    ) -> None:
        if self._writer is None:
            self._writer = self.engine.raw_connection()
        connection = self._writer
        cursor = connection.cursor()
        if entries:
            cursor.executemany(self._insert.sql, self._insert.parameters([_row(e) for e in entries]))
        for state in folders:
            key = {"account": state.account, "folder": state.folder}
            cursor.execute(self._forget_folder.sql, self._forget_folder.parameters([key])[0])
            cursor.execute(
                self._remember_folder.sql, self._remember_folder.parameters([_folder_row(state)])[0]
            )
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

    def folders(self) -> list[FolderState]:
        """How far the IMAP poller has read every folder it has read."""
        with self._transaction() as connection:
            return [
                FolderState(row.account, row.folder, row.uidvalidity, row.last_uid, _time(row.synced_ts))
                for row in connection.execute(select(IMAP_FOLDERS).order_by(IMAP_FOLDERS.c.account))
            ]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.engine.dispose()


_COLUMNS = ("received_ts", "mail_from", "rcpt_to", "peer", "data", "source", "owner", "folder", "internal_ts")
_FOLDER_COLUMNS = ("account", "folder", "uidvalidity", "last_uid", "synced_ts")


def _add_missing_columns(connection: Connection, table: Any) -> None:
    """Columns a newer ttrd added to the spool, added to a spool an older ttrd made (all nullable)."""
    present = {column["name"] for column in inspect(connection).get_columns(table.name)}
    for column in table.columns:
        if column.name not in present:
            kind = column.type.compile(dialect=connection.dialect)
            default = f" DEFAULT '{column.server_default.arg}'" if column.server_default is not None else ""
            connection.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{default}")


def _row(entry: SpoolEntry) -> dict[str, Any]:
    delivery = entry.delivery
    return {
        "received_ts": delivery.received_at.timestamp(),
        "mail_from": delivery.mail_from,
        "rcpt_to": json.dumps(sorted(delivery.rcpt_to)),
        "peer": delivery.origin,
        "data": entry.data,
        "source": delivery.source,
        "owner": delivery.owner,
        "folder": delivery.folder,
        "internal_ts": None if delivery.internal_date is None else delivery.internal_date.timestamp(),
    }


def _entry(row: Any) -> SpoolEntry:
    delivery = Delivery(
        row.source,
        _time(row.received_ts),
        mail_from=row.mail_from,
        rcpt_to=frozenset(json.loads(row.rcpt_to)),
        internal_date=None if row.internal_ts is None else _time(row.internal_ts),
        owner=row.owner,
        folder=row.folder,
        origin=row.peer,
    )
    return SpoolEntry(delivery, row.data)


def _folder_row(state: FolderState) -> dict[str, Any]:
    return {
        "account": state.account,
        "folder": state.folder,
        "uidvalidity": state.uidvalidity,
        "last_uid": state.last_uid,
        "synced_ts": state.synced_at.timestamp(),
    }


def _time(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
