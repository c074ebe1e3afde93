"""The database under both stores (the Store and the spool): engines, errors, driver statements.

`storage_errors` is the one place where a database failure becomes a `StorageError` (as httpx's
`map_exceptions` does for transports): SQLAlchemy's errors, the driver's own (hot paths run through
the driver's cursor), and a driver that is not installed for the URL's database.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ttrd.errors import StorageError


@contextmanager
def storage_errors(doing: str, engine: Engine | None = None) -> Iterator[None]:
    """Turn a database failure inside the block into `StorageError("{doing}: {cause}")`."""
    driver_error: type[BaseException] = _driver_error(engine)
    try:
        yield
    except SQLAlchemyError as error:
        raise StorageError(f"{doing}: {getattr(error, 'orig', None) or error}") from error
    except driver_error as error:
        raise StorageError(f"{doing}: {error}") from error
    except ImportError as error:  # creating an engine imports the driver of the URL's database
        raise StorageError(
            f"{doing}: its driver is not installed ({error}); install the package that provides it"
        ) from error


def _driver_error(engine: Engine | None) -> type[BaseException]:
    dbapi = engine.dialect.dbapi if engine is not None else None
    found: type[BaseException] | None = getattr(dbapi, "Error", None)  # PEP 249: every driver has one
    return found or SQLAlchemyError


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable URL)"


def _sqlite_pragmas(durable: bool) -> Any:
    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL syncs the WAL at every commit: the daemon's 250 promises survival of a power cut.
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cursor.execute("PRAGMA busy_timeout=10000")
        if not durable:
            # A bulk import: index pages stay in memory, and the WAL is copied back into the
            # database every 64 MB instead of every 4 MB (each copy waits for an fsync). The
            # daemon keeps SQLite's defaults: small transactions, and memory that stays flat.
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.execute("PRAGMA wal_autocheckpoint=16384")
        cursor.close()

    return apply


def connect(url: str, *, durable: bool) -> Engine:
    """An engine for a database URL; `durable` makes every SQLite commit survive a power cut.

    Raises StorageError when the URL's folder does not exist or its driver is not installed.
    """
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        directory = Path(url.removeprefix("sqlite:///")).parent
        if not directory.is_dir():
            raise StorageError(f"the directory of the database does not exist: {directory}")
    with storage_errors(f"cannot open the database {safe_url(url)}"):
        engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(durable))
    return engine


class DriverStatement:
    """A statement compiled by SQLAlchemy for a dialect, to run through the driver's own cursor.

    For the hot paths (bulk inserts, the SMTP spool's commits) where SQLAlchemy's per-row and
    per-call work costs more than the database; the driver's parameter style is the dialect's.
    """

    def __init__(self, statement: Any, dialect: Any, keys: Sequence[str]) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))
        self.sql = str(compiled)
        self._names: Sequence[str] | None = compiled.positiontup
        self._pick = itemgetter(*self._names) if self._names and len(self._names) > 1 else None

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> Sequence[Any]:
        """Rows of named values in the form the driver takes (tuples for positional styles)."""
        if self._names is None:
            return rows
        if self._pick is not None:
            return [self._pick(row) for row in rows]
        return [tuple(row[name] for name in self._names) for row in rows]
