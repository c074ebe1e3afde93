"""`ttrd run`: the composition root. Builds the adapters around the core and runs them on one loop.

Start order: storage (schema checked) → spool → metrics endpoint → spool writer → SMTP listener →
IMAP pollers → ingest worker process → READY=1. Anything that fails on the way (a port taken, a
database that does not open) undoes what was started, silently, and surfaces as one TtrdError: one
line, exit 1.

Stop order (SIGTERM/SIGINT): STOPPING=1 → the IMAP pollers log out → the SMTP listener closes and
sessions finish the message they are sending → the spool commits what is queued → metrics stop →
the worker ingests what is spooled → storage closes. Every step has a deadline (STOP_SECONDS is
their sum, below the unit's TimeoutStopSec); a second signal cuts every step short (as uvicorn's
force exit does) — nothing that got a 250 is lost by that, the spool is on disk. The exit status is
0, or 1 when the spool could not be written at the end (the counters of the last moments are lost;
mail is not).

The event loop (uvloop, through a loop factory as uvicorn does) runs the SMTP sessions, the IMAP
pollers, the group commit and the metrics endpoint. Parsing and replaying mail is CPU work that
would compete with the sessions for the interpreter, so it runs in one child process
(ttrd.ingest.worker) that reads the spool; the daemon supervises it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import uvloop
from prometheus_client import CollectorRegistry

from ttrd import systemd
from ttrd.config import Settings
from ttrd.errors import ServiceError
from ttrd.imap.poller import AccountPoller
from ttrd.ingest.spooler import Spooler
from ttrd.ingest.worker import run_worker
from ttrd.metrics.collector import TtrdCollector
from ttrd.metrics.http import start_metrics_server
from ttrd.smtp.handler import JournalHandler
from ttrd.smtp.server import start_smtp_server
from ttrd.storage.spool import FolderState, SqlSpool, spool_url
from ttrd.storage.sql import SqlStore

log = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0
"""How long sessions may take to finish the message they are sending when the daemon stops."""
SPOOL_CLOSE_SECONDS = 5.0
"""How long the spool may take to commit what is queued when the daemon stops."""
METRICS_CLOSE_SECONDS = 2.0
WORKER_STOP_SECONDS = 25.0
"""How long the worker may take to ingest what is spooled when the daemon stops."""
IMAP_STOP_SECONDS = 3.0
"""How long the IMAP pollers may take to log out when the daemon stops."""
STOP_SECONDS = (
    IMAP_STOP_SECONDS + DRAIN_SECONDS + SPOOL_CLOSE_SECONDS + METRICS_CLOSE_SECONDS + WORKER_STOP_SECONDS
)
"""The longest a stop can take: below systemd/ttrd.service's TimeoutStopSec."""
DEFAULT_WATCHDOG_SECONDS = 10.0
_POLL_SECONDS = 0.05


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
        try:
            self.process.start()
        except OSError as error:
            raise ServiceError(f"cannot start the ingest worker: {error.strerror or error}") from None

    def ensure_running(self) -> bool:
        """True when the worker runs; one that died is started again, and False returned this time."""
        if self.process is not None and self.process.is_alive():
            return True
        log.error("the ingest worker exited (code %s); restarting it", self.process and self.process.exitcode)
        self.start()
        return False

    async def stop(self) -> None:
        """Let the worker ingest what is spooled and exit; killed if this is cancelled (deadline, force)."""
        process = self.process
        if process is None:
            return
        if process.is_alive():
            process.terminate()  # SIGTERM: ingest what is spooled, then exit
        try:
            while process.is_alive():
                await asyncio.sleep(_POLL_SECONDS)
        except asyncio.CancelledError:
            log.warning("the ingest worker did not finish; killing it (the spool keeps the rest)")
            process.kill()
            process.join(5)
            raise
        process.join()


