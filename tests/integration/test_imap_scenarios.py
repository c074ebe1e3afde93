"""A shared scenario replayed into Dovecot mailboxes gives the items the SMTP path gives (SPEC §4).

Every context (agent or tracked mailbox) gets an account. Each copy of a message goes where a mail
server would have put it: into the INBOX of every context its recipients (envelope included) reach,
and of every member of a distribution list among them; a message an internal author sent goes into
the Sent folder of whoever sent it (the agent behind `Sender:`, else the author's own context). The
INTERNALDATE is the time the journal copy says, so event times agree whichever header they come from.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import SHARED, require
from tests.integration.daemon import Ttrd
from tests.integration.dovecot import Dovecot
from tests.integration.test_daemon import wait_for
from tests.integration.test_imap import imap_accounts
from ttrd.config import Settings, settings_from_text
from ttrd.errors import ParseError
from ttrd.journal import exchange
from ttrd.journal.facts import Delivery, MessageFacts
from ttrd.journal.headers import Headers, split_message
from ttrd.journal.parse import parse_message
from ttrd.replytime.directory import Context
from ttrd.replytime.engine import classify
from ttrd.smtp.handler import envelope_recipients

SCORER = SHARED / "tools" / "score-scenario.py"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


def scorer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("score_scenario", SCORER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["score_scenario"] = module
    spec.loader.exec_module(module)
    return module


def original(raw: bytes) -> bytes:
    """The message itself: an Exchange journal report's original, any other copy as it is."""
    block, body = split_message(raw)
    headers = Headers.parse(block)
    return exchange.unwrap(headers, body).original if exchange.is_journal_report(headers) else raw


def mailboxes_reached(facts: MessageFacts, settings: Settings) -> set[str]:
    """The contexts whose INBOX holds a copy: every one a recipient reaches, and distribution members."""
    directory = settings.directory
    reached: set[str] = set()
    for address in facts.recipients:
        context = directory.resolve(address)
        if context is None:
            continue
        reached.add(context.id)
        if context.mailbox is not None and context.mailbox.kind == "distribution":
            reached.update(context.mailbox.members)
    return reached


def sender_of(facts: MessageFacts, settings: Settings) -> Context | None:
    directory = settings.directory
    found = classify(facts, directory)
    agent = directory.agent_for(found.transmitter) if found.transmitter else None
    if agent is not None:
        return directory.context(agent.id)
    return directory.resolve(found.author) if found.author else None


def replay(scenario: Path, settings: Settings, dovecot: Dovecot) -> int:
    """Put every copy of the scenario into the mailboxes; how many copies were placed."""
    login = {context.id: context.addresses[0] for context in settings.directory.contexts.values()}
    placed = 0
    for line in (scenario / "envelope.jsonl").read_text().splitlines():
        envelope = json.loads(line)
        raw = (scenario / "messages" / envelope["file"]).read_bytes()
        rcpt = frozenset(envelope_recipients(envelope["rcpt_to"], settings.smtp.journal_addresses))
        try:
            facts = parse_message(raw, Delivery("smtp", NOW, mail_from=envelope["mail_from"], rcpt_to=rcpt))
        except ParseError:
            continue
        copy = original(raw)
        for context in sorted(mailboxes_reached(facts, settings)):
            dovecot.append(login[context], "INBOX", copy, internal_date=facts.event_time)
            placed += 1
        sender = sender_of(facts, settings)
        if sender is not None and settings.directory.is_internal(facts.from_address or ""):
            dovecot.append(login[sender.id], "Sent", copy, internal_date=facts.event_time)
            placed += 1
    return placed


@pytest.mark.parametrize("name", ["basic", "shuffled", "twisted"])
def test_a_shared_scenario_through_mailboxes_gives_what_the_smtp_path_gives(
    name: str, tmp_path: Path, dovecot: Dovecot, capsys: pytest.CaptureFixture[str]
) -> None:
    require(SCORER.is_file(), f"the scenario scorer is not at {SCORER}")
    scenario = SHARED / "scenarios" / name
    base = (scenario / "config.toml").read_text()
    settings = settings_from_text(base, tmp_path / "scenario.toml")
    owners = {context.id: context.addresses[0] for context in settings.directory.contexts.values()}
    for address in owners.values():
        dovecot.add_user(address, "secret")
    placed = replay(scenario, settings, dovecot)
    smtp = base.split("[smtp]")[0]  # the scenario's own [smtp] section would clash with the test's
    ttrd = Ttrd(tmp_path, imap_accounts(tmp_path, dovecot, owners), base_config=smtp)
    expected = [json.loads(line) for line in (scenario / "expected.jsonl").read_text().splitlines()]
    module = scorer()
    try:
        ttrd.start()
        wait_for(lambda: _fetched(ttrd) >= placed, timeout=120)
        with contextlib.suppress(AssertionError):  # the worker may still be measuring: see below
            wait_for(lambda: module.score(expected, ttrd.replies(), show=0)[0] == len(expected), timeout=60)
        full, total, extra, wrong = module.score(expected, ttrd.replies(), show=0)
    finally:
        ttrd.close()
    capsys.readouterr()  # the scorer prints its tallies
    assert (full, extra) == (total, 0), (
        f"{name} over IMAP: {full}/{total} right, {extra} extra:\n" + "\n".join(wrong[:30])
    )


def _fetched(ttrd: Ttrd) -> float:
    from tests.integration.daemon import metric

    return metric(ttrd.metrics(), "ttrd_imap_messages_total")
