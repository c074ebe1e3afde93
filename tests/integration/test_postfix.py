"""A real Postfix journaling to ttrd: recipient_bcc_maps and sender_bcc_maps keep the envelope.

The recipe of docs/journaling.md, on a private Postfix instance (its own config and queue under a
temp dir, listening on a random loopback port); mail to anywhere but the sink is discarded.
"""

from __future__ import annotations

import re
import shutil
import smtplib
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration.daemon import Ttrd, free_port, metric, running
from tests.integration.test_daemon import wait_for

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {folder}/queue
data_directory = {folder}/data
mail_owner = postfix
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.example.com
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
# No syslog here: without a log file Postfix fails silently.
maillog_file = {folder}/maillog
maillog_file_prefixes = /var, /dev/stdout, {folder}
# The journal: a copy of every message to ttrd, the original recipient encoded in the address.
recipient_bcc_maps = regexp:{folder}/conf/recipient_bcc
sender_bcc_maps = regexp:{folder}/conf/sender_bcc
transport_maps = inline:{{ttrd.invalid=smtp:[127.0.0.1]:{sink}}}
# Everything else is "delivered" to nowhere: this test is about the journal.
default_transport = discard
"""


@pytest.fixture
def postfix(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    require(shutil.which("postfix") is not None, "Postfix is not installed (Debian package postfix)")
    # Postfix's daemons run as the postfix user, who cannot enter pytest's private temp folders.
    folder = Path(tempfile.mkdtemp(prefix="ttrd-postfix-"))
    folder.chmod(0o755)
    try:
        yield folder, free_port()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def start_postfix(folder: Path, port: int, sink: int) -> Path:
    conf = folder / "conf"
    conf.mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "queue").mkdir()
    shutil.chown(folder / "data", "postfix")
    (conf / "main.cf").write_text(MAIN_CF.format(folder=folder, sink=sink))
    master = Path("/etc/postfix/master.cf").read_text()
    master = re.sub(r"(?m)^smtp(\s+)inet\s.*$", f"127.0.0.1:{port} inet n - n - - smtpd", master)
    # No chroot: the services would need a copy of /etc inside the queue directory.
    master = re.sub(r"(?m)^(\S+\s+(?:inet|unix|unix-dgram|fifo|pass)\s+\S+\s+\S+\s+)y", r"\1n", master)
    (conf / "master.cf").write_text(master)
    (conf / "recipient_bcc").write_text("/^(.+)@(.+)$/ journal+$1=$2@ttrd.invalid\n")
    # Only our own senders: a customer encoded as a recipient of their own mail would be wrong.
    (conf / "sender_bcc").write_text("/^.+@example\\.com$/ journal@ttrd.invalid\n")
    started = subprocess.run(
        ["postfix", "-c", str(conf), "start"], capture_output=True, text=True, check=False
    )
    log = folder / "maillog"
    assert started.returncode == 0, started.stderr + (log.read_text() if log.exists() else "")
    return conf


def test_postfix_journal_copies_are_measured(postfix: tuple[Path, int]) -> None:
    folder, port = postfix
    (folder / "ttrd").mkdir()
    with running(folder / "ttrd") as ttrd:
        conf = start_postfix(folder / "postfix", port, ttrd.smtp_port)
        before = datetime.now(UTC).replace(microsecond=0)  # Received: fields give whole seconds
        try:
            exchange(port)
            wait_for(lambda: _replied(ttrd), timeout=60)
        finally:
            subprocess.run(["postfix", "-c", str(conf), "stop"], capture_output=True, check=False)
        after = datetime.now(UTC)
        [item] = ttrd.replies()
        assert item["mailbox"] == "support" and item["agent"] == "alice"
        opened, replied = (datetime.fromisoformat(str(item[key])) for key in ("opened_at", "replied_at"))
        assert before <= opened <= replied <= after
        calendar = (replied - opened).total_seconds()
        assert float(str(item["calendar_seconds"])) == pytest.approx(calendar, abs=1e-3)
        assert metric(ttrd.metrics(), "ttrd_reply_seconds_count", clock="calendar") == 1
        log = (folder / "postfix" / "maillog").read_text()
        assert "journal+support=example.com@ttrd.invalid" in log and "status=sent (250 2.0.0 Stored)" in log


def exchange(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(
            "jo@cust.net",
            ["support@example.com"],
            b"From: Jo <jo@cust.net>\r\nTo: support@example.com\r\nSubject: Broken widget\r\n"
            b"Message-ID: <pf-question@cust.net>\r\n\r\nIt broke.\r\n",
        )
        client.sendmail(
            "alice@example.com",
            ["jo@cust.net"],
            b"From: Alice <alice@example.com>\r\nTo: jo@cust.net\r\nSubject: Re: Broken widget\r\n"
            b"Message-ID: <pf-answer@example.com>\r\nIn-Reply-To: <pf-question@cust.net>\r\n\r\nFixed.\r\n",
        )


def _replied(ttrd: Ttrd) -> bool:
    return [item["status"] for item in ttrd.replies()] == ["replied"]
