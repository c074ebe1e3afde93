"""`ttrd run` as a mail server sees it: a real SMTP client (smtplib, raw sockets) against the daemon."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SHARED, require
from tests.integration.daemon import TTRD, Ttrd, message, metric, running

SCORER = SHARED / "tools" / "score-scenario.py"


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def send(ttrd: Ttrd, raw: bytes, rcpt: list[str] | None = None, sender: str = "jo@cust.net") -> None:
    with smtplib.SMTP("127.0.0.1", ttrd.smtp_port, timeout=30) as client:
        client.sendmail(sender, rcpt or ["support@example.com"], raw)


def items_for(ttrd: Ttrd, count: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []

    def enough() -> bool:
        found[:] = ttrd.replies()
        return len(found) >= count

    wait_for(enough)
    return found


def test_ready_after_listening_stopping_and_exit_zero(tmp_path: Path) -> None:
    ttrd = Ttrd(tmp_path).start()
    try:
        with socket.create_connection(("127.0.0.1", ttrd.smtp_port), timeout=5) as probe:
            assert probe.recv(100).startswith(b"220 ")
        assert any(n.startswith("STATUS=accepting mail") for n in ttrd.notifications)
        assert ttrd.stop() == 0
        assert "STOPPING=1" in ttrd.notifications
    finally:
        ttrd.close()


def test_a_question_and_its_answer_are_measured(tmp_path: Path) -> None:
    with running(tmp_path) as ttrd:
        send(ttrd, message(1, minute=0))
        send(ttrd, message(2, author="alice@example.com", to="jo@cust.net", minute=45, in_reply_to="m1@test"),
             rcpt=["journal+jo=cust.net@ttrd.invalid"], sender="alice@example.com")  # fmt: skip
        [item] = items_for(ttrd, 1)
        wait_for(lambda: ttrd.replies()[0]["status"] == "replied")
        [item] = ttrd.replies()
        assert (item["mailbox"], item["agent"], item["calendar_seconds"]) == ("support", "alice", 2700.0)
        text = ttrd.metrics()
        assert metric(text, "ttrd_reply_seconds_count", mailbox="support", clock="calendar") == 1
        assert metric(text, "ttrd_smtp_messages_total", result="accepted") == 2


@pytest.mark.parametrize("scenario", ["basic", "shuffled", "twisted"])
def test_shared_scenarios_score_one_over_smtp(scenario: str) -> None:
    require(SCORER.is_file(), f"the scenario scorer is not at {SCORER}")
    command = [sys.executable, str(SCORER), str(SHARED / "scenarios" / scenario), "--ttrd", str(TTRD)]
    done = subprocess.run(
        [*command, "--path", "smtp"], capture_output=True, text=True, timeout=600, check=False
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("score 1.000")


def test_message_over_the_size_limit_gets_552_and_the_session_goes_on(tmp_path: Path) -> None:
    with running(tmp_path, '\n[smtp]\nlisten = "127.0.0.1:{port}"\nmax_message_bytes = 100000\n') as ttrd:
        with smtplib.SMTP("127.0.0.1", ttrd.smtp_port, timeout=30) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # announced with SIZE=
                client.sendmail("jo@cust.net", ["support@example.com"], message(1, size=200_000))
            assert refused.value.smtp_code == 552
            client.mail("jo@cust.net")  # not announced: refused once the data is in
            client.rcpt("support@example.com")
            code, _ = client.data(message(1, size=200_000))
            assert code == 552
            client.sendmail("jo@cust.net", ["support@example.com"], message(2))
        assert [i["inbound_message_id"] for i in items_for(ttrd, 1)] == ["m2@test"]


def test_lines_longer_than_smtp_allows_are_taken(tmp_path: Path) -> None:
    with running(tmp_path) as ttrd:
        raw = message(1).replace(b"Subject:", b"X-Long: " + b"a" * 1_000_000 + b"\r\nSubject:")
        send(ttrd, raw)
        assert [i["inbound_message_id"] for i in items_for(ttrd, 1)] == ["m1@test"]


def test_smtputf8_and_8bitmime(tmp_path: Path) -> None:
    with running(tmp_path) as ttrd:
        raw = message(1).replace(b"From: jo@cust.net", "From: Jörg <jörg@bücher.example>".encode())
        raw = raw.replace(b"Hello.", "Grüße, 8 bit.".encode())
        with smtplib.SMTP("127.0.0.1", ttrd.smtp_port, timeout=30) as client:
            client.ehlo()
            assert client.has_extn("smtputf8") and client.has_extn("8bitmime")
            client.sendmail("jörg@bücher.example", ["support@example.com"], raw,
                            mail_options=["SMTPUTF8", "BODY=8BITMIME"])  # fmt: skip
        [item] = items_for(ttrd, 1)
        assert item["customer"] == "jörg@bücher.example"


def test_ten_thousand_recipients(tmp_path: Path) -> None:
    with running(tmp_path) as ttrd:
        rcpt = [f"journal+user{n}=cust.net@ttrd.invalid" for n in range(10_000)] + ["support@example.com"]
        send(ttrd, message(1), rcpt=rcpt)
        assert [i["mailbox"] for i in items_for(ttrd, 1)] == ["support"]
        assert ttrd.rss_mb() < 250, f"{ttrd.rss_mb():.0f} MB after 10,000 RCPTs"


def test_garbage_a_vanishing_client_idle_crowds_and_a_slow_client_do_not_stop_others(tmp_path: Path) -> None:
    with running(tmp_path) as ttrd:
        with socket.create_connection(("127.0.0.1", ttrd.smtp_port), timeout=10) as garbage:
            garbage.recv(200)
            for _ in range(10):
                garbage.sendall(bytes(range(1, 200)) + b"\r\n")
            answers = b""
            while chunk := garbage.recv(4096):
                answers += chunk
            assert answers.startswith(b"5") and b"250" not in answers
        with socket.create_connection(("127.0.0.1", ttrd.smtp_port), timeout=10) as vanishing:
            script = b"EHLO x\r\nMAIL FROM:<jo@cust.net>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n"
            vanishing.sendall(script + message(99)[:60])
            time.sleep(0.5)
        idle = [socket.create_connection(("127.0.0.1", ttrd.smtp_port), timeout=10) for _ in range(300)]
        try:
            for connection in idle:
                assert connection.recv(100).startswith(b"220 ")
            midway, resume = threading.Event(), threading.Event()
            slow = threading.Thread(target=_send_slowly, args=(ttrd.smtp_port, message(2), midway, resume))
            slow.start()
            assert midway.wait(60), "the slow client never got half-way through its DATA"
            try:
                send(ttrd, message(1))  # a server that waited for the slow client would never answer
            finally:
                resume.set()
            slow.join(60)
            assert not slow.is_alive()
        finally:
            for connection in idle:
                connection.close()
        received = {i["inbound_message_id"] for i in items_for(ttrd, 2)}
        assert received == {"m1@test", "m2@test"}
        assert ttrd.rss_mb() < 250, f"{ttrd.rss_mb():.0f} MB after the abuse"


def _send_slowly(port: int, raw: bytes, midway: threading.Event, resume: threading.Event) -> None:
    """Trickle `raw` line by line; half-way through DATA, set `midway` and hold until `resume` is set."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as slow:
        reader = slow.makefile("rb")
        reader.readline()
        script = b"HELO slow\r\nMAIL FROM:<max@cust.net>\r\nRCPT TO:<support@example.com>\r\nDATA\r\n"
        for line in script.splitlines(keepends=True):
            slow.sendall(line)
            assert reader.readline()[:1] in (b"2", b"3")
        lines = (raw + b".\r\n").splitlines(keepends=True)
        for number, line in enumerate(lines):
            if number == len(lines) // 2:
                midway.set()
                resume.wait(60)
            slow.sendall(line)
            time.sleep(0.05)
        assert reader.readline().startswith(b"250 ")


def test_networks_outside_the_allow_list_and_sessions_over_the_limit_are_refused(tmp_path: Path) -> None:
    extra = '\n[smtp]\nlisten = "127.0.0.1:{port}"\nmax_sessions = 3\n'
    with running(tmp_path, extra) as ttrd:
        open_ = [socket.create_connection(("127.0.0.1", ttrd.smtp_port), timeout=10) for _ in range(3)]
        for connection in open_:
            connection.recv(100)
        with socket.create_connection(("127.0.0.1", ttrd.smtp_port), timeout=10) as extra_one:
            assert extra_one.recv(100).startswith(b"421 ")
        for connection in open_:
            connection.close()
    closed = tmp_path / "closed"
    closed.mkdir()
    only_ten = '\n[smtp]\nlisten = "127.0.0.1:{port}"\nallow_networks = ["10.0.0.0/8"]\n'
    with (
        running(closed, only_ten) as ttrd,
        socket.create_connection(("127.0.0.1", ttrd.smtp_port)) as outsider,
    ):
        assert outsider.recv(100).startswith(b"554 ")
