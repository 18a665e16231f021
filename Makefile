# The commands a newcomer runs: `make demo`, `make airflow`, `make test` (and `make test-fast` while editing). All set up .venv from the lock file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export PLUS_ANALYTICS_HOME ?= $(CURDIR)/data
export AIRFLOW__LOGGING__LOGGING_LEVEL ?= WARNING
export GX_ANALYTICS_ENABLED := false

.PHONY: demo test test-fast lint docs airflow setup system-packages clean bench bench-scale

# --compile-bytecode: wheels install without .pyc and PYTHONDONTWRITEBYTECODE may be set (it is on our machines),
# and then every process (each airflow command, each task, each benchmark step) compiles Airflow from source: 5 s.
$(BIN)/.installed: requirements.lock pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(BIN)/.installed

# What the tests and the Celery deployment need from the OS: PostgreSQL (a real metadata DB), Redis (Celery's
# broker) and Chromium (the DPO console's browser test). Installed when missing and we may (root, as in CI);
# otherwise those tests say why they are skipped.
system-packages:
	@missing=""; \
	command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (OS packages for the tests)"; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "not installing$$missing (needs root and apt-get): the tests that need them are skipped with the reason"; fi; \
	fi

demo: setup
	$(BIN)/plus-analytics demo

airflow: setup
	$(BIN)/plus-analytics airflow

lint: setup
	$(BIN)/ruff check plugins dags tests bench
	$(BIN)/lint-imports

# The edit-test loop: lint, import layers, unit and DAG-integrity tests; nothing that runs the pipeline,
# Airflow, a browser or a build (those carry the markers below).
FAST := not integration and not scheduler and not commands

test-fast: setup lint
	$(BIN)/python -m pytest -q -m "$(FAST)"

test: setup system-packages lint docs
	$(BIN)/python -m pytest -q

# The documentation site, every internal link and anchor checked (warnings fail the build).
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

bench: setup
	$(BIN)/python bench/pseudonymize.py

bench-scale: setup
	$(BIN)/python bench/pipeline.py --events 1000000 10000000

clean:
	rm -rf data
