# Everything starts from a fresh clone with nothing but Python 3.11+ and pip:
#   make demo   - run the example pipeline DAG end to end (local emulator unless DUNE_API_KEY is set)
#   make test   - lint, type-check and run the whole test suite on the newest Airflow 3.x
#   make contract - the emulator and the client checked against Dune's OpenAPI spec, with a report
# ENV picks a pinned environment: requirements/$(ENV).lock, installed into .venv-$(ENV)
# (.venv for the default). CI (.ci/run) runs the suite in each of them, then `make dist`.
#   airflow3    newest Airflow 3.x (the default)
#   airflow3.2  newest Airflow 3.2.x: a retry's resume record lives in Airflow Variables there
#   airflow2    Airflow 2.11 (AIRFLOW=2 says the same)
#   lowest      every floor pyproject.toml declares, on the lowest Python it allows

PYTHON ?= python3
AIRFLOW ?= 3
ENV ?= airflow$(AIRFLOW)
VENV := $(if $(filter airflow3,$(ENV)),.venv,.venv-$(ENV))
LOCK := requirements/$(ENV).lock
BIN := $(VENV)/bin
# uv is the one tool pip fetches (hash-checked), into a venv of its own; uv installs the rest.
UV := .venv-uv/bin/uv
LOCK_PYTHON := 3.11

.PHONY: install demo test suite lint typecheck lock dist clean benchmarks contract test-distributed test-scale test-browser screenshots chromium

$(UV): requirements/bootstrap.lock
	$(PYTHON) -m venv .venv-uv
	.venv-uv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r requirements/bootstrap.lock
	touch $@

$(VENV)/.installed: $(LOCK) pyproject.toml | $(UV)
	$(PYTHON) -m venv $(VENV)
	$(UV) pip sync --quiet --require-hashes --python $(BIN)/python $(LOCK)
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check airflow_provider_dune tests example_dags scripts benchmarks harness
	$(BIN)/ruff format --check airflow_provider_dune example_dags scripts benchmarks harness

typecheck: install
	$(BIN)/mypy

# The test suite alone: CI runs it in every ENV (lint and types are the code's, not the pins').
# PYTEST_ARGS narrows it, e.g. PYTEST_ARGS=--ignore=tests/e2e.
PYTEST_ARGS ?=
suite: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests $(PYTEST_ARGS)

test: lint typecheck suite

# Dune's contract alone: the emulator and every client call checked against Dune's OpenAPI spec,
# then the report per operation (make test prints the same report for the whole suite).
contract: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/contract

# Airflow as teams run it (PostgreSQL, Celery on Redis, two triggerers; servers from pip),
# and the Airflow UI in headless Chromium. Each boots its own deployment (harness/).
test-distributed: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m distributed tests/distributed

# Many tasks through real Airflow processes (quick deferrals, the request budget): minutes each.
test-scale: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m scale tests/scale

test-browser: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m browser tests/browser

# The UI screenshots in docs/img/ (README, docs): the browser checks, saving what they see.
screenshots: install
	SCREENSHOTS_DIR=docs/img $(BIN)/python -m pytest -q -p no:cacheprovider -m browser tests/browser

# Debian's Chromium for the browser checks (as root; Playwright cannot download browsers here).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

demo: install
	$(BIN)/python scripts/demo.py

# Not part of the tests: measures against the emulator and rewrites docs/benchmarks.md.
benchmarks: install
	$(BIN)/python -m benchmarks

# The one way every lock file is made: re-resolve after changing dependencies in
# pyproject.toml or requirements/*.in. Each pin carries its hashes; installs check them.
COMPILE = $(UV) pip compile --quiet --generate-hashes --python-version $(LOCK_PYTHON)
lock: | $(UV)
	$(COMPILE) requirements/bootstrap.in -o requirements/bootstrap.lock
	$(COMPILE) requirements/dist.in -o requirements/dist.lock
	# Only the newest Airflow runs the distributed and browser suites.
	$(COMPILE) pyproject.toml requirements/airflow3.in --extra emulator --extra test \
		--extra distributed --extra browser -o requirements/airflow3.lock
	for env in airflow3.2 airflow2; do \
		$(COMPILE) pyproject.toml requirements/$$env.in --extra emulator --extra test \
			-o requirements/$$env.lock || exit 1; \
	done
	$(COMPILE) --resolution lowest-direct pyproject.toml --extra emulator --extra test \
		-o requirements/lowest.lock

# Build the wheel and sdist, check their metadata, install the wheel alone (no extras, no
# editable install) in a clean venv, and run an example DAG there against the emulator.
.venv-dist/.installed: requirements/dist.lock | $(UV)
	$(PYTHON) -m venv .venv-dist
	$(UV) pip sync --quiet --require-hashes --python .venv-dist/bin/python requirements/dist.lock
	touch $@

dist: install .venv-dist/.installed
	rm -rf dist .venv-wheel
	$(UV) build --quiet --out-dir dist --build-constraints requirements/dist.lock --require-hashes
	.venv-dist/bin/twine check --strict dist/*
	$(PYTHON) -m venv .venv-wheel
	$(UV) pip install --quiet --python .venv-wheel/bin/python dist/*.whl --constraints requirements/airflow3.lock
	$(BIN)/python scripts/check_wheel.py .venv-wheel

clean:
	rm -rf .venv .venv-* .pytest_cache .mypy_cache .ruff_cache dist .demo
