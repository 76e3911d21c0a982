# The two commands of the README: `make demo` (the main job on an embedded default) and
# `make test` (the whole suite). Both create the virtual environment when it is missing.
# `make docs` builds the documentation site into docs/_build/html (warnings are errors).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test docs lint bench bench-smoke clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,slurm,kubernetes,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/daskmic demo -o daskmic-demo

test: $(STAMP)
	$(BIN)/ruff check daskmic tests benchmarks
	$(BIN)/mypy daskmic
	$(BIN)/pytest

docs: $(STAMP)
	$(BIN)/sphinx-build -b html -E -W --keep-going -n -q docs docs/_build/html

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks --smoke

clean:
	rm -rf daskmic-demo .pytest_cache docs/_build docs/_generated docs/reference/generated
