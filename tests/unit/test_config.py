"""ttrd.config: TOML in, validated Settings out; every problem a ConfigError naming file, key and problem.

In memory: the text is given to `settings_from_text` with a path that is never read. What needs a real
file (a missing one, a bad encoding, paths relative to where the file lies) is in
tests/integration/test_config_files.py.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttrd.config import (
    DEFAULT_CONFIG_PATH,
    Endpoint,
    ImapAccount,
    MetricsSettings,
    Settings,
    SmtpSettings,
    StorageSettings,
    config_path,
    settings_from_text,
)
from ttrd.errors import ConfigError
from ttrd.replytime.directory import Sla
from ttrd.replytime.hours import ALWAYS_OPEN, Span
from ttrd.views import describe

MINIMAL = '[organization]\ndomains = ["example.com"]\n'

FULL = """
[organization]
domains = ["Example.com", "example.org"]
window_days = 14.5
list_addresses = ["Lists@Example.net"]

[schedules.default]
timezone = "Europe/London"
monday = ["13:00-17:30", "09:00-12:00"]
friday = ["09:00-24:00"]
holidays = [2026-12-25, "2026-12-26"]
country = "GB"
subdivision = "ENG"

[schedules.night]
timezone = "UTC"

[[agents]]
id = "alice"
address = "Alice@Example.com"
aliases = ["A.Smith@example.com"]
name = "Alice Smith"
teams = ["emea", "tier2"]

[[agents]]
id = "bob"
address = "bob@example.com"
schedule = "night"

[[mailboxes]]
id = "support"
address = "support@example.com"
aliases = ["Help@Example.com"]
kind = "shared"
members = ["alice", "bob"]
sla = ["90s", "1h30m", "1d"]
schedule = "default"

[[mailboxes]]
id = "users"
address = "Users@Lists.Example.com"
kind = "list"
members = ["bob"]

[[mailboxes]]
id = "sales"
address = "sales@example.com"
kind = "distribution"
list_id = "<Sales.Example.COM>"

[storage]
url = "postgresql://ttrd:s3cret@db.example.com/ttrd"

[smtp]
listen = "[::]:25"
journal_addresses = ["Journal@Ttrd.Example.com"]
max_message_bytes = 1000000
max_sessions = 10
allow_networks = ["10.1.2.3/8", "192.0.2.7"]

[metrics]
listen = "0.0.0.0:9100"

[[imap.accounts]]
id = "alice-imap"
owner = "alice"
host = "imap.example.com"
tls = "starttls"
username = "alice@example.com"
password_file = "secrets/alice"

[[imap.accounts]]
id = "support-imap"
owner = "support"
host = "127.0.0.1"
port = 1143
tls = "none"
username = "support"
oauth2_token_file = "/run/credentials/ttrd.service/support"
folders = ["INBOX", "Archive"]
poll_seconds = 2.5
"""

# A small valid config that the error cases extend.
BASE = """
[organization]
domains = ["example.com"]

[schedules.default]
timezone = "Europe/London"
monday = ["09:00-17:00"]

[[agents]]
id = "alice"
address = "alice@example.com"

