# The two commands that do everything on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup venv check demo test test-unit bench clean-labs

# System packages, kernel headers, bpffs (root), then the venv.
setup:
	bash scripts/setup.sh

# The venv alone (no root): enough for `make check` and `make test-unit`.
venv:
	bash scripts/venv.sh

# Strict typing over the product packages and the import-layer check.
check: venv
	$(VENV)/bin/mypy
	$(PY) scripts/check_imports.py

demo: setup
	$(VENV)/bin/membrane demo

test: setup
	$(PY) -m pytest -q tests

test-unit: venv
	$(PY) -m pytest -q tests/unit

# `make bench` runs every benchmark; `make bench BENCH_ARGS=--quick` a short version.
bench: setup
	$(PY) -m bench $(BENCH_ARGS)

clean-labs:
	-$(VENV)/bin/membrane lab down --all-mine
