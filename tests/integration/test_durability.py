"""A 250 is a promise: SIGKILL, a full disk, a restart — nothing that got a 250 is lost or doubled."""

from __future__ import annotations

import contextlib
import shutil
import smtplib
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import require
from tests.integration.daemon import Ttrd, message, metric, running, small_disk
from tests.integration.test_daemon import wait_for


def blast(port: int, sessions: int, per_session: int, accepted: set[str], stop: threading.Event) -> None:
    """Send from many sessions at once; record the Message-IDs that got a 250."""

    def one_session(session: int) -> None:
        with (
            contextlib.suppress(OSError, smtplib.SMTPException),
            smtplib.SMTP("127.0.0.1", port, timeout=30) as client,
        ):
            for n in range(per_session):
                if stop.is_set():
                    return
                number = session * 100_000 + n
                raw = message(number, author=f"c{number}@cust.net")
                client.sendmail(f"c{number}@cust.net", ["support@example.com"], raw)
                accepted.add(f"m{number}@test")

    threads = [threading.Thread(target=one_session, args=(s,)) for s in range(sessions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def check_all_stored_once(ttrd: Ttrd, accepted: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}

    def complete() -> bool:
        counts.clear()
        for item in ttrd.replies():
            key = str(item["inbound_message_id"])
            counts[key] = counts.get(key, 0) + 1
        return accepted <= counts.keys()

    wait_for(complete, timeout=120)
    return counts


def kill_during_a_burst(ttrd: Ttrd, per_session: int, kill_after: int) -> set[str]:
    """SIGKILL the daemon once `kill_after` messages got a 250 from 20 sessions; those messages."""
    accepted: set[str] = set()
    stop = threading.Event()
    sender = threading.Thread(target=blast, args=(ttrd.smtp_port, 20, per_session, accepted, stop))
    sender.start()
    try:
        wait_for(lambda: len(accepted) >= kill_after or not sender.is_alive(), timeout=120)
    finally:
        ttrd.kill()
        stop.set()
        sender.join(60)
    return set(accepted)


def test_sigkill_in_the_middle_loses_and_doubles_nothing(tmp_path: Path) -> None:
    ttrd = Ttrd(tmp_path).start()
    try:
        accepted = kill_during_a_burst(ttrd, per_session=40, kill_after=150)
        ttrd.start()
        counts = check_all_stored_once(ttrd, accepted)
        lost = accepted - counts.keys()
        doubled = [key for key, count in counts.items() if count > 1]
        print(
            f"\n{len(accepted)} messages got a 250 before SIGKILL; lost {len(lost)}, doubled {len(doubled)}"
        )
        assert not lost and not doubled
    finally:
        ttrd.close()


def test_restart_keeps_every_metric(tmp_path: Path) -> None:
    ttrd = Ttrd(tmp_path).start()
    try:
        accepted: set[str] = set()
        blast(ttrd.smtp_port, 4, 10, accepted, threading.Event())
        with smtplib.SMTP("127.0.0.1", ttrd.smtp_port, timeout=30) as client:
            answer = message(
                999_999, author="alice@example.com", to="c0@cust.net", minute=30, in_reply_to="m0@test"
            )
            client.sendmail("alice@example.com", ["journal+c0=cust.net@ttrd.invalid"], answer)
        check_all_stored_once(ttrd, accepted)
        wait_for(lambda: metric(ttrd.metrics(), "ttrd_reply_seconds_count") == 2)
        before = _ttrd_samples(ttrd.metrics())
        assert ttrd.stop() == 0
        ttrd.start()
        after = _ttrd_samples(ttrd.metrics())
        assert after == before
        assert metric(after_text := ttrd.metrics(), "ttrd_smtp_messages_total", result="accepted") == 41, (
            after_text
        )
    finally:
        ttrd.close()


def _ttrd_samples(text: str) -> dict[str, str]:
    """Every ttrd_ sample, except those that describe the process rather than the mail."""
    samples = {}
    for line in text.splitlines():
        if line.startswith("ttrd_") and not line.startswith(
            ("ttrd_build_info", "ttrd_awaiting", "ttrd_oldest")
        ):
            series, _, value = line.rpartition(" ")
            samples[series] = value
    return samples


def test_a_full_disk_gives_451_and_the_same_messages_are_taken_once_afterwards(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:
        ttrd = Ttrd(tmp_path, storage_url=f"sqlite:///{disk / 'ttrd.db'}").start()
        try:
            _send_one(ttrd, 1)
            filler = disk / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as fill:
                while True:
                    fill.write(b"\0" * 65536)
                    fill.flush()
            raw = message(2, size=60_000)
            with smtplib.SMTP("127.0.0.1", ttrd.smtp_port, timeout=30) as client:
                for _ in range(3):
                    code = _try(client, raw)
                    assert code == 451, code
            assert ttrd.process is not None and ttrd.process.poll() is None
            filler.unlink()
            time.sleep(0.5)
            with smtplib.SMTP("127.0.0.1", ttrd.smtp_port, timeout=30) as client:
                assert _try(client, raw) == 250
            counts = check_all_stored_once(ttrd, {"m1@test", "m2@test"})
            assert counts == {"m1@test": 1, "m2@test": 1}
            text = ttrd.metrics()
            assert metric(text, "ttrd_smtp_messages_total", result="tempfail") == 3
            assert metric(text, "ttrd_smtp_messages_total", result="accepted") == 2
        finally:
            ttrd.close()


def _send_one(ttrd: Ttrd, number: int) -> None:
    with smtplib.SMTP("127.0.0.1", ttrd.smtp_port, timeout=30) as client:
        client.sendmail("jo@cust.net", ["support@example.com"], message(number))


def _try(client: smtplib.SMTP, raw: bytes) -> int:
    try:
        client.sendmail("jo@cust.net", ["support@example.com"], raw)
    except smtplib.SMTPDataError as error:
        return error.smtp_code
    return 250


def test_starttls_and_auth_from_config(tmp_path: Path) -> None:
    require(shutil.which("openssl") is not None, "openssl is needed to make a test certificate")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    (tmp_path / "users").write_text("postfix:s3cret\n")
    extra = (
        '\n[smtp]\nlisten = "127.0.0.1:{port}"\ntls_certificate = "cert.pem"\ntls_key = "key.pem"\n'
        'require_starttls = true\nauth_file = "users"\n'
    )
    with running(tmp_path, extra) as ttrd:
        with smtplib.SMTP("127.0.0.1", ttrd.smtp_port, timeout=30) as plain:
            plain.ehlo()
            assert plain.has_extn("starttls")
            code, _ = plain.mail("jo@cust.net")
            assert code == 451  # 4xx, not 530: the mail server keeps the copy (SPEC §4)
        with smtplib.SMTP("127.0.0.1", ttrd.smtp_port, timeout=30) as client:
            client.starttls()
            client.ehlo()
            code, _ = client.mail("jo@cust.net")
            assert code == 451  # authentication first
            client.rset()
            client.login("postfix", "s3cret")
            client.sendmail("jo@cust.net", ["support@example.com"], message(1))
        assert len(ttrd.replies()) <= 1
        wait_for(lambda: len(ttrd.replies()) == 1)
