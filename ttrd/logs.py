"""Logs to stderr as logfmt lines (`level=info logger=ttrd.smtp msg="…" key=value`), for journald.

Under systemd (JOURNAL_STREAM is set) each line starts with its syslog priority, `<3>` … `<7>`,
which journald turns into the entry's priority, so `journalctl -p warning` works.
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


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter(priorities="JOURNAL_STREAM" in os.environ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiosmtpd logs every SMTP command at INFO: far too much for a journaling sink's journal.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
