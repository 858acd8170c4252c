# Every target builds the virtualenv it needs from nothing; CI runs `make lint` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's chromium drives the browser tests and `make screenshots`; playwright's
# own browser download is never used. Without it those tests are skipped.
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo test lint eval bench bench-send bench-cycle browser screenshots format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Synapse, the Matrix homeserver the Matrix tests run (tests/matrix_server.py), in a
# venv of its own so its pins never meet the project's.
.venv-synapse/.installed:
	$(PYTHON) -m venv .venv-synapse
	.venv-synapse/bin/pip install --quiet --upgrade pip
	.venv-synapse/bin/pip install --quiet 'matrix-synapse>=1.163.2'
	touch $@

demo: $(STAMP)  ## Run the main job on the embedded default: five days of listings -> digests + feeds
	$(BIN)/notifier demo --reset

test: $(STAMP) .venv-synapse/.installed  ## Run the test suite (SQLite always; PostgreSQL at NOTIFIER_TEST_PG_URL when reachable; Synapse for Matrix; the browser tests when chromium is installed)
	@test -x $(CHROMIUM) || echo "note: no $(CHROMIUM), so the browser tests are skipped; 'make browser' installs it"
	$(BIN)/pytest -q

lint: $(STAMP)  ## ruff check, ruff format --check, mypy, the import contracts (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

eval: $(STAMP)  ## Precision, recall, F1 and nDCG@10 of the matchers on tests/data/eval
	$(BIN)/notifier eval

bench: $(STAMP)  ## Matching at scale: 100,000 subscribers x 3 interests against 500 papers
	$(BIN)/python bench/match_scale.py

bench-send: $(STAMP)  ## Delivery: 20,000 digests into Postfix smtp-sink, 1/2/4 connections, vs smtp-source
	$(BIN)/python bench/send_rate.py

bench-cycle: $(STAMP)  ## The daily cycle: 100,000 subscribers, 500 papers, ingest -> last message accepted
	$(BIN)/python bench/daily_cycle.py

browser:  ## Install Debian's chromium for the browser tests and screenshots, if missing (apt-get; sudo unless root)
	@test -x $(CHROMIUM) || { \
	  echo "installing chromium (apt-get install chromium)"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	  { $(SUDO) apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; }
	@test -x $(CHROMIUM) || { echo "chromium did not install at $(CHROMIUM)" >&2; exit 1; }

screenshots: $(STAMP) browser  ## Full-page PNGs of every page and email, desktop and phone width, into docs/screenshots/
	$(BIN)/python tools/screenshots.py

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .venv-synapse .mypy_cache .ruff_cache .pytest_cache
