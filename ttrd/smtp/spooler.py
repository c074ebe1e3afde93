"""Group commit: many SMTP sessions share one durable spool transaction (one fsync).

A session hands its message to `put` and waits. The committer writes everything queued as soon as
it is idle, in one transaction, then wakes every waiting session: under load many messages share a
commit, and a lone message is written at once instead of waiting for a timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from ttrd.errors import StorageError
from ttrd.storage.spool import SpoolEntry, SqlSpool

log = logging.getLogger(__name__)

ACCEPTED = ("smtp_messages", "accepted")


class Spooler:
    def __init__(self, spool: SqlSpool) -> None:
        self.spool = spool
        # One thread: the database sees one writer, and commits stay in order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttrd-spool")
        self._queued: list[tuple[SpoolEntry, asyncio.Future[None]]] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._committer = asyncio.get_running_loop().create_task(self._commit_forever(), name="ttrd-spooler")

    async def put(self, entry: SpoolEntry) -> None:
        """Return once `entry` is durable; raise StorageError when it cannot be stored."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((entry, future))
        self._wakeup.set()
        await future

    def count(self, name: str, label: str) -> None:
        """Add one to a persistent counter, written with the next commit."""
        self._counts[(name, label)] += 1

    def counters(self) -> dict[tuple[str, str], int]:
        """Counters as stored, plus what the next commit will add."""
        stored = Counter(self.spool.counters())
        stored.update(self._counts)
        return dict(stored)

    async def ping(self) -> None:
        """Prove that the spool database answers (for the watchdog)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self.spool.pending)

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        if self._committer is not None:
            self._wakeup.set()
            while self._queued or self._counts:
                await self._commit_once()
            self._committer.cancel()
        self._executor.shutdown(wait=True)

    async def _commit_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queued:
                await self._commit_once()

    async def _commit_once(self) -> None:
        batch, self._queued = self._queued, []
        counts, self._counts = self._counts, Counter()
        counts[ACCEPTED] += len(batch)
        entries = [entry for entry, _ in batch]
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self.spool.append, entries, counts
            )
        except StorageError as error:
            log.error("spool write failed for %d message(s): %s", len(batch), error)
            counts[ACCEPTED] -= len(batch)
            self._counts.update(counts)  # written with a later commit
            _settle(batch, error)
        else:
            _settle(batch, None)


def _settle(batch: list[tuple[SpoolEntry, asyncio.Future[None]]], error: StorageError | None) -> None:
    for _, future in batch:
        if future.done():  # the session went away meanwhile
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
