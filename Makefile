# The two set-up commands of the README: `make demo` and `make test`.
# Each creates .venv on a fresh machine and installs the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint install sysdeps fonts browser clean

# pip compiles what it installs, but not an editable install's own sources: compileall
# does, once, or every daemon start compiles them again where PYTHONDONTWRITEBYTECODE is
# set (0.1 s a start). A file edited later is compiled again when imported.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/python -m compileall -q orchestrator channels
	touch $@

install: $(BIN)/.installed sysdeps

# What the system must provide beyond Python packages (Debian packages, apt-get only).
sysdeps: fonts browser

# A font with Chinese characters for zh-CN letters (PDF): without one they would print
# as empty boxes, so `outreach templates preview` refuses. HarfBuzz-subset lets WeasyPrint
# cut that 20 MB font down in milliseconds (its fontTools fallback takes ~14 s per
# letter). Idempotent; apt-get only.
fonts:
	@if command -v fc-list >/dev/null 2>&1 && [ -n "$$(fc-list :lang=zh family)" ] \
	    && ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset; then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing fonts-noto-cjk and libharfbuzz-subset0 (zh-CN letters)"; \
	  $$SUDO apt-get install -y -q fonts-noto-cjk fontconfig libharfbuzz-subset0 >/dev/null \
	    || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q fonts-noto-cjk fontconfig libharfbuzz-subset0 >/dev/null; } \
	    || echo "warning: could not install fonts-noto-cjk/libharfbuzz-subset0: zh-CN letter PDFs need them"; \
	else \
	  echo "warning: no CJK font found (fc-list :lang=zh): zh-CN letter PDFs need one"; \
	fi

# Chromium, for the test that opens the HTML report in a real browser. Idempotent.
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
	  :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "installing chromium (the HTML report's browser test)"; \
	  $$SUDO apt-get install -y -q chromium >/dev/null \
	    || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q chromium >/dev/null; } \
	    || echo "warning: could not install chromium: the report's browser test will fail in CI"; \
	else \
	  echo "warning: no chromium: the report's browser test needs one"; \
	fi

demo: $(BIN)/.installed
	$(BIN)/outreach demo

# The whole suite on SQLite, then on PostgreSQL (a fresh database per test), then lint.
# Tests spend most of their time waiting on subprocesses, servers and databases, so they
# run in TEST_WORKERS processes (pytest-xdist; each test has its own files, ports and
# database): 3 on a 2-core machine takes the suite from 17 to about 9 minutes.
TEST_WORKERS ?= 3
test: $(BIN)/.installed
	OUTREACH_TEST_DB=sqlite $(BIN)/pytest -p no:cacheprovider -n $(TEST_WORKERS)
	OUTREACH_TEST_DB=postgresql $(BIN)/pytest -p no:cacheprovider -n $(TEST_WORKERS) -m "not sqlite_only"
	$(MAKE) --no-print-directory lint

# ruff's lint and format check, and mypy --strict (product code, tests and bench).
lint: $(BIN)/.installed
	$(BIN)/ruff check orchestrator channels tests bench
	$(BIN)/ruff format --check orchestrator channels tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var
