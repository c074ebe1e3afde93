"""`ttrd import`: files into the pipeline, in batches, with progress.

Reading (decompression included) and parsing are pure and take about as long as storing, so on a
machine with more than one core a child process reads and parses ahead while this process stores.
Batches arrive in file order either way, so the result is the same.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ttrd.errors import InputError, TtrdError
from ttrd.ingest.pipeline import Copy, IngestResult, Parsed, Pipeline, parse_copies
from ttrd.ingest.sources import read_messages
from ttrd.journal.facts import Delivery, Folder

BATCH = 500
"""Messages per transaction: large enough to amortise queries, small enough to bound memory."""
AHEAD = 8
"""Parsed batches the reader may hold before the store catches up (a few MB): enough to keep
reading while the importing process starts its database layer, and a bound on memory."""


@dataclass(frozen=True, slots=True)
class _Request:
    paths: Sequence[Path]
    now: datetime
    owner: str | None
    folder: Folder | None


class BatchReader:
    """Parsed batches of the messages under some paths, in file order; `now` is their receipt time.

    With `parallel` (default: when there is more than one CPU) a child process reads and parses,
    from the moment the reader is created; use it as a context manager so the child always ends.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        now: datetime,
        *,
        owner: str | None = None,
        folder: Folder | None = None,
        parallel: bool | None = None,
    ) -> None:
        self._request = _Request(paths, now, owner, folder)
        self._child: Any = None
        self._channel: Any = None
        if (os.cpu_count() or 1) > 1 if parallel is None else parallel:
            context = multiprocessing.get_context("fork")
            self._channel = context.Queue(maxsize=AHEAD)
            self._child = context.Process(
                target=_produce, args=(self._request, self._channel), name="ttrd-import-reader", daemon=True
            )
            self._child.start()

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._child is not None:
            self._child.kill()
            self._child.join()
            self._channel.close()
            self._child = None

    def __iter__(self) -> Iterator[tuple[Parsed, int]]:
        """(parsed batch, on-disk bytes read so far) pairs."""
        if self._child is None:
            yield from _parsed_batches(self._request)
            return
        while True:
            try:
                item = self._channel.get(timeout=1.0)
            except queue.Empty:
                if not self._child.is_alive():
                    raise InputError(
                        f"the reader process stopped unexpectedly (exit code {self._child.exitcode})"
                    ) from None
                continue
            if item is None:
                return
            if isinstance(item, str):
                raise InputError(item)
            yield item


def import_batches(
    pipeline: Pipeline,
    reader: Iterable[tuple[Parsed, int]],
    progress: Callable[[int], None] = lambda done: None,
) -> IngestResult:
    total = IngestResult()
    for parsed, done in reader:
        total += pipeline.store_parsed(parsed)
        progress(done)
    return total


def _parsed_batches(request: _Request) -> Iterator[tuple[Parsed, int]]:
    pending: list[Copy] = []
    done = 0
    for message, done in read_messages(request.paths):
        delivery = Delivery(
            "import", request.now, owner=request.owner, folder=request.folder, origin=message.origin
        )
        pending.append(Copy(message.data, delivery))
        if len(pending) >= BATCH:
            yield parse_copies(pending), done
            pending = []
    yield parse_copies(pending), done


def _produce(request: _Request, out: Any) -> None:
    """The child: parsed batches into `out`, then None; an error that stops reading as its message."""
    try:
        for item in _parsed_batches(request):
            out.put(item)
        out.put(None)
    except TtrdError as error:
        out.put(str(error))
    except Exception as error:  # a bug: the parent reports it in one line, the log has the rest
        logging.getLogger(__name__).exception("reading the files failed")
        out.put(f"reading the files failed: {type(error).__name__}: {error}")


def summary(result: IngestResult) -> str:
    excluded = sum(result.excluded.values())
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(result.excluded.items()))
    return (
        f"read {result.read} messages: {result.new_messages} new, "
        f"{result.merged_copies} more copies of known messages, {result.duplicates} duplicates, "
        f"{result.parse_errors} not understood, {result.processing_errors} failed to process; "
        f"excluded as automatic {excluded}"
        + (f" ({reasons})" if reasons else "")
        + f"; items opened {result.items_opened}, closed {result.items_closed}"
    )
