# Tertulia — fresh-machine entry points: `make serve` and `make test`.
VENV ?= .venv
PYTHON ?= python3
ARGS ?=

.PHONY: serve test lint unit install install-test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[fast]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(VENV)/bin/pip install -q -e '.[fast,test,load]'
	$(VENV)/bin/pip install -q -e '.[fuzz]' || echo "atheris unavailable here: fuzz harness tests will be skipped"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test
	bash scripts/install-system-deps.sh

## serve: install into .venv and run web client, signal, focus and one bridge in one process
serve: install
	$(VENV)/bin/tertulia serve $(ARGS)

## test: install what the tests need (Chromium included) and run lint, unit, integration and browser tests
test: install-test
	bash scripts/run-tests.sh

lint: install-test
	$(VENV)/bin/ruff check src tests fuzz bench
	$(VENV)/bin/mypy

unit: install-test
	$(VENV)/bin/python -m pytest tests/unit -q

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
