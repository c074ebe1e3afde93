"""What `ttrd replies` and `ttrd report` print: JSON Lines for programs, tables for people."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from ttrd.replytime.aggregates import Distribution, ReportRow
from ttrd.replytime.directory import Directory
from ttrd.replytime.engine import judge
from ttrd.replytime.items import Item


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def reply_record(item: Item, now: datetime, directory: Directory) -> dict[str, Any]:
    """One item as the JSON object of SPEC §5."""
    return {
        "mailbox": item.context,
        "conversation": item.conversation,
        "inbound_message_id": item.inbound_message_id,
        "customer": item.customer,
        "opened_at": _iso(item.opened_at),
        "status": judge(item, now, directory),
        "first": item.first,
        "agent": item.agent,
        "reply_message_id": item.reply_message_id,
        "replied_at": _iso(item.replied_at),
        "calendar_seconds": item.calendar_seconds,
        "business_seconds": item.business_seconds,
    }


def report_record(row: ReportRow, by: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        by: row.group,
        "items": row.items,
        "replied": row.replied,
        "awaiting": row.awaiting,
        "unanswered": row.unanswered,
        "reply_rate": row.reply_rate,
    }
    for clock, distribution in (("calendar", row.calendar), ("business", row.business)):
        for name in ("mean", "median", "p90"):
            record[f"{clock}_{name}_seconds"] = getattr(distribution, name)
    record["sla_breaches"] = row.sla_breaches
    return record


_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
"""Characters that JSON leaves raw but line readers (Python's splitlines, some editors) split at."""


def print_json_lines(records: Iterable[dict[str, Any]], console: Console) -> None:
    for record in records:
        console.out(json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS), highlight=False)


def duration(seconds: float | None) -> str:
    """Seconds for people: 45s, 12m, 3.5h, 2.1d."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 1.5 or (unit == "m" and seconds >= 60):
            value = seconds / size
            return f"{value:.0f}{unit}" if value >= 10 or unit == "m" else f"{value:.1f}{unit}"
    return f"{seconds:.0f}s"


def replies_table(records: Iterable[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("mailbox", "opened", "status", "first", "agent", "calendar", "business", "customer"):
        table.add_column(column, justify="right" if column in ("calendar", "business") else "left")
    for r in records:
        table.add_row(
            r["mailbox"],
            r["opened_at"][:16].replace("T", " "),
            r["status"],
            "yes" if r["first"] else "no",
            r["agent"] or "-",
            duration(r["calendar_seconds"]),
            duration(r["business_seconds"]),
            r["customer"] or "-",
        )
    return table


def _spread(distribution: Distribution) -> str:
    return " / ".join(duration(v) for v in (distribution.median, distribution.p90, distribution.mean))


def report_table(rows: Iterable[ReportRow], by: str) -> Table:
    table = Table(box=None, header_style="bold")
    table.add_column(by)
    for column in ("items", "replied", "rate", "awaiting", "unanswered", "SLA breaches"):
        table.add_column(column, justify="right")
    table.add_column("calendar median / p90 / mean", justify="right")
    table.add_column("business median / p90 / mean", justify="right")
    for row in rows:
        rate = "-" if row.reply_rate is None else f"{row.reply_rate:.0%}"
        table.add_row(
            row.group or "(none)",
            str(row.items),
            str(row.replied),
            rate,
            str(row.awaiting),
            str(row.unanswered),
            str(row.sla_breaches),
            _spread(row.calendar),
            _spread(row.business),
        )
    return table
