"""Logs to stderr: logfmt lines for the daemon, plain `ttrd: …` lines for the other commands.

The daemon (`configure_logging`) writes `level=info logger=ttrd.smtp msg="…" error="…"`, one line per
record, tracebacks included (escaped), for journald. Under systemd (JOURNAL_STREAM is set) each line
starts with its syslog priority, `<3>` … `<7>`, which journald turns into the entry's priority, so
`journalctl -p warning` works. A command run by a person (`configure_command_logging`) writes one
`ttrd: …` line per record, with the error's type and text but no traceback unless TTRD_DEBUG=1.
"""

from __future__ import annotations

import logging
import os
import sys

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def _quoted(text: str) -> str:
    if text and not any(c in text for c in ' "=\n\\'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def __init__(self, priorities: bool) -> None:
        super().__init__()
        self.priorities = priorities

    def format(self, record: logging.LogRecord) -> str:
        line = f"level={record.levelname.lower()} logger={record.name} msg={_quoted(record.getMessage())}"
        if record.exc_info:
            line += f" error={_quoted(self.formatException(record.exc_info))}"
        if self.priorities:
            line = f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


class CommandFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"ttrd: {record.getMessage()}"
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return line
        if os.environ.get("TTRD_DEBUG") == "1":
            return f"{line}\n{self.formatException(record.exc_info)}"  # type: ignore[arg-type]
        return f"{line} ({type(error).__name__}: {error}; TTRD_DEBUG=1 shows where)"


def configure_command_logging() -> None:
    _use(CommandFormatter(), logging.INFO)


def configure_logging(level: int = logging.INFO) -> None:
    _use(LogfmtFormatter(priorities="JOURNAL_STREAM" in os.environ), level)


def _use(formatter: logging.Formatter, level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosmtpd logs every SMTP command at INFO: far too much for a journaling sink's journal.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
