"""Every error ttrd raises on purpose, in one tree.

    TtrdError                 base; its message is written for the user, never a traceback
    ├── ConfigError           the configuration is missing, unreadable or wrong (names file, key, problem)
    ├── InputError            an input given on the command line cannot be read (a file, a folder, a date)
    ├── ParseError            one message cannot be understood; counted and kept, the batch goes on
    ├── ServiceError          the daemon cannot start: a port is taken, an address cannot be bound
    └── StorageError          the database cannot be opened, read or written (SMTP answers 451)
        └── SchemaError       the database was written by a newer ttrd, or is not a ttrd database

The CLI turns a TtrdError into its message on stderr and a non-zero exit.
"""

from __future__ import annotations

import os


class TtrdError(Exception):
    """Base of the errors ttrd reports to its user."""


class ConfigError(TtrdError):
    def __init__(self, path: str, key: str | None, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {problem}")


class InputError(TtrdError):
    pass


class ParseError(TtrdError):
    pass


class ServiceError(TtrdError):
    pass


def cannot_listen(what: str, address: str, error: OSError) -> ServiceError:
    """A listener that could not bind, in plain words (`cannot listen for SMTP on …: Address in use`)."""
    problem = os.strerror(error.errno) if error.errno else str(error)
    return ServiceError(f"cannot listen for {what} on {address}: {problem}")


class StorageError(TtrdError):
    pass


class SchemaError(StorageError):
    pass
