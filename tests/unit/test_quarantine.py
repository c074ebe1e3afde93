"""No single message may stop measurement: what fails on one copy sets that copy aside, nothing more.

The failures are injected (a parser or an engine that raises for one Message-ID), so the path is
proven whatever bug a real message may find; hostile mail generated afresh checks the real parser.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

import ttrd.ingest.pipeline as pipeline_module
import ttrd.replytime.batch as batch_module
from tests.hostile import hostile_messages
from ttrd.errors import StorageError
from ttrd.ingest.pipeline import Copy, Pipeline
from ttrd.journal.facts import Delivery, MessageFacts
from ttrd.replytime.directory import Agent, Directory, Mailbox, Organization
from ttrd.storage.memory import MemoryStore

DIRECTORY = Directory(
    Organization(domains=("example.com",)),
    agents=(Agent("alice", "alice@example.com"),),
    mailboxes=(Mailbox("support", "support@example.com", "shared", members=("alice",)),),
)
NOW = datetime(2026, 3, 9, tzinfo=UTC)


def question(number: int) -> bytes:
    return (
        f"Received: from x by mx.example.com; Mon, 02 Mar 2026 09:{number % 60:02d}:00 +0000\r\n"
        f"From: c{number}@cust.net\r\nTo: support@example.com\r\nSubject: Case {number}\r\n"
        f"Message-ID: <q{number}@test>\r\n\r\nHello.\r\n"
    ).encode()


def answer(number: int) -> bytes:
    return (
        f"Received: from x by mx.example.com; Mon, 02 Mar 2026 10:{number % 60:02d}:00 +0000\r\n"
        f"From: alice@example.com\r\nTo: c{number}@cust.net\r\nSubject: Re: Case {number}\r\n"
        f"Message-ID: <a{number}@test>\r\nIn-Reply-To: <q{number}@test>\r\n\r\nDone.\r\n"
    ).encode()


def copies(*raws: bytes) -> list[Copy]:
    return [Copy(raw, Delivery("smtp", NOW, origin=f"copy {n}")) for n, raw in enumerate(raws)]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def rejects(store: MemoryStore) -> list[tuple[str, bytes]]:
    return [(reject.problem, reject.raw) for reject in store.rejects()]


def failing_for(message_id: str, real: Callable[..., Any], fact: Callable[[Any], MessageFacts]) -> Any:
    """`real`, except that it raises for the message with `message_id`."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        if fact(found).message_id == message_id:
            raise RuntimeError(f"injected failure for {message_id}")
        return found

    return wrapper


def test_a_copy_whose_parsing_raises_is_a_parse_error_and_the_rest_is_stored(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline_module.parse_message
    monkeypatch.setattr(pipeline_module, "parse_message", failing_for("q2@test", real, lambda f: f))
    result = Pipeline(store, DIRECTORY).ingest(copies(question(1), question(2), question(3)))
    assert (result.read, result.parse_errors, result.processing_errors) == (3, 1, 0)
    assert [item.inbound_message_id for item in store.items()] == ["q1@test", "q3@test"]
    [(problem, raw)] = rejects(store)
    assert problem == "parsing failed: RuntimeError: injected failure for q2@test" and raw == question(2)
    assert store.counters()[("parse_errors", "")] == 1


def test_a_copy_whose_processing_raises_is_set_aside_and_its_batch_stored(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batch_module.classify
    monkeypatch.setattr(batch_module, "classify", failing_for("q17@test", real, lambda c: c.facts))
    raws = [question(n) for n in range(40)] + [answer(n) for n in range(0, 40, 3)]
    result = Pipeline(store, DIRECTORY).ingest(copies(*raws))
    assert (result.read, result.parse_errors, result.processing_errors) == (len(raws), 0, 1)
    items = {item.inbound_message_id: item.status for item in store.items()}
    assert items.keys() == {f"q{n}@test" for n in range(40)} - {"q17@test"}
    assert all(items[f"q{n}@test"] == "replied" for n in range(0, 40, 3) if n != 17)
    [(problem, raw)] = rejects(store)
    assert problem == "processing failed: RuntimeError: injected failure for q17@test" and raw == question(17)
    assert store.counters()[("processing_errors", "")] == 1


def test_several_bad_copies_in_one_batch_are_each_set_aside(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batch_module.classify

    def classify(facts: MessageFacts, directory: Directory) -> Any:
        if facts.message_id in {"q0@test", "q5@test", "q6@test"}:
            raise ValueError(facts.message_id)
        return real(facts, directory)

    monkeypatch.setattr(batch_module, "classify", classify)
    result = Pipeline(store, DIRECTORY).ingest(copies(*(question(n) for n in range(9))))
    assert result.processing_errors == 3
    assert len(list(store.items())) == 6
    assert sorted(problem for problem, _ in rejects(store)) == [
        f"processing failed: ValueError: q{n}@test" for n in (0, 5, 6)
    ]


def test_a_failure_that_is_no_messages_fault_propagates_and_sets_nothing_aside(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the counters are broken")

    monkeypatch.setattr(pipeline_module, "_counters", broken)
    with pytest.raises(RuntimeError, match="the counters are broken"):
        Pipeline(store, DIRECTORY).ingest(copies(question(1), question(2)))
    assert rejects(store) == [] and list(store.items()) == []


def test_a_storage_error_is_not_split_but_raised_for_the_caller_to_retry(
    store: MemoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def down() -> None:
        attempts.append(1)
        raise StorageError("database write failed: disk I/O error")

    monkeypatch.setattr(store, "batch", down)
    with pytest.raises(StorageError):
        Pipeline(store, DIRECTORY).ingest(copies(*(question(n) for n in range(8))))
    assert len(attempts) == 1


def test_hostile_mail_generated_afresh_never_stops_the_pipeline(store: MemoryStore) -> None:
    seed = int(os.environ.get("TTRD_HOSTILE_SEED", random.randrange(2**32)))
    pipeline = Pipeline(store, DIRECTORY)
    hostile = hostile_messages(seed, 90)
    for start in range(0, len(hostile), 30):
        pipeline.ingest(
            [Copy(raw, Delivery("smtp", NOW, origin=name)) for name, raw in hostile[start : start + 30]]
        )
    result = pipeline.ingest(copies(question(1), answer(1)))
    assert result.new_messages == 2, f"seed {seed}"
    replied = [item for item in store.items() if item.inbound_message_id == "q1@test"]
    assert [(item.status, item.agent, item.calendar_seconds) for item in replied] == [
        ("replied", "alice", 3600.0)
    ]
    assert all(problem.startswith(("no header fields", "journal report")) for problem, _ in rejects(store)), (
        seed
    )
