# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv on a fresh machine and installs the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/outreach demo

# The whole suite on SQLite, then on PostgreSQL (a fresh database per test), then lint.
test: $(BIN)/.installed
	OUTREACH_TEST_DB=sqlite $(BIN)/pytest -p no:cacheprovider
	OUTREACH_TEST_DB=postgresql $(BIN)/pytest -p no:cacheprovider -m "not sqlite_only"
	$(BIN)/ruff check orchestrator channels tests bench
	$(BIN)/mypy

lint: $(BIN)/.installed
	$(BIN)/ruff check orchestrator channels tests bench
	$(BIN)/ruff format --check orchestrator channels tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var
