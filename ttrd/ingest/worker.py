"""The ingest worker: spooled SMTP messages through the pipeline, in a process of its own.

The SMTP sink only spools; this process parses and replays, on the other core. A batch is removed
from the spool after the pipeline has committed it; a crash in between replays the batch, which
changes nothing (a copy seen twice is a duplicate). A message that cannot be processed is set aside
by the pipeline; whatever else fails is logged and the batch tried again: the process goes on. It
stops when asked, once the spool is empty, a deadline has passed or a batch could not be stored,
whichever comes first: what is left waits in the spool for the next start.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from types import FrameType

from ttrd import systemd
from ttrd.config import Settings
from ttrd.errors import StorageError
from ttrd.ingest.pipeline import Copy, Pipeline
from ttrd.logs import configure_logging
from ttrd.storage.spool import Spooled, SqlSpool, spool_url
from ttrd.storage.sql import SqlStore

log = logging.getLogger(__name__)

BATCH = 500
IDLE_POLL = 0.02
"""Seconds until the next look at an empty spool, right after work: mail that comes in a stream is
measured within a few tens of milliseconds."""
IDLE_POLL_LONGEST = 0.5
"""The wait doubles while the spool stays empty, up to this: an idle daemon's worker costs a couple of
spool reads a second, not fifty (bench/imap_sync.py measured 95 CPU s an hour at 20 ms)."""
RETRY = 1.0
WORKER_NICENESS = 10
FINISH_SECONDS = 20.0
"""How long a stopping worker keeps ingesting what is spooled."""


@dataclass
class _Stop:
    requested_at: float | None = None

    def request(self, signum: int, frame: FrameType | None) -> None:
        del signum, frame
        if self.requested_at is None:
            self.requested_at = time.monotonic()

    def due(self, spool_empty: bool) -> bool:
        if self.requested_at is None:
            return False
        return spool_empty or time.monotonic() - self.requested_at > FINISH_SECONDS


def run_worker(settings: Settings, daemon_pid: int) -> None:
    """The worker process's main function (SIGTERM: finish the spool, then exit).

    It also stops when the daemon is gone (killed): its parent is then no longer `daemon_pid`,
    which is passed in because the daemon may die before this process has even started.
    """
    configure_logging()
    systemd.unset_environment()  # only the daemon speaks to systemd (NotifyAccess=main)
    # Parsing and replaying can wait, SMTP sessions cannot: under a burst the spool grows on disk,
    # and the worker catches up with the CPU the daemon and the mail server leave over.
    try:
        os.nice(WORKER_NICENESS)
    except OSError as error:
        log.warning("cannot lower the ingest worker's priority: %s", error)
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop.request)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when the worker stops
    store = SqlStore(settings.storage.url, durable=True)
    spool = SqlSpool(spool_url(settings.storage.url))
    pipeline = Pipeline(store, settings.directory)
    idle = IDLE_POLL
    try:
        while True:
            if os.getppid() != daemon_pid:
                log.error("the daemon is gone; the ingest worker stops (the spool keeps the rest)")
                return
            taken = _take(spool)
            if stop.due(spool_empty=taken == []):
                return
            if taken == []:
                time.sleep(idle)
                idle = min(idle * 2, IDLE_POLL_LONGEST)
                continue
            idle = IDLE_POLL
            if taken is None or not _ingest(pipeline, spool, taken):
                if stop.requested_at is not None:
                    return  # retrying would only hold up the stop; the spool keeps the rest
                time.sleep(RETRY)
    finally:
        store.close()
        spool.close()


def _take(spool: SqlSpool) -> list[Spooled] | None:
    """The next batch; None when the spool cannot be read."""
    try:
        return spool.take(BATCH)
    except StorageError as error:
        log.error("cannot read the spool: %s", error)
        return None


def _ingest(pipeline: Pipeline, spool: SqlSpool, taken: list[Spooled]) -> bool:
    copies = [Copy(item.entry.data, item.entry.delivery) for item in taken]
    try:
        pipeline.ingest(copies)
        spool.remove([item.id for item in taken])
    except StorageError as error:
        log.error("cannot ingest %d spooled message(s), will retry: %s", len(taken), error)
        return False
    except Exception:  # not one message's fault (the pipeline sets those aside): a bug, logged whole
        log.exception("ingesting %d spooled message(s) failed; will retry", len(taken))
        return False
    return True
