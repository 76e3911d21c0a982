# The two commands of the README: `make demo` (the main job on an embedded default) and
# `make test` (the whole suite). Both create the virtual environment when it is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,slurm,kubernetes]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/daskmic demo -o daskmic-demo

test: $(STAMP)
	$(BIN)/ruff check daskmic tests benchmarks
	$(BIN)/mypy daskmic
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks --smoke

clean:
	rm -rf daskmic-demo .pytest_cache
