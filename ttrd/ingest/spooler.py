"""Group commit: every SMTP session and IMAP poller shares one durable spool transaction (one fsync).

A session hands its message to `put` (a poller its fetched copies and folder states to `put_many`)
and waits. The committer writes everything queued as soon as it is idle, in one transaction, then
wakes every waiting caller: under load many jobs share a commit, and a lone message is written at
once instead of waiting for a timer. A job's counters are written with it, or not at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ttrd.errors import StorageError
from ttrd.storage.spool import FolderState, SpoolEntry, SqlSpool

log = logging.getLogger(__name__)

ACCEPTED = ("smtp_messages", "accepted")
CLOSE_RETRY_SECONDS = 0.2
"""Between two attempts to write what is left while stopping."""


@dataclass(frozen=True, slots=True)
class _Job:
    entries: Sequence[SpoolEntry]
    folders: Sequence[FolderState]
    counts: Mapping[tuple[str, str], int]
    done: asyncio.Future[None]


class Spooler:
    def __init__(self, spool: SqlSpool) -> None:
        self.spool = spool
        # One thread: the database sees one writer, and commits stay in order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ttrd-spool")
        self._queued: list[_Job] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._committer = asyncio.get_running_loop().create_task(self._commit_forever(), name="ttrd-spooler")

    async def put(self, entry: SpoolEntry) -> None:
        """Return once `entry` is durable (and counted as accepted); StorageError when it cannot be."""
        await self.put_many([entry], counts={ACCEPTED: 1})

    async def put_many(
        self,
        entries: Sequence[SpoolEntry],
        folders: Sequence[FolderState] = (),
        counts: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """Return once the entries, folder states and counters are durable together; else StorageError."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append(_Job(entries, folders, counts or {}, done))
        self._wakeup.set()
        await done

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

        What is lost then is counters (the callers whose copies could not be written were told so).
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
        """Write what is queued; False when the spool refused it (the callers get the StorageError)."""
        jobs, self._queued = self._queued, []
        pending, self._counts = self._counts, Counter()
        counts = pending.copy()
        for job in jobs:
            counts.update(job.counts)
        entries = [entry for job in jobs for entry in job.entries]
        folders = [state for job in jobs for state in job.folders]
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self.spool.append, entries, counts, folders
            )
        except StorageError as error:
            log.error("spool write failed for %d copies: %s", len(entries), error)
            self._counts.update(pending)  # written with a later commit
            _settle(jobs, error)
            return False
        _settle(jobs, None)
        return True


def _settle(jobs: list[_Job], error: StorageError | None) -> None:
    for job in jobs:
        if job.done.done():  # the caller went away meanwhile
            continue
        if error is None:
            job.done.set_result(None)
        else:
            job.done.set_exception(error)
