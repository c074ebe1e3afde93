"""Arrival order never changes the items, on SQLite too (the memory store runs the large budget)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_order_independence import Story, check_order_independence, stories
from ttrd.storage.port import Store
from ttrd.storage.sql import SqlStore


@contextmanager
def sqlite_store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as directory:
        store = SqlStore(f"sqlite:///{Path(directory) / 'ttrd.db'}")
        try:
            yield store
        finally:
            store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(story=stories(), data=st.data())
def test_arrival_order_and_batching_do_not_change_items_on_sqlite(story: Story, data: st.DataObject) -> None:
    check_order_independence(story, data, sqlite_store)