class Daemon:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self._stop = asyncio.Event()
        self._force = asyncio.Event()

    def stop(self) -> None:
        """The first call stops the daemon in order; a second one cuts every step of that short."""
        if self._stop.is_set():
            log.warning("second stop signal: stopping now, without waiting for sessions or the worker")
            self._force.set()
        self._stop.set()

    async def serve(self) -> None:
        """Run until stopped; raises a TtrdError when starting fails or the spool is lost at the end."""
        settings = self.settings
        async with contextlib.AsyncExitStack() as stack:
            store = SqlStore(settings.storage.url, durable=True)
            stack.callback(store.close)
            spool = SqlSpool(spool_url(settings.storage.url))
            stack.callback(spool.close)
            worker = Worker(settings)
            stack.push_async_callback(
                self._step, "stopping the ingest worker", worker.stop, WORKER_STOP_SECONDS
            )
            spooler = Spooler(spool)
            pollers: list[AccountPoller] = []
            registry = CollectorRegistry()
            collector = TtrdCollector(
                store, settings.directory, self.clock, extra_counters=spooler.counters,
                imap_accounts=lambda: {poller.account.id: poller.status for poller in pollers},
            )  # fmt: skip
            registry.register(collector)
            metrics = await start_metrics_server(
                settings.metrics.listen.host, settings.metrics.listen.port, registry
            )
            stack.push_async_callback(self._step, "closing metrics", _closer(metrics), METRICS_CLOSE_SECONDS)
            spooler.start()
            stack.push_async_callback(
                self._step, "committing the spool", lambda: spooler.close(SPOOL_CLOSE_SECONDS), None
            )
            handler = JournalHandler(spooler, settings.smtp.journal_addresses, self.clock)
            smtp = await start_smtp_server(settings.smtp, handler, socket.getfqdn())
            stack.push_async_callback(
                self._step, "draining SMTP sessions", lambda: smtp.drain(DRAIN_SECONDS), None
            )
            pollers.extend(self._pollers(spooler, spool.folders()))
            stack.push_async_callback(
                self._step, "stopping IMAP pollers", _stopper(_start(pollers)), IMAP_STOP_SECONDS
            )
            worker.start()
            await self._run(spooler, worker)

    def _pollers(self, spooler: Spooler, folders: list[FolderState]) -> list[AccountPoller]:
        directory = self.settings.directory
        return [
            AccountPoller(
                account,
                directory.contexts[account.owner].addresses[0],
                spooler,
                {state.folder: state for state in folders if state.account == account.id},
                self.clock,
            )
            for account in self.settings.imap_accounts
        ]

    async def _run(self, spooler: Spooler, worker: Worker) -> None:
        settings = self.settings
        log.info("accepting mail on %s, metrics on %s", settings.smtp.listen, settings.metrics.listen)
        systemd.ready(f"accepting mail on {settings.smtp.listen}")
        watchdog = asyncio.get_running_loop().create_task(
            self._watchdog(spooler, worker), name="ttrd-watchdog"
        )
        try:
            await self._stop.wait()
        finally:
            watchdog.cancel()
            log.info("stopping")
            systemd.stopping("draining SMTP sessions")

    async def _step(self, name: str, work: Callable[[], Awaitable[None]], timeout: float | None) -> None:
        """One step of stopping: `work()` within `timeout` (None: it bounds itself); cut short by force."""
        systemd.status(name)
        task = asyncio.ensure_future(work())
        forced = asyncio.ensure_future(self._force.wait())
        try:
            done, _ = await asyncio.wait({task, forced}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            forced.cancel()
        if task not in done:
            log.warning("%s: %s; going on", name, "forced" if self._force.is_set() else "out of time")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        task.result()

    async def _watchdog(self, spooler: Spooler, worker: Worker) -> None:
        """WATCHDOG=1 only after this loop ran, the spool answered and the worker is running."""
        interval = systemd.watchdog_interval() or DEFAULT_WATCHDOG_SECONDS
        while True:
            await asyncio.sleep(interval)
            try:
                # At most half the interval, so a slow but good answer still pings in time.
                await asyncio.wait_for(spooler.ping(), timeout=interval / 2)
            except Exception as error:  # any failure: systemd should see us as stuck
                log.error("watchdog: the spool does not answer: %s", error)
                continue
            if worker.ensure_running():
                systemd.watchdog()


def _start(pollers: list[AccountPoller]) -> list[asyncio.Task[None]]:
    loop = asyncio.get_running_loop()
    return [loop.create_task(poller.run(), name=f"ttrd-imap-{poller.account.id}") for poller in pollers]


def _stopper(tasks: list[asyncio.Task[None]]) -> Callable[[], Awaitable[None]]:
    async def stop() -> None:
        for task in tasks:
            task.cancel()  # each logs out (briefly) on its way out
        await asyncio.gather(*tasks, return_exceptions=True)

    return stop


def _closer(server: asyncio.Server) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        server.close()
        await server.wait_closed()

    return close


def run(settings: Settings) -> int:
    """Run the daemon until SIGTERM or SIGINT; the exit status (a TtrdError propagates)."""
    daemon = Daemon(settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        loop = runner.get_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.stop)
        runner.run(daemon.serve())
    log.info("stopped")
    return 0
