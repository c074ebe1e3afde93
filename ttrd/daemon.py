"""`ttrd run`: the composition root. Builds the adapters around the core and runs them on one loop.

Start order: storage (schema checked) → spool → ingest worker process → SMTP listener → metrics
endpoint → READY=1. Stop order (SIGTERM/SIGINT): STOPPING=1 → the SMTP listener closes and sessions
finish the message they are sending (bounded) → the spool commits what is queued → metrics stop →
the worker ingests what is spooled (bounded) → exit 0.

The event loop (uvloop, through a loop factory as uvicorn does) runs the SMTP sessions, the group
commit and the metrics endpoint. Parsing and replaying mail is CPU work that would compete with the
sessions for the interpreter, so it runs in one child process (ttrd.ingest.worker) that reads the
spool; the daemon supervises it.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import uvloop
from prometheus_client import CollectorRegistry

from ttrd import systemd
from ttrd.config import Settings
from ttrd.ingest.worker import run_worker
from ttrd.metrics.collector import TtrdCollector
from ttrd.metrics.http import start_metrics_server
from ttrd.smtp.handler import JournalHandler
from ttrd.smtp.server import SmtpServer, start_smtp_server
from ttrd.smtp.spooler import Spooler
from ttrd.storage.spool import SqlSpool, spool_url
from ttrd.storage.sql import SqlStore

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0
"""How long sessions may take to finish the message they are sending when the daemon stops."""
WORKER_STOP_SECONDS = 25.0
"""How long the worker may take to ingest what is spooled when the daemon stops."""
DEFAULT_WATCHDOG_SECONDS = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


class Worker:
    """The ingest worker process, restarted when it dies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # spawn, not fork: the daemon has threads by the time a restart is needed.
        self._context = multiprocessing.get_context("spawn")
        self.process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> None:
        self.process = self._context.Process(
            target=run_worker, args=(self.settings, os.getpid()), name="ttrd-worker"
        )
        self.process.start()

    def alive(self) -> bool:
        """True when running; a worker that died is restarted and reported as not alive this time."""
        if self.process is not None and self.process.is_alive():
            return True
        log.error("the ingest worker exited (code %s); restarting it", self.process and self.process.exitcode)
        self.start()
        return False

    async def stop(self) -> None:
        process = self.process
        if process is None or not process.is_alive():
            return
        process.terminate()  # SIGTERM: ingest what is spooled, then exit
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, process.join, WORKER_STOP_SECONDS)
        if process.is_alive():
            log.warning(
                "the ingest worker did not finish in %.0f s; killing it (the spool keeps the rest)",
                WORKER_STOP_SECONDS,
            )
            process.kill()
            await loop.run_in_executor(None, process.join)


class Daemon:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def serve(self) -> None:
        settings = self.settings
        store = SqlStore(settings.storage.url, durable=True)
        spool = SqlSpool(spool_url(settings.storage.url))
        worker = Worker(settings)
        worker.start()
        spooler = Spooler(spool)
        spooler.start()
        smtp: SmtpServer | None = None
        metrics: asyncio.Server | None = None
        try:
            handler = JournalHandler(spooler, settings.smtp.journal_addresses, self.clock)
            smtp = await start_smtp_server(settings.smtp, handler, socket.getfqdn())
            registry = CollectorRegistry()
            registry.register(
                TtrdCollector(store, settings.directory, self.clock, extra_counters=spooler.counters)
            )
            metrics = await start_metrics_server(
                settings.metrics.listen.host, settings.metrics.listen.port, registry
            )
            log.info("accepting mail on %s, metrics on %s", settings.smtp.listen, settings.metrics.listen)
            systemd.ready(f"accepting mail on {settings.smtp.listen}")
            watchdog = asyncio.get_running_loop().create_task(
                self._watchdog(spooler, worker), name="ttrd-watchdog"
            )
            await self._stop.wait()
            watchdog.cancel()
        finally:
            systemd.stopping("draining SMTP sessions")
            if smtp is not None:
                await smtp.drain(DRAIN_SECONDS)
            await spooler.close()
            if metrics is not None:
                metrics.close()
                await metrics.wait_closed()
            systemd.status("ingesting what is spooled")
            await worker.stop()
            store.close()
            spool.close()
            log.info("stopped")

    async def _watchdog(self, spooler: Spooler, worker: Worker) -> None:
        """WATCHDOG=1 only after this loop ran, the spool answered and the worker is alive."""
        interval = systemd.watchdog_interval() or DEFAULT_WATCHDOG_SECONDS
        while True:
            await asyncio.sleep(interval)
            try:
                # At most half the interval, so a slow but good answer still pings in time.
                await asyncio.wait_for(spooler.ping(), timeout=interval / 2)
            except Exception as error:  # any failure: systemd should see us as stuck
                log.error("watchdog: the spool does not answer: %s", error)
                continue
            if worker.alive():
                systemd.watchdog()


def run(settings: Settings) -> int:
    """Run the daemon until SIGTERM or SIGINT; the exit status."""
    daemon = Daemon(settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        loop = runner.get_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.stop)
        runner.run(daemon.serve())
    return 0
