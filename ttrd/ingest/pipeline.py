"""From raw copies to stored items: parse, deduplicate, merge, relink, replay (one transaction per batch).

Every path in (SMTP, IMAP, import) hands batches of (bytes, Delivery) to `Pipeline.ingest`. A batch:

1. parses each copy (pure); copies that cannot be understood are kept as rejects;
2. drops copies already seen (same bytes, same delivery) and merges the rest with the messages they
   are copies of (same Message-ID or X-Microsoft-Original-Message-ID);
3. finds the conversations the batch touches: through shared ids and Thread-Index keys, and through
   subject links, which a late message can move (it may be a more recent earlier message for others);
4. loads those conversations whole, regroups them, replays each group through the engine and
   replaces their items.

Because each touched conversation is replayed from all its messages, the stored items are the same
whatever order the copies came in; memory holds one batch and the conversations it touches.

No single message may stop measurement: a copy whose parsing raises anything is a parse error, and
when steps 2–4 raise anything but a StorageError (the database's trouble, retried by the caller),
the batch is split in halves until the copy that fails is alone; it is set aside among the rejects
(a processing error) and everything else is stored.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ttrd.errors import ParseError, StorageError
from ttrd.journal.facts import Delivery, MessageFacts
from ttrd.journal.parse import KEPT_BODY_BYTES, parse_message, reduce_message
from ttrd.replytime.batch import BatchChanges, decide
from ttrd.replytime.directory import Directory
from ttrd.replytime.histogram import bounds_key, reply_bounds
from ttrd.storage.port import GENERATION, Reject, Store

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """What one or more batches did; results of several batches add up with `+=`."""

    read: int = 0
    parse_errors: int = 0
    """Copies that could not be understood (their bytes are kept among the rejects)."""
    processing_errors: int = 0
    """Copies understood but set aside because processing them failed (a bug; kept among the rejects)."""
    duplicates: int = 0
    """Copies already seen (the same bytes delivered the same way)."""
    new_messages: int = 0
    merged_copies: int = 0
    """New copies of messages already known (another journal copy, another mailbox)."""
    excluded: Counter[str] = field(default_factory=Counter)
    items_opened: int = 0
    items_closed: int = 0

    def count(self, changes: BatchChanges) -> None:
        """Add what a batch's decisions did."""
        self.new_messages += changes.new_messages
        self.merged_copies += changes.merged_copies
        self.excluded += changes.excluded
        self.items_opened += changes.items_opened
        self.items_closed += changes.items_closed

    def __iadd__(self, other: IngestResult) -> IngestResult:
        for name in (
            "read",
            "parse_errors",
            "processing_errors",
            "duplicates",
            "new_messages",
            "merged_copies",
            "items_opened",
            "items_closed",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.excluded += other.excluded
        return self


@dataclass(frozen=True, slots=True)
class Copy:
    raw: bytes
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class ParsedCopy:
    facts: MessageFacts
    delivery: Delivery
    kept: bytes
    """What goes to the rejects should processing it fail: the copy, reduced when it is large."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A batch after step 1: the facts of each copy understood, and the copies that were not."""

    copies: list[ParsedCopy]
    rejects: list[Reject]


MAX_PROBLEM_CHARS = 1000
"""Of an error's text in a reject: an exception may quote a whole header."""


def parse_copies(copies: Iterable[Copy]) -> Parsed:
    """Step 1, pure, so a caller may run it in another process while the previous batch is stored.

    Whatever parsing one copy raises makes it a reject; the others go on.
    """
    parsed: list[ParsedCopy] = []
    rejects: list[Reject] = []
    for copy in copies:
        try:
            facts = parse_message(copy.raw, copy.delivery)
        except ParseError as error:
            log.warning("%s: not understood (%s); kept among the rejects", _origin(copy.delivery), error)
            rejects.append(_reject(copy.delivery, str(error), copy.raw))
        except Exception as error:  # a parser bug must cost one message, not the batch
            log.exception("%s: parsing failed; kept among the rejects", _origin(copy.delivery))
            rejects.append(_reject(copy.delivery, f"parsing failed: {_describe(error)}", copy.raw))
        else:
            parsed.append(ParsedCopy(facts, copy.delivery, _kept(copy.raw)))
    return Parsed(parsed, rejects)


def _kept(raw: bytes) -> bytes:
    # A small copy is kept as it is; reducing it would cost more than it saves.
    return raw if len(raw) <= 2 * KEPT_BODY_BYTES else reduce_message(raw)


def _reject(delivery: Delivery, problem: str, raw: bytes) -> Reject:
    return Reject(delivery.source, delivery.received_at, delivery.origin, problem[:MAX_PROBLEM_CHARS], raw)


def _origin(delivery: Delivery) -> str:
    return delivery.origin or f"a message received by {delivery.source}"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Pipeline:
    def __init__(self, store: Store, directory: Directory) -> None:
        self.store = store
        self.directory = directory
        self.bounds = reply_bounds(directory)

    def ingest(self, copies: Sequence[Copy]) -> IngestResult:
        """Store a batch durably and bring the items of every conversation it touches up to date."""
        return self.store_parsed(parse_copies(copies))

    def store_parsed(self, parsed: Parsed) -> IngestResult:
        """Steps 2 to 4 of a parsed batch, in one transaction; a copy that fails them is set aside.

        Raises StorageError only: when the database fails, nothing of the batch is stored.
        """
        try:
            return self._store(parsed)
        except StorageError:
            raise
        except Exception as error:
            failure = error
        if len(parsed.copies) > 1:
            # Halves until the failing copy is alone: log2(batch) extra transactions per bad copy.
            half = len(parsed.copies) // 2
            result = self.store_parsed(Parsed(parsed.copies[:half], parsed.rejects))
            result += self.store_parsed(Parsed(parsed.copies[half:], []))
            return result
        # A failure that an empty batch meets too is not this copy's: it propagates, and the
        # caller keeps the batch to try again, rather than every copy being set aside one by one.
        self._store(Parsed([], []))
        return self._set_aside(parsed, failure)

    def _store(self, parsed: Parsed) -> IngestResult:
        result = IngestResult(read=len(parsed.copies) + len(parsed.rejects), parse_errors=len(parsed.rejects))
        with self.store.batch() as batch:
            if batch.histogram_bounds() != bounds_key(self.bounds):  # new database, or SLAs changed
                batch.rebuild_histogram(self.bounds)
            batch.add_rejects(parsed.rejects)
            known = batch.known_copies({copy.facts.copy_key for copy in parsed.copies})
            fresh = _fresh(parsed.copies, known)
            result.duplicates = len(parsed.copies) - len(fresh)
            if fresh:
                changes = decide(fresh, batch, self.directory, self.bounds)
                batch.apply(changes)
                result.count(changes)
            batch.add_to_counters(_counters(result, changed=bool(fresh)))
        return result

    def _set_aside(self, parsed: Parsed, error: Exception) -> IngestResult:
        """The batch's rejects, and its one copy (if any) as a processing error."""
        rejects = list(parsed.rejects)
        result = IngestResult(read=len(parsed.copies) + len(rejects), parse_errors=len(rejects))
        for copy in parsed.copies:
            log.error("%s: processing failed; kept among the rejects", _origin(copy.delivery), exc_info=error)
            rejects.append(_reject(copy.delivery, f"processing failed: {_describe(error)}", copy.kept))
            result.processing_errors += 1
        with self.store.batch() as batch:
            batch.add_rejects(rejects)
            batch.add_to_counters(_counters(result, changed=False))
        return result


def _fresh(parsed: Iterable[ParsedCopy], known: set[str]) -> list[tuple[MessageFacts, Delivery]]:
    fresh: dict[str, tuple[MessageFacts, Delivery]] = {}
    for copy in parsed:
        if copy.facts.copy_key not in known:
            fresh.setdefault(copy.facts.copy_key, (copy.facts, copy.delivery))
    return list(fresh.values())


def _counters(result: IngestResult, *, changed: bool) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter(
        {
            ("parse_errors", ""): result.parse_errors,
            ("processing_errors", ""): result.processing_errors,
            ("duplicate_observations", ""): result.duplicates,
            GENERATION: int(changed),
        }
    )
    return +counts
