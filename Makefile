# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
BENCH_ARGS ?=

.PHONY: demo test lint types docs unit bench bench-quick profile clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[cli]'
	touch $@

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/python -m sqs_consumer demo

lint: $(STAMP)
	$(BIN)/ruff check sqs_consumer tests benchmarks docs
	$(BIN)/ruff format --check sqs_consumer tests benchmarks docs

types: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

# The docs site, into site/ (git-ignored); --strict turns every warning into a failure: a broken
# link or anchor, a page left out of the nav, a public name missing from the API reference or
# without a docstring (docs/hooks/). `$(BIN)/mkdocs serve` previews it while you edit.
# NO_MKDOCS_2_WARNING silences Material's banner about MkDocs 2 (pyproject keeps mkdocs < 2).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

test: lint types docs unit

$(BENCH_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@ $(STAMP) $(VENV)/.installed

# The whole suite (about 10 minutes on 2 cores); plots go to docs/benchmarks/.
# `make bench BENCH_ARGS="--endpoint-url http://127.0.0.1:4599"` runs the wire part elsewhere.
bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

# A short run (about 2 minutes); plots go to benchmarks/results/plots/.
bench-quick: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench.py --quick $(BENCH_ARGS)

# CPU per message by stage (cProfile, and py-spy where it can attach).
profile: $(BENCH_STAMP)
	$(BIN)/python benchmarks/profile.py --py-spy $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist site *.egg-info
