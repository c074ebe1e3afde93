"""The core stays pure: nothing in ttrd/journal/ reaches for I/O frameworks, storage or the clock."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CORE = ROOT / "ttrd" / "journal"
FORBIDDEN = {
    *("asyncio", "socket", "sqlmodel", "sqlalchemy", "aiosmtpd", "aioimaplib", "prometheus_client", "uvloop"),
    *("ttrd.storage", "ttrd.ingest", "ttrd.smtp", "ttrd.metrics", "ttrd.daemon", "ttrd.cli"),
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_modules_import_nothing_from_the_adapters() -> None:
    for path in sorted(CORE.glob("*.py")):
        bad = {n for n in imported(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_core_does_not_read_the_clock() -> None:
    for path in sorted(CORE.glob("*.py")):
        text = path.read_text()
        for call in ("datetime.now(", "datetime.utcnow(", "time.time(", "date.today("):
            assert call not in text, f"{path.name} reads the clock ({call})"


def test_importing_the_core_loads_no_adapter_package() -> None:
    # socket is left out here: the standard library's email.utils imports it without using it.
    packages = sorted(f for f in FORBIDDEN if f != "socket")
    modules = ", ".join(f"ttrd.journal.{p.stem}" for p in sorted(CORE.glob("*.py")) if p.stem != "__init__")
    loaded = f"sorted(m for m in sys.modules if m in {packages!r} or m.split('.')[0] in {packages!r})"
    probe = f"import sys, {modules}; print({loaded})"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stdout
