"""`ttrd import`, `replies` and `report` as a user runs them: the real command, files, SQLite."""

from __future__ import annotations

import gzip
import json
import lzma
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED, require
from tests.integration.daemon import TTRD

SCORER = SHARED / "tools" / "score-scenario.py"
SCENARIOS = ["basic", "shuffled", "twisted"]


def ttrd(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(TTRD), *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"ttrd {args} exited {done.returncode}:\n{done.stderr}")
    return done


def config_for(tmp_path: Path, base: str) -> Path:
    path = tmp_path / "ttrd.toml"
    path.write_text(base + f'\n[storage]\nurl = "sqlite:///{tmp_path / "ttrd.db"}"\n')
    return path


SIMPLE = """
[organization]
domains = ["example.com"]

[[agents]]
id = "alice"
address = "alice@example.com"

[[mailboxes]]
id = "support"
address = "support@example.com"
kind = "shared"
members = ["alice"]
"""

QUESTION = b"""Received: from x by mx; Mon, 02 Mar 2026 09:00:00 +0000
From: Jo <jo@cust.net>
To: support@example.com
Subject: Help
Message-ID: <q1@cust.net>

Hello.
"""

ANSWER = b"""Received: from x by mx; Mon, 02 Mar 2026 09:30:00 +0000
From: Alice <alice@example.com>
To: jo@cust.net
Subject: Re: Help
Message-ID: <a1@example.com>
In-Reply-To: <q1@cust.net>

Hi.
"""


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_shared_scenarios_score_one(scenario: str) -> None:
    require(SCORER.is_file(), f"the scenario scorer is not at {SCORER}")
    done = subprocess.run(
        [
            sys.executable,
            str(SCORER),
            str(SHARED / "scenarios" / scenario),
            "--ttrd",
            str(TTRD),
            "--path",
            "import",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("score 1.000")


def test_scenario_in_random_order_over_several_imports_gives_the_expected_items(tmp_path: Path) -> None:
    scenario = SHARED / "scenarios" / "twisted"
    require(scenario.is_dir(), f"the shared scenarios are not at {scenario.parent}")
    config = config_for(tmp_path, (scenario / "config.toml").read_text())
    files = sorted((scenario / "messages").iterdir())
    random.Random(7).shuffle(files)
    for start in range(0, len(files), 40):
        ttrd("import", "--config", config, *files[start : start + 40])
    got = {(r["mailbox"], r["inbound_message_id"]): r for r in map(json.loads, replies(config))}
    expected = [json.loads(line) for line in (scenario / "expected.jsonl").read_text().splitlines()]
    assert len(got) == len(expected)
    for item in expected:
        found = got[(item["mailbox"], item["inbound_message_id"])]
        for key in ("status", "first", "agent", "reply_message_id", "calendar_seconds", "business_seconds"):
            assert found[key] == item[key], (item, key)


def replies(config: Path, *args: str) -> list[str]:
    return ttrd("replies", "--config", config, "--json", *args).stdout.splitlines()


def test_import_twice_changes_nothing_and_reports_duplicates(tmp_path: Path) -> None:
    config = config_for(tmp_path, SIMPLE)
    box = tmp_path / "box.mbox.gz"
    box.write_bytes(gzip.compress(b"From a\n" + QUESTION + b"\nFrom b\n" + ANSWER))
    first = ttrd("import", "--config", config, box)
    assert "read 2 messages: 2 new" in first.stderr
    before = replies(config)
    second = ttrd("import", "--config", config, box)
    assert "2 duplicates" in second.stderr and "0 new" in second.stderr
    assert replies(config) == before
    [row] = map(json.loads, before)
    assert row["status"] == "replied" and row["agent"] == "alice" and row["calendar_seconds"] == 1800.0


def test_replies_since_until_and_report_json(tmp_path: Path) -> None:
    config = config_for(tmp_path, SIMPLE)
    (tmp_path / "q.eml").write_bytes(QUESTION)
    (tmp_path / "a.eml").write_bytes(ANSWER)
    ttrd("import", "--config", config, tmp_path / "q.eml", tmp_path / "a.eml")
    assert len(replies(config, "--since", "2026-03-02")) == 1
    assert replies(config, "--until", "2026-03-02T09:00:00+00:00") == []
    [row] = map(json.loads, ttrd("report", "--config", config, "--json", "--by", "agent").stdout.splitlines())
    assert row["agent"] == "alice" and row["replied"] == 1 and row["calendar_median_seconds"] == 1800.0
    table = ttrd("report", "--config", config).stdout
    assert "support" in table and "30m" in table


def test_mailbox_owner_inbox_makes_the_owner_a_recipient(tmp_path: Path) -> None:
    config = config_for(tmp_path, SIMPLE)
    maildir = tmp_path / "Maildir"
    (maildir / "cur").mkdir(parents=True)
    (maildir / "new").mkdir()
    (maildir / "cur" / "1").write_bytes(QUESTION.replace(b"To: support@example.com", b"To: someone@else.net"))
    ttrd("import", "--config", config, "--mailbox-owner", "support", "--folder", "inbox", maildir)
    [row] = map(json.loads, replies(config))
    assert row["mailbox"] == "support"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "--config", "/nonexistent/ttrd.toml", "x.eml"], "/nonexistent/ttrd.toml"),
        (
            ["import", "--config", "{config}", "/nonexistent/box.mbox"],
            "/nonexistent/box.mbox: does not exist",
        ),
        (["import", "--config", "{config}", "--folder", "sent", "{eml}"], "--folder needs --mailbox-owner"),
        (["import", "--config", "{config}", "--mailbox-owner", "nobody", "{eml}"], "neither an address"),
        (["replies", "--config", "{config}", "--since", "yesterday"], "is not a date"),
        (["report", "--config", "{config}", "--by", "planet"], "planet"),
    ],
)
def test_wrong_use_gives_a_clear_message_and_non_zero_exit(
    tmp_path: Path, args: list[str], message: str
) -> None:
    config = config_for(tmp_path, SIMPLE)
    (tmp_path / "q.eml").write_bytes(QUESTION)
    filled = [a.format(config=config, eml=tmp_path / "q.eml") for a in args]
    done = ttrd(*filled, check=False)
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_wrong_config_names_file_key_and_problem(tmp_path: Path) -> None:
    config = config_for(tmp_path, SIMPLE.replace('members = ["alice"]', 'members = ["bob"]'))
    done = ttrd("check-config", "--config", config, check=False)
    assert done.returncode == 1
    assert f"{config}: mailboxes[support].members" in done.stderr and '"bob"' in done.stderr