[[agents]]
id = "carol"
address = "carol@example.com"
"""

SUPPORT = '\n[[mailboxes]]\nid = "support"\naddress = "support@example.com"\nkind = "shared"\n'
IMAP = '\n[[imap.accounts]]\nid = "box"\nowner = "alice"\nhost = "imap.example.com"\nusername = "alice"\n'


PATH = Path("/etc/ttrd/ttrd.toml")
"""Where the text under test claims to come from; never read."""


def load(text: str) -> Settings:
    return settings_from_text(text, PATH)


def failure(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(text)
    return caught.value


def assert_names(error: ConfigError, path: Path, key: str | None, problem: str) -> None:
    """The message names the file, the key and the problem, in that order."""
    assert error.path == str(path)
    assert error.key == key
    assert problem in error.problem
    where = f"{path}: {key}" if key else str(path)
    assert str(error) == f"{where}: {error.problem}"


# --- a full configuration -----------------------------------------------------------------------


def test_full_config_round_trip() -> None:
    settings = load(FULL)
    directory = settings.directory

    assert settings.path == PATH
    assert directory.organization.domains == ("example.com", "example.org")
    assert directory.organization.window_days == 14.5
    assert directory.organization.list_addresses == ("lists@example.net",)
    assert directory.is_internal("x@eu.example.com")

    support = directory.resolve("help@example.com")
    assert support is not None and support.id == "support"
    alice = directory.resolve("a.smith@example.com")
    assert alice is not None and alice.agent is not None
    assert alice.agent.address == "alice@example.com"
    assert alice.agent.name == "Alice Smith"
    assert alice.agent.teams == ("emea", "tier2")
    assert directory.agent_for("alice@example.com") == alice.agent

    mailboxes = {mailbox.id: mailbox for mailbox in directory.mailboxes}
    assert mailboxes["support"].members == ("alice", "bob")
    assert mailboxes["support"].sla == (Sla("90s", 90.0), Sla("1h30m", 5400.0), Sla("1d", 86400.0))
    assert mailboxes["support"].list_id is None
    assert mailboxes["users"].address == "users@lists.example.com"
    assert mailboxes["users"].list_id == "users.lists.example.com"
    assert mailboxes["sales"].list_id == "sales.example.com"
    assert directory.is_tracked_list_id("users.lists.example.com")
    assert directory.is_list_address("users@lists.example.com")


def test_full_config_schedules() -> None:
    directory = load(FULL).directory
    default = directory.schedules["default"]
    assert default.timezone == "Europe/London"
    assert default.week[0] == (Span(540, 720), Span(780, 1050))
    assert default.week[4] == (Span(540, 1440),)
    assert default.week[1] == ()
    assert default.holidays == frozenset({date(2026, 12, 25), date(2026, 12, 26)})
    assert (default.country, default.subdivision) == ("GB", "ENG")
    assert directory.schedules["night"].always_open
    # An agent without a schedule gets "default"; bob names his own.
    assert directory.contexts["alice"].schedule is default
    assert directory.contexts["bob"].schedule is directory.schedules["night"]
    assert directory.contexts["users"].schedule is default


def test_full_config_services() -> None:
    settings = load(FULL)
    assert settings.storage == StorageSettings("postgresql://ttrd:s3cret@db.example.com/ttrd")
    assert settings.smtp == SmtpSettings(
        listen=Endpoint("::", 25),
        journal_addresses=("journal@ttrd.example.com",),
        max_message_bytes=1_000_000,
        max_sessions=10,
        allow_networks=("10.0.0.0/8", "192.0.2.7/32"),
    )
    assert settings.metrics == MetricsSettings(Endpoint("0.0.0.0", 9100))
    assert settings.imap_accounts == (
        ImapAccount(
            id="alice-imap",
            owner="alice",
            host="imap.example.com",
            port=143,
            tls="starttls",
            username="alice@example.com",
            password_file=PATH.parent / "secrets/alice",
            oauth2_token_file=None,
        ),
        ImapAccount(
            id="support-imap",
            owner="support",
            host="127.0.0.1",
            port=1143,
            tls="none",
            username="support",
            password_file=None,
            oauth2_token_file=Path("/run/credentials/ttrd.service/support"),
            folders=("INBOX", "Archive"),
            poll_seconds=2.5,
        ),
    )


def test_defaults() -> None:
    settings = load(MINIMAL)
    assert settings.directory.organization.window_days == 30
    assert settings.directory.organization.list_addresses == ()
    assert settings.directory.schedules == {}
    assert settings.storage.url == "sqlite:////var/lib/ttrd/ttrd.db"
    assert settings.smtp.listen == Endpoint("127.0.0.1", 2525)
    assert settings.smtp.journal_addresses == ("journal@ttrd.invalid",)
    assert settings.smtp.max_message_bytes == 50 * 1024 * 1024
    assert settings.smtp.max_sessions == 500
    assert settings.smtp.allow_networks == ("127.0.0.0/8", "::1/128")
    assert settings.metrics.listen == Endpoint("127.0.0.1", 9465)


def test_imap_defaults() -> None:
    text = BASE + IMAP + 'password_file = "/p"\n'
    (account,) = load(text).imap_accounts
    assert (account.tls, account.port) == ("implicit", 993)
    assert account.folders == ("INBOX", "\\Sent")
    assert account.poll_seconds == 60


def test_no_default_schedule_means_always_open() -> None:
    text = MINIMAL + '[[agents]]\nid = "alice"\naddress = "alice@example.com"\n'
    assert load(text).directory.contexts["alice"].schedule is ALWAYS_OPEN


def test_settings_are_immutable() -> None:
    settings = load(MINIMAL)
    with pytest.raises(AttributeError):
        settings.smtp.max_sessions = 5  # type: ignore[misc]


# --- config_path --------------------------------------------------------------------------------


def test_config_path_prefers_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTRD_CONFIG", "/from/env.toml")
    assert config_path("/from/option.toml") == Path("/from/option.toml")
    assert config_path(Path("relative.toml")) == Path("relative.toml")


def test_config_path_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTRD_CONFIG", "/from/env.toml")
    assert config_path(None) == Path("/from/env.toml")
    assert config_path("") == Path("/from/env.toml")


@pytest.mark.parametrize("env", [None, ""])
def test_config_path_then_the_default(monkeypatch: pytest.MonkeyPatch, env: str | None) -> None:
    if env is None:
        monkeypatch.delenv("TTRD_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TTRD_CONFIG", env)
    assert config_path(None) == DEFAULT_CONFIG_PATH == Path("/etc/ttrd/ttrd.toml")


# --- the text itself (what needs a file is in tests/integration/test_config_files.py) ------------


def test_toml_syntax_error_names_line_and_column() -> None:
    error = failure(MINIMAL + "window_days = \n")
    assert_names(error, PATH, None, "is not valid TOML: Invalid value (at line 3, column 15)")


def test_the_path_is_named_as_given_and_never_read() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_text("[organization]\n", "no/such/ttrd.toml")
    assert_names(caught.value, Path("no/such/ttrd.toml"), "organization.domains", "missing")
    assert settings_from_text(MINIMAL, "no/such/ttrd.toml").path == Path("no/such/ttrd.toml")


# --- every validation, by key and problem -------------------------------------------------------

ERRORS = [
    # unknown keys, at every level
    (BASE + "[mailbox]\n", "mailbox", 'unknown key "mailbox" (did you mean "mailboxes"?'),
    (BASE.replace('address = "carol', 'adress = "carol'), "agents[carol].adress", 'did you mean "address"?'),
    (BASE + SUPPORT + 'member = ["alice"]\n', "mailboxes[support].member", 'unknown key "member"'),
    (BASE.replace("monday", "tuseday"), "schedules.default.tuseday", 'did you mean "tuesday"?'),
    (BASE + "[smtp]\nport = 25\n", "smtp.port", "allowed here: allow_networks, auth_file, journal_addresses"),
    (BASE + "[imap]\naccount = []\n", "imap.account", 'did you mean "accounts"?'),
    (BASE + IMAP + 'password = "x"\n', "imap.accounts[box].password", 'unknown key "password"'),
    # organisation
    ("[schedules.default]\ntimezone = 'UTC'\n", "organization", "missing (expected a [organization] table)"),
    ("[organization]\n", "organization.domains", "missing (expected a non-empty list of domains)"),
    ("[organization]\ndomains = []\n", "organization.domains", "got an empty list"),
    (
        '[organization]\ndomains = "example.com"\n',
        "organization.domains",
        'expected a non-empty list of domains, got "example.com"',
    ),
    ('[organization]\ndomains = ["@example.com"]\n', "organization.domains[1]", "is not a domain"),
    (MINIMAL + "window_days = 0\n", "organization.window_days", "expected a number greater than 0"),
    (MINIMAL + "window_days = true\n", "organization.window_days", "got true"),
    (MINIMAL + 'window_days = "30"\n', "organization.window_days", 'got "30"'),
    (MINIMAL + 'list_addresses = ["lists"]\n', "organization.list_addresses[1]", "not an e-mail address"),
    # schedules
    (MINIMAL + "[schedules.default]\nmonday = []\n", "schedules.default.timezone", "missing"),
    (
        MINIMAL + '[schedules.default]\ntimezone = "Europe/Londn"\n',
        "schedules.default.timezone",
        'unknown time zone "Europe/Londn" (did you mean "Europe/London"?)',
    ),
    (MINIMAL + '[schedules.x]\ntimezone = "Europe"\n', "schedules.x.timezone", 'unknown time zone "Europe"'),
    (MINIMAL + '[schedules."UK office"]\ntimezone = "UTC"\n', "schedules.UK office", "not a valid name"),
    ("schedules = 3\n" + MINIMAL, "schedules", "expected tables [schedules.NAME], got 3"),
    (
        BASE.replace('["09:00-17:00"]', '["9-5"]'),
        "schedules.default.monday[1]",
        '"9-5" is not a time range HH:MM-HH:MM',
    ),
    (
        BASE.replace('["09:00-17:00"]', '["12:00-18:00", "09:00-13:00"]'),
        "schedules.default.monday",
        "09:00-13:00 overlaps 12:00-18:00",
    ),
    (BASE.replace('["09:00-17:00"]', '"09:00-17:00"'), "schedules.default.monday", "expected a list of"),
    (BASE.replace("monday", 'holidays = ["2026-13-01"]\nmonday'), "schedules.default.holidays[1]", "month"),
    (BASE.replace("monday", 'holidays = ["25/12/2026"]\nmonday'), "schedules.default.holidays[1]", "a date"),
    (
        BASE.replace("monday", "holidays = [2026-12-25T10:00:00]\nmonday"),
        "schedules.default.holidays[1]",
        "date",
    ),
    (
        BASE.replace("monday", 'country = "XX"\nmonday'),
        "schedules.default.country",
        "unknown holiday country",
    ),
    (
        BASE.replace("monday", 'country = "GB"\nsubdivision = "XX"\nmonday'),
        "schedules.default.subdivision",
        "unknown subdivision",
    ),
    (
        BASE.replace("monday", 'subdivision = "ENG"\nmonday'),
        "schedules.default.subdivision",
        "needs a country",
    ),
    # agents
    (BASE.replace('id = "alice"', 'id = "Alice"'), "agents[1].id", '"Alice" is not a valid id'),
    (BASE.replace('id = "carol"\n', ""), "agents[2].id", "missing (expected an id)"),
    (BASE.replace('address = "carol@example.com"', ""), "agents[carol].address", "missing"),
    (
        BASE.replace('"carol@example.com"', '"carol"'),
        "agents[carol].address",
        '"carol" is not an e-mail address',
    ),
    (BASE.replace('"carol@example.com"', '"c@rol@example.com"'), "agents[carol].address", "not an e-mail"),
    (BASE.replace('"carol@example.com"', '"@example.com"'), "agents[carol].address", "not an e-mail"),
    (BASE.replace('"carol@example.com"', '"carol@"'), "agents[carol].address", "not an e-mail"),
    (BASE + "teams = 3\n", "agents[carol].teams", "expected a list of strings, got 3"),
    (BASE + 'teams = ["emea", 3]\n', "agents[carol].teams[2]", "expected a string, got 3"),
    (BASE + 'aliases = ["c@example.com", "C@example.com"]\n', "agents[carol].aliases[2]", "listed twice"),
    (
        BASE + 'schedule = "night"\n',
        "agents[carol].schedule",
        'unknown schedule "night" (schedules are: default)',
    ),
    (MINIMAL + "[agents]\nid = 'a'\n", "agents", "expected an array of tables ([[agents]]), got a table"),
    ("agents = [3]\n" + MINIMAL, "agents[1]", "expected a table, got 3"),
    # one namespace of ids, one of addresses
    (
        BASE.replace('id = "carol"', 'id = "alice"'),
        "agents[alice].id",
        'duplicate id "alice" (already used by agent alice)',
    ),
    (
        BASE + SUPPORT.replace('id = "support"', 'id = "carol"'),
        "mailboxes[carol].id",
        'duplicate id "carol" (already used by agent carol)',
    ),
    (
        BASE + 'aliases = ["Alice@Example.com"]\n',
        "agents[carol].aliases",
        'duplicate address "alice@example.com" (already used by agent alice)',
    ),
    (
        BASE + SUPPORT.replace("support@", "carol@"),
        "mailboxes[support].address",
        'duplicate address "carol@example.com" (already used by agent carol)',
    ),
    # mailboxes
    (BASE + SUPPORT.replace('kind = "shared"\n', ""), "mailboxes[support].kind", "missing"),
    (
        BASE + SUPPORT.replace('"shared"', '"team"'),
        "mailboxes[support].kind",
        'expected one of shared, distribution, list; got "team"',
    ),
    (
        BASE + SUPPORT + 'members = ["alice", "bob"]\n',
        "mailboxes[support].members",
        'unknown agent id "bob" (agents are: alice, carol)',
    ),
    (
        BASE + SUPPORT + SUPPORT.replace("support", "sales") + 'members = ["support"]\n',
        "mailboxes[sales].members",
        '"support" is a mailbox; members are agent ids',
    ),
    (BASE + SUPPORT + 'members = ["alice", "alice"]\n', "mailboxes[support].members[2]", "listed twice"),
    (
        BASE + SUPPORT + 'sla = ["1h", "1hour"]\n',
        "mailboxes[support].sla[2]",
        '"1hour" is not a duration (use e.g. 90s, 30m, 4h, 1d)',
    ),
    (BASE + SUPPORT + 'sla = ["0s"]\n', "mailboxes[support].sla[1]", "not a positive duration"),
    (BASE + SUPPORT + 'sla = ["1.5h"]\n', "mailboxes[support].sla[1]", "not a duration"),
    (BASE + SUPPORT + 'sla = "1h"\n', "mailboxes[support].sla", 'expected a list of durations, got "1h"'),
    (BASE + SUPPORT + 'list_id = "<>"\n', "mailboxes[support].list_id", "not a List-Id"),
    (BASE + SUPPORT + 'schedule = "us"\n', "mailboxes[support].schedule", 'unknown schedule "us"'),
    # storage, smtp, metrics
    (MINIMAL + '[storage]\nurl = "nonsense"\n', "storage.url", "not a database URL"),
    (MINIMAL + '[storage]\nurl = "postgres://db/ttrd"\n', "storage.url", 'unsupported database "postgres"'),
    (MINIMAL + '[smtp]\nlisten = "localhost"\n', "smtp.listen", '"localhost" is not host:port'),
    (MINIMAL + '[smtp]\nlisten = "127.0.0.1:70000"\n', "smtp.listen", "not host:port"),
    (MINIMAL + '[smtp]\nlisten = "::1:25"\n', "smtp.listen", "not host:port"),
    (MINIMAL + "[smtp]\nmax_sessions = 0\n", "smtp.max_sessions", "expected a whole number ≥ 1, got 0"),
    (MINIMAL + "[smtp]\nmax_message_bytes = 1.5\n", "smtp.max_message_bytes", "whole number"),
    (MINIMAL + '[smtp]\nallow_networks = ["10.0.0.300/8"]\n', "smtp.allow_networks[1]", "not an IP network"),
    (MINIMAL + "[smtp]\nallow_networks = []\n", "smtp.allow_networks", "got an empty list"),
    (MINIMAL + '[smtp]\njournal_addresses = ["journal"]\n', "smtp.journal_addresses[1]", "not an e-mail"),
    (MINIMAL + "[metrics]\nlisten = 9465\n", "metrics.listen", "expected host:port, got 9465"),
    ("smtp = 1\n" + MINIMAL, "smtp", "expected a table, got 1"),
    # imap accounts
    (BASE + IMAP, "imap.accounts[box]", "missing password_file or oauth2_token_file"),
    (
        BASE + IMAP + 'password_file = "/p"\noauth2_token_file = "/t"\n',
        "imap.accounts[box].oauth2_token_file",
        "not both",
    ),
    (
        BASE + IMAP.replace('"alice"', '"bob"') + 'password_file = "/p"\n',
        "imap.accounts[box].owner",
        'unknown agent or mailbox id "bob" (agent or mailbox ids are: alice, carol)',
    ),
    (
        BASE + IMAP + 'password_file = "/p"\ntls = "none"\n',
        "imap.accounts[box].tls",
        "only towards a loopback host",
    ),
    (BASE + IMAP + 'password_file = "/p"\ntls = "ssl"\n', "imap.accounts[box].tls", 'got "ssl"'),
    (BASE + IMAP + 'password_file = "/p"\nport = 0\n', "imap.accounts[box].port", "from 1 to 65535"),
    (BASE + IMAP + 'password_file = "/p"\nfolders = []\n', "imap.accounts[box].folders", "empty list"),
    (BASE + IMAP + 'password_file = "/p"\npoll_seconds = -1\n', "imap.accounts[box].poll_seconds", "got -1"),
    (BASE + IMAP.replace('host = "imap.example.com"\n', ""), "imap.accounts[box].host", "missing"),
    (
        BASE + (IMAP + 'password_file = "/p"\n') * 2,
        "imap.accounts[box].id",
        'duplicate id "box" (already used by another IMAP account)',
    ),
]


@pytest.mark.parametrize(("text", "key", "problem"), ERRORS)
def test_errors_name_file_key_and_problem(text: str, key: str, problem: str) -> None:
    assert_names(failure(text), PATH, key, problem)


# The allowed keys are derived from the dataclasses each table fills; these are the lists a user reads.
SCHEDULE_KEYS = (
    "country friday holidays monday saturday subdivision sunday thursday timezone tuesday wednesday"
)
SMTP_KEYS = (
    "allow_networks auth_file journal_addresses listen max_message_bytes max_sessions require_starttls "
    "tls_certificate tls_key"
)
IMAP_ACCOUNT_KEYS = (
    "folders host id oauth2_token_file owner password_file poll_seconds port timeout_seconds tls tls_ca_file "
    "username"
)
ALLOWED_KEYS = [  # where a stray key is written, the key named, the keys allowed there
    ("", "zzz", "agents imap mailboxes metrics organization schedules smtp storage"),
    (MINIMAL, "organization.zzz", "domains list_addresses window_days"),
    (MINIMAL + '[schedules.default]\ntimezone = "UTC"\n', "schedules.default.zzz", SCHEDULE_KEYS),
    (BASE, "agents[carol].zzz", "address aliases id name schedule teams"),
    (BASE + SUPPORT, "mailboxes[support].zzz", "address aliases id kind list_id members schedule sla"),
    (MINIMAL + "[storage]\n", "storage.zzz", "url"),
    (MINIMAL + "[smtp]\n", "smtp.zzz", SMTP_KEYS),
    (MINIMAL + "[metrics]\n", "metrics.zzz", "listen"),
    (MINIMAL + "[imap]\n", "imap.zzz", "accounts"),
    (BASE + IMAP, "imap.accounts[box].zzz", IMAP_ACCOUNT_KEYS),
]


@pytest.mark.parametrize(("text", "key", "allowed"), ALLOWED_KEYS)
def test_unknown_keys_list_every_allowed_key(text: str, key: str, allowed: str) -> None:
    error = failure(text + "zzz = 1\n")
    listed = ", ".join(allowed.split())
    assert (error.key, error.problem) == (key, f'unknown key "zzz" (allowed here: {listed})')


def test_error_cases_are_valid_without_their_fault() -> None:
    """The bases the error cases extend are themselves valid, so each case fails for its own reason."""
    load(BASE + SUPPORT + IMAP + 'password_file = "/p"\n')


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "LOCALHOST", "127.1.2.3"])
def test_tls_none_towards_loopback(host: str) -> None:
    text = BASE + IMAP.replace("imap.example.com", host) + 'password_file = "/p"\ntls = "none"\n'
    (account,) = load(text).imap_accounts
    assert (account.tls, account.port) == ("none", 143)


def test_bad_database_url_is_not_echoed() -> None:
    error = failure(MINIMAL + '[storage]\nurl = "postgresql://ttrd:s3cret@db:port/ttrd"\n')
    assert_names(error, PATH, "storage.url", "not a database URL")
    assert "s3cret" not in str(error)


def test_adjacent_opening_hours_do_not_overlap() -> None:
    text = BASE.replace('["09:00-17:00"]', '["12:00-17:00", "09:00-12:00"]')
    schedule = load(text).directory.schedules["default"]
    assert schedule.week[0] == (Span(540, 720), Span(720, 1020))


def test_all_valid_timezones_accepted() -> None:
    text = MINIMAL + '[schedules.a]\ntimezone = "UTC"\n[schedules.b]\ntimezone = "America/Argentina/Salta"\n'
    assert set(load(text).directory.schedules) == {"a", "b"}


# --- describe -----------------------------------------------------------------------------------


def test_describe_full() -> None:
    text = describe(load(FULL))
    lines = text.splitlines()
    assert lines[0] == f"config  {PATH}"
    assert "  domains         example.com, example.org" in lines
    assert "  window          14.5 days" in lines
    assert "  default  Europe/London" in lines
    assert "    monday           09:00-12:00, 13:00-17:30" in lines
    assert "    tuesday          closed" in lines
    assert "    friday           09:00-24:00" in lines
    assert "    holidays         2026-12-25, 2026-12-26" in lines
    assert "    public holidays  GB (ENG)" in lines
    assert "    hours     24/7 (no opening hours on any day)" in lines
    assert "  id     address            aliases              name         teams        schedule" in lines
    assert "  alice  alice@example.com  a.smith@example.com  Alice Smith  emea, tier2  default" in lines
    assert "  users    list          users@lists.example.com" in lines
    assert "    list id   users.lists.example.com" in lines
    assert "    sla       90s, 1h30m, 1d" in lines
    assert "  help@example.com         mailbox support" in lines
    assert "  listen             [::]:25" in lines
    assert "  url  postgresql://ttrd:***@db.example.com/ttrd" in lines
    assert "    password file  " + str(PATH.parent / "secrets/alice") in lines
    assert "    server             127.0.0.1:1143, tls none" in lines
    assert "s3cret" not in text
    assert text == describe(load(FULL))


def test_describe_minimal() -> None:
    text = describe(load(MINIMAL))
    assert "schedules\n  none: every agent and mailbox is open 24/7\n" in text
    assert "agents\n  none\n" in text
    assert "imap accounts\n  none\n" in text
    assert text.endswith("\n") and not text.endswith("\n\n")


# --- whatever the file holds, only ConfigError escapes --------------------------------------------


def _toml(value: object) -> str:
    """An inline TOML rendering, enough for the values tomllib returns."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if prefix:
        yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*prefix, key))


