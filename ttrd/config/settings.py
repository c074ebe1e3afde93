"""The configuration file (SPEC §5): TOML in, validated and immutable `Settings` out.

Every problem is a `ConfigError` naming the file, a readable key and what was expected. Keys read
like `mailboxes[support].members` or `agents[3].address`: an entry of an array of tables is named by
its id when it has a valid one, else by its position counted from 1, the way a reader counts the
`[[agents]]` blocks of the file. Unknown keys are errors, so that a typo never silently becomes a
default.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Generic, Literal, TypeVar, get_args

from ttrd.errors import ConfigError
from ttrd.replytime.directory import (
    Agent,
    Directory,
    Mailbox,
    MailboxKind,
    Organization,
    Sla,
    default_list_id,
)
from ttrd.replytime.hours import WEEKDAYS, Schedule, Span, check_country, parse_span

DEFAULT_CONFIG_PATH = Path("/etc/ttrd/ttrd.toml")
UNKNOWN_AGENT = "unknown"
"""The `agent` label of replies that no configured agent sent (SPEC §6): no agent may be called so."""

TlsMode = Literal["implicit", "starttls", "none"]
DEFAULT_IMAP_FOLDERS = ("INBOX", "\\Sent")
"""The INBOX, and the folder with the SPECIAL-USE flag \\Sent."""
DEFAULT_POLL_SECONDS = 60.0
"""How often to poll a server that has no IDLE."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StorageSettings:
    url: str = "sqlite:////var/lib/ttrd/ttrd.db"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    listen: Endpoint = Endpoint("127.0.0.1", 2525)
    journal_addresses: tuple[str, ...] = ("journal@ttrd.invalid",)
    """Lower case; the sink's own addresses, never envelope recipients (SPEC §4)."""
    max_message_bytes: int = 50 * 1024 * 1024
    max_sessions: int = 500
    """Concurrent SMTP sessions; an idle one costs a few kilobytes, a message in DATA up to its size."""
    allow_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Normalised CIDR networks allowed to connect."""
    tls_certificate: Path | None = None
    """PEM certificate chain for STARTTLS (with `tls_key`); none: no STARTTLS offered."""
    tls_key: Path | None = None
    require_starttls: bool = False
    auth_file: Path | None = None
    """`user:password` lines; when set, clients must AUTH (over TLS) before sending mail."""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    listen: Endpoint = Endpoint("127.0.0.1", 9465)


@dataclass(frozen=True, slots=True)
class ImapAccount:
    id: str
    owner: str
    """The agent or mailbox id whose mail the account holds."""
    host: str
    port: int
    tls: TlsMode
    username: str
    password_file: Path | None
    """Exactly one of `password_file` and `oauth2_token_file` is set; relative paths are already
    resolved against the configuration file's folder."""
    oauth2_token_file: Path | None
    folders: tuple[str, ...] = DEFAULT_IMAP_FOLDERS
    poll_seconds: float = DEFAULT_POLL_SECONDS


@dataclass(frozen=True, slots=True)
class Settings:
    path: Path
    directory: Directory
    storage: StorageSettings
    smtp: SmtpSettings
    metrics: MetricsSettings
    imap_accounts: tuple[ImapAccount, ...]


def config_path(option: str | Path | None) -> Path:
    """The `--config` option, else `$TTRD_CONFIG`, else /etc/ttrd/ttrd.toml (empty counts as unset)."""
    if option is not None and str(option):
        return Path(option)
    return Path(os.environ.get("TTRD_CONFIG") or DEFAULT_CONFIG_PATH)


def load_settings(path: str | Path) -> Settings:
    """Read and validate the configuration file; only ConfigError escapes."""
    path = Path(path)
    root = _Table.of(str(path), "", _read_toml(path), _ROOT_KEYS)
    return _Builder(path.absolute().parent).settings(path, root)


def _read_toml(path: Path) -> object:
    file = str(path)
    try:
        # utf-8-sig: Windows editors put a byte order mark in front, which tomllib refuses.
        return tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        problem = "no such file (give --config PATH or set TTRD_CONFIG)"
    except IsADirectoryError:
        problem = "is a directory, not a TOML file"
    except PermissionError:
        problem = "permission denied (the file must be readable by the user ttrd runs as)"
    except OSError as error:
        problem = f"cannot be read: {error.strerror or error}"
    except UnicodeDecodeError as error:
        problem = f"is not UTF-8 text (bad byte at offset {error.start})"
    except tomllib.TOMLDecodeError as error:
        problem = f"is not valid TOML: {error}"
    raise ConfigError(file, None, problem)


