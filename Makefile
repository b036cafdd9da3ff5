# The two set-up commands: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(BIN)/python:
	@echo "creating .venv (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing mfrec and its dependencies into .venv (first run only, a few minutes)..."
	$(BIN)/pip install --quiet -e ".[dev,plot,spark]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mfrec demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	bash benchmarks/run.sh

clean:
	rm -rf $(VENV) build src/*.egg-info
