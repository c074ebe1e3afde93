"""Importing the core, in a fresh interpreter, loads no adapter package or I/O framework."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT
from tests.unit.test_layers import CORE, FORBIDDEN


def test_importing_the_core_loads_no_adapter_package() -> None:
    # The standard library's email package imports socket, time, os… without using them for I/O:
    # only third-party frameworks and ttrd's own adapters are checked here.
    packages = sorted(f for f in FORBIDDEN if f.startswith("ttrd.") or f in THIRD_PARTY)
    modules = ", ".join(
        f"ttrd.{package}.{path.stem}"
        for package, folder in CORE.items()
        for path in sorted(folder.glob("*.py"))
        if path.stem != "__init__"
    )
    loaded = f"sorted(m for m in sys.modules if m in {packages!r} or m.split('.')[0] in {packages!r})"
    probe = f"import sys, {modules}; print({loaded})"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]", done.stdout


THIRD_PARTY = {
    "sqlmodel",
    "sqlalchemy",
    "aiosmtpd",
    "aioimaplib",
    "prometheus_client",
    "uvloop",
    "typer",
    "rich",
}