# ---------------------------------------------------------------------------------------------
# Reading typed values: a _Kind checks and converts one raw TOML value, a _Table reads its keys
# with kinds and turns a kind's complaint into a ConfigError that names the file and the key.

T = TypeVar("T")
D = TypeVar("D")


class _Invalid(Exception):
    """A value's problem, raised by a kind; the table adds the file and the key."""

    def __init__(self, problem: str, where: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.where = where
        """A suffix of the key, such as "[2]" for the second item of a list."""


@dataclass(frozen=True)
class _Kind(Generic[T]):
    one: str
    """What one value is called in messages: "an e-mail address"."""
    many: str
    """The plural, for lists: "e-mail addresses"."""
    parse: Callable[[object], T]


def _q(text: str) -> str:
    """Quote a configured string for a message, escaping control characters."""
    return json.dumps(text, ensure_ascii=False)


def _show(value: object) -> str:
    """A raw TOML value as a user would recognise it in the file."""
    if isinstance(value, str):
        return _q(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _text_kind(one: str, many: str, convert: Callable[[str], T]) -> _Kind[T]:
    def parse(value: object) -> T:
        if not isinstance(value, str):
            raise _Invalid(f"expected {one}, got {_show(value)}")
        return convert(value)

    return _Kind(one, many, parse)


def _list_of(item: _Kind[T], *, non_empty: bool = False) -> _Kind[tuple[T, ...]]:
    one = f"a {'non-empty ' if non_empty else ''}list of {item.many}"

    def parse(value: object) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise _Invalid(f"expected {one}, got {_show(value)}")
        if non_empty and not value:
            raise _Invalid(f"expected {one}, got an empty list")
        items: list[T] = []
        for position, raw in enumerate(value, 1):
            try:
                parsed = item.parse(raw)
            except _Invalid as invalid:
                raise _Invalid(invalid.problem, f"[{position}]{invalid.where}") from None
            if parsed in items:
                raise _Invalid(f"{_show(raw)} is listed twice", f"[{position}]")
            items.append(parsed)
        return tuple(items)

    return _Kind(one, f"lists of {item.many}", parse)


def _choice(options: tuple[T, ...]) -> _Kind[T]:
    names = ", ".join(map(str, options))

    def parse(value: object) -> T:
        for option in options:
            if value == option:
                return option
        raise _Invalid(f"expected one of {names}; got {_show(value)}")

    return _Kind(f"one of {names}", f"values among {names}", parse)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_show(value)}")
    return value


_BOOL = _Kind("true or false", "true or false values", _boolean)


def _integer(minimum: int, maximum: int | None = None) -> _Kind[int]:
    one = (
        f"a whole number from {minimum} to {maximum}"
        if maximum is not None
        else f"a whole number ≥ {minimum}"
    )

    def parse(value: object) -> int:
        # bool is an int in Python; `true` is never meant as a number.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"expected {one}, got {_show(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            raise _Invalid(f"expected {one}, got {value}")
        return value

    return _Kind(one, "whole numbers", parse)


def _positive(maximum: float) -> _Kind[float]:
    # The bound keeps later date arithmetic (timedelta, sleep) far from overflowing.
    one = f"a number greater than 0 and at most {maximum:g}"

    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= maximum:
            raise _Invalid(f"expected {one}, got {_show(value)}")
        return float(value)

    return _Kind(one, "numbers", parse)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise _Invalid("expected a non-empty string")
    return text


_ID_PATTERN = re.compile(r"[a-z0-9_-]+")


def _id(text: str) -> str:
    if not _ID_PATTERN.fullmatch(text):
        raise _Invalid(f'{_q(text)} is not a valid id (use lower-case letters, digits, "_" and "-")')
    return text


def _address(text: str) -> str:
    local, at, domain = text.lower().partition("@")
    if not (local and at and domain) or "@" in domain or re.search(r"[\s<>,;]", text):
        raise _Invalid(f"{_q(text)} is not an e-mail address (expected local@domain)")
    return f"{local}@{domain}"


def _domain(text: str) -> str:
    domain = text.lower()
    if not all(domain.split(".")) or re.search(r"[\s@<>,;]", domain):
        raise _Invalid(f"{_q(text)} is not a domain (expected e.g. example.com)")
    return domain


def _list_id(text: str) -> str:
    # List-Id headers carry the id in angle brackets; the configured value may be copied from one.
    list_id = text.strip().removeprefix("<").removesuffix(">").strip().lower()
    if not list_id or re.search(r"[\s<>]", list_id):
        raise _Invalid(f"{_q(text)} is not a List-Id (expected e.g. users.lists.example.com)")
    return list_id


_DURATION_PATTERN = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_DURATION_UNITS = (86400, 3600, 60, 1)


def _sla(text: str) -> Sla:
    match = _DURATION_PATTERN.fullmatch(text)
    if not text or match is None:
        raise _Invalid(f"{_q(text)} is not a duration (use e.g. 90s, 30m, 4h, 1d)")
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if n)
    if seconds == 0:
        raise _Invalid(f"{_q(text)} is not a positive duration")
    return Sla(text, float(seconds))


