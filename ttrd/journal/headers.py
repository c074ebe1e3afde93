"""The header block of a message, parsed fast and without touching the body.

`email.parser` walks the whole message even in headers-only mode and builds objects we never use;
ttrd needs a dozen header values per message, so it splits the header block itself, unfolds it, and
decodes RFC 2047 words only in the few values that need them (subject, display names).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.errors import MessageError
from email.header import decode_header, make_header
from email.utils import parsedate_tz

_FOLD = re.compile(r"\n(?=[ \t])")
_FIELD = re.compile(r"^([^\s:]+)[ \t]*:(.*)$", re.MULTILINE)


def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """Split raw message bytes into (header block, body) at the first empty line (LF or CRLF)."""
    if raw.startswith((b"\n", b"\r\n")):
        return b"", raw.split(b"\n", 1)[1]
    # Plain finds: a regex starting with an optional \r cannot use the fast literal scan. The CRLF
    # search stops where the LF one matched, so an LF message's body is not scanned twice.
    lf = raw.find(b"\n\n")
    crlf = raw.find(b"\n\r\n", 0, lf + 2 if lf >= 0 else len(raw))
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return raw[:crlf].removesuffix(b"\r"), raw[crlf + 3 :]
    if lf >= 0:
        return raw[:lf].removesuffix(b"\r"), raw[lf + 2 :]
    return raw, b""


def decode_bytes(data: bytes) -> str:
    """Header bytes as text: UTF-8 when valid (SMTPUTF8 mail), else Latin-1 (8-bit junk stays readable).

    NUL characters are dropped: no header carries one on purpose, and PostgreSQL refuses them in text.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.replace("\0", "") if "\0" in text else text


class Headers:
    """Unfolded header fields in their original order; names compared case-insensitively."""

    __slots__ = ("_fields", "_first")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self._first = dict(reversed(fields))

    @classmethod
    def parse(cls, block: bytes | str) -> Headers:
        text = decode_bytes(block) if isinstance(block, bytes) else block
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        # Lines that are not "name: value" (an mbox "From " line, stray body text) are skipped.
        return cls([(name.lower(), value.strip()) for name, value in _FIELD.findall(_FOLD.sub("", text))])

    def __contains__(self, name: str) -> bool:
        return name in self._first

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def get(self, name: str) -> str | None:
        """The first value of a field (`name` in lower case), or None."""
        return self._first.get(name)

    def get_all(self, name: str) -> list[str]:
        """Every value of a field, in order; a scan, as few fields repeat and few callers ask."""
        return [value for field, value in self._fields if field == name]


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words (`=?utf-8?q?...?=`); plain values come back unchanged."""
    if "=?" not in value:
        return value
    try:
        decoded = str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError, MessageError):  # MessageError: bad base64
        return value
    # A lone surrogate (a charset codec's escape) cannot be stored as UTF-8: keep the words as written.
    return value if _SURROGATE.search(decoded) else decoded.replace("\0", "")


_SURROGATE = re.compile(r"[\ud800-\udfff]")


_ADDRESS_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"?|\((?:[^()\\]|\\.)*\)?|<[^<>]*>?|[,;:]|[^",;:<>()]+')
_ESCAPE = re.compile(r"\\(.)")


def _unescape(match: re.Match[str]) -> str:
    return match.group(1)


def addresses(*values: str) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of address-list values; entries without `@` are dropped.

    A small tokenizer instead of `email.utils.getaddresses`, which costs more than all the rest of
    parsing a message; tests check both agree over the corpora.
    """
    found: list[tuple[str, str]] = []
    for value in values:
        if value:
            _scan_addresses(value, found)
    return found


def _scan_addresses(value: str, found: list[tuple[str, str]]) -> None:
    words: list[str] = []
    comments: list[str] = []
    angle: str | None = None
    for token in _ADDRESS_TOKEN.findall(value):
        first = token[0]
        if first == '"':
            quoted = token[1:].removesuffix('"')
            words.append(_ESCAPE.sub(_unescape, quoted) if "\\" in quoted else quoted)
        elif first == "(":
            comments.append(token[1:].removesuffix(")").strip())
        elif first == "<":
            angle = token[1:].removesuffix(">")
        elif first in ",;:":
            if first != ":":  # "group:" names a group; its members follow
                _add_address(words, comments, angle, found)
            words, comments, angle = [], [], None
        elif token.strip():
            words.append(token.strip())
    _add_address(words, comments, angle, found)


def _add_address(
    words: list[str], comments: list[str], angle: str | None, found: list[tuple[str, str]]
) -> None:
    if angle is not None:
        address, name = angle, " ".join(words)
    else:
        address = next((word for word in " ".join(words).split() if "@" in word), "")
        name = " ".join(comments)
    address = address.strip().lower()
    if "@" in address:
        found.append((" ".join(decode_words(name).split()), address))


def address_set(*values: str) -> frozenset[str]:
    return frozenset(address for _, address in addresses(*values))


_ID_CHARACTERS = r"[^<>\s\x00-\x1f\x7f-\x9f]+"
"""What an id is made of: no angle brackets, white space or control characters (8-bit junk decoded
as Latin-1 is full of them)."""
_MSGID = re.compile(f"<({_ID_CHARACTERS})>")
_BARE_ID = re.compile(_ID_CHARACTERS)
MAX_ID_LENGTH = 600
"""Longer is not a message id: RFC 5322 ids fit a line, real ones are under 250 characters, and ids are
database keys (PostgreSQL's index entries hold about 2,700 bytes; 600 characters of UTF-8 fit)."""


def message_ids(value: str | None) -> list[str]:
    """Message ids of a References/In-Reply-To/Message-ID value, angle brackets stripped, in order.

    Ids longer than MAX_ID_LENGTH are left out, as if they were not there.
    """
    if not value:
        return []
    found = _MSGID.findall(value)
    if not found:
        bare = value.strip().strip("<>").strip()
        found = [bare] if _BARE_ID.fullmatch(bare) else []
    return [found_id for found_id in found if len(found_id) <= MAX_ID_LENGTH]


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""E-mail's dates begin with the Unix epoch: an earlier one is a broken clock, read as no date."""
FAR_FUTURE = datetime(9999, 12, 1, tzinfo=UTC)
"""What a date beyond it becomes: still far after any receipt time, so SPEC §2's clock-skew guard
replaces it, and far enough from datetime's end that adding a window to it cannot overflow."""


def parse_date(value: str | None) -> datetime | None:
    """An RFC 5322 date as an aware UTC datetime, or None when it does not parse; no zone means UTC.

    A date before EARLIEST is None; one after FAR_FUTURE (even past year 9999 once its offset is
    applied, as `31 Dec 9999 23:59:59 -1200`) is FAR_FUTURE.
    """
    if not value:
        return None
    parts = parsedate_tz(value)
    if parts is None:
        return None
    year, month, day, hour, minute, second = parts[:6]
    offset = parts[9] or 0
    try:
        local = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
    instant = local.timestamp() - offset
    if instant < EARLIEST.timestamp():
        return None
    return FAR_FUTURE if instant > FAR_FUTURE.timestamp() else datetime.fromtimestamp(instant, UTC)


def received_date(value: str) -> datetime | None:
    """The date of a `Received:` header: what follows its last semicolon."""
    _, semicolon, stamp = value.rpartition(";")
    return parse_date(stamp) if semicolon else None
