"""ttrd.ingest.sources: paths on the command line to raw messages."""

from __future__ import annotations

import bz2
import errno
import gzip
import lzma
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttrd.errors import InputError
from ttrd.ingest.sources import RawMessage, read_messages, total_bytes

EML = b"From: a@example.net\nTo: b@example.com\nSubject: hi\n\nbody\n"
EML_CRLF = EML.replace(b"\n", b"\r\n")

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gz": gzip.compress,
    "xz": lzma.compress,
    "bz2": lambda data: bz2.compress(data, 1),  # 100 kB blocks: a cut file still has whole blocks
}


def message(n: int, body: bytes = b"body\n") -> bytes:
    return b"Message-ID: <%d@example.net>\nSubject: %d\n\n" % (n, n) + body


def mbox(*messages: bytes, newline: bytes = b"\n") -> bytes:
    """An mboxrd file as writers make it: separator line, escaped message, blank line."""
    escaped = (re.sub(rb"(?m)^(>*From )", rb">\1", m) for m in messages)
    return b"".join(
        b"From sender@example.net Mon Mar  2 09:15:00 2026" + newline + m + newline for m in escaped
    )


def datas(paths: list[Path], **kwargs: int) -> list[bytes]:
    return [m.data for m, _ in read_messages(paths, **kwargs)]


def messages(paths: list[Path]) -> list[RawMessage]:
    return [m for m, _ in read_messages(paths)]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- kinds of input ---------------------------------------------------------------------------


@pytest.mark.parametrize("data", [EML, EML_CRLF], ids=["lf", "crlf"])
def test_single_eml_is_yielded_exactly_as_stored(tmp_path: Path, data: bytes) -> None:
    path = write(tmp_path / "one.eml", data)
    assert messages([path]) == [RawMessage(data, str(path))]


def test_eml_and_maildir_files_are_one_message_even_with_from_lines(tmp_path: Path) -> None:
    """A bounce saved as .eml may start with an envelope line and quote `From ` lines in its body."""
    body = b"From: a@example.net\n\nThe original:\nFrom someone@example.org Mon Mar 2 2026\nmore\n"
    data = b"From MAILER-DAEMON Mon Mar  2 09:15:00 2026\n" + body
    eml = write(tmp_path / "bounce.eml", data)
    write(tmp_path / "Maildir" / "cur" / "1700000000.1.host", data)
    write(tmp_path / "Maildir" / "new" / ".keep", b"")
    assert datas([eml]) == [body]
    assert datas([tmp_path / "Maildir"]) == [body]
    as_mbox = write(tmp_path / "bounce", data)
    assert len(datas([as_mbox])) == 2


def test_binary_garbage_is_yielded_for_the_parser_to_judge(tmp_path: Path) -> None:
    garbage = bytes(range(256)) * 3
    path = write(tmp_path / "junk.eml", garbage)
    assert datas([path]) == [garbage]


def test_plain_directory_is_read_recursively_sorted_without_dot_entries(tmp_path: Path) -> None:
    write(tmp_path / "b.eml", message(2))
    write(tmp_path / "a.eml", message(1))
    write(tmp_path / "c" / "x.eml", message(3))
    write(tmp_path / ".hidden.eml", message(98))
    write(tmp_path / ".git" / "objects", message(99))
    got = messages([tmp_path])
    assert [m.data for m in got] == [message(1), message(2), message(3)]
    assert got[2].origin == str(tmp_path / "c" / "x.eml")


def test_files_of_a_plain_directory_are_each_read_as_their_kind(tmp_path: Path) -> None:
    write(tmp_path / "a.mbox.gz", gzip.compress(mbox(message(1), message(2))))
    write(tmp_path / "b.eml", message(3))
    assert datas([tmp_path]) == [message(1), message(2), message(3)]


def test_maildir_reads_cur_and_new_sorted_by_name_skipping_tmp_and_dot_files(tmp_path: Path) -> None:
    write(tmp_path / "cur" / "1700000002.M2.host:2,S", message(2))
    write(tmp_path / "new" / "1700000001.M1.host", message(1))
    write(tmp_path / "new" / "1700000003.M3.host", message(3))
    write(tmp_path / "tmp" / "1700000000.M0.host", message(90))
    write(tmp_path / "cur" / ".1700000000.swp", message(91))
    write(tmp_path / ".Sent" / "cur" / "1600000000.M9.host", message(92))
    write(tmp_path / "dovecot-uidlist", b"3 V1 N4\n")
    got = messages([tmp_path])
    assert [m.data for m in got] == [message(1), message(2), message(3)]
    assert got[0].origin == str(tmp_path / "new" / "1700000001.M1.host")


