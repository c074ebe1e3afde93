"""The /metrics endpoint on a real loopback socket: status codes, limits, errors, and promtool's lint."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric

from tests.conftest import require
from tests.unit.test_metrics_collector import DIRECTORY, EXTRA, NOW, fill
from ttrd.metrics.collector import TtrdCollector
from ttrd.metrics.http import MAX_HEAD_BYTES, start_metrics_server
from ttrd.storage.sql import SqlStore


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[CollectorRegistry]:
    store = fill(SqlStore(f"sqlite:///{tmp_path / 'ttrd.db'}"))
    registry = CollectorRegistry()
    registry.register(TtrdCollector(store, DIRECTORY, lambda: NOW, extra_counters=lambda: EXTRA))
    yield registry
    store.close()


def serving(
    registry: CollectorRegistry, client: Callable[[int], Awaitable[None]], timeout: float = 10.0
) -> None:
    """Run `client(port)` against a metrics server on a random loopback port."""

    async def main() -> None:
        server = await start_metrics_server("127.0.0.1", 0, registry, timeout=timeout)
        try:
            await client(server.sockets[0].getsockname()[1])
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read the whole answer (the server closes the connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("ascii").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split(" ")[1]), fields, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n".encode()


def test_get_metrics_answers_the_exposition(registry: CollectorRegistry) -> None:
    async def client(port: int) -> None:
        status, fields, body = await exchange(port, get("/metrics"))
        assert status == 200
        assert (
            fields["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4 == "text/plain; version=0.0.4; charset=utf-8"
        )
        assert fields["Connection"] == "close"
        assert int(fields["Content-Length"]) == len(body)
        assert body == generate_latest(registry)
        assert b'ttrd_awaiting_replies{mailbox="support"} 1.0' in body

    serving(registry, client)


def test_urllib_scrapes_it_with_a_query_string(registry: CollectorRegistry) -> None:
    def fetch(url: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()

    async def client(port: int) -> None:
        status, body = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics?scrape=1")
        assert status == 200
        assert b"ttrd_reply_seconds_bucket" in body

    serving(registry, client)


@pytest.mark.parametrize(
    ("request_bytes", "expected"),
    [
        (get("/"), 404),
        (get("/metrics/other"), 404),
        (get("/metrics", "POST"), 405),
        (get("/metrics", "HEAD"), 405),
        (b"hello\r\n\r\n", 400),
        (b"GET /metrics SMTP/1.0\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nX-Padding: " + b"x" * MAX_HEAD_BYTES + b"\r\n\r\n", 431),
    ],
)
def test_everything_else_is_refused(registry: CollectorRegistry, request_bytes: bytes, expected: int) -> None:
    async def client(port: int) -> None:
        status, fields, body = await exchange(port, request_bytes)
        assert status == expected
        assert fields["Connection"] == "close"
        assert b"ttrd_" not in body
        if expected == 405:
            assert fields["Allow"] == "GET"

    serving(registry, client)


def test_a_silent_client_is_dropped_after_the_timeout(registry: CollectorRegistry) -> None:
    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\n")  # and never the end of the head
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408 ")

    serving(registry, client, timeout=0.2)


def test_a_client_that_leaves_early_does_not_stop_the_server(registry: CollectorRegistry) -> None:
    async def client(port: int) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metr")
        writer.close()
        await writer.wait_closed()
        results = await asyncio.gather(*(exchange(port, get("/metrics")) for _ in range(3)))
        assert [status for status, _, _ in results] == [200, 200, 200]

    serving(registry, client)


class Broken:
    def collect(self) -> list[Metric]:
        raise RuntimeError("secret detail of a failure")


def test_a_failing_collection_is_a_500_with_a_short_body_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    registry.register(Broken())

    async def client(port: int) -> None:
        status, _, body = await exchange(port, get("/metrics"))
        assert status == 500
        assert b"secret" not in body
        assert b"Traceback" not in body

    with caplog.at_level(logging.ERROR, logger="ttrd.metrics.http"):
        serving(registry, client)
    assert any("secret detail" in str(record.exc_info[1]) for record in caplog.records if record.exc_info)


def promtool_check(body: bytes) -> subprocess.CompletedProcess[bytes]:
    promtool = shutil.which("promtool")
    require(promtool is not None, "promtool is not installed (Debian package prometheus)")
    assert promtool is not None
    return subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )


def test_promtool_check_metrics_passes(registry: CollectorRegistry) -> None:
    bodies: list[bytes] = []

    async def client(port: int) -> None:
        status, _, body = await exchange(port, get("/metrics"))
        assert status == 200
        bodies.append(body)

    serving(registry, client)
    checked = promtool_check(bodies[0])
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    assert not checked.stdout.strip() and not checked.stderr.strip()


def test_promtool_catches_a_bad_exposition() -> None:
    """The check above can fail: promtool complains about a counter without `_total`."""
    checked = promtool_check(b"# HELP ttrd_x a counter\n# TYPE ttrd_x counter\nttrd_x 1\n")
    assert checked.returncode != 0


def test_an_empty_store_passes_promtool_too(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        registry = CollectorRegistry()
        registry.register(TtrdCollector(store, DIRECTORY, lambda: NOW))
        body = generate_latest(registry)
    finally:
        store.close()
    checked = promtool_check(body)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
