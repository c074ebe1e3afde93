"""The IMAP poller against a real Dovecot: mailboxes as the second source (SPEC §4).

Messages are placed into INBOX and Sent folders by IMAP APPEND, a real `ttrd run` polls them, and
`ttrd replies` must say what SPEC §3 says, for every way a team answers: on behalf of a shared
mailbox, as it (the copy in the agent's own Sent), from the shared mailbox logged into directly,
and a distribution list with a copy in every member's INBOX.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.integration.daemon import Ttrd, metric
from tests.integration.dovecot import PASSWORD, Dovecot
from tests.integration.test_daemon import send, wait_for

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEAM = """
[[mailboxes]]
id = "sales"
address = "sales@example.com"
kind = "distribution"
members = ["alice", "bob"]
"""


def imap_accounts(folder: Path, dovecot: Dovecot, owners: dict[str, str], **options: object) -> str:
    """[[imap.accounts]] for each owner id → login, with a password file each; `options` for all."""
    tables = []
    for owner, login in owners.items():
        secret = folder / f"{owner}.password"
        secret.write_text(str(options.pop("password", PASSWORD)) + "\n")
        extra = {"poll_seconds": 1, "timeout_seconds": 3, "tls": "none", "port": dovecot.port, **options}
        lines = [f'id = "{owner}-imap"', f'owner = "{owner}"', 'host = "127.0.0.1"',
                 f'username = "{login}"', f'password_file = "{secret}"']  # fmt: skip
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in extra.items()]
        tables.append("[[imap.accounts]]\n" + "\n".join(lines))
    return "\n" + "\n\n".join(tables) + "\n"


def mail(
    message_id: str, author: str, to: str, minute: int, *extra: str, subject: str = "Order 7"
) -> tuple[bytes, datetime]:
    moment = T0 + timedelta(minutes=minute)
    lines = [f"From: {author}", f"To: {to}", f"Subject: {subject}", f"Message-ID: <{message_id}>",
             f"Date: {moment.strftime('%a, %d %b %Y %H:%M:%S +0000')}", *extra]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\nHello.\r\n").encode(), moment


def put(dovecot: Dovecot, login: str, folder: str, message: tuple[bytes, datetime]) -> None:
    raw, moment = message
    dovecot.append(login, folder, raw, internal_date=moment)


def items(ttrd: Ttrd) -> dict[tuple[str, str], dict[str, object]]:
    return {(str(i["mailbox"]), str(i["inbound_message_id"])): i for i in ttrd.replies()}


def test_every_way_a_team_answers_comes_out_right_from_mailboxes(tmp_path: Path, dovecot: Dovecot) -> None:
    owners = {"support": "support@example.com", "alice": "alice@example.com", "bob": "bob@example.com"}
    ttrd = Ttrd(tmp_path, TEAM + imap_accounts(tmp_path, dovecot, owners))
    # On behalf: From the shared mailbox, Sender alice; in alice's Sent.
    put(dovecot, "support@example.com", "INBOX", mail("q1@cust", "jo@cust.net", "support@example.com", 0))
    behalf = mail("r1@x", "support@example.com", "jo@cust.net", 30, "Sender: alice@example.com",
                  "In-Reply-To: <q1@cust>")  # fmt: skip
    put(dovecot, "alice@example.com", "Sent", behalf)
    # As the shared mailbox (send-as): no Sender; only alice's Sent says who it was.
    put(dovecot, "support@example.com", "INBOX", mail("q2@cust", "kim@cust.net", "support@example.com", 5))
    send_as = mail("r2@x", "support@example.com", "kim@cust.net", 50, "In-Reply-To: <q2@cust>")
    put(dovecot, "alice@example.com", "Sent", send_as)
    # The shared mailbox logged into directly: its own Sent; nobody known replied (SPEC §3).
    put(dovecot, "support@example.com", "INBOX", mail("q3@cust", "lee@cust.net", "support@example.com", 10))
    direct = mail("r3@x", "support@example.com", "lee@cust.net", 70, "In-Reply-To: <q3@cust>")
    put(dovecot, "support@example.com", "Sent", direct)
    # A distribution list: a copy in every member's INBOX; bob answers from his own address.
    question = mail("q4@cust", "max@cust.net", "sales@example.com", 15)
    put(dovecot, "alice@example.com", "INBOX", question)
    put(dovecot, "bob@example.com", "INBOX", question)
    put(
        dovecot,
        "bob@example.com",
        "Sent",
        mail("r4@x", "bob@example.com", "max@cust.net", 45, "In-Reply-To: <q4@cust>"),
    )
    try:
        ttrd.start()
        wait_for(
            lambda: len(items(ttrd)) == 4 and all(i["status"] == "replied" for i in items(ttrd).values())
        )
        found = {
            key: (i["agent"], i["reply_message_id"], i["calendar_seconds"]) for key, i in items(ttrd).items()
        }
        assert found == {
            ("support", "q1@cust"): ("alice", "r1@x", 1800.0),
            ("support", "q2@cust"): ("alice", "r2@x", 2700.0),
            ("support", "q3@cust"): (None, "r3@x", 3600.0),
            ("sales", "q4@cust"): ("bob", "r4@x", 1800.0),
        }
        text = ttrd.metrics()
        assert metric(text, "ttrd_imap_up", account="alice-imap") == 1
        assert metric(text, "ttrd_imap_messages_total", account="bob-imap") == 2
        assert metric(text, "ttrd_imap_polls_total", account="support-imap", result="ok") >= 1
        assert metric(text, "ttrd_imap_last_success_timestamp_seconds", account="support-imap") > 0
        # New mail is fetched as it comes (IDLE on INBOX): a follow-up opens a second item.
        put(dovecot, "support@example.com", "INBOX", mail("q5@cust", "jo@cust.net", "support@example.com", 90,
                                                        "In-Reply-To: <r1@x>"))  # fmt: skip
        wait_for(lambda: ("support", "q5@cust") in items(ttrd))
        assert items(ttrd)[("support", "q5@cust")]["first"] is False
        assert ttrd.stop() == 0
    finally:
        ttrd.close()


def test_journal_and_imap_seeing_the_same_mail_count_it_once(tmp_path: Path, dovecot: Dovecot) -> None:
    owners = {"support": "support@example.com", "alice": "alice@example.com"}
    ttrd = Ttrd(tmp_path, TEAM + imap_accounts(tmp_path, dovecot, owners)).start()
    try:
        question = mail("q1@cust", "jo@cust.net", "support@example.com", 0)
        answer = mail("r1@x", "alice@example.com", "jo@cust.net", 20, "In-Reply-To: <q1@cust>")
        send(ttrd, question[0], sender="jo@cust.net")
        put(dovecot, "support@example.com", "INBOX", question)
        put(dovecot, "alice@example.com", "Sent", answer)
        send(ttrd, answer[0], rcpt=["journal+jo=cust.net@ttrd.invalid"], sender="alice@example.com")
        wait_for(lambda: metric(ttrd.metrics(), "ttrd_imap_messages_total") == 2)
        wait_for(lambda: [i["status"] for i in items(ttrd).values()] == ["replied"])
        text = ttrd.metrics()
        assert metric(text, "ttrd_reply_seconds_count", clock="calendar") == 1
        assert metric(text, "ttrd_inbound_messages_total") == 1
        assert metric(text, "ttrd_duplicate_observations_total") == 0  # other copies, not the same copy
        assert ttrd.stop() == 0
    finally:
        ttrd.close()
