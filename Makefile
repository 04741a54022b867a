# Everything starts from a fresh clone with nothing but Python 3.10+ and pip:
#   make demo   - run the example pipeline DAG end to end (local emulator unless DUNE_API_KEY is set)
#   make test   - lint, type-check and run the whole test suite on the newest Airflow 3.x
# AIRFLOW=2 picks the Airflow 2.11 lock instead (CI runs the suite on both).

PYTHON ?= python3
AIRFLOW ?= 3
UV_VERSION := 0.13.9
VENV := $(if $(filter 2,$(AIRFLOW)),.venv-airflow2,.venv)
LOCK := requirements/airflow$(AIRFLOW).lock
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck lock clean benchmarks test-distributed test-browser screenshots chromium

$(VENV)/.installed: $(LOCK) pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python $(LOCK)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check airflow_provider_dune tests example_dags scripts benchmarks harness
	$(BIN)/ruff format --check airflow_provider_dune example_dags scripts benchmarks harness

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# Airflow as teams run it (PostgreSQL, Celery on Redis, two triggerers; servers from pip),
# and the Airflow UI in headless Chromium. Each boots its own deployment (harness/).
test-distributed: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m distributed tests/distributed

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


# Re-resolve the pinned environments after changing dependencies in pyproject.toml.
lock:
	uv pip compile --quiet pyproject.toml requirements/airflow3.in --extra emulator --extra test \
		--extra distributed --extra browser --python-version 3.11 -o requirements/airflow3.lock
	uv pip compile --quiet pyproject.toml requirements/airflow2.in --extra emulator --extra test \
		--python-version 3.11 -o requirements/airflow2.lock

clean:
	rm -rf .venv .venv-airflow2 .pytest_cache .mypy_cache .ruff_cache
