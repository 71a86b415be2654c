# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export VIDPIPE_DATA_DIR ?= $(CURDIR)/.vidpipe
export DAGSTER_HOME ?= $(VIDPIPE_DATA_DIR)/dagster
# := so an exported HOST (common in CI and Node setups) cannot expose the UI; `make dev HOST=...` still works.
HOST := 127.0.0.1
PORT ?= 3000

.PHONY: demo test lint dev install bench clean browser worker

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev,bench]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vidpipe demo

# Lint first: it takes ~20 s and fails fast. Settings are in pyproject.toml ([tool.ruff], [tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# 3 pytest-xdist workers; a unit (a test file, or all of tests/servers/) stays on one worker and the
# slowest units start first: tests/scheduling.py. One process: `$(BIN)/python -m pytest`.
test: lint
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

dev: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

# A Celery worker for VIDPIPE_DAGSTER_EXECUTOR=celery (docs/deployment.md); it
# reads the same VIDPIPE_* and DAGSTER_HOME settings as everything else. `make worker QUEUE=x CONCURRENCY=4`
QUEUE ?=
CONCURRENCY ?=
worker: $(STAMP)
	$(BIN)/vidpipe worker $(if $(QUEUE),--queue $(QUEUE)) $(if $(CONCURRENCY),--concurrency $(CONCURRENCY))

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .vidpipe test-artifacts