def _span(text: str) -> Span:
    try:
        return parse_span(text)
    except ValueError as error:
        raise _Invalid(f"{error} (use e.g. 09:00-17:30)") from None


def _holiday(value: object) -> date:
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError as error:
            raise _Invalid(f"{_q(value)} is not a date ({error})") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise _Invalid(f'expected a date (2026-12-25 or "2026-12-25"), got {_show(value)}')


def _timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a folder of the time zone database, such as "Europe", is not a zone.
        close = difflib.get_close_matches(name, zoneinfo.available_timezones(), n=1)
        hint = f'did you mean "{close[0]}"?' if close else "use an IANA name such as Europe/London"
        raise _Invalid(f"unknown time zone {_q(name)} ({hint})") from None
    return name


_ENDPOINT_PATTERN = re.compile(r"\[([^\]\s]+)\]:([0-9]{1,5})|([^:\[\]\s]+):([0-9]{1,5})")


def _endpoint(text: str) -> Endpoint:
    match = _ENDPOINT_PATTERN.fullmatch(text)
    if match is None or int(match[2] or match[4]) > 65535:
        raise _Invalid(f'{_q(text)} is not host:port (e.g. "127.0.0.1:2525" or "[::1]:2525")')
    return Endpoint(match[1] or match[3], int(match[2] or match[4]))


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise _Invalid(f'{_q(text)} is not an IP network (e.g. "10.0.0.0/8", "192.0.2.7", "::1")') from None


_URL_SHAPE = re.compile(
    r"([a-z][a-z0-9]*)(?:\+[a-z0-9_]+)?://"  # backend, optional +driver
    r"(?:[^@/\s]*@)?(?:\[[0-9a-fA-F:.]*\]|[^:/?#@\s]*)(?::\d+)?"  # [user[:password]@]host[:port]
    r"(?:[/?].*)?"  # /database or /path of a file
)
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def _database_url(text: str) -> str:
    # Checked by shape, not with SQLAlchemy: the config is read before the database layer is
    # imported, so `ttrd import` can start reading mail meanwhile.
    match = _URL_SHAPE.fullmatch(text)
    if match is None:
        # Not echoed: the URL may hold a password.
        raise _Invalid(
            "not a database URL (expected e.g. sqlite:////var/lib/ttrd/ttrd.db or postgresql://ttrd@host/ttrd)"
        )
    backend = match[1]
    if backend not in ("sqlite", "postgresql"):
        raise _Invalid(f"unsupported database {_q(backend)} (use sqlite or postgresql)")
    return text


def _host(text: str) -> str:
    if not text or re.search(r"\s", text):
        raise _Invalid(f"{_q(text)} is not a host name or address")
    return text


_MAILBOX_KINDS: tuple[MailboxKind, ...] = get_args(MailboxKind)
_TLS_MODES: tuple[TlsMode, ...] = get_args(TlsMode)

