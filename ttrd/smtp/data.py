"""The DATA of one SMTP transaction, gathered from chunks of the stream. Pure.

aiosmtpd reads DATA one line at a time, which is most of what a sink spends per message (a 4 KiB
message is some 60 awaits); here the stream is read in chunks and searched for the end mark
`CRLF . CRLF`, then dot-stuffing (RFC 5321 §4.5.2) is undone in one pass. Lines of any length are
taken; only the size limit stops a message, and the rest of it is still read (and dropped) so the
session can go on with a `552`.
"""

from __future__ import annotations

from dataclasses import dataclass

END = b"\r\n.\r\n"


@dataclass(frozen=True, slots=True)
class Gathered:
    content: bytes | None
    """The message, dot-stuffing undone; None when it was over the size limit."""
    leftover: bytes
    """What the client sent after the end mark (only a client that pipelines without asking)."""


class DataGatherer:
    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        # A line starts before the first line: a message that is just "." + CRLF is an empty one.
        self._buffer = bytearray(b"\r\n")
        self._searched = 0
        self._dropped = 0
        """Bytes of a message over the limit that were let go (only the tail is kept, for the mark)."""

    def feed(self, chunk: bytes) -> Gathered | None:
        """Add a chunk; the gathered message once its end mark has arrived, else None."""
        self._buffer += chunk
        end = self._buffer.find(END, self._searched)
        if end < 0:
            self._searched = max(0, len(self._buffer) - len(END) + 1)
            if self._over_limit(len(self._buffer)):
                self._let_go()
            return None
        leftover = bytes(self._buffer[end + len(END) :])
        if self._over_limit(end + 2):
            return Gathered(None, leftover)
        return Gathered(bytes(self._buffer[: end + 2]).replace(b"\r\n.", b"\r\n")[2:], leftover)

    def _over_limit(self, buffered: int) -> bool:
        received = self._dropped + buffered - 2  # the line start put in front is not the client's
        return self.limit is not None and received > self.limit

    def _let_go(self) -> None:
        """Keep only what the end mark could still start in; memory stays bounded."""
        tail = len(END) - 1
        self._dropped += len(self._buffer) - tail
        del self._buffer[:-tail]
        self._searched = 0
