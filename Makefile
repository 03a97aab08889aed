# Two commands for a new user (see README):
#   make demo   set up a virtual environment and plan the shipped example workload
#   make test   set up the test environment and run ruff and the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.core

demo: $(VENV)/.core
	$(BIN)/muxsim plan examples/small-4llm.json

test: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 -p no:cacheprovider

lint: $(VENV)/.test
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
