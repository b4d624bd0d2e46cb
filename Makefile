# Entry points from a fresh clone: `make run`, `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The stamp, not the directory, tracks requirements.txt: a venv directory's
# mtime changes whenever pip touches it, which would make make lie.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv browser run test faults bench clean

venv: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

# Browser tests drive Debian's Chromium through Playwright (launched by path);
# never a browser download. Installed once, from the distribution's packages.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

run: $(STAMP)
	$(PY) -m shopsite.stack

# Every database backend, one pytest run each (tests/run_backends.py):
# SQLite (whole suite), PostgreSQL and MongoDB via mongomock (backend suite).
# SHOPSITE_TEST_BACKENDS=sqlite limits it; PYTEST_ARGS go to every run.
test: $(STAMP) browser
	$(PY) tests/run_backends.py $(PYTEST_ARGS)

# The whole fault suite on real processes (tests/faults): kill -9 of each process kind
# in 2,000-order bursts, broker/Redis/database outages, duplicate storm, poison, and the
# Hypothesis saga test. `make test` runs its fast part (300-order bursts). Figures:
# test-artifacts/faults.md. SHOPSITE_DB=postgres runs it on PostgreSQL.
faults: $(STAMP)
	$(PY) -m pytest tests/faults $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/run.py

clean:
	rm -rf var test-artifacts
