"""The metrics over the SQL store: what only a database on disk can show (a restart, snapshots)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from tests.unit.test_metrics_collector import DIRECTORY, NOW, at, fill, mail, reply_to, scrape
from ttrd.ingest.pipeline import Copy, Pipeline
from ttrd.journal.facts import Delivery
from ttrd.replytime.histogram import reply_bounds
from ttrd.storage.sql import SqlStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    filled = fill(SqlStore(f"sqlite:///{tmp_path / 'ttrd.db'}"))
    yield filled
    filled.close()


def test_a_restart_reads_the_same_values(store: SqlStore, tmp_path: Path) -> None:
    before = scrape(store)
    store.close()
    reopened = SqlStore(f"sqlite:///{tmp_path / 'ttrd.db'}")
    try:
        assert scrape(reopened) == before
    finally:
        reopened.close()


def test_the_sql_store_scrapes_as_the_memory_store_does(store: SqlStore) -> None:
    from ttrd.storage.memory import MemoryStore

    assert scrape(store) == scrape(fill(MemoryStore()))


def test_one_scrape_reads_one_committed_state(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch committed between two reads of one scrape shows in neither: the numbers agree."""
    bounds = reply_bounds(DIRECTORY)
    before = store.metrics_snapshot(bounds)
    read_counts = SqlStore._item_counts

    def commit_first(connection: Connection) -> dict[tuple[str, str], int]:
        answer = mail("rf", at(13, 14), "alice@example.com", "sam@cust.net", reply_to("qf2"))
        Pipeline(store, DIRECTORY).ingest([Copy(answer, Delivery("smtp", NOW))])
        return read_counts(connection)

    monkeypatch.setattr(SqlStore, "_item_counts", staticmethod(commit_first))
    assert store.metrics_snapshot(bounds) == before
    monkeypatch.undo()
