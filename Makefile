# Every target sets itself up: a local virtual environment with quickq installed
# in editable mode and the dev tools. Nothing needs installing by hand.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck unit fmt bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/quickq demo

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports --no-cache

# The benchmark's adapters run as scripts whose import root is bench/adapters,
# so they are checked in a run of their own, from there.
typecheck: $(STAMP)
	$(BIN)/mypy
	MYPYPATH=bench/adapters $(BIN)/mypy --explicit-package-bases bench/adapters/*_adapter.py

unit: $(STAMP)
	$(BIN)/pytest -q

# The benchmark suite (bench/, issue 6): installs each peer in its own venv under
# bench/.work and Redis/PostgreSQL from Debian's packages, then rewrites
# docs/benchmarks/. Options: make bench BENCH_ARGS="--quick --systems offline".
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
