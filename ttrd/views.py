"""What `ttrd replies`, `report` and `check-config` print: JSON Lines for programs, tables for people."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from ttrd.config import Endpoint, ImapAccount, Settings
from ttrd.config.values import format_span, redact_password
from ttrd.replytime.aggregates import Distribution, ReportRow
from ttrd.replytime.directory import Directory, Organization
from ttrd.replytime.engine import judge
from ttrd.replytime.hours import WEEKDAYS, Schedule
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
            (day, _listed(map(format_span, spans)) if spans else "closed")
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
        *_aligned([("url", redact_password(settings.storage.url))]),
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
        if account.tls_ca_file is not None:
            rows.insert(1, ("tls ca file", str(account.tls_ca_file)))
        lines.extend(_aligned(rows, indent="    "))
    return lines
