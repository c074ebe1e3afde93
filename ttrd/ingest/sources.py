"""Turn the paths given to `ttrd import` into a stream of raw messages.

What a path means:

- a Maildir (a directory with `cur/` or `new/`): the files of `cur/` and `new/` together, sorted by
  file name (Maildir names start with the delivery time, so this is roughly arrival order). `tmp/`
  holds deliveries in progress and is skipped, as are dot files and Maildir++ sub-folders (`.Sent`):
  each folder is imported on its own, since `--folder` says what one folder is.
- any other directory: its files, recursively, sorted by name, each read as a file given on its own.
  Dot entries are skipped (`.git`, `.DS_Store`); a sub-directory that is a Maildir is read as one;
  entries that are neither file nor directory (fifos, sockets) and links to directories (loops) are
  skipped.
- a file: decompressed when it starts with the xz, gzip or bzip2 magic bytes, whatever its name; then
  one message when it is in a Maildir or its name ends in `.eml` (a leading `From ` envelope line is
  dropped, and later `From ` lines are body text), else an mbox when its content starts with `From `,
  else one message.

An mbox splits at every line that starts with `From `: an unescaped `From ` line in a body therefore
starts a new message, as in every mbox reader that does not trust `Content-Length`. The separator line
is dropped, with the one blank line that the format writes after each message, and mboxrd escaping is
undone (`>From ` becomes `From `, `>>From ` becomes `>From `). Line endings are kept (LF or CRLF).

Edge cases: an empty file, a compressed empty file and a directory without files yield no message and
are not errors (an empty mbox is how mail programs store an empty folder, and a Maildir's `new/` is
empty most of the time). A message that is empty or only blank lines is skipped. Anything else is
yielded, binary garbage included: the parser decides. A path that cannot be read raises InputError
naming it; a compressed stream that turns out truncated or corrupt raises at that point, after the
messages before it were yielded, and the error says how many were.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import io
import itertools
import lzma
import os
import re
import stat
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ttrd.errors import InputError

CHUNK_SIZE = 1 << 20  # bytes read at a time: memory stays bounded whatever the size of a file

_SEPARATOR = b"\nFrom "
_ESCAPED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)
# What reading a file can raise: OSError for the disk, the others for a bad compressed stream.
_READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as stored, before any parsing."""

    data: bytes
    origin: str  # for error messages: the file, or "file:#n" for the n-th message of an mbox


@dataclass(frozen=True, slots=True)
class _Input:
    path: Path
    size: int  # on disk, for progress
    single: bool = False  # one message whatever its first line (a Maildir file, an .eml file)


def total_bytes(paths: Sequence[Path]) -> int:
    """On-disk size of everything `read_messages(paths)` reads, for a progress bar."""
    return sum(item.size for item in _inputs(paths))


def read_messages(paths: Sequence[Path], *, chunk_size: int = CHUNK_SIZE) -> Iterator[tuple[RawMessage, int]]:
    """Yield each message of `paths`, in a deterministic order, with the on-disk bytes consumed so far.

    The count reaches `total_bytes(paths)` with the last message, unless the last files hold none:
    complete the progress bar after the loop. Every path is found, and every directory listed, before
    the first message, so that a wrong path fails at once.
    """
    inputs = _inputs(paths)
    done = 0
    for item in inputs:
        for message, position in _file_messages(item.path, chunk_size, item.single):
            yield message, done + min(position, item.size)
        done += item.size


def _inputs(paths: Sequence[Path]) -> list[_Input]:
    found: list[_Input] = []
    for path in paths:
        status = _stat(path)
        if stat.S_ISDIR(status.st_mode):
            found.extend(_directory_inputs(path))
        elif stat.S_ISREG(status.st_mode):
            found.append(_Input(path, status.st_size, _is_eml(path)))
        else:
            raise InputError(f"{path}: not a regular file or a directory")
    return found


def _directory_inputs(directory: Path) -> Iterator[_Input]:
    if _is_maildir(directory):
        yield from _maildir_inputs(directory)
        return
    for entry in _entries(directory):
        if entry.is_dir(follow_symlinks=False):
            yield from _directory_inputs(Path(entry.path))
        elif entry.is_file():
            yield _Input(Path(entry.path), _entry_size(entry), _is_eml(Path(entry.path)))


def _is_maildir(directory: Path) -> bool:
    return (directory / "cur").is_dir() or (directory / "new").is_dir()


def _maildir_inputs(maildir: Path) -> Iterator[_Input]:
    entries = [
        entry
        for sub in ("cur", "new")
        if (maildir / sub).is_dir()
        for entry in _entries(maildir / sub)
        if entry.is_file()
    ]
    # By name across both folders; the folder only breaks ties, for a deterministic order.
    entries.sort(key=lambda entry: (entry.name, entry.path))
    return (_Input(Path(entry.path), _entry_size(entry), single=True) for entry in entries)


def _is_eml(path: Path) -> bool:
    return ".eml" in (suffix.lower() for suffix in path.suffixes)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    """The entries of `directory` that do not start with a dot, sorted by name."""
    try:
        with os.scandir(directory) as scan:
            entries = [entry for entry in scan if not entry.name.startswith(".")]
    except OSError as err:
        raise InputError(f"{directory}: {_problem(err)}") from None
    return sorted(entries, key=lambda entry: entry.name)


def _entry_size(entry: os.DirEntry[str]) -> int:
    try:
        return entry.stat().st_size
    except OSError as err:
        raise InputError(f"{entry.path}: {_problem(err)}") from None


