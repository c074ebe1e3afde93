"""The configuration file (SPEC §5): TOML in, validated and immutable `Settings` out.

Every problem is a `ConfigError` naming the file, a readable key and what was expected (the reader
is `ttrd.config.schema`). The keys a table allows are the fields of the dataclass it fills, so the
two cannot drift apart; the few TOML keys that differ from a field are listed where the keys are.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal, get_args

from ttrd.config.schema import (
    BOOLEAN,
    ID,
    STRING,
    Table,
    choice,
    list_of,
    parse_toml,
    quote,
    table_keys,
)
from ttrd.config.values import (
    ADDRESS,
    COUNT,
    DATABASE_URL,
    DAYS,
    DOMAIN,
    DURATION,
    ENDPOINT,
    FILE,
    HOLIDAY,
    HOST,
    LIST_ID,
    NETWORK,
    PORT,
    SECONDS,
    SPAN,
    TIMEZONE,
    Endpoint,
    format_span,
)
from ttrd.errors import ConfigError
from ttrd.replytime.directory import (
    Agent,
    Directory,
    Mailbox,
    MailboxKind,
    Organization,
    default_list_id,
)
from ttrd.replytime.hours import WEEKDAYS, Schedule, Span, check_country

DEFAULT_CONFIG_PATH = Path("/etc/ttrd/ttrd.toml")
UNKNOWN_AGENT = "unknown"
"""The `agent` label of replies that no configured agent sent (SPEC §6): no agent may be called so."""

TlsMode = Literal["implicit", "starttls", "none"]
DEFAULT_IMAP_FOLDERS = ("INBOX", "\\Sent")
DEFAULT_IMAP_TIMEOUT_SECONDS = 60.0
"""The INBOX, and the folder with the SPECIAL-USE flag \\Sent."""
DEFAULT_POLL_SECONDS = 60.0
"""How often to poll a server that has no IDLE."""


@dataclass(frozen=True, slots=True)
class StorageSettings:
    url: str = "sqlite:////var/lib/ttrd/ttrd.db"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    # Endpoint is a frozen dataclass, so one shared default is safe (ruff cannot see that across modules).
    listen: Endpoint = Endpoint("127.0.0.1", 2525)  # noqa: RUF009
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
    listen: Endpoint = Endpoint("127.0.0.1", 9465)  # noqa: RUF009


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
    tls_ca_file: Path | None = None
    """Certificates to trust instead of the system's (a private CA); resolved like the secrets."""
    timeout_seconds: float = DEFAULT_IMAP_TIMEOUT_SECONDS
    """The longest one IMAP command may take before the session counts as hung and is replaced."""


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
    return settings_from_text(_read_text(path), path)


def settings_from_text(text: str, path: str | Path) -> Settings:
    """Validate the text of a configuration file; only ConfigError escapes.

    `path` is not read: errors name it, and relative file paths in the text are resolved against
    its folder, as they would be for the file itself."""
    path = Path(path)
    root = Table.of(str(path), "", parse_toml(text, str(path)), _ROOT_KEYS)
    return _Builder(path.absolute().parent).settings(path, root)


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: Windows editors put a byte order mark in front, which tomllib refuses.
        return path.read_bytes().decode("utf-8-sig")
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
    raise ConfigError(str(path), None, problem)


# ---------------------------------------------------------------------------------------------
# The sections, read in dependency order: schedules before the agents and mailboxes that name
# them, agents before the mailboxes they are members of, all contexts before the IMAP accounts.

_DIRECTORY_SECTIONS = ("organization", "schedules", "agents", "mailboxes")
_ROOT_KEYS = table_keys(
    # The directory is read from four tables and the IMAP accounts from [imap]; the path is not in the file.
    Settings,
    {"path": (), "directory": _DIRECTORY_SECTIONS, "imap_accounts": ("imap",)},
)
_ORGANIZATION_KEYS = table_keys(Organization)
# A schedule's name is its table's name, and its week is written as one key a day.
_SCHEDULE_KEYS = table_keys(Schedule, {"name": (), "week": WEEKDAYS})
_AGENT_KEYS = table_keys(Agent)
_MAILBOX_KEYS = table_keys(Mailbox)
_STORAGE_KEYS = table_keys(StorageSettings)
_SMTP_KEYS = table_keys(SmtpSettings)
_METRICS_KEYS = table_keys(MetricsSettings)
_IMAP_KEYS = ("accounts",)  # [imap] only groups the accounts: no dataclass stands for it.
_IMAP_ACCOUNT_KEYS = table_keys(ImapAccount)

