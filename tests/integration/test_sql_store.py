"""The storage contract on the SQL store (SQLite in a file; PostgreSQL joins when it is a backend)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage_contract import StoreContract
from ttrd.errors import StorageError
from ttrd.storage.port import Store
from ttrd.storage.sql import SqlStore


class TestSqlStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = SqlStore(f"sqlite:///{tmp_path / 'ttrd.db'}")
        yield store
        store.close()


def test_a_url_whose_driver_is_not_installed_is_a_storage_error_naming_it() -> None:
    with pytest.raises(StorageError, match=r"driver is not installed.*No module named"):
        SqlStore("postgresql://ttrd:secret@127.0.0.1/ttrd")


def test_the_password_of_a_url_never_shows_in_an_error() -> None:
    with pytest.raises(StorageError) as raised:
        SqlStore("postgresql://ttrd:secret@127.0.0.1/ttrd")
    assert "secret" not in str(raised.value)
