# The two set-up commands of the README. Both create .venv on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-all lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-all: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[deep,postgres,redis,spark,boost,dev]'

## make demo: create .venv, install, run the main job (generate a shop, ingest, train, serve)
demo: install
	$(BIN)/fusionrec demo

## make test: install every extra plus dev tools, then run the whole suite (optional parts included)
test: install-all
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(BIN)/python
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