_STRING = _text_kind("a string", "strings", _non_empty)
_ID = _text_kind("an id", "ids", _id)
_ADDRESS = _text_kind("an e-mail address", "e-mail addresses", _address)
_DOMAIN = _text_kind("a domain", "domains", _domain)
_LIST_ID = _text_kind("a List-Id", "List-Ids", _list_id)
_DURATION = _text_kind("a duration", "durations", _sla)
_SPAN = _text_kind("a time range HH:MM-HH:MM", "time ranges HH:MM-HH:MM", _span)
_HOLIDAY = _Kind("a date", "dates", _holiday)
_TIMEZONE = _text_kind("a time zone", "time zones", _timezone)
_ENDPOINT = _text_kind("host:port", "host:port values", _endpoint)
_NETWORK = _text_kind("an IP network", "IP networks", _network)
_DATABASE_URL = _text_kind("a database URL", "database URLs", _database_url)
_HOST = _text_kind("a host name or address", "host names or addresses", _host)
_FILE = _text_kind("a file path", "file paths", lambda text: Path(_non_empty(text)))
_DAYS = _positive(36500)
_SECONDS = _positive(86400)
_COUNT = _integer(1)
_PORT = _integer(1, 65535)
_MAILBOX_KIND = _choice(_MAILBOX_KINDS)
_TLS_MODE = _choice(_TLS_MODES)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _unknown_key(name: str, keys: Collection[str]) -> str:
    close = difflib.get_close_matches(name, keys, n=1)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    return f"unknown key {_q(name)} ({hint}allowed here: {', '.join(sorted(keys))})"


def _label(entry: object, position: int) -> str:
    """How an entry of an array of tables is named in keys: its id when valid, else its position."""
    entry_id = entry.get("id") if isinstance(entry, dict) else None
    return entry_id if isinstance(entry_id, str) and _ID_PATTERN.fullmatch(entry_id) else str(position)


@dataclass(frozen=True)
class _Table:
    """One TOML table being read; it knows its file and dotted key, so that errors name both."""

    file: str
    key: str
    data: Mapping[str, object]

    @classmethod
    def of(cls, file: str, key: str, value: object, keys: Collection[str]) -> _Table:
        if not isinstance(value, dict):
            raise ConfigError(file, key, f"expected a table, got {_show(value)}")
        for name in value:
            if name not in keys:
                raise ConfigError(file, _join(key, name), _unknown_key(name, keys))
        return cls(file, key, value)

    def error(self, name: str | None, problem: str) -> ConfigError:
        return ConfigError(self.file, _join(self.key, name) if name else self.key, problem)

    def required(self, name: str, kind: _Kind[T]) -> T:
        if name not in self.data:
            raise self.error(name, f"missing (expected {kind.one})")
        return self._read(name, kind)

    def optional(self, name: str, kind: _Kind[T], default: D) -> T | D:
        return self._read(name, kind) if name in self.data else default

    def _read(self, name: str, kind: _Kind[T]) -> T:
        try:
            return kind.parse(self.data[name])
        except _Invalid as invalid:
            raise ConfigError(self.file, _join(self.key, name) + invalid.where, invalid.problem) from None

    def table(self, name: str, keys: Collection[str], *, required: bool = False) -> _Table:
        if name not in self.data and required:
            raise self.error(name, f"missing (expected a [{_join(self.key, name)}] table)")
        return _Table.of(self.file, _join(self.key, name), self.data.get(name, {}), keys)

    def tables(self, name: str, keys: Collection[str]) -> list[_Table]:
        """An array of tables, `[[name]]`."""
        key = _join(self.key, name)
        entries = self.data.get(name, [])
        if not isinstance(entries, list):
            raise self.error(name, f"expected an array of tables ([[{key}]]), got {_show(entries)}")
        return [
            _Table.of(self.file, f"{key}[{_label(entry, position)}]", entry, keys)
            for position, entry in enumerate(entries, 1)
        ]

    def named_tables(self, name: str, keys: Collection[str]) -> dict[str, _Table]:
        """A table of tables, `[name.NAME]`; the names are ids."""
        key = _join(self.key, name)
        tables = self.data.get(name, {})
        if not isinstance(tables, dict):
            raise self.error(name, f"expected tables [{key}.NAME], got {_show(tables)}")
        named = {}
        for entry_name, entry in tables.items():
            if not _ID_PATTERN.fullmatch(entry_name):
                problem = (
                    f'{_q(entry_name)} is not a valid name (use lower-case letters, digits, "_" and "-")'
                )
                raise ConfigError(self.file, f"{key}.{entry_name}", problem)
            named[entry_name] = _Table.of(self.file, f"{key}.{entry_name}", entry, keys)
        return named


# ---------------------------------------------------------------------------------------------
# The sections, read in dependency order: schedules before the agents and mailboxes that name
# them, agents before the mailboxes they are members of, all contexts before the IMAP accounts.

