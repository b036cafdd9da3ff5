# The two set-up commands: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test typecheck docs wheel bench serve clean

$(BIN)/python:
	@echo "creating .venv (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing mfrec and its dependencies into .venv (first run only, a few minutes)..."
	$(BIN)/pip install --quiet -e ".[dev,plot,serve,spark,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mfrec demo

test: $(STAMP)
	$(BIN)/python -m pytest

# the service on the demo model (trained by `mfrec demo` when missing), http://127.0.0.1:8000/
serve: $(STAMP)
	test -f out/implicit-als.mfrec || $(BIN)/mfrec demo --out-dir out
	$(BIN)/mfrec serve out/implicit-als.mfrec --train-data ml-latest-small --db sqlite:///out/ratings.db

typecheck: $(STAMP)
	$(BIN)/mypy

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

wheel: $(STAMP)
	PYTHON=$(BIN)/python bash .ci/wheel_smoke.sh

bench: $(STAMP)
	bash benchmarks/run.sh

clean:
	rm -rf $(VENV) build dist site src/*.egg-info
