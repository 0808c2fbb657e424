# One documented command each; see README.md.
PY ?= python
# the fast tier: unit, reference, in-process CLI and AppTest (no browser, fault injection, fuzzing, Spark
# or long simulations: those carry the browser/slow marks or live in FULL_ONLY of tests/conftest.py)
FAST = -m "not browser and not slow and not full"
# test workers (pytest-xdist): one per core of a 2-core machine; each test file runs whole in one worker,
# so a module's fixtures (demo databases, a Spark session) are built once
JOBS ?= 2
PARALLEL = -n $(JOBS) --dist loadfile

.PHONY: install install-dev run test check lint typecheck bench

install:
	$(PY) -m pip install -q -r requirements.txt

# development: tests, lint and the Spark extra (requirements-spark.txt: pyspark, Ibis's Spark backend)
install-dev:
	$(PY) -m pip install -q -r requirements-dev.txt
	bash scripts/install-chromium.sh

run: install
	$(PY) -m streamlit run app.py

# ruff (which also enforces the import rule), ruff's formatter, the import-linter layer contracts (.importlinter)
# and mypy on cxstats/ (a cold run ~35 s on the quiet 2-core machine, a few seconds with .mypy_cache)
lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	lint-imports
	$(PY) -m mypy

# mypy alone on cxstats/ (non-strict, [tool.mypy] in pyproject.toml; clean, and kept clean by make lint)
typecheck:
	$(PY) -m mypy

# the fast tier (under 5 minutes): lint, then every test that is not browser, slow or full-only (FULL_ONLY
# and FULL_ONLY_TESTS in tests/conftest.py); CXSTATS_FAST=1 runs the heavy properties with fewer examples;
# the 15 slowest tests are printed at the end
check: lint
	CXSTATS_FAST=1 $(PY) -m pytest $(PARALLEL) $(FAST) --durations=15

# everything: lint, then every test (browser journeys, fault injection, fuzzing, slow simulations)
test: install-dev lint
	$(PY) -m pytest $(PARALLEL) --durations=30

# by hand, on a quiet machine; figures go to benchmarks/README.md
bench:
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