def _stat(path: Path) -> os.stat_result:
    try:
        return path.stat()
    except OSError as err:
        raise InputError(f"{path}: {_problem(err)}") from None


def _problem(err: OSError) -> str:
    """The OS error in plain words, without the path (the caller names it)."""
    if err.errno == errno.ENOENT:
        return "does not exist"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if err.errno == errno.ENOTDIR:
        return "a part of the path is not a directory"
    return f"cannot be read ({(err.strerror or type(err).__name__).lower()})"


def _file_messages(path: Path, chunk_size: int, single: bool) -> Iterator[tuple[RawMessage, int]]:
    """The messages of one file, each with the file's on-disk bytes read so far."""
    try:
        raw = path.open("rb")
    except OSError as err:
        raise InputError(f"{path}: {_problem(err)}") from None
    count = 0
    compression = None
    with raw:
        try:
            compression = _compression(raw)
            stream = _decompressed(raw, compression)
            for message in _messages(path, _chunks(stream, chunk_size), single):
                count += 1
                yield message, raw.tell()
        except _READ_ERRORS as err:
            read = f"{count} message{'' if count == 1 else 's'} read before that"
            raise InputError(f"{path}: {_read_failure(err, compression)}; {read}") from None


def _compression(raw: io.BufferedReader) -> str | None:
    """The compression format from the magic bytes; the name of a file proves nothing."""
    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    # "BZh" and the block size digit: a text file starting with "BZh" is not taken for bzip2.
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4] in b"123456789":
        return "bzip2"
    return None


def _decompressed(raw: io.BufferedReader, compression: str | None) -> io.BufferedIOBase:
    # These readers also read the concatenated streams that pxz, pigz and pbzip2 write.
    if compression == "xz":
        return lzma.LZMAFile(raw)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if compression == "bzip2":
        return bz2.BZ2File(raw)
    return raw


def _read_failure(err: Exception, compression: str | None) -> str:
    # A disk error has an errno; the decompressors' OSErrors (bad gzip header, bad bzip2 data) do not.
    if isinstance(err, OSError) and (err.errno is not None or compression is None):
        return _problem(err)
    if isinstance(err, EOFError):
        return f"the {compression} data is cut short (the file is truncated)"
    return f"the {compression} data is corrupt"


def _chunks(stream: io.BufferedIOBase, chunk_size: int) -> Iterator[bytes]:
    while chunk := stream.read(chunk_size):
        yield chunk


def _messages(path: Path, chunks: Iterator[bytes], single: bool) -> Iterator[RawMessage]:
    """One message for an .eml or Maildir file, or each message of an mbox."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= len(b"From "):  # at most a few rounds: chunks are usually large
            break
    content = itertools.chain((head,), chunks)
    if single:
        data = b"".join(content)
        if data.startswith(b"From "):  # the envelope line some tools write before one message
            data = data[_line_end(data, 0) :]
        if not _blank(data):
            yield RawMessage(data, str(path))
    elif head.startswith(b"From "):
        for number, data in enumerate(_split_mbox(content), start=1):
            if not _blank(data):
                yield RawMessage(_unescape(data), f"{path}:#{number}")
    else:
        data = b"".join(content)
        if not _blank(data):
            yield RawMessage(data, str(path))


def _split_mbox(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The messages between the `From ` lines of mbox content, still escaped.

    The content is cut into blocks of whole lines, so that a `From ` line is never split between
    two blocks; a message may span blocks and is joined only once, when it is complete.
    """
    parts: list[bytes] = []  # the current message so far; empty before the first separator
    started = False
    for block in _line_blocks(chunks):
        start = 0
        separator = 0 if block.startswith(b"From ") else _find_separator(block, 0)
        while separator >= 0:
            parts.append(block[start:separator])
            if started:
                yield _without_separator_blank(b"".join(parts))
            started = True
            parts = []
            start = _line_end(block, separator)
            separator = _find_separator(block, start)
        parts.append(block[start:])
    if started:
        yield _without_separator_blank(b"".join(parts))


def _find_separator(block: bytes, start: int) -> int:
    """The offset of the next `From ` line in `block` at or after `start`, or -1."""
    found = block.find(_SEPARATOR, start - 1 if start > 0 else 0)
    return found + 1 if found >= 0 else -1


def _line_end(block: bytes, start: int) -> int:
    """The offset just after the line that begins at `start`."""
    end = block.find(b"\n", start)
    return len(block) if end < 0 else end + 1


def _line_blocks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Regroup chunks into blocks that end at a line end (the last block may not)."""
    pending: list[bytes] = []  # a line not yet ended; a list so a huge line is joined only once
    for chunk in chunks:
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            pending.append(chunk)
            continue
        pending.append(chunk[:cut] if cut < len(chunk) else chunk)
        yield b"".join(pending)
        pending = [chunk[cut:]] if cut < len(chunk) else []
    if pending:
        yield b"".join(pending)


def _without_separator_blank(data: bytes) -> bytes:
    """Drop the blank line that mbox writers put after each message."""
    if data.endswith(b"\r\n\r\n"):
        return data[:-2]
    if data.endswith(b"\n\n"):
        return data[:-1]
    return data


def _unescape(data: bytes) -> bytes:
    # The test is a fast scan that spares the regex to nearly every message.
    return _ESCAPED_FROM.sub(rb"\1", data) if b">From " in data else data


def _blank(data: bytes) -> bool:
    return not data or data.isspace()