def test_maildir_with_only_new_is_a_maildir(tmp_path: Path) -> None:
    write(tmp_path / "new" / "1", message(1))
    write(tmp_path / "tmp" / "2", message(2))
    assert datas([tmp_path]) == [message(1)]


def test_maildir_inside_a_plain_directory_is_read_as_a_maildir(tmp_path: Path) -> None:
    write(tmp_path / "INBOX" / "cur" / "1", message(1))
    write(tmp_path / "INBOX" / "tmp" / "2", message(2))
    write(tmp_path / "INBOX" / "dovecot.index", b"\x00\x01binary index")
    write(tmp_path / "loose.eml", message(3))
    assert datas([tmp_path]) == [message(1), message(3)]


def test_paths_are_read_in_the_order_given(tmp_path: Path) -> None:
    a = write(tmp_path / "a.eml", message(1))
    b = write(tmp_path / "b.eml", message(2))
    assert datas([b, a]) == [message(2), message(1)]


# --- mbox ---------------------------------------------------------------------------------------


def test_mbox_drops_separator_lines_and_the_blank_line_after_each_message(tmp_path: Path) -> None:
    path = write(tmp_path / "box", mbox(message(1), message(2), message(3)))
    got = messages([path])
    assert [m.data for m in got] == [message(1), message(2), message(3)]
    assert [m.origin for m in got] == [f"{path}:#1", f"{path}:#2", f"{path}:#3"]


def test_mbox_without_blank_lines_between_messages(tmp_path: Path) -> None:
    path = write(tmp_path / "box", b"From a\n" + message(1) + b"From b\n" + message(2))
    assert datas([path]) == [message(1), message(2)]


@pytest.mark.parametrize("suffix", ["gz", "xz", "bz2"])
@pytest.mark.parametrize("name", ["box.mbox.{}", "box.mbox", "box.{}.txt"], ids=["ext", "noext", "wrongext"])
def test_compressed_mbox_is_recognised_by_magic_bytes(tmp_path: Path, suffix: str, name: str) -> None:
    content = mbox(message(1), message(2))
    path = write(tmp_path / name.format(suffix), COMPRESSORS[suffix](content))
    assert datas([path]) == [message(1), message(2)]


@pytest.mark.parametrize("suffix", ["gz", "xz", "bz2"])
def test_compressed_eml_is_one_message(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"one.eml.{suffix}", COMPRESSORS[suffix](EML_CRLF))
    assert messages([path]) == [RawMessage(EML_CRLF, str(path))]


@pytest.mark.parametrize("suffix", ["gz", "xz", "bz2"])
def test_concatenated_compressed_streams_are_read_whole(tmp_path: Path, suffix: str) -> None:
    compress = COMPRESSORS[suffix]
    path = write(tmp_path / "box", compress(mbox(message(1))) + compress(mbox(message(2))))
    assert datas([path]) == [message(1), message(2)]


