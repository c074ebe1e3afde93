"""IMAP server responses (as aioimaplib hands them over) read into plain values. Pure.

aioimaplib gives a command's untagged lines as a list: text lines as `bytes`, each literal (`{n}`
and the n bytes after it) as a `bytearray` of its own right after the line that announced it, and
the tagged completion text last. What a server sends is checked, not trusted: a missing item is a
`ProtocolError`, not a crash, because the poller must survive any server.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ttrd.journal.headers import EARLIEST

Lines = Sequence[bytes | bytearray]


class ProtocolError(Exception):
    """The server answered something this client cannot read."""


@dataclass(frozen=True, slots=True)
class ListedFolder:
    name: str
    """As the server spells it (modified UTF-7): what SELECT takes."""
    flags: frozenset[str]
    """Lower-cased, e.g. `\\sent`, `\\noselect`."""
    delimiter: str | None

    @property
    def display_name(self) -> str:
        """The name decoded from modified UTF-7 (RFC 3501 §5.1.3), for people and for matching."""
        return decode_modified_utf7(self.name)

    @property
    def selectable(self) -> bool:
        return not {"\\noselect", "\\nonexistent"} & self.flags


@dataclass(frozen=True, slots=True)
class Selected:
    uidvalidity: int
    uidnext: int | None
    exists: int


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: int
    internal_date: datetime | None
    size: int | None
    header: bytes | None
    """BODY[HEADER], when asked for."""
    text_start: bytes | None
    """BODY[TEXT]<0>, when asked for."""


_LIST = re.compile(rb'^(?:LIST )?\(([^)]*)\) (NIL|"(?:[^"\\]|\\.)*") (.*)$', re.IGNORECASE)


def parse_list(lines: Lines) -> list[ListedFolder]:
    """The folders of a LIST (or LIST … RETURN (SPECIAL-USE)) response (aioimaplib strips `LIST `)."""
    found: list[ListedFolder] = []
    items = list(lines)
    for index, line in enumerate(items):
        match = _LIST.match(bytes(line)) if isinstance(line, bytes) else None
        if match is None:
            continue
        flags = frozenset(flag.lower() for flag in match[1].decode("ascii", "replace").split())
        delimiter = None if match[2].upper() == b"NIL" else _unquote(match[2])
        name_part = match[3]
        if re.fullmatch(rb"\{\d+\}", name_part) and index + 1 < len(items):
            name = bytes(items[index + 1]).decode("utf-8", "replace")  # a literal name
        else:
            name = _unquote(name_part) if name_part.startswith(b'"') else name_part.decode("utf-8", "replace")
        found.append(ListedFolder(name, flags, delimiter))
    return found


def _unquote(quoted: bytes) -> str:
    inner = quoted[1:-1] if quoted.startswith(b'"') and quoted.endswith(b'"') else quoted
    return re.sub(rb"\\(.)", rb"\1", inner).decode("utf-8", "replace")


_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]", re.IGNORECASE)
_EXISTS = re.compile(rb"^(\d+) EXISTS", re.IGNORECASE)


def parse_select(lines: Lines) -> Selected:
    """UIDVALIDITY, UIDNEXT and EXISTS of a SELECT or EXAMINE response."""
    codes: dict[str, int] = {}
    exists = 0
    for line in lines:
        if not isinstance(line, bytes):
            continue
        for name, value in _CODE.findall(line):
            codes[name.decode().upper()] = int(value)
        if match := _EXISTS.match(line):
            exists = int(match[1])
    if "UIDVALIDITY" not in codes:
        raise ProtocolError("SELECT answered without UIDVALIDITY")
    return Selected(codes["UIDVALIDITY"], codes.get("UIDNEXT"), exists)


def parse_search(lines: Lines) -> list[int]:
    """The numbers of a SEARCH (or UID SEARCH) response, ascending.

    aioimaplib strips the `SEARCH ` of the untagged line, and appends the completion text
    ("Search completed"): the numbers are the lines made of digits alone.
    """
    found: set[int] = set()
    for line in lines:
        if not isinstance(line, bytes):
            continue
        words = line[7:].split() if line[:7].upper() == b"SEARCH " else line.split()
        if words and all(word.isdigit() for word in words):
            found.update(map(int, words))
    return sorted(found)


_FETCH_START = re.compile(rb"^\d+ FETCH \(", re.IGNORECASE)
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"', re.IGNORECASE)
_SECTION = re.compile(
    rb"\bBODY\[(HEADER|TEXT)\](?:<\d+>)? (?:\{(\d+)\}$|NIL|\"((?:[^\"\\]|\\.)*)\")", re.IGNORECASE
)


def parse_fetch(lines: Lines) -> list[Fetched]:
    """The messages of a UID FETCH response; records without a UID (unsolicited updates) are left out."""
    return [fetched for record in _records(lines) if (fetched := _fetched(record)) is not None]


def _records(lines: Lines) -> Iterator[list[bytes | bytearray]]:
    record: list[bytes | bytearray] = []
    for line in lines:
        if isinstance(line, bytes) and _FETCH_START.match(line):
            if record:
                yield record
            record = [line]
        elif record:
            record.append(line)
    if record:
        yield record


def _fetched(record: list[bytes | bytearray]) -> Fetched | None:
    text = b" ".join(bytes(part) for part in record if isinstance(part, bytes))
    uid = _UID.search(text)
    if uid is None:
        return None
    sections = dict(_sections(record))
    size = _SIZE.search(text)
    date = _INTERNALDATE.search(text)
    return Fetched(
        uid=int(uid[1]),
        internal_date=parse_internaldate(date[1].decode("ascii", "replace")) if date else None,
        size=int(size[1]) if size else None,
        header=sections.get("HEADER"),
        text_start=sections.get("TEXT"),
    )


def _sections(record: list[bytes | bytearray]) -> Iterator[tuple[str, bytes]]:
    """(section name, its bytes) of every BODY[…] item, literal or quoted."""
    for index, part in enumerate(record):
        if not isinstance(part, bytes):
            continue
        for match in _SECTION.finditer(part):
            name = match[1].decode().upper()
            if match[2] is not None:
                literal = record[index + 1] if index + 1 < len(record) else None
                if not isinstance(literal, bytearray) or len(literal) != int(match[2]):
                    raise ProtocolError(f"BODY[{name}] announced {match[2].decode()} bytes and sent others")
                yield name, bytes(literal)
            elif match[3] is not None:
                yield name, re.sub(rb"\\(.)", rb"\1", match[3])
            else:
                yield name, b""


def parse_internaldate(value: str) -> datetime | None:
    """An INTERNALDATE (`02-Mar-2026 09:00:00 +0000`) in UTC; None when it does not parse, or names a
    time before e-mail's dates begin (as `Date:` headers are read: ttrd.journal.headers.EARLIEST)."""
    try:
        moment = datetime.strptime(value.strip(), "%d-%b-%Y %H:%M:%S %z").astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if moment >= EARLIEST else None


_THROTTLE = re.compile(r"backoff time:\s*(\d+)\s*milli", re.IGNORECASE)


def throttle_seconds(text: str) -> float | None:
    """How long a server that throttles asks to be left alone (Microsoft 365: "Suggested Backoff Time:
    N milliseconds"), or None when the text asks nothing of the kind."""
    match = _THROTTLE.search(text)
    return int(match[1]) / 1000 if match else None


def decode_modified_utf7(name: str) -> str:
    """A folder name from IMAP's modified UTF-7 (`&AMk-l&AOk-ments` → `Éléments`); as is when broken."""
    if "&" not in name:
        return name
    try:
        return _SHIFTED.sub(_decode_shifted, name)
    except (ValueError, UnicodeDecodeError):
        return name


_SHIFTED = re.compile(r"&([^-]*)-")


def _decode_shifted(match: re.Match[str]) -> str:
    encoded = match[1]
    if not encoded:
        return "&"  # "&-" is a plain ampersand
    padded = encoded.replace(",", "/") + "=" * (-len(encoded) % 4)
    return base64.b64decode(padded, validate=True).decode("utf-16-be")
