"""The core stays pure, read from the code's syntax tree (a text search misses `time.time_ns()`).

The core is two packages: `ttrd.journal` (a journal copy's bytes → message facts) and
`ttrd.replytime` (facts → conversations, items, business time, aggregates). Neither reaches for I/O
frameworks, storage, sockets or the clock, nor imports an adapter; `ttrd.journal` does not import
`ttrd.replytime` (facts come first, the rules apply to them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

CORE = {"journal": ROOT / "ttrd" / "journal", "replytime": ROOT / "ttrd" / "replytime"}
ADAPTERS = {path.stem for path in (ROOT / "ttrd").iterdir() if path.stem not in (*CORE, "__init__", "errors")}
FORBIDDEN = {
    *("asyncio", "socket", "selectors", "ssl", "threading", "multiprocessing", "subprocess", "concurrent"),
    *("time", "os", "sys", "random", "secrets", "uuid", "sqlite3", "tomllib"),
    *("sqlmodel", "sqlalchemy", "aiosmtpd", "aioimaplib", "prometheus_client", "uvloop", "typer", "rich"),
    *(f"ttrd.{adapter}" for adapter in ADAPTERS),
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter", "process_time"}


def core_modules() -> list[tuple[str, Path]]:
    return [(package, path) for package, folder in CORE.items() for path in sorted(folder.glob("*.py"))]


def imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def forbidden(name: str, rules: set[str]) -> bool:
    return any(name == rule or name.startswith(rule + ".") for rule in rules)


def test_the_adapters_are_what_the_rule_names() -> None:
    assert {"storage", "ingest", "smtp", "metrics", "daemon", "cli", "config", "views"} <= ADAPTERS


@pytest.mark.parametrize(("package", "path"), core_modules(), ids=lambda value: getattr(value, "name", value))
def test_core_modules_import_nothing_impure_and_no_adapter(package: str, path: Path) -> None:
    rules = FORBIDDEN | ({"ttrd.replytime"} if package == "journal" else set())
    bad = {name for name in imported(ast.parse(path.read_text())) if forbidden(name, rules)}
    assert not bad, f"{package}/{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize(("package", "path"), core_modules(), ids=lambda value: getattr(value, "name", value))
def test_core_modules_never_read_the_clock(package: str, path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            assert node.func.attr not in CLOCK_CALLS, f"{package}/{path.name}:{node.lineno} reads the clock"


def test_the_clock_rule_sees_what_a_text_search_misses() -> None:
    tree = ast.parse("import time as t\nfrom datetime import date\nx = t.time_ns() + date.today().day")
    calls = {
        n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
    }
    assert calls & CLOCK_CALLS == {"time_ns", "today"}
    assert forbidden("time", FORBIDDEN) and forbidden("ttrd.storage.sql", FORBIDDEN)


ADAPTER_RULES = {
    # adapter: the adapters it must not import (each reads storage through the port, not the pipeline)
    "metrics": {"ingest", "smtp", "imap", "daemon", "cli"},
    "storage": {"ingest", "metrics", "smtp", "daemon", "cli", "views"},
    # The live sources hand copies to the spool writer (ingest.spooler), never to the pipeline.
    "smtp": {"ingest.pipeline", "ingest.worker", "ingest.importer", "imap", "metrics", "daemon", "cli"},
    "imap": {"ingest.pipeline", "ingest.worker", "ingest.importer", "smtp", "metrics", "daemon", "cli"},
    "ingest": {"metrics", "smtp", "imap", "daemon", "cli"},
    "config": {"storage", "ingest", "metrics", "smtp", "daemon", "cli"},
}


@pytest.mark.parametrize("adapter", sorted(ADAPTER_RULES))
def test_adapters_do_not_reach_into_each_other(adapter: str) -> None:
    rules = {f"ttrd.{other}" for other in ADAPTER_RULES[adapter]}
    folder = ROOT / "ttrd" / adapter
    for path in sorted(folder.glob("*.py")):
        bad = {name for name in imported(ast.parse(path.read_text())) if forbidden(name, rules)}
        assert not bad, f"{adapter}/{path.name} imports {sorted(bad)}"
