"""The kinds of values ttrd's configuration holds: addresses, durations, opening hours, endpoints…

Each kind checks one raw TOML value and converts it, complaining with `Invalid` in words a user of
the file understands; `ttrd.config.schema.Table` adds the file and the key.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from ttrd.config.schema import Invalid, Kind, integer, non_empty, positive, quote, show, text_kind
from ttrd.replytime.directory import Sla
from ttrd.replytime.hours import Span, parse_span


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def format_span(span: Span) -> str:
    """A span as it is written in the file: 09:00-17:30."""
    return "-".join(f"{minutes // 60:02d}:{minutes % 60:02d}" for minutes in (span.start, span.end))


_URL_SHAPE = re.compile(
    r"([a-z][a-z0-9]*)(?:\+[a-z0-9_]+)?://"  # backend, optional +driver
    r"(?:[^@/\s]*@)?(?:\[[0-9a-fA-F:.]*\]|[^:/?#@\s]*)(?::\d+)?"  # [user[:password]@]host[:port]
    r"(?:[/?].*)?"  # /database or /path of a file
)
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def redact_password(url: str) -> str:
    """A database URL fit to print: its password, if any, becomes ***."""
    return _URL_PASSWORD.sub(r"\1***@", url)


def _address(text: str) -> str:
    local, at, domain = text.lower().partition("@")
    if not (local and at and domain) or "@" in domain or re.search(r"[\s<>,;]", text):
        raise Invalid(f"{quote(text)} is not an e-mail address (expected local@domain)")
    return f"{local}@{domain}"


def _domain(text: str) -> str:
    domain = text.lower()
    if not all(domain.split(".")) or re.search(r"[\s@<>,;]", domain):
        raise Invalid(f"{quote(text)} is not a domain (expected e.g. example.com)")
    return domain


def _list_id(text: str) -> str:
    # List-Id headers carry the id in angle brackets; the configured value may be copied from one.
    list_id = text.strip().removeprefix("<").removesuffix(">").strip().lower()
    if not list_id or re.search(r"[\s<>]", list_id):
        raise Invalid(f"{quote(text)} is not a List-Id (expected e.g. users.lists.example.com)")
    return list_id


_DURATION_PATTERN = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
_DURATION_UNITS = (86400, 3600, 60, 1)


def _sla(text: str) -> Sla:
    match = _DURATION_PATTERN.fullmatch(text)
    if not text or match is None:
        raise Invalid(f"{quote(text)} is not a duration (use e.g. 90s, 30m, 4h, 1d)")
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if n)
    if seconds == 0:
        raise Invalid(f"{quote(text)} is not a positive duration")
    return Sla(text, float(seconds))


def _span(text: str) -> Span:
    try:
        return parse_span(text)
    except ValueError as error:
        raise Invalid(f"{error} (use e.g. 09:00-17:30)") from None


def _holiday(value: object) -> date:
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError as error:
            raise Invalid(f"{quote(value)} is not a date ({error})") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    raise Invalid(f'expected a date (2026-12-25 or "2026-12-25"), got {show(value)}')


def _timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a folder of the time zone database, such as "Europe", is not a zone.
        close = difflib.get_close_matches(name, zoneinfo.available_timezones(), n=1)
        hint = f'did you mean "{close[0]}"?' if close else "use an IANA name such as Europe/London"
        raise Invalid(f"unknown time zone {quote(name)} ({hint})") from None
    return name


_ENDPOINT_PATTERN = re.compile(r"\[([^\]\s]+)\]:([0-9]{1,5})|([^:\[\]\s]+):([0-9]{1,5})")


def _endpoint(text: str) -> Endpoint:
    match = _ENDPOINT_PATTERN.fullmatch(text)
    if match is None or int(match[2] or match[4]) > 65535:
        raise Invalid(f'{quote(text)} is not host:port (e.g. "127.0.0.1:2525" or "[::1]:2525")')
    return Endpoint(match[1] or match[3], int(match[2] or match[4]))


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise Invalid(f'{quote(text)} is not an IP network (e.g. "10.0.0.0/8", "192.0.2.7", "::1")') from None


def _database_url(text: str) -> str:
    # Checked by shape, not with SQLAlchemy: the config is read before the database layer is
    # imported, so `ttrd import` can start reading mail meanwhile.
    match = _URL_SHAPE.fullmatch(text)
    if match is None:
        # Not echoed: the URL may hold a password.
        raise Invalid(
            "not a database URL (expected e.g. sqlite:////var/lib/ttrd/ttrd.db or postgresql://ttrd@host/ttrd)"
        )
    backend = match[1]
    if backend not in ("sqlite", "postgresql"):
        raise Invalid(f"unsupported database {quote(backend)} (use sqlite or postgresql)")
    return text


def _host(text: str) -> str:
    if not text or re.search(r"\s", text):
        raise Invalid(f"{quote(text)} is not a host name or address")
    return text


ADDRESS = text_kind("an e-mail address", "e-mail addresses", _address)
DOMAIN = text_kind("a domain", "domains", _domain)
LIST_ID = text_kind("a List-Id", "List-Ids", _list_id)
DURATION = text_kind("a duration", "durations", _sla)
SPAN = text_kind("a time range HH:MM-HH:MM", "time ranges HH:MM-HH:MM", _span)
HOLIDAY = Kind("a date", "dates", _holiday)
TIMEZONE = text_kind("a time zone", "time zones", _timezone)
ENDPOINT = text_kind("host:port", "host:port values", _endpoint)
NETWORK = text_kind("an IP network", "IP networks", _network)
DATABASE_URL = text_kind("a database URL", "database URLs", _database_url)
HOST = text_kind("a host name or address", "host names or addresses", _host)
FILE = text_kind("a file path", "file paths", lambda text: Path(non_empty(text)))
DAYS = positive(36500)
SECONDS = positive(86400)
COUNT = integer(1)
PORT = integer(1, 65535)
