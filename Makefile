# Every target builds the virtualenv it needs from nothing; CI runs `make lint` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint eval bench bench-send bench-cycle format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## Run the main job on the embedded default: five days of listings -> digests + feeds
	$(BIN)/notifier demo --reset

test: $(STAMP)  ## Run the test suite (SQLite always; PostgreSQL at NOTIFIER_TEST_PG_URL when reachable)
	$(BIN)/pytest -q

lint: $(STAMP)  ## ruff check, ruff format --check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

eval: $(STAMP)  ## Precision, recall, F1 and nDCG@10 of the matchers on tests/data/eval
	$(BIN)/notifier eval

bench: $(STAMP)  ## Matching at scale: 100,000 subscribers x 3 interests against 500 papers
	$(BIN)/python bench/match_scale.py

bench-send: $(STAMP)  ## Delivery: 20,000 digests into Postfix smtp-sink, 1/2/4 connections, vs smtp-source
	$(BIN)/python bench/send_rate.py

bench-cycle: $(STAMP)  ## The daily cycle: 100,000 subscribers, 500 papers, ingest -> last message accepted
	$(BIN)/python bench/daily_cycle.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