def test_plain_file_starting_like_bzip2_is_not_taken_for_it(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.eml", b"BZh: x\n\nbody\n")
    assert datas([path]) == [b"BZh: x\n\nbody\n"]


def test_mboxrd_escaping_is_undone(tmp_path: Path) -> None:
    body = b"From the start\n>From quoted\n>>From twice\nnot >From mid-line\n"
    raw = b"From x\n" + message(1, b">From the start\n>>From quoted\n>>>From twice\nnot >From mid-line\n")
    path = write(tmp_path / "box", raw + b"\n")
    assert datas([path]) == [message(1, body)]


def test_escaped_from_on_the_first_line_of_a_message_is_undone(tmp_path: Path) -> None:
    path = write(tmp_path / "box", b"From x\n>From odd\nSubject: x\n\nbody\n\n")
    assert datas([path]) == [b"From odd\nSubject: x\n\nbody\n"]


def test_unescaped_from_line_in_a_body_starts_a_new_message(tmp_path: Path) -> None:
    # The documented mbox behaviour: any line starting with "From " separates messages.
    raw = b"From x\n" + message(1, b"Hello,\nFrom me to you\nbye\n") + b"\n"
    path = write(tmp_path / "box", raw)
    got = messages([path])
    assert [m.data for m in got] == [message(1, b"Hello,\n"), b"bye\n"]
    assert got[1].origin == f"{path}:#2"


def test_from_without_space_does_not_split(tmp_path: Path) -> None:
    body = b"From:me\nFromage\n"
    path = write(tmp_path / "box", mbox(message(1, body)))
    assert datas([path]) == [message(1, body)]


def test_crlf_mbox_keeps_crlf(tmp_path: Path) -> None:
    one, two = (message(n, b"line\nFrom here\n>From there\n").replace(b"\n", b"\r\n") for n in (1, 2))
    path = write(tmp_path / "box", mbox(one, two, newline=b"\r\n"))
    assert b"\r\n>From here\r\n>>From there\r\n" in path.read_bytes()
    assert datas([path]) == [one, two]


def test_empty_messages_are_skipped_but_still_numbered(tmp_path: Path) -> None:
    raw = (
        b"From a\n\nFrom b\n" + message(2) + b"\nFrom c\n\r\n\nFrom d\nFrom e\n" + message(5) + b"\nFrom f\n"
    )
    path = write(tmp_path / "box", raw)
    got = messages([path])
    assert [m.data for m in got] == [message(2), message(5)]
    assert [m.origin for m in got] == [f"{path}:#2", f"{path}:#5"]


def test_last_message_without_final_newline(tmp_path: Path) -> None:
    path = write(tmp_path / "box", b"From a\n" + message(1) + b"\nFrom b\nSubject: x\n\nno newline")
    assert datas([path]) == [message(1), b"Subject: x\n\nno newline"]


def test_every_chunk_size_gives_the_same_messages(tmp_path: Path) -> None:
    # Every chunk size puts a chunk boundary at every position once: inside "\nFrom ",
    # between "\r" and "\n", just before a separator, inside an escaped line.
    crlf = message(3, b"a\nFrom b\n").replace(b"\n", b"\r\n")
    content = mbox(message(1), message(2, b"From x\nFrom y\n"), newline=b"\n") + mbox(crlf, newline=b"\r\n")
    path = write(tmp_path / "box", content)
    expected = datas([path])
    assert expected == [message(1), message(2, b"From x\nFrom y\n"), crlf]
    for size in range(1, len(content) + 2):
        assert datas([path], chunk_size=size) == expected, size


def test_a_line_longer_than_many_chunks(tmp_path: Path) -> None:
    long_line = b"X-Long: " + b"y" * 10_000 + b"\n"
    path = write(tmp_path / "box", mbox(message(1, long_line), message(2)))
    assert datas([path], chunk_size=7) == [message(1, long_line), message(2)]


@settings(max_examples=200, deadline=None)
@given(
    bodies=st.lists(
        st.lists(st.sampled_from([b"text", b"From x", b">From y", b">>From z", b"", b"From", b" From"])),
        min_size=1,
        max_size=5,
    ),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    chunk_size=st.integers(min_value=1, max_value=64),
)
def test_mboxrd_round_trip(
    tmp_path_factory: pytest.TempPathFactory, bodies: list[list[bytes]], newline: bytes, chunk_size: int
) -> None:
    originals = [
        message(n, b"".join(line + b"\n" for line in body)).replace(b"\n", newline)
        for n, body in enumerate(bodies)
    ]
    path = write(tmp_path_factory.mktemp("rt") / "box", mbox(*originals, newline=newline))
    assert datas([path], chunk_size=chunk_size) == originals


# --- progress ------------------------------------------------------------------------------------


def test_progress_grows_and_ends_at_total_bytes(tmp_path: Path) -> None:
    many = [message(n, os.urandom(2000).hex().encode() + b"\n") for n in range(50)]
    write(tmp_path / "a.eml", EML)
    write(tmp_path / "b.mbox.xz", lzma.compress(mbox(*many)))
    write(tmp_path / "c.mbox", mbox(*many))
    write(tmp_path / "d" / "cur" / "1", EML)
    total = total_bytes([tmp_path])
    assert total == sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    progress = [done for _, done in read_messages([tmp_path], chunk_size=4096)]
    assert len(progress) == 1 + 50 + 50 + 1
    assert progress == sorted(progress)
    assert progress[-1] == total
    # Streaming: the first mbox message comes long before the mbox is read.
    assert progress[1] < (tmp_path / "a.eml").stat().st_size + (tmp_path / "b.mbox.xz").stat().st_size


def test_total_bytes_of_a_file(tmp_path: Path) -> None:
    path = write(tmp_path / "a.eml", EML)
    assert total_bytes([path, path]) == 2 * len(EML)


# --- edge cases that are not errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"\n\n", b"\r\n", gzip.compress(b""), lzma.compress(b""), bz2.compress(b""), b"From x\n"],
    ids=["empty", "blank-lines", "crlf", "empty-gz", "empty-xz", "empty-bz2", "separator-only"],
)
def test_file_without_a_message_yields_nothing(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path / "nothing", content)
    assert datas([path]) == []
    assert total_bytes([path]) == len(content)


def test_empty_directory_and_empty_maildir_yield_nothing(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "maildir" / sub).mkdir(parents=True)
    assert datas([tmp_path / "plain", tmp_path / "maildir"]) == []


def test_directory_skips_entries_that_are_not_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to(tmp_path)
    write(tmp_path / "a.eml", EML)
    assert datas([tmp_path]) == [EML]


# --- errors ----------------------------------------------------------------------------------------


