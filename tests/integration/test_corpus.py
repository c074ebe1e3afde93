"""The real corpora through the whole import path: bounces stay out, a real support list comes in."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import ROOT
from tests.integration.test_import_cli import ttrd
from ttrd.ingest.importer import BatchReader, import_batches
from ttrd.ingest.pipeline import Pipeline
from ttrd.replytime.directory import Agent, Directory, Mailbox, Organization
from ttrd.replytime.histogram import reply_bounds
from ttrd.storage.sql import SqlStore


def test_every_bounce_and_auto_reply_is_excluded_with_a_reason(shared: Path, tmp_path: Path) -> None:
    corpus = shared / "corpus" / "automatic" / "maildir" / "bsd"
    directory = Directory(
        Organization(domains=("tracked.invalid",)),
        agents=(Agent("alice", "alice@tracked.invalid"),),
        mailboxes=(Mailbox("support", "support@tracked.invalid", "shared", members=("alice",)),),
    )
    store = SqlStore(f"sqlite:///{tmp_path / 'ttrd.db'}")
    try:
        # Found in the support mailbox's INBOX: every message reaches a tracked context.
        with BatchReader(
            [corpus], datetime.now(UTC), owner="support@tracked.invalid", folder="inbox"
        ) as reader:
            result = import_batches(Pipeline(store, directory), reader)
        excluded = store.metrics_snapshot(reply_bounds(directory)).excluded
        items = list(store.items())
    finally:
        store.close()
    messages = result.new_messages
    rate = sum(excluded.values()) / messages
    print(
        f"\nbsd corpus: {result.read} files, {messages} distinct messages, {sum(excluded.values())} excluded "
        f"({rate:.2%}); by reason {excluded}"
    )
    assert result.read == len(list(corpus.iterdir())) and result.parse_errors == 0
    assert messages >= 500
    assert rate >= 0.99
    assert len(items) == messages - sum(excluded.values())
    assert all(reason for reason in excluded)


def test_usrp_users_list_imports_with_few_exclusions_and_a_plausible_report(
    shared: Path, tmp_path: Path
) -> None:
    corpus = shared / "corpus" / "usrp-users" / "usrp-users-headers.mbox.xz"
    config = tmp_path / "usrp.toml"
    text = (ROOT / "examples" / "usrp-users.toml").read_text()
    config.write_text(text.replace('"sqlite:///var/usrp-users.db"', f'"sqlite:///{tmp_path / "usrp.db"}"'))
    started = datetime.now(UTC)
    done = ttrd("import", "--config", config, corpus)
    seconds = (datetime.now(UTC) - started).total_seconds()
    summary = done.stderr.strip().splitlines()[-1]
    read = int(summary.split()[1])
    excluded = int(summary.split("excluded as automatic ")[1].split()[0].rstrip(";"))
    rows = [json.loads(line) for line in ttrd("replies", "--config", config, "--json").stdout.splitlines()]
    report_rows = [
        json.loads(line) for line in ttrd("report", "--config", config, "--json").stdout.splitlines()
    ]
    [report] = [row for row in report_rows if row["mailbox"] == "usrp-users"]
    firsts = [
        r["calendar_seconds"]
        for r in rows
        if r["mailbox"] == "usrp-users" and r["first"] and r["status"] == "replied"
    ]
    hours = (statistics.median(firsts) / 3600, report["calendar_p90_seconds"] / 3600)
    print(
        f"\nusrp-users: {read} messages in {seconds:.1f} s ({read / seconds:,.0f} msg/s), "
        f"excluded {excluded}, items {report['items']}, reply rate {report['reply_rate']:.1%}, "
        f"median first reply {hours[0]:.1f} h, p90 of all replies {hours[1]:.1f} h"
    )
    assert read == 11424
    assert excluded < read * 0.01
    assert report["mailbox"] == "usrp-users" and report["items"] > 3000
    assert 0.2 < report["reply_rate"] < 0.9
    assert 600 < statistics.median(firsts) < 3 * 86400
    # Staff named in To/Cc besides the list get items of their own (SPEC §1, "Context").
    assert {r["mailbox"] for r in rows} - {"usrp-users"} <= {a["id"] for a in _agents(config)}
    assert {r["agent"] for r in rows if r["status"] == "replied"} >= {"martin-braun", "wade-fife"}


def _agents(config: Path) -> list[dict[str, str]]:
    import tomllib

    agents: list[dict[str, str]] = tomllib.loads(config.read_text())["agents"]
    return agents