def test_check_config_prints_the_resolved_directory(tmp_path: Path) -> None:
    done = ttrd("check-config", "--config", config_for(tmp_path, SIMPLE))
    assert "support@example.com" in done.stdout and "alice" in done.stdout


def test_broken_mbox_keeps_what_was_read_and_fails_clearly(tmp_path: Path) -> None:
    config = config_for(tmp_path, SIMPLE)
    noise = [random.Random(n).randbytes(3000).hex().encode() for n in range(60)]
    more = b"".join(b"\nFrom c\n" + ANSWER.replace(b"a1@", b"x%d@" % n) + noise[n] for n in range(60))
    whole = lzma.compress(b"From a\n" + QUESTION + b"\nFrom b\n" + ANSWER + more)
    box = tmp_path / "box.mbox.xz"
    box.write_bytes(whole[: len(whole) * 2 // 3])
    done = ttrd("import", "--config", config, box, check=False)
    assert done.returncode == 1
    assert f"{box}: the xz data is cut short" in done.stderr
    assert "Traceback" not in done.stderr


def test_messages_without_headers_are_counted_skips_or_an_error_when_nothing_is_left(tmp_path: Path) -> None:
    config = config_for(tmp_path, SIMPLE)
    bad = tmp_path / "bad.eml"
    bad.write_bytes(b"\nthis has no header fields at all\n")
    alone = ttrd("import", "--config", config, bad, check=False)
    assert alone.returncode == 1 and "not understood" in alone.stderr and "Traceback" not in alone.stderr
    good = tmp_path / "q.eml"
    good.write_bytes(QUESTION)
    mixed = ttrd("import", "--config", config, bad, good, check=False)
    assert mixed.returncode == 3
    assert "1 not understood" in mixed.stderr and f"{bad}: not understood" in mixed.stderr
    assert len(replies(config)) == 1


def test_unreadable_database_directory_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "ttrd.toml"
    config.write_text(SIMPLE + '\n[storage]\nurl = "sqlite:////nonexistent/dir/ttrd.db"\n')
    (tmp_path / "q.eml").write_bytes(QUESTION)
    done = ttrd("import", "--config", config, tmp_path / "q.eml", check=False)
    assert done.returncode == 1 and "/nonexistent/dir" in done.stderr and "Traceback" not in done.stderr
