# One documented command each; see README.md.
PY ?= python

.PHONY: install install-dev run test check lint bench

install:
	$(PY) -m pip install -q -r requirements.txt

install-dev:
	$(PY) -m pip install -q -r requirements-dev.txt
	bash scripts/install-chromium.sh

run: install
	$(PY) -m streamlit run app.py

lint:
	$(PY) -m ruff check .

# ruff (which also enforces the import rule), then every test (tests/test_import_rule.py checks it again)
check: lint
	$(PY) -m pytest

test: install-dev check

# by hand, on a quiet machine; figures go to benchmarks/README.md
bench:
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done