_MAILBOX_KINDS: tuple[MailboxKind, ...] = get_args(MailboxKind)
_TLS_MODES: tuple[TlsMode, ...] = get_args(TlsMode)
_MAILBOX_KIND = choice(_MAILBOX_KINDS)
_TLS_MODE = choice(_TLS_MODES)


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

    def settings(self, path: Path, root: Table) -> Settings:
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

    def _add_agent(self, table: Table) -> None:
        agent_id = table.required("id", ID)
        if agent_id == UNKNOWN_AGENT:
            # The metrics' agent label says "unknown" for replies no configured agent sent.
            raise table.error(
                "id", f'"{UNKNOWN_AGENT}" is reserved (the agent label of replies by nobody known)'
            )
        agent = Agent(
            id=agent_id,
            address=table.required("address", ADDRESS),
            aliases=table.optional("aliases", list_of(ADDRESS), ()),
            name=table.optional("name", STRING, ""),
            teams=table.optional("teams", list_of(STRING), ()),
            schedule=self._schedule_name(table),
        )
        self._claim(table, f"agent {agent.id}", agent.id, agent.address, agent.aliases)
        self.agents[agent.id] = agent

    def _add_mailbox(self, table: Table) -> None:
        mailbox_id = table.required("id", ID)
        address = table.required("address", ADDRESS)
        kind = table.required("kind", _MAILBOX_KIND)
        default_id = default_list_id(address) if kind == "list" else None
        mailbox = Mailbox(
            id=mailbox_id,
            address=address,
            kind=kind,
            aliases=table.optional("aliases", list_of(ADDRESS), ()),
            members=self._members(table),
            list_id=table.optional("list_id", LIST_ID, default_id),
            sla=table.optional("sla", list_of(DURATION), ()),
            schedule=self._schedule_name(table),
        )
        self._claim(table, f"mailbox {mailbox.id}", mailbox.id, mailbox.address, mailbox.aliases)
        self.mailboxes[mailbox.id] = mailbox

    def _members(self, table: Table) -> tuple[str, ...]:
        members = table.optional("members", list_of(ID), ())
        for member in members:
            if member in self.agents:
                continue
            if member in self.mailboxes:
                problem = (
                    f"{quote(member)} is a mailbox; members are agent ids ({_choices('agent', self.agents)})"
                )
            else:
                problem = f"unknown agent id {quote(member)} ({_choices('agent', self.agents)})"
            raise table.error("members", problem)
        return members

    def _schedule_name(self, table: Table) -> str | None:
        name = table.optional("schedule", STRING, None)
        if name is not None and name not in self.schedules:
            problem = f"unknown schedule {quote(name)} ({_choices('schedule', self.schedules)})"
            raise table.error("schedule", problem)
        return name

    def _claim(self, table: Table, owner: str, context_id: str, address: str, aliases: Sequence[str]) -> None:
        """Agents and mailboxes share one namespace of ids (contexts) and one of addresses."""
        if context_id in self.id_owners:
            raise table.error(
                "id", f"duplicate id {quote(context_id)} (already used by {self.id_owners[context_id]})"
            )
        self.id_owners[context_id] = owner
        for name, value in [("address", address)] + [("aliases", alias) for alias in aliases]:
            if value in self.address_owners:
                problem = f"duplicate address {quote(value)} (already used by {self.address_owners[value]})"
                raise table.error(name, problem)
            self.address_owners[value] = owner

    def _imap_accounts(self, tables: Iterable[Table]) -> tuple[ImapAccount, ...]:
        accounts: dict[str, ImapAccount] = {}
        for table in tables:
            account = self._imap_account(table)
            if account.id in accounts:
                raise table.error(
                    "id", f"duplicate id {quote(account.id)} (already used by another IMAP account)"
                )
            accounts[account.id] = account
        return tuple(accounts.values())

    def _imap_account(self, table: Table) -> ImapAccount:
        account_id = table.required("id", ID)
        host = table.required("host", HOST)
        tls: TlsMode = table.optional("tls", _TLS_MODE, "implicit")
        if tls == "none" and not _is_loopback(host):
            problem = (
                f'"none" sends the password in clear, so only towards a loopback host, not {quote(host)}'
            )
            raise table.error("tls", problem + ' (use "implicit" or "starttls")')
        password_file, token_file = self._credential_files(table)
        return ImapAccount(
            id=account_id,
            owner=self._owner(table),
            host=host,
            port=table.optional("port", PORT, 993 if tls == "implicit" else 143),
            tls=tls,
            username=table.required("username", STRING),
            password_file=password_file,
            oauth2_token_file=token_file,
            folders=table.optional("folders", list_of(STRING, non_empty=True), DEFAULT_IMAP_FOLDERS),
            poll_seconds=table.optional("poll_seconds", SECONDS, DEFAULT_POLL_SECONDS),
            tls_ca_file=self._relative(table.optional("tls_ca_file", FILE, None)),
            timeout_seconds=table.optional("timeout_seconds", SECONDS, DEFAULT_IMAP_TIMEOUT_SECONDS),
        )

    def _owner(self, table: Table) -> str:
        owner = table.required("owner", ID)
        if owner not in self.id_owners:
            contexts = _choices("agent or mailbox id", self.id_owners)
            raise table.error("owner", f"unknown agent or mailbox id {quote(owner)} ({contexts})")
        return owner

    def _credential_files(self, table: Table) -> tuple[Path | None, Path | None]:
        password = table.optional("password_file", FILE, None)
        token = table.optional("oauth2_token_file", FILE, None)
        if password is None and token is None:
            raise table.error(None, "missing password_file or oauth2_token_file (give exactly one)")
        if password is not None and token is not None:
            raise table.error("oauth2_token_file", "give either password_file or oauth2_token_file, not both")
        return self._relative(password), self._relative(token)

    def _smtp(self, table: Table) -> SmtpSettings:
        defaults = SmtpSettings()
        # The TLS files come first: require_starttls and auth_file are checked against them.
        certificate, key = self._tls_files(table)
        require_starttls = _require_starttls(table, certificate)
        auth_file = self._auth_file(table, certificate)
        return SmtpSettings(
            listen=table.optional("listen", ENDPOINT, defaults.listen),
            journal_addresses=table.optional(
                "journal_addresses", list_of(ADDRESS), defaults.journal_addresses
            ),
            max_message_bytes=table.optional("max_message_bytes", COUNT, defaults.max_message_bytes),
            max_sessions=table.optional("max_sessions", COUNT, defaults.max_sessions),
            allow_networks=table.optional(
                "allow_networks", list_of(NETWORK, non_empty=True), defaults.allow_networks
            ),
            tls_certificate=certificate,
            tls_key=key,
            require_starttls=require_starttls,
            auth_file=auth_file,
        )

    def _tls_files(self, table: Table) -> tuple[Path | None, Path | None]:
        certificate = self._relative(table.optional("tls_certificate", FILE, None))
        key = self._relative(table.optional("tls_key", FILE, None))
        if (certificate is None) != (key is None):
            raise table.error(
                "tls_key" if key is None else "tls_certificate", "give tls_certificate and tls_key together"
            )
        return certificate, key

    def _auth_file(self, table: Table, certificate: Path | None) -> Path | None:
        auth_file = self._relative(table.optional("auth_file", FILE, None))
        if auth_file is not None and certificate is None:
            # Passwords are taken only over TLS: without a certificate, nobody could ever log in.
            raise table.error(
                "auth_file", "needs tls_certificate and tls_key (AUTH is offered only over TLS)"
            )
        return auth_file

    def _relative(self, file: Path | None) -> Path | None:
        # Relative to the config file rather than to whatever folder the daemon was started in.
        return None if file is None else self.folder / file


