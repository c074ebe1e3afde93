"""IMAP faults, each against a real Dovecot: ttrd keeps serving SMTP, says what is wrong in metrics and
logs, catches up once the fault is gone, and loses and doubles nothing."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tests.integration.daemon import Ttrd, message, metric
from tests.integration.dovecot import Dovecot
from tests.integration.test_daemon import send, wait_for
from tests.integration.test_imap import TEAM, imap_accounts, items, mail, put

OWNERS = {"support": "support@example.com", "alice": "alice@example.com"}


@contextlib.contextmanager
def polling(
    tmp_path: Path, dovecot: Dovecot, owners: dict[str, str] = OWNERS, **options: object
) -> Iterator[Ttrd]:
    ttrd = Ttrd(tmp_path, TEAM + imap_accounts(tmp_path, dovecot, owners, **options))
    try:
        yield ttrd.start()
        assert ttrd.stop() == 0
    finally:
        ttrd.close()


def question_and_answer(dovecot: Dovecot, number: int, minute: int) -> None:
    put(
        dovecot,
        "support@example.com",
        "INBOX",
        mail(f"q{number}@cust", "jo@cust.net", "support@example.com", minute),
    )
    answer = mail(
        f"r{number}@x", "alice@example.com", "jo@cust.net", minute + 20, f"In-Reply-To: <q{number}@cust>"
    )
    put(dovecot, "alice@example.com", "Sent", answer)


def replied(ttrd: Ttrd, *numbers: int) -> bool:
    found = items(ttrd)
    return all(found.get(("support", f"q{n}@cust"), {}).get("status") == "replied" for n in numbers)


def smtp_still_measures(ttrd: Ttrd, number: int) -> None:
    send(ttrd, message(number, minute=number % 60))
    wait_for(lambda: ("support", f"m{number}@test") in items(ttrd))


def test_dovecot_stopped_and_restarted_mid_run(tmp_path: Path, dovecot: Dovecot) -> None:
    with polling(tmp_path, dovecot) as ttrd:
        question_and_answer(dovecot, 1, 0)
        wait_for(lambda: replied(ttrd, 1))
        dovecot.stop()
        wait_for(lambda: metric(ttrd.metrics(), "ttrd_imap_up", account="support-imap") == 0)
        smtp_still_measures(ttrd, 501)
        assert metric(ttrd.metrics(), "ttrd_imap_polls_total", account="support-imap", result="network") >= 1
        dovecot.start()
        question_and_answer(dovecot, 2, 30)
        wait_for(lambda: replied(ttrd, 1, 2), timeout=60)
        wait_for(lambda: metric(ttrd.metrics(), "ttrd_imap_up") == 2)
        assert len(items(ttrd)) == 3
        assert metric(ttrd.metrics(), "ttrd_imap_messages_total") == 4
        assert "network failure" in ttrd.log.read_text()


def test_a_wrong_password_is_reported_and_a_corrected_file_is_read_again(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    with polling(tmp_path, dovecot, {"support": "support@example.com"}, password="not-the-secret") as ttrd:
        question_and_answer(dovecot, 1, 0)
        wait_for(lambda: metric(ttrd.metrics(), "ttrd_imap_polls_total", result="auth") >= 1)
        assert metric(ttrd.metrics(), "ttrd_imap_up") == 0
        smtp_still_measures(ttrd, 502)
        log = ttrd.log.read_text()
        assert "imap support-imap: auth failure" in log and "not-the-secret" not in log
        (tmp_path / "support.password").write_text("secret\n")  # as a credential refresher would
        wait_for(lambda: ("support", "q1@cust") in items(ttrd), timeout=60)
        assert metric(ttrd.metrics(), "ttrd_imap_up") == 1


def test_a_certificate_that_is_not_trusted_is_a_tls_failure(tmp_path: Path, dovecot: Dovecot) -> None:
    owners = {"support": "support@example.com"}
    with polling(tmp_path, dovecot, owners, tls="implicit", port=dovecot.tls_port) as ttrd:
        wait_for(lambda: metric(ttrd.metrics(), "ttrd_imap_polls_total", result="tls") >= 1)
        assert metric(ttrd.metrics(), "ttrd_imap_up") == 0
        assert "imap support-imap: tls failure" in ttrd.log.read_text()
        smtp_still_measures(ttrd, 503)


def test_the_certificate_of_a_private_ca_is_trusted_when_configured(tmp_path: Path, dovecot: Dovecot) -> None:
    owners = {"support": "support@example.com"}
    ca = str(dovecot.ca_file)
    with polling(tmp_path, dovecot, owners, tls="starttls", tls_ca_file=ca) as ttrd:
        put(dovecot, "support@example.com", "INBOX", mail("q1@cust", "jo@cust.net", "support@example.com", 0))
        wait_for(lambda: ("support", "q1@cust") in items(ttrd))
        assert metric(ttrd.metrics(), "ttrd_imap_up") == 1


def test_a_uidvalidity_reset_reads_the_folder_again_and_counts_nothing_twice(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    with polling(tmp_path, dovecot) as ttrd:
        put(dovecot, "support@example.com", "INBOX", mail("q1@cust", "jo@cust.net", "support@example.com", 0))
        wait_for(lambda: ("support", "q1@cust") in items(ttrd))
        before = dovecot.uidvalidity("support@example.com", "INBOX")
        dovecot.reset_uidvalidity("support@example.com", "INBOX")
        assert dovecot.uidvalidity("support@example.com", "INBOX") != before
        question_and_answer(dovecot, 2, 30)
        put(dovecot, "alice@example.com", "Sent", mail("r1@x", "alice@example.com", "jo@cust.net", 10,
                                                      "In-Reply-To: <q1@cust>"))  # fmt: skip
        wait_for(lambda: replied(ttrd, 1, 2))
        wait_for(lambda: "new UIDVALIDITY" in ttrd.log.read_text())
        text = ttrd.metrics()
        assert len(items(ttrd)) == 2
        assert metric(text, "ttrd_reply_seconds_count", clock="calendar") == 2
        assert metric(text, "ttrd_inbound_messages_total") == 2
        wait_for(lambda: metric(ttrd.metrics(), "ttrd_duplicate_observations_total") >= 1)


def test_a_connection_cut_during_idle_is_reopened(tmp_path: Path, dovecot: Dovecot) -> None:
    with polling(tmp_path, dovecot, {"support": "support@example.com"}, poll_seconds=300) as ttrd:
        put(dovecot, "support@example.com", "INBOX", mail("q1@cust", "jo@cust.net", "support@example.com", 0))
        wait_for(lambda: ("support", "q1@cust") in items(ttrd))
        dovecot.kick("support@example.com")  # the session sits in IDLE (polls every 300 s)
        wait_for(lambda: metric(ttrd.metrics(), "ttrd_imap_polls_total", result="network") >= 1)
        put(
            dovecot, "support@example.com", "INBOX", mail("q2@cust", "kim@cust.net", "support@example.com", 5)
        )
        wait_for(lambda: ("support", "q2@cust") in items(ttrd))
        assert metric(ttrd.metrics(), "ttrd_imap_up") == 1


class StallingProxy:
    """A TCP proxy to Dovecot that, once, stops passing the server's answer after the client sends FETCH
    (when `armed`), and that can hold every answer of the server for `delay` seconds (a slow link)."""

    def __init__(self, upstream: int, delay: float = 0.0, *, armed: bool = True) -> None:
        self.upstream = upstream
        self.delay = delay
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.armed = threading.Event()
        self.stalled = threading.Event()
        if armed:
            self.armed.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.server.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream))
                stall = threading.Event()
                threading.Thread(target=self._pump, args=(client, upstream, stall, True), daemon=True).start()
                threading.Thread(
                    target=self._pump, args=(upstream, client, stall, False), daemon=True
                ).start()

    def _pump(
        self, source: socket.socket, target: socket.socket, stall: threading.Event, from_client: bool
    ) -> None:
        with contextlib.suppress(OSError), source, target:
            while data := source.recv(65536):
                if from_client and b"FETCH" in data and self.armed.is_set():
                    self.armed.clear()
                    stall.set()
                    self.stalled.set()
                if not from_client and stall.is_set():
                    continue  # the server's answers are swallowed: to the client, it stopped answering
                if not from_client and self.delay:
                    time.sleep(self.delay)
                target.sendall(data)

    def close(self) -> None:
        self.server.close()


def test_a_server_that_stops_answering_mid_fetch_is_given_up_and_read_again(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    proxy = StallingProxy(dovecot.port)
    try:
        for number in range(20):
            question = mail(
                f"q{number}@cust", "jo@cust.net", "support@example.com", number, subject=f"Case {number}"
            )
            put(dovecot, "support@example.com", "INBOX", question)
        with polling(tmp_path, dovecot, {"support": "support@example.com"}, port=proxy.port) as ttrd:
            wait_for(proxy.stalled.is_set)
            smtp_still_measures(ttrd, 504)
            wait_for(lambda: metric(ttrd.metrics(), "ttrd_imap_polls_total", result="timeout") >= 1)
            wait_for(lambda: len(items(ttrd)) == 21, timeout=60)
            assert metric(ttrd.metrics(), "ttrd_imap_messages_total") == 20
            assert "imap support-imap: timeout failure in INBOX" in ttrd.log.read_text()
    finally:
        proxy.close()


def test_a_daemon_killed_mid_sync_fetches_again_and_doubles_nothing(tmp_path: Path, dovecot: Dovecot) -> None:
    for number in range(600):
        question = mail(f"q{number}@cust", f"c{number}@cust.net", "support@example.com", number % 600,
                        subject=f"Case {number}")  # fmt: skip
        put(dovecot, "support@example.com", "INBOX", question)
    proxy = StallingProxy(dovecot.port, delay=0.05, armed=False)  # a slow link: the first read takes seconds
    owners = {"support": "support@example.com"}
    ttrd = Ttrd(tmp_path, TEAM + imap_accounts(tmp_path, dovecot, owners, port=proxy.port))
    try:
        ttrd.start()
        wait_for(lambda: 0 < metric(ttrd.metrics(), "ttrd_imap_messages_total") < 600, timeout=60)
        ttrd.kill()  # SIGKILL: some chunks spooled, the rest not yet fetched
        ttrd.start()
        wait_for(lambda: len(items(ttrd)) == 600, timeout=120)
        assert sorted(key[1] for key in items(ttrd)) == sorted(f"q{n}@cust" for n in range(600))
        assert ttrd.stop() == 0
    finally:
        ttrd.close()
        proxy.close()


class TokenInfo:
    """A stand-in for an OAuth 2.0 token-info endpoint: tokens in `valid` are active for `username`."""

    def __init__(self, username: str) -> None:
        import json
        from http.server import BaseHTTPRequestHandler, HTTPServer

        self.valid: set[str] = set()
        self.asked: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.path.rsplit("=", 1)[-1]
                outer.asked.append(token)
                body = json.dumps({"active": token in outer.valid, "username": username}).encode()
                self.send_response(200 if token in outer.valid else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *arguments: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/tokeninfo?access_token="
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_xoauth2_with_a_token_file_an_external_refresher_rewrites(tmp_path: Path) -> None:
    import tempfile

    from tests.integration.dovecot import PREFIX, require_dovecot

    require_dovecot()
    tokens = TokenInfo("support@example.com")
    server = Dovecot(Path(tempfile.mkdtemp(prefix=PREFIX)), tokeninfo_url=tokens.url)
    (tmp_path / "support.token").write_text("expired-token\n")
    account = (
        '\n[[imap.accounts]]\nid = "support-imap"\nowner = "support"\nhost = "127.0.0.1"\n'
        f'port = {server.port}\ntls = "starttls"\ntls_ca_file = "{server.ca_file}"\n'
        'username = "support@example.com"\noauth2_token_file = "support.token"\npoll_seconds = 1\n'
        "timeout_seconds = 5\n"
    )
    try:
        server.add_user("support@example.com", "not-used")
        server.start()
        put(server, "support@example.com", "INBOX", mail("q1@cust", "jo@cust.net", "support@example.com", 0))
        ttrd = Ttrd(tmp_path, TEAM + account)
        try:
            ttrd.start()
            # A refused token is an auth failure at once, not a hang until the deadline.
            wait_for(lambda: metric(ttrd.metrics(), "ttrd_imap_polls_total", result="auth") >= 1)
            assert metric(ttrd.metrics(), "ttrd_imap_polls_total", result="timeout") == 0
            tokens.valid.add("fresh-token")
            fresh = tmp_path / ".support.token.new"
            fresh.write_text("fresh-token\n")
            fresh.replace(tmp_path / "support.token")  # as a refresher replaces its file
            wait_for(lambda: ("support", "q1@cust") in items(ttrd), timeout=60)
            assert {"expired-token", "fresh-token"} <= set(tokens.asked)
            assert "token" not in ttrd.log.read_text().replace("support.token", "")
            assert ttrd.stop() == 0
        finally:
            ttrd.close()
    finally:
        server.stop()
        tokens.close()


def test_a_user_name_that_needs_quoting_logs_in(tmp_path: Path, dovecot: Dovecot) -> None:
    import imaplib

    login = "support desk"  # a space: an IMAP atom cannot hold it, so the name must be quoted
    quoted = '"' + login.replace("\\", "\\\\").replace('"', '\\"') + '"'
    dovecot.add_user(login, "wait")
    dovecot.set_password(login, "secret")  # waits until Dovecot has read its passwd-file again
    client = imaplib.IMAP4("127.0.0.1", dovecot.port)
    try:
        client.login(quoted, "secret")
        raw, moment = mail("q1@cust", "jo@cust.net", "support@example.com", 0)
        client.append("INBOX", "", imaplib.Time2Internaldate(moment), raw)
    finally:
        client.logout()
    toml_login = login.replace("\\", "\\\\").replace('"', '\\"')
    ttrd = Ttrd(tmp_path, TEAM + imap_accounts(tmp_path, dovecot, {"support": toml_login}))
    try:
        ttrd.start()
        wait_for(lambda: ("support", "q1@cust") in items(ttrd))
        assert ttrd.stop() == 0
    finally:
        ttrd.close()
