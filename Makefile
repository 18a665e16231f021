# The two commands a newcomer runs: `make demo` and `make test`. Both set up .venv from the lock file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
export PLUS_ANALYTICS_HOME ?= $(CURDIR)/data
export AIRFLOW__LOGGING__LOGGING_LEVEL ?= WARNING
export GX_ANALYTICS_ENABLED := false

.PHONY: demo test setup clean bench bench-scale

$(BIN)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/plus-analytics demo

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/pseudonymize.py

bench-scale: setup
	$(BIN)/python bench/pipeline.py --events 1000000 10000000

clean:
	rm -rf data
