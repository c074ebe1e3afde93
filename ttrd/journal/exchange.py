"""Exchange / Microsoft 365 envelope journal reports (SPEC §2, "Journal envelopes").

A report is a multipart message marked `X-MS-Journal-Report:`. Its first text part lists the envelope:

    Sender: alice@example.com
    On-Behalf-Of: support@example.com
    Subject: …
    Message-Id: <…>
    To: bob@example.com, Expanded: sales@example.com
    Recipient: carol@example.com, Forwarded: dave@example.net

and the original message follows as a `message/rfc822` part. Only the recipient, Sender and
On-Behalf-Of lines are used; everything else comes from the original itself.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Callable
from dataclasses import dataclass

from ttrd.errors import ParseError
from ttrd.journal.headers import Headers, split_message

REPORT_HEADER = "x-ms-journal-report"

_BOUNDARY = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
_RECIPIENT_LABELS = ("to", "cc", "bcc", "recipient")
_ADDRESS = re.compile(r"[^\s,<>:;\"']+@[^\s,<>:;\"']+")


@dataclass(frozen=True, slots=True)
class JournalReport:
    original: bytes
    """The journaled message, as it was sent."""
    recipients: frozenset[str]
    """Every address of the To/Cc/Bcc/Recipient lines, with their Expanded and Forwarded addresses."""
    transmitter: str | None
    """The Sender line, when an On-Behalf-Of line says it sent for someone else."""


def is_journal_report(headers: Headers) -> bool:
    return REPORT_HEADER in headers


def unwrap(headers: Headers, body: bytes) -> JournalReport:
    """The original message and envelope facts of a journal report; ParseError when it has no original."""
    boundary = _boundary(headers.get("content-type") or "")
    if boundary is None:
        raise ParseError("journal report is not a multipart message")
    envelope: dict[str, list[str]] | None = None
    original: bytes | None = None
    for part in _parts(body, boundary):
        part_head, content = split_message(part)
        part_headers = Headers.parse(part_head)
        content_type = (part_headers.get("content-type") or "text/plain").lower()
        if content_type.startswith("message/rfc822") and original is None:
            original = content
        elif content_type.startswith("text/plain") and envelope is None:
            envelope = _envelope_lines(_decoded(part_headers, content))
    if original is None:
        raise ParseError("journal report carries no message/rfc822 original")
    envelope = envelope or {}
    recipients = frozenset(
        address.lower()
        for label in _RECIPIENT_LABELS
        for line in envelope.get(label, [])
        for address in _ADDRESS.findall(line)
    )
    return JournalReport(original, recipients, _transmitter(envelope))


def reduced_report(headers: Headers, body: bytes, reduce: Callable[[bytes], bytes]) -> bytes | None:
    """The body of a report with only what `unwrap` reads: text parts whole, the original `reduce`d.

    None when it has no parts to keep (the caller then keeps the start of the body as it is).
    """
    boundary = _boundary(headers.get("content-type") or "")
    if boundary is None:
        return None
    delimiter = b"--" + boundary.encode()
    kept: list[bytes] = []
    for part in _parts(body, boundary):
        part_head, content = split_message(part)
        content_type = (Headers.parse(part_head).get("content-type") or "text/plain").lower()
        if content_type.startswith("message/rfc822"):
            kept.append(part_head + b"\r\n\r\n" + reduce(content))
        elif content_type.startswith("text/plain"):
            kept.append(part)
    if not kept:
        return None
    return b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in kept) + delimiter + b"--\r\n"


def _transmitter(envelope: dict[str, list[str]]) -> str | None:
    if not envelope.get("on-behalf-of"):
        return None
    senders = [address for line in envelope.get("sender", []) for address in _ADDRESS.findall(line)]
    return senders[0].lower() if senders else None


def _boundary(content_type: str) -> str | None:
    match = _BOUNDARY.search(content_type)
    return (match.group(1) or match.group(2)) if match else None


def _parts(body: bytes, boundary: str) -> list[bytes]:
    """The body parts between `--boundary` lines (the preamble and epilogue dropped)."""
    delimiter = re.compile(rb"^--" + re.escape(boundary.encode()) + rb"(--)?[ \t]*\r?$", re.MULTILINE)
    parts: list[bytes] = []
    start: int | None = None
    for match in delimiter.finditer(body):
        if start is not None:
            parts.append(_strip_final_newline(body[start : match.start()]))
        if match.group(1):
            return parts
        start = match.end() + 1  # past the line end
    if start is not None:  # no closing delimiter: a truncated report still yields its parts
        parts.append(body[start:])
    return parts


def _strip_final_newline(part: bytes) -> bytes:
    """The line break before a delimiter belongs to the delimiter (RFC 2046)."""
    if part.endswith(b"\r\n"):
        return part[:-2]
    return part[:-1] if part.endswith(b"\n") else part


def _decoded(headers: Headers, content: bytes) -> str:
    encoding = (headers.get("content-transfer-encoding") or "7bit").strip().lower()
    try:
        if encoding == "base64":
            content = base64.b64decode(content)
        elif encoding == "quoted-printable":
            content = quopri.decodestring(content)
    except (binascii.Error, ValueError):
        pass  # an undecodable envelope yields no lines rather than no message
    return content.decode("utf-8", errors="replace")


def _envelope_lines(text: str) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():
        label, colon, value = line.partition(":")
        if colon and label.strip():
            lines.setdefault(label.strip().lower(), []).append(value.strip())
    return lines
