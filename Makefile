# The two commands that do everything on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-unit bench clean-labs

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/membrane demo

test: setup
	$(PY) -m pytest -q tests

test-unit: setup
	$(PY) -m pytest -q tests/unit

# `make bench` runs every benchmark; `make bench BENCH_ARGS=--quick` a short version.
bench: setup
	$(PY) -m bench $(BENCH_ARGS)

clean-labs:
	-$(VENV)/bin/membrane lab down --all-mine