def input_error(paths: list[Path], **kwargs: int) -> tuple[str, int]:
    """The InputError message raised by reading `paths`, and how many messages came before it."""
    count = 0
    with pytest.raises(InputError) as caught:
        for _ in read_messages(paths, **kwargs):
            count += 1
    text = str(caught.value)
    assert "\n" not in text
    assert "Traceback" not in text
    assert "Errno" not in text
    return text, count


def test_missing_path_is_an_error_before_any_message(tmp_path: Path) -> None:
    good = write(tmp_path / "a.eml", EML)
    missing = tmp_path / "nope.mbox"
    assert input_error([good, missing]) == (f"{missing}: does not exist", 0)
    with pytest.raises(InputError, match="does not exist"):
        total_bytes([missing])


def test_path_through_a_file_is_an_error(tmp_path: Path) -> None:
    good = write(tmp_path / "a.eml", EML)
    text, _ = input_error([good / "x"])
    assert text == f"{good / 'x'}: a part of the path is not a directory"


def test_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert input_error([fifo]) == (f"{fifo}: not a regular file or a directory", 0)


def denied(path: Path) -> PermissionError:
    return PermissionError(errno.EACCES, "Permission denied", str(path))


def test_unreadable_file_is_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "a.eml", EML)
    real_open = Path.open

    def fake_open(self: Path, mode: str = "r") -> object:
        if self == path:
            raise denied(self)
        return real_open(self, mode)

    monkeypatch.setattr(Path, "open", fake_open)
    assert input_error([path]) == (f"{path}: permission denied", 0)


def test_unreadable_directory_is_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    write(locked / "a.eml", EML)
    real_scandir = os.scandir

    def fake_scandir(path: Path) -> object:
        if Path(path) == locked:
            raise denied(locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", fake_scandir)
    assert input_error([tmp_path]) == (f"{locked}: permission denied", 0)


def big_mbox(count: int) -> bytes:
    # Random bodies do not compress, so the compressed file is long and can be cut in the middle.
    return mbox(*(message(n, os.urandom(1500).hex().encode() + b"\n") for n in range(count)))


@pytest.mark.parametrize("suffix", ["gz", "xz", "bz2"])
def test_truncated_compressed_mbox_fails_after_the_messages_before_the_cut(
    tmp_path: Path, suffix: str
) -> None:
    packed = COMPRESSORS[suffix](big_mbox(200))
    path = write(tmp_path / f"box.{suffix}", packed[: len(packed) // 2])
    text, count = input_error([path], chunk_size=4096)
    assert 50 < count < 150
    kind = {"gz": "gzip", "xz": "xz", "bz2": "bzip2"}[suffix]
    assert (
        text
        == f"{path}: the {kind} data is cut short (the file is truncated); {count} messages read before that"
    )


@pytest.mark.parametrize("suffix", ["gz", "xz", "bz2"])
def test_corrupt_compressed_mbox_fails_after_the_messages_before_the_damage(
    tmp_path: Path, suffix: str
) -> None:
    packed = bytearray(COMPRESSORS[suffix](big_mbox(200)))
    middle = len(packed) // 2
    packed[middle : middle + 64] = bytes(64)
    path = write(tmp_path / f"box.{suffix}", bytes(packed))
    text, count = input_error([path], chunk_size=4096)
    assert 0 < count < 200
    kind = {"gz": "gzip", "xz": "xz", "bz2": "bzip2"}[suffix]
    assert text.startswith(f"{path}: the {kind} data is ")
    assert text.endswith(f"; {count} messages read before that")


def test_garbage_after_the_magic_bytes_is_corrupt(tmp_path: Path) -> None:
    path = write(tmp_path / "fake.eml", b"\x1f\x8bthis is not gzip at all")
    assert input_error([path]) == (f"{path}: the gzip data is corrupt; 0 messages read before that", 0)


def test_error_message_counts_one_message_in_the_singular(tmp_path: Path) -> None:
    packed = gzip.compress(mbox(message(1), message(2, os.urandom(20_000).hex().encode())))
    path = write(tmp_path / "box.gz", packed[: len(packed) * 3 // 4])
    text, count = input_error([path], chunk_size=1024)
    assert count == 1
    assert text.endswith("; 1 message read before that")


# --- the real corpus -------------------------------------------------------------------------------

HEADER_LINE = re.compile(rb"[!-9;-~]+:")


@pytest.mark.slow
def test_usrp_corpus(shared: Path) -> None:
    path = shared / "corpus" / "usrp-users" / "usrp-users-headers.mbox.xz"
    count = 0
    done = 0
    for raw, progress in read_messages([path]):
        count += 1
        done = progress
        assert HEADER_LINE.match(raw.data), raw.origin
        assert not raw.data.startswith(b"From ")
    assert count == 11_424
    assert done == total_bytes([path])
