"""Hostile mail, generated afresh from a seed: what an attacker who can mail a journaled address sends.

Each generator returns raw bytes (CRLF, as SMTP carries them). The shapes: cut headers, binary bytes,
folding abuse, deep nesting (message/rfc822 and journal reports), huge header lines, extreme dates,
lying `Received:` chains, duplicate and absurd ids, broken encodings. Tests feed them through import
and SMTP and then check that ttrd still measures; the seed varies, so every run tries new mail.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

Generator = Callable[[random.Random], bytes]

_DATES = (
    "Fri, 31 Dec 9999 23:59:59 -1200",
    "Mon, 1 Jan 0001 00:00:00 +1400",
    "Sat, 1 Jan 0001 00:00:00 -0000",
    "Mon, 1 Jan 1900 00:00:00 +0000",
    "Thu, 1 Jan 1970 00:00:00 +0000",
    "Wed, 31 Dec 1969 23:59:59 +0000",
    "Tue, 19 Jan 2038 03:14:08 +0000",
    "Sun, 31 Dec 9999 23:59:59 +0000",
    "31 Dec 99999 23:59:59 +0000",
    "Mon, 30 Feb 2026 25:61:61 +9999",
    "Mon, 02 Mar 2026 09:00:60 -9959",
    "Mon, 02 Mar 2026 09:00:00 +0000 (UTC)" + " (comment)" * 50,
    "2026-03-02T09:00:00Z",
    "yesterday",
    "",
    "Mon, 02 Mar 18446744073709551616 09:00:00 +0000",
    "Mon, 02 Mar -5 09:00:00 +0000",
)


def _word(rng: random.Random, length: int = 8) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def _address(rng: random.Random) -> str:
    return rng.choice(
        [
            f"{_word(rng)}@{_word(rng, 5)}.net",
            "support@example.com",
            "alice@example.com",
            "bob@example.com",
            "<>",
            "@",
            "a@b@c",
            '"quoted@inside"@example.net',
            "undisclosed-recipients:;",
            "=?utf-8?b?4pyT?= <x@y.z>",
            "<" * 50 + "x@y.z" + ">" * 3,
        ]
    )


def _headers(rng: random.Random, **overrides: str) -> dict[str, str]:
    headers = {
        "Received": f"from mx by mx.example.com; {rng.choice(_DATES)}",
        "From": _address(rng),
        "To": _address(rng),
        "Subject": f"Case {_word(rng)}",
        "Date": rng.choice(_DATES),
        "Message-ID": f"<{_word(rng)}@hostile.test>",
    }
    headers.update(overrides)
    return headers


def _message(headers: dict[str, str], body: str | bytes = "Hello.\r\n") -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    data = body if isinstance(body, bytes) else body.encode()
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + data


def cut_headers(rng: random.Random) -> bytes:
    whole = _message(_headers(rng, References=f"<{_word(rng)}@x> <{_word(rng)}@y>"))
    return whole[: rng.randrange(1, whole.index(b"\r\n\r\n") + 2)]


def binary_bytes(rng: random.Random) -> bytes:
    noise = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000)))
    if rng.random() < 0.5:
        return noise
    return (
        b"From: \xff\xfe\x00jo@cust.net\r\nTo: support@example.com\x00\r\nSubject: \x00\x01\x02\x80\r\n"
        b"Message-ID: <\x00nul" + noise[:20].replace(b">", b"") + b"@x>\r\n\r\n" + noise
    )


def folding_abuse(rng: random.Random) -> bytes:
    headers = _headers(rng)
    shape = rng.randrange(4)
    if shape == 0:
        headers["Subject"] = "x" + "\r\n " * rng.randrange(1000, 20000) + "y"
    elif shape == 1:
        headers["To"] = "\r\n\t".join(
            f"{_word(rng)}@{_word(rng, 4)}.net," for _ in range(rng.randrange(10, 5000))
        )
    elif shape == 2:
        headers["References"] = "\r\n ".join(
            f"<{rng.randrange(10**9)}@r>" for _ in range(rng.randrange(1000, 30000))
        )
    else:
        headers = {" Leading": "fold", **headers, "X-Empty": "\r\n \r\n \r\n "}
    return _message(headers)


def _rfc822(rng: random.Random, inner: bytes) -> bytes:
    boundary = f"b{rng.randrange(10**6)}"
    headers = _headers(
        rng, **{"Content-Type": f'multipart/mixed; boundary="{boundary}"', "MIME-Version": "1.0"}
    )
    body = (
        (
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode()
        + inner
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return _message(headers, body)


def journal_report(rng: random.Random, inner: bytes) -> bytes:
    boundary = f"j{rng.randrange(10**6)}"
    headers = _headers(
        rng,
        **{
            "X-MS-Journal-Report": "",
            "Content-Type": f'multipart/mixed; boundary="{boundary}"',
            "From": "journal@example.com",
        },
    )
    envelope = (
        "Sender: alice@example.com\r\nOn-Behalf-Of: support@example.com\r\n"
        f"To: {_address(rng)}, Expanded: support@example.com\r\nRecipient: {_address(rng)}, Forwarded: x\r\n"
    )
    body = (
        (
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n{envelope}"
            f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode()
        + inner
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return _message(headers, body)


def deep_nesting(rng: random.Random) -> bytes:
    wrap = rng.choice([_rfc822, journal_report])
    inner = _message(_headers(rng))
    for _ in range(rng.choice([100, 300, 1200])):
        inner = wrap(rng, inner)
    return inner


def huge_header_line(rng: random.Random) -> bytes:
    size = rng.choice([100_000, 1_000_000, 3_000_000])
    name = rng.choice(["Subject", "To", "Message-ID", "References", "Thread-Index", "Received", "X-Junk"])
    value = {
        "Subject": "=?utf-8?q?" + "=E2=9C=93" * (size // 9) + "?=",
        "To": ",".join(f"{i}@cust.net" for i in range(size // 12)),
        "Message-ID": "<" + "m" * size + "@x>",
        "References": " ".join(f"<{i}@r>" for i in range(size // 8)),
        "Thread-Index": "A" * size,
        "Received": "from x " * (size // 7) + "; Mon, 02 Mar 2026 09:00:00 +0000",
        "X-Junk": "j" * size,
    }[name]
    return _message(_headers(rng, **{name: value}))


def extreme_dates(rng: random.Random) -> bytes:
    headers = _headers(rng, Date=rng.choice(_DATES))
    received = [f"from a by b; {rng.choice(_DATES)}" for _ in range(rng.randrange(0, 4))]
    head = "".join(f"Received: {value}\r\n" for value in received)
    headers.pop("Received")
    return head.encode() + _message(headers)


def lying_received(rng: random.Random) -> bytes:
    count = rng.choice([1, 50, 5000])
    separators = [";", "", ";;", "; "]
    received = "".join(
        f"Received: from {_word(rng)} by {_word(rng)}{rng.choice(separators)} {rng.choice(_DATES)}\r\n"
        for _ in range(count)
    )
    headers = _headers(rng)
    headers.pop("Received")
    return received.encode() + _message(headers)


def duplicate_ids(rng: random.Random) -> bytes:
    shared = rng.choice(
        ["<dup@hostile.test>", "<m1@test>", "<>", "< >", "<<>>", "dup@hostile.test", "<a b@c>"]
    )
    headers = _headers(
        rng,
        **{
            "Message-ID": shared,
            "X-Microsoft-Original-Message-ID": rng.choice([shared, "<m2@test>", "<>"]),
            "In-Reply-To": rng.choice([shared, "<m1@test>", ""]),
            "References": f"{shared} {shared} <m1@test>",
            "From": rng.choice(["jo@cust.net", "alice@example.com", "support@example.com"]),
        },
    )
    if rng.random() < 0.3:
        headers["Message-ID "] = "<second@hostile.test>"  # a second Message-ID field
    return _message(headers)


def broken_encodings(rng: random.Random) -> bytes:
    subject = rng.choice(
        [
            "=?x-unknown?q?abc?=",
            "=?utf-8?b?!!!not base64?=",
            "=?utf-8?q?=ED=A0=80?=",  # a UTF-8 encoded surrogate
            "=?utf-16?b?2ADcAA==?=",
            "=?utf-8*en?q?x?=" * 200,
            "\udcff" * 10,
        ]
    )
    headers = _headers(
        rng,
        Subject=subject,
        From=rng.choice(["=?utf-8?q?=ED=A0=80?= <jo@cust.net>", "\udcfe <jo@cust.net>", "jo@cust.net"]),
        **{"Thread-Index": rng.choice(["!!!", "AQ==", "A" * 23, "=" * 40, "\udcff"])},
    )
    return _message(headers, b"\xff\xfe body \x00")


GENERATORS: dict[str, Generator] = {
    "cut-headers": cut_headers,
    "binary-bytes": binary_bytes,
    "folding-abuse": folding_abuse,
    "deep-nesting": deep_nesting,
    "huge-header-line": huge_header_line,
    "extreme-dates": extreme_dates,
    "lying-received": lying_received,
    "duplicate-ids": duplicate_ids,
    "broken-encodings": broken_encodings,
}


def hostile_messages(seed: int, count: int) -> list[tuple[str, bytes]]:
    """`count` hostile messages, every shape in turn, each named by its shape and number."""
    rng = random.Random(seed)
    names = sorted(GENERATORS)
    return [(f"{names[n % len(names)]}-{n}", GENERATORS[names[n % len(names)]](rng)) for n in range(count)]