_ROOT_KEYS = ("organization", "schedules", "agents", "mailboxes", "storage", "smtp", "metrics", "imap")
_ORGANIZATION_KEYS = ("domains", "window_days", "list_addresses")
_SCHEDULE_KEYS = ("timezone", *WEEKDAYS, "holidays", "country", "subdivision")
_AGENT_KEYS = ("id", "address", "aliases", "name", "teams", "schedule")
_MAILBOX_KEYS = ("id", "address", "aliases", "kind", "members", "list_id", "sla", "schedule")
_STORAGE_KEYS = ("url",)
_SMTP_KEYS = (
    "listen",
    "journal_addresses",
    "max_message_bytes",
    "max_sessions",
    "allow_networks",
    "tls_certificate",
    "tls_key",
    "require_starttls",
    "auth_file",
)
_METRICS_KEYS = ("listen",)
_IMAP_KEYS = ("accounts",)
_IMAP_ACCOUNT_KEYS = (
    "id",
    "owner",
    "host",
    "port",
    "tls",
    "username",
    "password_file",
    "oauth2_token_file",
    "folders",
    "poll_seconds",
)


def _choices(kind: str, names: Iterable[str]) -> str:
    listed = ", ".join(names)
    return f"{kind}s are: {listed}" if listed else f"no {kind}s are configured"


