"""The storage contract on the in-memory store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.storage_contract import StoreContract
from ttrd.storage.memory import MemoryStore
from ttrd.storage.port import Store


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[Store]:
        yield MemoryStore()
