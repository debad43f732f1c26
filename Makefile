# The two set-up commands of the README. Both create .venv on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test reliability check-core install install-all lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-all: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[deep,postgres,redis,spark,boost,dev]'

PORT ?= 8000
EVENTS ?= 200000

## make demo: create .venv, install, run the main job (generate a shop, ingest, train, serve).
## `make demo PORT=9000 EVENTS=50000` serves on another port, with a smaller shop.
demo: install
	$(BIN)/fusionrec demo --port $(PORT) --events $(EVENTS)

## make test: install every extra plus dev tools, check the package layers (lint-imports), then run
## the whole suite (optional parts included)
test: install-all
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

## make reliability: the reliability suite alone (tests/reliability, also part of make test), its
## figures written to benchmarks/results/reliability.json (docs/reliability.md)
reliability: $(BIN)/python
	$(BIN)/python benchmarks/bench_reliability.py

## make check-core: a fresh venv with the core package only (no extras), every module imported,
## `fusionrec demo` trained, served, asked and stopped (what CI runs first)
check-core:
	PY=$(PY) bash .ci/check-core

lint: $(BIN)/python
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .import_linter_cache
