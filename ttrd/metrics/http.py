"""The `/metrics` endpoint (SPEC §6) on the daemon's asyncio loop.

Just enough HTTP/1.1 for a scraper: one request per connection, answered with `Connection: close`.
The request head is read with a size limit and a deadline, and the answer written with the same
deadline, so a slow or garbage client holds a few kilobytes for a few seconds at most. Collecting
reads the database, so it runs in the default executor, one scrape at a time, while the loop goes
on serving SMTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from http import HTTPStatus

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ttrd.errors import cannot_listen
from ttrd.metrics.exposition import Renderer

log = logging.getLogger(__name__)

PATH = "/metrics"
MAX_HEAD_BYTES = 16 * 1024
"""Request line and header fields together; a scraper sends a few hundred bytes."""
TIMEOUT_SECONDS = 10.0
"""For the client to send its request, and again to take the answer."""
_TEXT = "text/plain; charset=utf-8"


async def start_metrics_server(
    host: str, port: int, registry: CollectorRegistry, *, timeout: float = TIMEOUT_SECONDS
) -> asyncio.Server:
    """Answer `GET /metrics` with the exposition of `registry` on host:port, until closed."""
    scrape = asyncio.Lock()
    renderer = Renderer()

    def render() -> bytes:
        return renderer.render(registry.collect())

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            response = await _answer(reader, render, scrape, timeout)
            if response:
                async with asyncio.timeout(timeout):
                    writer.write(response)
                    await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client went away or stopped reading; nobody is left to tell
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    try:
        return await asyncio.start_server(serve, host, port, limit=MAX_HEAD_BYTES)
    except OSError as error:
        raise cannot_listen("metrics", f"{host}:{port}", error) from None


async def _answer(
    reader: asyncio.StreamReader, render: Callable[[], bytes], scrape: asyncio.Lock, timeout: float
) -> bytes:
    """The response to the request on `reader`; empty when the client left before finishing it."""
    try:
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    except asyncio.LimitOverrunError:
        return _response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, b"request head too large\n")
    except TimeoutError:
        return _response(HTTPStatus.REQUEST_TIMEOUT, b"request not received in time\n")
    request_line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(request_line) != 3 or not request_line[2].startswith(b"HTTP/1."):
        return _response(HTTPStatus.BAD_REQUEST, b"not an HTTP/1.x request\n")
    method, target, _ = request_line
    if target.split(b"?", 1)[0] != PATH.encode():
        return _response(HTTPStatus.NOT_FOUND, b"not found; metrics are at /metrics\n")
    if method != b"GET":
        return _response(HTTPStatus.METHOD_NOT_ALLOWED, b"only GET\n", extra=("Allow", "GET"))
    async with scrape:
        try:
            body = await asyncio.get_running_loop().run_in_executor(None, render)
        except Exception:
            log.exception("collecting metrics failed")
            return _response(
                HTTPStatus.INTERNAL_SERVER_ERROR, b"collecting metrics failed; see the ttrd log\n"
            )
    # 0.0.4, as prometheus_client's own server labels this format: its CONTENT_TYPE_LATEST
    # (1.0.0) is for answers that negotiated an `escaping`, which a plain scrape does not.
    return _response(HTTPStatus.OK, body, CONTENT_TYPE_PLAIN_0_0_4)


def _response(
    status: HTTPStatus, body: bytes, content_type: str = _TEXT, extra: tuple[str, str] | None = None
) -> bytes:
    fields = [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Connection", "close")]
    if extra is not None:
        fields.append(extra)
    head = "".join(f"{name}: {value}\r\n" for name, value in fields)
    return f"HTTP/1.1 {status.value} {status.phrase}\r\n{head}\r\n".encode("ascii") + body
