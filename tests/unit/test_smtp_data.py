"""DATA gathered in chunks is what aiosmtpd's line-by-line reading gives, whatever the chunking."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ttrd.smtp.data import DataGatherer, Gathered


def stuffed(message: bytes) -> bytes:
    """How a client sends a message: lines (CRLF-ended) starting with "." get one more, then "." CRLF."""
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    return (b"\r\n" + message).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n"


def gather(stream: bytes, cuts: list[int], limit: int | None = None) -> Gathered | None:
    gatherer = DataGatherer(limit)
    found = None
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        if start < end and found is None:
            found = gatherer.feed(stream[start:end])
    return found


LINES = st.lists(
    st.one_of(st.sampled_from([b"", b".", b"..", b".x", b"x.", b"\r", b"\n", b" ."]), st.binary(max_size=30)),
    max_size=12,
)


@settings(max_examples=500, deadline=None)
@given(lines=LINES, data=st.data())
def test_any_message_in_any_chunking_comes_back_whole(lines: list[bytes], data: st.DataObject) -> None:
    message = b"".join(line.replace(b"\r\n", b"\n") + b"\r\n" for line in lines)
    stream = stuffed(message) + b"QUIT\r\n"
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=8)))
    found = gather(stream, cuts)
    assert found is not None
    assert found.content == message
    assert (
        found.leftover.endswith(b"QUIT\r\n")
        or b"QUIT\r\n".startswith(found.leftover)
        or found.leftover == b""
    )


def test_empty_message_and_long_lines() -> None:
    assert gather(b".\r\n", []) == Gathered(b"", b"")
    long_line = b"X-Long: " + b"a" * 2_000_000 + b"\r\n"
    found = gather(stuffed(long_line), list(range(65536, 2_000_000, 65536)))
    assert found is not None and found.content == long_line


def test_over_the_limit_the_rest_is_read_and_dropped_with_bounded_memory() -> None:
    big = b"".join(b"line %d\r\n" % n for n in range(200_000))
    gatherer = DataGatherer(limit=100_000)
    stream = stuffed(big) + b"MAIL FROM:<x@y>\r\n"
    found = None
    for start in range(0, len(stream), 4096):
        found = found or gatherer.feed(stream[start : start + 4096])
        assert len(gatherer._buffer) < 110_000
    assert found == Gathered(None, b"MAIL FROM:<x@y>\r\n")
    at_limit = b"a" * 98 + b"\r\n"
    assert gather(stuffed(at_limit), [], limit=100) == Gathered(at_limit, b"")
    assert gather(stuffed(at_limit + b"b\r\n"), [], limit=100) == Gathered(None, b"")
