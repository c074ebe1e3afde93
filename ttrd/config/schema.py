"""A small schema reader for TOML: typed values, known keys, errors that name the file and the key.

A `Kind` checks and converts one raw TOML value; a `Table` reads its keys with kinds and turns a
kind's complaint into a ConfigError naming the file, a readable key and what was expected. Keys read
like `mailboxes[support].members` or `agents[3].address`: an entry of an array of tables is named by
its id when it has a valid one, else by its position counted from 1, the way a reader counts the
`[[agents]]` blocks of the file. Unknown keys are errors, so that a typo never silently becomes a
default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ttrd.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
D = TypeVar("D")


def parse_toml(text: str, file: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(file, None, f"is not valid TOML: {error}") from None


def table_keys(
    shape: type[DataclassInstance], toml_keys: Mapping[str, Sequence[str]] | None = None
) -> tuple[str, ...]:
    """The keys of a TOML table that fills the dataclass `shape`: its field names, in order.

    `toml_keys` lists the exceptions: the TOML keys that stand for a field (none: not read from the
    table at all)."""
    renamed = toml_keys or {}
    return tuple(key for field in dataclasses.fields(shape) for key in renamed.get(field.name, (field.name,)))


class Invalid(Exception):
    """A value's problem, raised by a kind; the table adds the file and the key."""

    def __init__(self, problem: str, where: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.where = where
        """A suffix of the key, such as "[2]" for the second item of a list."""


@dataclass(frozen=True)
class Kind(Generic[T]):
    one: str
    """What one value is called in messages: "an e-mail address"."""
    many: str
    """The plural, for lists: "e-mail addresses"."""
    parse: Callable[[object], T]


def quote(text: str) -> str:
    """Quote a configured string for a message, escaping control characters."""
    return json.dumps(text, ensure_ascii=False)


def show(value: object) -> str:
    """A raw TOML value as a user would recognise it in the file."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


def text_kind(one: str, many: str, convert: Callable[[str], T]) -> Kind[T]:
    def parse(value: object) -> T:
        if not isinstance(value, str):
            raise Invalid(f"expected {one}, got {show(value)}")
        return convert(value)

    return Kind(one, many, parse)


def list_of(item: Kind[T], *, non_empty: bool = False) -> Kind[tuple[T, ...]]:
    one = f"a {'non-empty ' if non_empty else ''}list of {item.many}"

    def parse(value: object) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise Invalid(f"expected {one}, got {show(value)}")
        if non_empty and not value:
            raise Invalid(f"expected {one}, got an empty list")
        items: list[T] = []
        for position, raw in enumerate(value, 1):
            try:
                parsed = item.parse(raw)
            except Invalid as invalid:
                raise Invalid(invalid.problem, f"[{position}]{invalid.where}") from None
            if parsed in items:
                raise Invalid(f"{show(raw)} is listed twice", f"[{position}]")
            items.append(parsed)
        return tuple(items)

    return Kind(one, f"lists of {item.many}", parse)


def choice(options: tuple[T, ...]) -> Kind[T]:
    names = ", ".join(map(str, options))

    def parse(value: object) -> T:
        for option in options:
            if value == option:
                return option
        raise Invalid(f"expected one of {names}; got {show(value)}")

    return Kind(f"one of {names}", f"values among {names}", parse)


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {show(value)}")
    return value


BOOLEAN = Kind("true or false", "true or false values", _boolean)


def integer(minimum: int, maximum: int | None = None) -> Kind[int]:
    one = (
        f"a whole number from {minimum} to {maximum}"
        if maximum is not None
        else f"a whole number ≥ {minimum}"
    )

    def parse(value: object) -> int:
        # bool is an int in Python; `true` is never meant as a number.
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected {one}, got {show(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            raise Invalid(f"expected {one}, got {value}")
        return value

    return Kind(one, "whole numbers", parse)


def positive(maximum: float) -> Kind[float]:
    # The bound keeps later date arithmetic (timedelta, sleep) far from overflowing.
    one = f"a number greater than 0 and at most {maximum:g}"

    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= maximum:
            raise Invalid(f"expected {one}, got {show(value)}")
        return float(value)

    return Kind(one, "numbers", parse)


def non_empty(text: str) -> str:
    if not text.strip():
        raise Invalid("expected a non-empty string")
    return text


ID_PATTERN = re.compile(r"[a-z0-9_-]+")
"""Ids name entries in keys and in messages, so they are kept to characters that read plainly."""
_ID_RULE = '(use lower-case letters, digits, "_" and "-")'


def _identifier(text: str) -> str:
    if not ID_PATTERN.fullmatch(text):
        raise Invalid(f"{quote(text)} is not a valid id {_ID_RULE}")
    return text


STRING = text_kind("a string", "strings", non_empty)
ID = text_kind("an id", "ids", _identifier)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _unknown_key(name: str, keys: Collection[str]) -> str:
    close = difflib.get_close_matches(name, keys, n=1)
    hint = f'did you mean "{close[0]}"? ' if close else ""
    return f"unknown key {quote(name)} ({hint}allowed here: {', '.join(sorted(keys))})"


def _label(entry: object, position: int) -> str:
    """How an entry of an array of tables is named in keys: its id when valid, else its position."""
    entry_id = entry.get("id") if isinstance(entry, dict) else None
    return entry_id if isinstance(entry_id, str) and ID_PATTERN.fullmatch(entry_id) else str(position)


@dataclass(frozen=True)
class Table:
    """One TOML table being read; it knows its file and dotted key, so that errors name both."""

    file: str
    key: str
    data: Mapping[str, object]

    @classmethod
    def of(cls, file: str, key: str, value: object, keys: Collection[str]) -> Table:
        if not isinstance(value, dict):
            raise ConfigError(file, key, f"expected a table, got {show(value)}")
        for name in value:
            if name not in keys:
                raise ConfigError(file, _join(key, name), _unknown_key(name, keys))
        return cls(file, key, value)

    def error(self, name: str | None, problem: str) -> ConfigError:
        return ConfigError(self.file, _join(self.key, name) if name else self.key, problem)

    def required(self, name: str, kind: Kind[T]) -> T:
        if name not in self.data:
            raise self.error(name, f"missing (expected {kind.one})")
        return self._read(name, kind)

    def optional(self, name: str, kind: Kind[T], default: D) -> T | D:
        return self._read(name, kind) if name in self.data else default

    def _read(self, name: str, kind: Kind[T]) -> T:
        try:
            return kind.parse(self.data[name])
        except Invalid as invalid:
            raise ConfigError(self.file, _join(self.key, name) + invalid.where, invalid.problem) from None

    def table(self, name: str, keys: Collection[str], *, required: bool = False) -> Table:
        if name not in self.data and required:
            raise self.error(name, f"missing (expected a [{_join(self.key, name)}] table)")
        return Table.of(self.file, _join(self.key, name), self.data.get(name, {}), keys)

    def tables(self, name: str, keys: Collection[str]) -> list[Table]:
        """An array of tables, `[[name]]`."""
        key = _join(self.key, name)
        entries = self.data.get(name, [])
        if not isinstance(entries, list):
            raise self.error(name, f"expected an array of tables ([[{key}]]), got {show(entries)}")
        return [
            Table.of(self.file, f"{key}[{_label(entry, position)}]", entry, keys)
            for position, entry in enumerate(entries, 1)
        ]

    def named_tables(self, name: str, keys: Collection[str]) -> dict[str, Table]:
        """A table of tables, `[name.NAME]`; the names are ids."""
        key = _join(self.key, name)
        tables = self.data.get(name, {})
        if not isinstance(tables, dict):
            raise self.error(name, f"expected tables [{key}.NAME], got {show(tables)}")
        named = {}
        for entry_name, entry in tables.items():
            if not ID_PATTERN.fullmatch(entry_name):
                problem = f"{quote(entry_name)} is not a valid name {_ID_RULE}"
                raise ConfigError(self.file, f"{key}.{entry_name}", problem)
            named[entry_name] = Table.of(self.file, f"{key}.{entry_name}", entry, keys)
        return named
