"""The `ttrd` command (SPEC §5). Parses options, wires adapters, prints; decides nothing itself."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from ttrd import __version__
from ttrd.config import Settings, config_path, load_settings
from ttrd.errors import InputError, TtrdError
from ttrd.ingest.importer import BatchReader, import_batches, summary
from ttrd.ingest.pipeline import Pipeline
from ttrd.ingest.sources import total_bytes
from ttrd.journal.facts import Folder
from ttrd.logs import configure_command_logging
from ttrd.replytime.aggregates import summarise
from ttrd.replytime.items import Item
from ttrd.storage.port import Store
from ttrd.views import describe, print_json_lines, replies_table, reply_record, report_record, report_table

IMPORT_PARTIAL = 3
"""`ttrd import`'s exit status when some messages were set aside and the others stored."""

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="ttrd: how fast your team answers customer e-mail, measured from the mail journal.",
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="Configuration file [default: $TTRD_CONFIG, else /etc/ttrd/ttrd.toml]."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(help="Only items opened at or after this date or time (ISO 8601; UTC if no offset)."),
]
UntilOption = Annotated[str | None, typer.Option(help="Only items opened before this date or time.")]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON Lines, one object per row.")]


class FolderKind(StrEnum):
    inbox = "inbox"
    sent = "sent"


class GroupKind(StrEnum):
    mailbox = "mailbox"
    agent = "agent"
    team = "team"


def _settings(config: Path | None) -> Settings:
    return load_settings(config_path(config))


@contextmanager
def _stored_items(
    config: Path | None, since: str | None, until: str | None
) -> Iterator[tuple[Settings, Iterator[Item]]]:
    """The settings and the stored items opened in [--since, --until), the store open meanwhile."""
    settings = _settings(config)
    store = _store(settings)
    try:
        yield settings, store.items(_moment(since, "--since"), _moment(until, "--until"))
    finally:
        store.close()


def _store(settings: Settings) -> Store:
    from ttrd.storage.sql import SqlStore  # the database layer is slow to import: only when used

    return SqlStore(settings.storage.url)


def _moment(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"{option} {value!r} is not a date or time (use e.g. 2026-03-01 or 2026-03-01T09:00+01:00)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and print the resolved agents, mailboxes, aliases and schedules."""
    out.out(describe(_settings(config)), highlight=False)


@app.command()
def run(config: ConfigOption = None) -> None:
    """The daemon: SMTP journaling sink, ingest, metrics endpoint; drains and exits 0 on SIGTERM."""
    settings = _settings(config)
    from ttrd import daemon  # the daemon's dependencies are imported only by the daemon
    from ttrd.logs import configure_logging

    configure_logging()
    raise typer.Exit(daemon.run(settings))


@app.command("import")
def import_(
    paths: Annotated[
        list[Path], typer.Argument(help=".eml files, Maildir folders, mbox files (.xz/.gz too).")
    ],
    config: ConfigOption = None,
    mailbox_owner: Annotated[
        str | None, typer.Option(help="Address (or agent/mailbox id) whose folder these files are.")
    ] = None,
    folder: Annotated[
        FolderKind | None, typer.Option(help="Which folder of that mailbox [default: inbox].")
    ] = None,
) -> None:
    """Ingest mail from files (backfill).

    Exit status: 0 all stored; 3 some set aside (see the summary), the rest stored; 1 none, or it failed.
    """
    settings = _settings(config)
    owner = _owner_address(settings, mailbox_owner)
    if folder is not None and owner is None:
        raise InputError("--folder needs --mailbox-owner: whose folder is it?")
    chosen: Folder | None = "sent" if folder == FolderKind.sent else ("inbox" if owner else None)
    with BatchReader(paths, datetime.now(UTC), owner=owner, folder=chosen) as reader:
        # The database layer is imported only now, while the reader's child process reads mail.
        store = _store(settings)
        try:
            pipeline = Pipeline(store, settings.directory)
            if not err.is_terminal:
                result = import_batches(pipeline, reader)
            else:
                with _progress() as bar:
                    task = bar.add_task("importing", total=total_bytes(paths))
                    result = import_batches(pipeline, reader, lambda done: bar.update(task, completed=done))
        finally:
            store.close()
    err.print(summary(result), highlight=False)
    failed = result.parse_errors + result.processing_errors
    if failed:
        raise typer.Exit(1 if failed == result.read else IMPORT_PARTIAL)


def _owner_address(settings: Settings, value: str | None) -> str | None:
    if value is None:
        return None
    context = settings.directory.context(value)
    if context is not None:
        return context.addresses[0]
    if "@" not in value:
        raise InputError(f"--mailbox-owner {value!r} is neither an address nor an agent or mailbox id")
    return value.lower()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )


@app.command()
def replies(
    config: ConfigOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    json: JsonOption = False,
) -> None:
    """One row per item: when it opened, who replied and how long it took."""
    with _stored_items(config, since, until) as (settings, items):
        now = datetime.now(UTC)
        records = (reply_record(item, now, settings.directory) for item in items)
        if json:
            print_json_lines(records, out)
        else:
            out.print(replies_table(records))


@app.command()
def report(
    config: ConfigOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    by: Annotated[
        GroupKind, typer.Option(help="Group by tracked mailbox, replying agent, or team.")
    ] = GroupKind.mailbox,
    json: JsonOption = False,
) -> None:
    """Reply times aggregated: count, reply rate, mean, median and p90, awaiting, unanswered, SLA breaches."""
    with _stored_items(config, since, until) as (settings, items):
        rows = summarise(items, by.value, settings.directory, datetime.now(UTC))
        if json:
            print_json_lines((report_record(row, by.value) for row in rows), out)
        else:
            out.print(report_table(rows, by.value))


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.out(f"ttrd {__version__}")
        raise typer.Exit()


def main() -> None:
    """Entry point: errors meant for the user become one line on stderr and exit status 1.

    An unexpected exception (a bug) is one line too; TTRD_DEBUG=1 shows its traceback for a report.
    """
    configure_command_logging()
    try:
        app()
    except TtrdError as error:
        err.print(f"ttrd: {error}", highlight=False, markup=False)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get("TTRD_DEBUG") == "1":
            raise
        err.print(
            f"ttrd: unexpected error: {type(error).__name__}: {error} "
            "(a bug: please report it with the output of TTRD_DEBUG=1 and the same command)",
            highlight=False,
            markup=False,
        )
        sys.exit(1)