class _Builder:
    """Reads the sections, remembering ids and addresses to catch duplicates and dangling names."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.schedules: dict[str, Schedule] = {}
        self.agents: dict[str, Agent] = {}
        self.mailboxes: dict[str, Mailbox] = {}
        self.id_owners: dict[str, str] = {}
        self.address_owners: dict[str, str] = {}

    def settings(self, path: Path, root: _Table) -> Settings:
        organization = _organization(root.table("organization", _ORGANIZATION_KEYS, required=True))
        for name, table in root.named_tables("schedules", _SCHEDULE_KEYS).items():
            self.schedules[name] = _schedule(name, table)
        for table in root.tables("agents", _AGENT_KEYS):
            self._add_agent(table)
        for table in root.tables("mailboxes", _MAILBOX_KEYS):
            self._add_mailbox(table)
        imap = root.table("imap", _IMAP_KEYS)
        directory = Directory(organization, self.agents.values(), self.mailboxes.values(), self.schedules)
        return Settings(
            path=path,
            directory=directory,
            storage=_storage(root.table("storage", _STORAGE_KEYS)),
            smtp=self._smtp(root.table("smtp", _SMTP_KEYS)),
            metrics=_metrics(root.table("metrics", _METRICS_KEYS)),
            imap_accounts=self._imap_accounts(imap.tables("accounts", _IMAP_ACCOUNT_KEYS)),
        )

    def _add_agent(self, table: _Table) -> None:
        agent_id = table.required("id", _ID)
        if agent_id == UNKNOWN_AGENT:
            # The metrics' agent label says "unknown" for replies no configured agent sent.
            raise table.error(
                "id", f'"{UNKNOWN_AGENT}" is reserved (the agent label of replies by nobody known)'
            )
        agent = Agent(
            id=agent_id,
            address=table.required("address", _ADDRESS),
            aliases=table.optional("aliases", _list_of(_ADDRESS), ()),
            name=table.optional("name", _STRING, ""),
            teams=table.optional("teams", _list_of(_STRING), ()),
            schedule=self._schedule_name(table),
        )
        self._claim(table, f"agent {agent.id}", agent.id, agent.address, agent.aliases)
        self.agents[agent.id] = agent

    def _add_mailbox(self, table: _Table) -> None:
        mailbox_id = table.required("id", _ID)
        address = table.required("address", _ADDRESS)
        kind = table.required("kind", _MAILBOX_KIND)
        default_id = default_list_id(address) if kind == "list" else None
        mailbox = Mailbox(
            id=mailbox_id,
            address=address,
            kind=kind,
            aliases=table.optional("aliases", _list_of(_ADDRESS), ()),
            members=self._members(table),
            list_id=table.optional("list_id", _LIST_ID, default_id),
            sla=table.optional("sla", _list_of(_DURATION), ()),
            schedule=self._schedule_name(table),
        )
        self._claim(table, f"mailbox {mailbox.id}", mailbox.id, mailbox.address, mailbox.aliases)
        self.mailboxes[mailbox.id] = mailbox

    def _members(self, table: _Table) -> tuple[str, ...]:
        members = table.optional("members", _list_of(_ID), ())
        for member in members:
            if member in self.agents:
                continue
            if member in self.mailboxes:
                problem = (
                    f"{_q(member)} is a mailbox; members are agent ids ({_choices('agent', self.agents)})"
                )
            else:
                problem = f"unknown agent id {_q(member)} ({_choices('agent', self.agents)})"
            raise table.error("members", problem)
        return members

    def _schedule_name(self, table: _Table) -> str | None:
        name = table.optional("schedule", _STRING, None)
        if name is not None and name not in self.schedules:
            problem = f"unknown schedule {_q(name)} ({_choices('schedule', self.schedules)})"
            raise table.error("schedule", problem)
        return name

    def _claim(
        self, table: _Table, owner: str, context_id: str, address: str, aliases: Sequence[str]
    ) -> None:
        """Agents and mailboxes share one namespace of ids (contexts) and one of addresses."""
        if context_id in self.id_owners:
            raise table.error(
                "id", f"duplicate id {_q(context_id)} (already used by {self.id_owners[context_id]})"
            )
        self.id_owners[context_id] = owner
        for name, value in [("address", address)] + [("aliases", alias) for alias in aliases]:
            if value in self.address_owners:
                problem = f"duplicate address {_q(value)} (already used by {self.address_owners[value]})"
                raise table.error(name, problem)
            self.address_owners[value] = owner

    def _imap_accounts(self, tables: Iterable[_Table]) -> tuple[ImapAccount, ...]:
        accounts: dict[str, ImapAccount] = {}
        for table in tables:
            account = self._imap_account(table)
            if account.id in accounts:
                raise table.error(
                    "id", f"duplicate id {_q(account.id)} (already used by another IMAP account)"
                )
            accounts[account.id] = account
        return tuple(accounts.values())

    def _imap_account(self, table: _Table) -> ImapAccount:
        account_id = table.required("id", _ID)
        host = table.required("host", _HOST)
        tls: TlsMode = table.optional("tls", _TLS_MODE, "implicit")
        if tls == "none" and not _is_loopback(host):
            problem = f'"none" sends the password in clear, so only towards a loopback host, not {_q(host)}'
            raise table.error("tls", problem + ' (use "implicit" or "starttls")')
        password_file, token_file = self._credential_files(table)
        return ImapAccount(
            id=account_id,
            owner=self._owner(table),
            host=host,
            port=table.optional("port", _PORT, 993 if tls == "implicit" else 143),
            tls=tls,
            username=table.required("username", _STRING),
            password_file=password_file,
            oauth2_token_file=token_file,
            folders=table.optional("folders", _list_of(_STRING, non_empty=True), DEFAULT_IMAP_FOLDERS),
            poll_seconds=table.optional("poll_seconds", _SECONDS, DEFAULT_POLL_SECONDS),
        )

    def _owner(self, table: _Table) -> str:
        owner = table.required("owner", _ID)
        if owner not in self.id_owners:
            contexts = _choices("agent or mailbox id", self.id_owners)
            raise table.error("owner", f"unknown agent or mailbox id {_q(owner)} ({contexts})")
        return owner

    def _credential_files(self, table: _Table) -> tuple[Path | None, Path | None]:
        password = table.optional("password_file", _FILE, None)
        token = table.optional("oauth2_token_file", _FILE, None)
        if password is None and token is None:
            raise table.error(None, "missing password_file or oauth2_token_file (give exactly one)")
        if password is not None and token is not None:
            raise table.error("oauth2_token_file", "give either password_file or oauth2_token_file, not both")
        return self._relative(password), self._relative(token)

    def _smtp(self, table: _Table) -> SmtpSettings:
        defaults = SmtpSettings()
        certificate = self._relative(table.optional("tls_certificate", _FILE, None))
        key = self._relative(table.optional("tls_key", _FILE, None))
        if (certificate is None) != (key is None):
            raise table.error(
                "tls_key" if key is None else "tls_certificate", "give tls_certificate and tls_key together"
            )
        require_starttls = table.optional("require_starttls", _BOOL, False)
        if require_starttls and certificate is None:
            raise table.error("require_starttls", "needs tls_certificate and tls_key")
        auth_file = self._relative(table.optional("auth_file", _FILE, None))
        if auth_file is not None and certificate is None:
            # Passwords are taken only over TLS: without a certificate, nobody could ever log in.
            raise table.error(
                "auth_file", "needs tls_certificate and tls_key (AUTH is offered only over TLS)"
            )
        return SmtpSettings(
            listen=table.optional("listen", _ENDPOINT, defaults.listen),
            journal_addresses=table.optional(
                "journal_addresses", _list_of(_ADDRESS), defaults.journal_addresses
            ),
            max_message_bytes=table.optional("max_message_bytes", _COUNT, defaults.max_message_bytes),
            max_sessions=table.optional("max_sessions", _COUNT, defaults.max_sessions),
            allow_networks=table.optional(
                "allow_networks", _list_of(_NETWORK, non_empty=True), defaults.allow_networks
            ),
            tls_certificate=certificate,
            tls_key=key,
            require_starttls=require_starttls,
            auth_file=auth_file,
        )

    def _relative(self, file: Path | None) -> Path | None:
        # Relative to the config file rather than to whatever folder the daemon was started in.
        return None if file is None else self.folder / file


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _organization(table: _Table) -> Organization:
    return Organization(
        domains=table.required("domains", _list_of(_DOMAIN, non_empty=True)),
        window_days=table.optional("window_days", _DAYS, 30.0),
        list_addresses=table.optional("list_addresses", _list_of(_ADDRESS), ()),
    )


def _schedule(name: str, table: _Table) -> Schedule:
    timezone = table.required("timezone", _TIMEZONE)
    week = tuple(_opening_hours(table, day) for day in WEEKDAYS)
    country = table.optional("country", _STRING, None)
    subdivision = table.optional("subdivision", _STRING, None)
    _check_country(table, country, subdivision)
    holidays = table.optional("holidays", _list_of(_HOLIDAY), ())
    return Schedule(name, timezone, week, frozenset(holidays), country, subdivision)


def _opening_hours(table: _Table, day: str) -> tuple[Span, ...]:
    configured = table.optional(day, _list_of(_SPAN), ())
    spans = sorted(configured, key=lambda span: span.start)
    for before, after in pairwise(spans):
        if after.start < before.end:
            raise table.error(
                day, f"{_hhmm(before)} overlaps {_hhmm(after)} (the ranges of a day must not overlap)"
            )
    return tuple(spans)


def _check_country(table: _Table, country: str | None, subdivision: str | None) -> None:
    if country is None:
        if subdivision is not None:
            raise table.error("subdivision", 'a subdivision needs a country (e.g. country = "GB")')
        return
    _check_holidays(table, "country", country, None)
    if subdivision is not None:
        _check_holidays(table, "subdivision", country, subdivision)


def _check_holidays(table: _Table, name: str, country: str, subdivision: str | None) -> None:
    try:
        check_country(country, subdivision)
    except ValueError as error:
        raise table.error(name, str(error)) from None


def _storage(table: _Table) -> StorageSettings:
    return StorageSettings(url=table.optional("url", _DATABASE_URL, StorageSettings().url))


def _metrics(table: _Table) -> MetricsSettings:
    return MetricsSettings(listen=table.optional("listen", _ENDPOINT, MetricsSettings().listen))


# ---------------------------------------------------------------------------------------------
# describe(): the resolved configuration for `ttrd check-config`.


def describe(settings: Settings) -> str:
    """The resolved configuration as aligned plain text; credentials appear only as file paths."""
    directory = settings.directory
    sections = [
        [f"config  {settings.path}"],
        _describe_organization(directory.organization),
        _describe_schedules(directory.schedules),
        _describe_agents(directory),
        _describe_mailboxes(directory),
        _describe_addresses(directory),
        _describe_services(settings),
        _describe_imap(settings.imap_accounts),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _aligned(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [
        max(len(row[column]) for row in rows if column < len(row)) for column in range(max(map(len, rows)))
    ]
    return [
        (indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))).rstrip()
        for row in rows
    ]


def _listed(values: Iterable[str]) -> str:
    return ", ".join(values) or "-"


def _hhmm(span: Span) -> str:
    return "-".join(f"{minutes // 60:02d}:{minutes % 60:02d}" for minutes in (span.start, span.end))


def _describe_organization(organization: Organization) -> list[str]:
    return [
        "organization",
        *_aligned(
            [
                ("domains", _listed(organization.domains)),
                ("window", f"{organization.window_days:g} days"),
                ("list addresses", _listed(organization.list_addresses)),
            ]
        ),
    ]


def _describe_schedules(schedules: Mapping[str, Schedule]) -> list[str]:
    if not schedules:
        return ["schedules", "  none: every agent and mailbox is open 24/7"]
    lines = [f"schedules ({len(schedules)})"]
    ordered = sorted(schedules.items())
    headings = _aligned([(name, schedule.timezone) for name, schedule in ordered])
    for heading, (_, schedule) in zip(headings, ordered, strict=True):
        lines.append(heading)
        lines.extend(_aligned(_schedule_rows(schedule), indent="    "))
    return lines


def _schedule_rows(schedule: Schedule) -> list[tuple[str, str]]:
    if schedule.always_open:
        rows = [("hours", "24/7 (no opening hours on any day)")]
    else:
        rows = [
            (day, _listed(map(_hhmm, spans)) if spans else "closed")
            for day, spans in zip(WEEKDAYS, schedule.week, strict=True)
        ]
    rows.append(("holidays", _listed(day.isoformat() for day in sorted(schedule.holidays))))
    if schedule.country is not None:
        region = f" ({schedule.subdivision})" if schedule.subdivision else ""
        rows.append(("public holidays", f"{schedule.country}{region}"))
    return rows


def _describe_agents(directory: Directory) -> list[str]:
    if not directory.agents:
        return ["agents", "  none"]
    header = ("id", "address", "aliases", "name", "teams", "schedule")
    rows = [
        (
            agent.id,
            agent.address,
            _listed(agent.aliases),
            agent.name or "-",
            _listed(agent.teams),
            directory.contexts[agent.id].schedule.name,
        )
        for agent in directory.agents
    ]
    return [f"agents ({len(rows)})", *_aligned([header, *rows])]


def _describe_mailboxes(directory: Directory) -> list[str]:
    if not directory.mailboxes:
        return ["mailboxes", "  none"]
    lines = [f"mailboxes ({len(directory.mailboxes)})"]
    headings = _aligned([(mailbox.id, mailbox.kind, mailbox.address) for mailbox in directory.mailboxes])
    for heading, mailbox in zip(headings, directory.mailboxes, strict=True):
        lines.append(heading)
        rows = [
            ("aliases", _listed(mailbox.aliases)),
            ("members", _listed(mailbox.members)),
            ("list id", mailbox.list_id or "-"),
            ("sla", _listed(sla.label for sla in mailbox.sla)),
            ("schedule", directory.contexts[mailbox.id].schedule.name),
        ]
        lines.extend(_aligned(rows, indent="    "))
    return lines


def _describe_addresses(directory: Directory) -> list[str]:
    owners = {
        address: f"{'mailbox' if context.mailbox else 'agent'} {context.id}"
        for context in directory.contexts.values()
        for address in context.addresses
    }
    if not owners:
        return ["addresses", "  none"]
    return [
        f"addresses ({len(owners)}, each reaching one agent or mailbox)",
        *_aligned(sorted(owners.items())),
    ]


def _describe_services(settings: Settings) -> list[str]:
    smtp = settings.smtp
    return [
        "storage",
        *_aligned([("url", _URL_PASSWORD.sub(r"\1***@", settings.storage.url))]),
        "",
        "smtp",
        *_aligned(
            [
                ("listen", str(smtp.listen)),
                ("journal addresses", _listed(smtp.journal_addresses)),
                ("max message size", f"{smtp.max_message_bytes} bytes"),
                ("max sessions", str(smtp.max_sessions)),
                ("allowed networks", _listed(smtp.allow_networks)),
                (
                    "STARTTLS",
                    f"{smtp.tls_certificate} ({'required' if smtp.require_starttls else 'offered'})"
                    if smtp.tls_certificate
                    else "not offered",
                ),
                ("AUTH", f"required, users in {smtp.auth_file}" if smtp.auth_file else "not required"),
            ]
        ),
        "",
        "metrics",
        *_aligned([("listen", str(settings.metrics.listen))]),
    ]


def _describe_imap(accounts: Sequence[ImapAccount]) -> list[str]:
    if not accounts:
        return ["imap accounts", "  none"]
    lines = [f"imap accounts ({len(accounts)})"]
    headings = _aligned([(account.id, f"owner {account.owner}") for account in accounts])
    for heading, account in zip(headings, accounts, strict=True):
        lines.append(heading)
        credential = (
            ("password file", str(account.password_file))
            if account.password_file is not None
            else ("oauth2 token file", str(account.oauth2_token_file))
        )
        rows = [
            ("server", f"{Endpoint(account.host, account.port)}, tls {account.tls}"),
            ("username", account.username),
            credential,
            ("folders", _listed(account.folders)),
            ("poll", f"every {account.poll_seconds:g} s without IDLE"),
        ]
        lines.extend(_aligned(rows, indent="    "))
    return lines
