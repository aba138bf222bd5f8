# `make run` installs everything and runs the gateway; `make test` installs everything and runs
# every test. Both work on a fresh clone with only python3 (3.11+) on the machine.
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
PYTHON ?= python3
# test processes (pytest-xdist): most tests wait on sockets and subprocesses, so more than the cores
PYTEST_WORKERS ?= 4
# The PostgreSQL the tests also run on (each session makes and drops its own scratch database).
GATEWAY_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export GATEWAY_TEST_POSTGRES_URL

.PHONY: install run test lint postgres prism chromium

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# the web workers and the scheduler count into one directory: /metrics shows them all
run: export PROMETHEUS_MULTIPROC_DIR ?= $(or $(GATEWAY_INSTANCE_PATH),$(CURDIR)/instance)/prometheus
run: install
	$(BIN)/flask --app app db upgrade
	@$(BIN)/flask --app app credentials
	@echo "Gateway on http://127.0.0.1:$(PORT) with its scheduler (transport as above; Ctrl-C stops both)"
	@echo "Staff console: http://127.0.0.1:$(PORT)/console/ (an account: $(BIN)/flask --app app staff create EMAIL --practice SLUG)"
	PATH="$(abspath $(BIN)):$$PATH" PORT=$(PORT) GATEWAY_BIND=127.0.0.1 $(BIN)/honcho start web scheduler

test: install postgres prism chromium lint
	$(BIN)/pytest -n $(PYTEST_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Start the machine's PostgreSQL cluster if it is installed but down.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null \
	  || (command -v pg_ctlcluster >/dev/null \
	      && pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | tail -n 1) main start \
	      && sleep 2) \
	  || echo "PostgreSQL is not reachable: the PostgreSQL half of the database tests will be skipped"

# Prism (npm), which checks the gateway's requests against Twilio's own OpenAPI description.
# Outside CI, a machine without npm skips that one test instead of failing the run.
prism:
	@tests/tools/install-prism >/dev/null || [ -z "$$CI" ]

# Debian's Chromium (apt-get), which Playwright drives in the staff console's browser tests.
# Outside CI, a machine without apt-get skips those tests instead of failing the run.
chromium:
	@tests/tools/install-chromium >/dev/null || [ -z "$$CI" ]