FULL_DATA = tomllib.loads(FULL)
FULL_PATHS = sorted(_paths(FULL_DATA), key=str)
TEXT = st.text(st.characters(codec="utf-8", max_codepoint=0xFFFF, exclude_characters="\x7f"))
SCALARS = st.one_of(
    TEXT,
    st.sampled_from(["", "alice", "support", "default", "1h", "09:00-17:00", "x@y", "[::1]:1", "sqlite://"]),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.dates(),
    st.datetimes(),
    st.times(),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3)
)


@settings(max_examples=150, deadline=None)
@given(path=st.sampled_from(FULL_PATHS), value=VALUES)
def test_any_value_anywhere_gives_settings_or_config_error(
    path: tuple[str | int, ...], value: object
) -> None:
    data = json.loads(json.dumps(FULL_DATA, default=str))  # a deep copy; dates come back as strings
    parent = data
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    text = "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in data.items())
    try:
        describe(load(text))
    except ConfigError as error:
        assert error.path == str(PATH)


def test_the_fuzz_renderer_round_trips() -> None:
    """The property test above only means something if it writes back the config it meant to."""
    text = "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in FULL_DATA.items())
    assert tomllib.loads(text) == FULL_DATA
    assert isinstance(tomllib.loads(_toml({"d": datetime(2026, 1, 2, 3, 4)})[1:-1]), dict)


@pytest.mark.parametrize(
    ("smtp", "key", "problem"),
    [
        ('tls_certificate = "c.pem"\n', "smtp.tls_key", "together"),
        ('tls_key = "k.pem"\n', "smtp.tls_certificate", "together"),
        ("require_starttls = true\n", "smtp.require_starttls", "needs tls_certificate"),
        ('require_starttls = "yes"\n', "smtp.require_starttls", "expected true or false"),
        ('auth_file = "users"\n', "smtp.auth_file", "only over TLS"),
    ],
)
def test_smtp_tls_and_auth_keys_are_checked(smtp: str, key: str, problem: str) -> None:
    assert_names(failure(MINIMAL + "[smtp]\n" + smtp), PATH, key, problem)


def test_the_unknown_agent_label_is_reserved() -> None:
    error = failure(MINIMAL + '[[agents]]\nid = "unknown"\naddress = "u@example.com"\n')
    assert_names(error, PATH, "agents[unknown].id", "reserved")
