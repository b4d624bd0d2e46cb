# Entry points from a fresh clone: `make run`, `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The stamp, not the directory, tracks requirements.txt: a venv directory's
# mtime changes whenever pip touches it, which would make make lie.
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv browser promtool run test faults bench clean

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

# promtool checks and unit-tests the alert rules under deploy/prometheus (tests/unit/deploy):
# Debian's prometheus package, installed once when missing.
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && apt-get install -y -qq prometheus >/dev/null; }

# The embedded system generates its own secret key into var/ on first start (shopsite/secret_key.py).
run: $(STAMP)
	SHOPSITE_GENERATE_SECRET_KEY=1 $(PY) -m shopsite.supervisor

# Every database backend, one pytest run each (tests/run_backends.py):
# SQLite, PostgreSQL and MongoDB via mongomock; each test module declares its backends.
# SHOPSITE_TEST_BACKENDS=sqlite limits it; PYTEST_ARGS go to every run.
test: $(STAMP) browser promtool
	$(PY) tests/run_backends.py $(PYTEST_ARGS)

# The whole fault suite (marker `faults`: tests/system/faults on real processes, and the
# in-process Hypothesis saga test tests/service/test_saga_properties.py): kill -9 of each process kind
# in 2,000-order bursts, broker/Redis/database outages, duplicate storm, poison, and the
# Hypothesis saga test. `make test` runs its fast part (300-order bursts). Figures:
# test-artifacts/faults.md. SHOPSITE_DB=postgres runs it on PostgreSQL.
faults: $(STAMP)
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

bench: $(STAMP)
	SHOPSITE_GENERATE_SECRET_KEY=1 $(PY) bench/run.py

clean:
	rm -rf var test-artifacts
