# Two commands on a fresh machine: `make demo` runs the demo, `make test` passes the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean servers faults-long

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

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

# The fault suite's long versions (a 5-minute kill storm, 5 engine kills per run, a 10-minute
# soak, 20 runs per kill point): about an hour, outside CI.
faults-long: $(BIN)/.installed servers
	CONVEYOR_FAULTS_LONG=1 $(BIN)/pytest -q tests/faults

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) conveyor-demo .pytest_cache .mypy_cache
