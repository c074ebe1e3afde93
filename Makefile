# `make run` and `make test` do all set-up on a fresh machine (README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit integration bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p var
	$(BIN)/ttrd check-config --config examples/ttrd.toml
	$(BIN)/ttrd run --config examples/ttrd.toml

lint: $(STAMP)
	$(BIN)/ruff check ttrd tests bench
	$(BIN)/ruff format --check ttrd tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict ttrd

# Pure and in-memory tests: no server, subprocess or database file (under a minute).
unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

# Real peers: the daemon, SMTP clients, SQLite files, Postfix, promtool, systemd-analyze.
integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

test: lint typecheck unit integration

bench: $(STAMP)
	$(BIN)/python bench/import_throughput.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache .hypothesis
