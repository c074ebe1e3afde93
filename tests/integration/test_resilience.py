"""No single message may stop measurement, and the daemon starts and stops cleanly whatever happens.

Over SMTP to a real `ttrd run` and through the real `ttrd import`: an extreme date, failures injected
into the parser and the engine for one Message-ID (through a `sitecustomize` on PYTHONPATH, which the
daemon's worker process loads too), hostile mail generated afresh; a spool that cannot be written
while stopping, a second SIGTERM, a metrics port already taken.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import smtplib
import socket
import sqlite3
import subprocess
import time
from datetime import datetime
from pathlib import Path

from tests.conftest import ROOT
from tests.hostile import hostile_messages
from tests.integration.daemon import TTRD, Ttrd, free_port, message, metric, small_disk
from tests.integration.test_daemon import send, wait_for
from tests.integration.test_import_cli import SIMPLE, config_for, replies, ttrd

FAULTS = '''
"""Written by tests/integration/test_resilience.py: a parser and an engine that fail for one message."""
import ttrd.ingest.pipeline as pipeline
import ttrd.replytime.batch as batch

_parse, _classify = pipeline.parse_message, batch.classify


def parse_message(raw, delivery):
    if b"<parser-fails@test>" in raw:
        raise RuntimeError("injected parser failure")
    return _parse(raw, delivery)


def classify(facts, directory):
    if facts.message_id == "engine-fails@test":
        raise RuntimeError("injected engine failure")
    return _classify(facts, directory)


pipeline.parse_message = parse_message
batch.classify = classify
'''

FAR_FUTURE = (
    b"From: far@cust.net\r\nTo: support@example.com\r\nSubject: From the end of time\r\n"
    b"Date: Fri, 31 Dec 9999 23:59:59 -1200\r\nMessage-ID: <far-future@test>\r\n\r\nHello.\r\n"
)


def failing(message_id: str) -> bytes:
    return (
        f"Received: from x by mx.example.com; Mon, 02 Mar 2026 09:30:00 +0000\r\nFrom: bad@cust.net\r\n"
        f"To: support@example.com\r\nSubject: Trouble\r\nMessage-ID: <{message_id}>\r\n\r\nHello.\r\n"
    ).encode()


def faults(folder: Path) -> dict[str, str]:
    """The environment that makes a ttrd process load FAULTS."""
    injected = folder / "faults"
    injected.mkdir()
    (injected / "sitecustomize.py").write_text(FAULTS)
    return {"PYTHONPATH": os.pathsep.join([str(injected), str(ROOT)])}


def rejects(database: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return [row[0] for row in connection.execute("SELECT problem FROM rejects ORDER BY id")]


def replied(ttrd: Ttrd, inbound: str) -> bool:
    return any(
        item["inbound_message_id"] == inbound and item["status"] == "replied" for item in ttrd.replies()
    )


def answer_to(number: int) -> bytes:
    return message(
        100 + number, author="alice@example.com", to="jo@cust.net", minute=45, in_reply_to=f"m{number}@test"
    )


def test_a_date_past_year_9999_is_measured_at_its_receipt_and_the_next_message_too(tmp_path: Path) -> None:
    ttrd = Ttrd(tmp_path).start()
    try:
        worker = ttrd.worker_pid()
        before = time.time()
        send(ttrd, FAR_FUTURE, sender="far@cust.net")
        send(ttrd, message(1))
        send(ttrd, answer_to(1), rcpt=["journal+jo=cust.net@ttrd.invalid"], sender="alice@example.com")
        wait_for(lambda: replied(ttrd, "m1@test"))
        [far] = [item for item in ttrd.replies() if item["inbound_message_id"] == "far-future@test"]
        opened = datetime.fromisoformat(str(far["opened_at"])).timestamp()
        assert before - 5 < opened < time.time() + 5  # the clock-skew guard: its receipt time
        assert ttrd.worker_pid() == worker and "restarting" not in ttrd.log.read_text()
        assert ttrd.stop() == 0
    finally:
        ttrd.close()


def test_over_smtp_a_message_that_fails_is_set_aside_and_the_next_is_measured(tmp_path: Path) -> None:
    ttrd = Ttrd(tmp_path, env=faults(tmp_path)).start()
    try:
        worker = ttrd.worker_pid()
        send(ttrd, failing("parser-fails@test"), sender="bad@cust.net")
        send(ttrd, failing("engine-fails@test"), sender="bad@cust.net")
        send(ttrd, message(1))
        send(ttrd, answer_to(1), rcpt=["journal+jo=cust.net@ttrd.invalid"], sender="alice@example.com")
        wait_for(lambda: replied(ttrd, "m1@test"))
        assert {item["inbound_message_id"] for item in ttrd.replies()} == {"m1@test"}
        assert rejects(tmp_path / "ttrd.db") == [
            "parsing failed: RuntimeError: injected parser failure",
            "processing failed: RuntimeError: injected engine failure",
        ]
        text = ttrd.metrics()
        assert metric(text, "ttrd_parse_errors_total") == 1
        assert metric(text, "ttrd_processing_errors_total") == 1
        assert metric(text, "ttrd_smtp_messages_total", result="accepted") == 4
        assert ttrd.worker_pid() == worker and "restarting" not in ttrd.log.read_text()
        assert ttrd.stop() == 0
    finally:
        ttrd.close()


def test_import_sets_aside_what_fails_stores_the_rest_and_says_so(tmp_path: Path) -> None:
    config = config_for(tmp_path, SIMPLE)
    mail = tmp_path / "mail"
    mail.mkdir()
    for name, raw in {
        "far.eml": FAR_FUTURE,
        "parser.eml": failing("parser-fails@test"),
        "engine.eml": failing("engine-fails@test"),
        "question.eml": message(1),
        "answer.eml": answer_to(1),
    }.items():
        (mail / name).write_bytes(raw)
    command = [str(TTRD), "import", "--config", str(config), str(mail)]
    environment = dict(os.environ, **faults(tmp_path))
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=environment)
    assert done.returncode == 3, done.stderr
    assert "read 5 messages: 3 new" in done.stderr
    assert "1 not understood, 1 failed to process" in done.stderr
    assert "Traceback" not in done.stderr
    items = {item["inbound_message_id"]: item["status"] for item in map(json.loads, replies(config))}
    assert items == {"far-future@test": "awaiting", "m1@test": "replied"}
    assert len(rejects(tmp_path / "ttrd.db")) == 2


def test_hostile_mail_through_import_and_smtp_leaves_the_daemon_measuring(tmp_path: Path) -> None:
    seed = int(os.environ.get("TTRD_HOSTILE_SEED", random.randrange(2**32)))
    hostile = hostile_messages(seed, 400)
    mail = tmp_path / "hostile"
    mail.mkdir()
    for name, raw in hostile:
        (mail / f"{name}.eml").write_bytes(raw)
    ttrd_ = Ttrd(tmp_path).start()
    try:
        worker = ttrd_.worker_pid()
        imported = ttrd("import", "--config", ttrd_.config, mail, check=False)
        assert imported.returncode in (0, 3) and "Traceback" not in imported.stderr, (seed, imported.stderr)
        accepted = 0
        with smtplib.SMTP("127.0.0.1", ttrd_.smtp_port, timeout=60) as client:
            for _, raw in hostile:
                client.sendmail("x@cust.net", ["support@example.com"], raw)
                accepted += 1
        started = time.monotonic()
        send(ttrd_, message(7000))  # an id no hostile message takes (they do take m1@test)
        send(ttrd_, answer_to(7000), rcpt=["journal+jo=cust.net@ttrd.invalid"], sender="alice@example.com")
        wait_for(lambda: replied(ttrd_, "m7000@test"), timeout=240)
        print(f"hostile seed {seed}: measured again {time.monotonic() - started:.1f} s after the last one")
        assert accepted == len(hostile)
        assert ttrd_.worker_pid() == worker and "restarting" not in ttrd_.log.read_text(), seed
        unexpected = [
            p for p in rejects(tmp_path / "ttrd.db") if p.startswith(("parsing failed", "processing failed"))
        ]
        assert unexpected == [], seed
        assert ttrd_.stop() == 0
    finally:
        ttrd_.close()


def test_a_spool_that_cannot_be_written_while_stopping_ends_in_an_error_exit_in_time(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:
        ttrd_ = Ttrd(tmp_path, storage_url=f"sqlite:///{disk / 'ttrd.db'}").start()
        try:
            send(ttrd_, message(1))
            wait_for(lambda: len(ttrd_.replies()) == 1)
            _fill(disk / "filler")
            with smtplib.SMTP("127.0.0.1", ttrd_.smtp_port, timeout=30) as client:
                try:
                    client.sendmail("jo@cust.net", ["support@example.com"], message(2, size=60_000))
                except smtplib.SMTPDataError as error:
                    assert error.smtp_code == 451
                else:
                    raise AssertionError("a full disk took the message")
            started = time.monotonic()
            assert ttrd_.process is not None
            ttrd_.process.send_signal(signal.SIGTERM)
            code = ttrd_.process.wait(60)  # a hang guard; the figure is printed, not asserted
            print(f"unwritable spool: exit {code} {time.monotonic() - started:.1f} s after SIGTERM")
            assert code != 0
            # It gave up at its deadline (no busy loop until systemd's SIGKILL), and said so.
            assert "the spool could not be written for 5 s while stopping" in ttrd_.log.read_text()
        finally:
            ttrd_.close()


def _fill(path: Path) -> None:
    """Fill the file system of `path` to its last byte."""
    with path.open("wb", buffering=0) as fill:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    fill.write(b"\0" * size)


def test_a_second_sigterm_stops_at_once_and_the_spool_keeps_what_was_accepted(tmp_path: Path) -> None:
    ttrd_ = Ttrd(tmp_path).start()
    try:
        send(ttrd_, message(1))
        with smtplib.SMTP("127.0.0.1", ttrd_.smtp_port, timeout=30) as client:
            client.ehlo()
            client.mail("jo@cust.net")
            client.rcpt("support@example.com")  # a message on its way: the first SIGTERM waits for it
            assert ttrd_.process is not None
            started = time.monotonic()
            ttrd_.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert ttrd_.process.poll() is None
            ttrd_.process.send_signal(signal.SIGTERM)
            assert ttrd_.process.wait(60) == 0  # a hang guard; the figure is printed, not asserted
            print(f"second SIGTERM: stopped {time.monotonic() - started:.1f} s after the first")
            log = ttrd_.log.read_text()
            # The drain did not wait for the session in DATA: it was cut short.
            assert "draining SMTP sessions: forced" in log and "mid-message at shutdown" in log
        ttrd_.start()
        wait_for(lambda: {item["inbound_message_id"] for item in ttrd_.replies()} == {"m1@test"})
        assert ttrd_.stop() == 0
    finally:
        ttrd_.close()


def test_a_metrics_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ttrd_ = Ttrd(tmp_path, metrics_port=port)
        try:
            done = subprocess.run([str(TTRD), "run", "--config", str(ttrd_.config)], capture_output=True,
                                  text=True, timeout=60, check=False)  # fmt: skip
        finally:
            ttrd_.close()
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"ttrd: cannot listen for metrics on 127.0.0.1:{port}: Address already in use\n"


def test_start_up_problems_are_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_text("garbage")
    cases = {
        f"sqlite:///{tmp_path / 'missing' / 'ttrd.db'}": "the directory of the database does not exist",
        f"sqlite:///{tmp_path / 'not-a-db'}": "file is not a database",
    }
    for number, (url, problem) in enumerate(cases.items()):
        folder = tmp_path / str(number)
        folder.mkdir()
        ttrd_ = Ttrd(folder, storage_url=url, smtp_port=free_port())
        try:
            done = subprocess.run([str(TTRD), "run", "--config", str(ttrd_.config)], capture_output=True,
                                  text=True, timeout=60, check=False)  # fmt: skip
        finally:
            ttrd_.close()
        assert done.returncode == 1 and problem in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
