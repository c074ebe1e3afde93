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
CLOSE_RETRY_SECONDS = 0.2
"""Between two attempts to write what is left while stopping."""


class Spooler:
    def __init__(self, spool: SqlSpool) -> None:
        self.spool = spool
        # One thread: the database sees one writer, and commits stay in order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttrd-spool")
        self._queued: list[tuple[SpoolEntry, asyncio.Future[None]]] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closing = False

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

    async def close(self, timeout: float) -> None:
        """Commit what is queued, then stop; StorageError when that cannot be done within `timeout`.

        What is lost then is counters (the sessions whose messages could not be written got a 451).
        """
        try:
            async with asyncio.timeout(timeout):
                if self._committer is not None:
                    self._closing = True
                    self._wakeup.set()
                    await self._committer  # it ends after the commit it may be in
                while (self._queued or self._counts) and not await self._commit_once():
                    await asyncio.sleep(CLOSE_RETRY_SECONDS)
        except TimeoutError:
            lost = sum(self._counts.values())
            raise StorageError(
                f"the spool could not be written for {timeout:.0f} s while stopping; "
                f"{lost} count(s) of the SMTP metrics are lost (no accepted message is)"
            ) from None
        finally:
            # A commit stuck in the database (its busy timeout) must not hold the exit.
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _commit_forever(self) -> None:
        while not self._closing:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queued:
                await self._commit_once()

    async def _commit_once(self) -> bool:
        """Write what is queued; False when the spool refused it (the sessions then get a 451)."""
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
            self._counts.update(+counts)  # written with a later commit; +: no zero entries left over
            _settle(batch, error)
            return False
        _settle(batch, None)
        return True


def _settle(batch: list[tuple[SpoolEntry, asyncio.Future[None]]], error: StorageError | None) -> None:
    for _, future in batch:
        if future.done():  # the session went away meanwhile
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