def _require_starttls(table: Table, certificate: Path | None) -> bool:
    require_starttls = table.optional("require_starttls", BOOLEAN, False)
    if require_starttls and certificate is None:
        raise table.error("require_starttls", "needs tls_certificate and tls_key")
    return require_starttls


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _organization(table: Table) -> Organization:
    return Organization(
        domains=table.required("domains", list_of(DOMAIN, non_empty=True)),
        window_days=table.optional("window_days", DAYS, 30.0),
        list_addresses=table.optional("list_addresses", list_of(ADDRESS), ()),
    )


def _schedule(name: str, table: Table) -> Schedule:
    timezone = table.required("timezone", TIMEZONE)
    week = tuple(_opening_hours(table, day) for day in WEEKDAYS)
    country = table.optional("country", STRING, None)
    subdivision = table.optional("subdivision", STRING, None)
    _check_country(table, country, subdivision)
    holidays = table.optional("holidays", list_of(HOLIDAY), ())
    return Schedule(name, timezone, week, frozenset(holidays), country, subdivision)


def _opening_hours(table: Table, day: str) -> tuple[Span, ...]:
    configured = table.optional(day, list_of(SPAN), ())
    spans = sorted(configured, key=lambda span: span.start)
    for before, after in pairwise(spans):
        if after.start < before.end:
            problem = (
                f"{format_span(before)} overlaps {format_span(after)} (the ranges of a day must not overlap)"
            )
            raise table.error(day, problem)
    return tuple(spans)


def _check_country(table: Table, country: str | None, subdivision: str | None) -> None:
    if country is None:
        if subdivision is not None:
            raise table.error("subdivision", 'a subdivision needs a country (e.g. country = "GB")')
        return
    _check_holidays(table, "country", country, None)
    if subdivision is not None:
        _check_holidays(table, "subdivision", country, subdivision)


def _check_holidays(table: Table, name: str, country: str, subdivision: str | None) -> None:
    try:
        check_country(country, subdivision)
    except ValueError as error:
        raise table.error(name, str(error)) from None


def _storage(table: Table) -> StorageSettings:
    return StorageSettings(url=table.optional("url", DATABASE_URL, StorageSettings().url))


def _metrics(table: Table) -> MetricsSettings:
    return MetricsSettings(listen=table.optional("listen", ENDPOINT, MetricsSettings().listen))
