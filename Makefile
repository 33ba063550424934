# Two commands on a fresh machine: `make demo` and `make test`.
# The virtualenv is (re)installed only when pyproject.toml changed (stamp file).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.avrec-installed
BIN := $(VENV)/bin

.PHONY: demo test setup bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,serve,spark,text]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/avrec demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) data/cache .pytest_cache
