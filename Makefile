# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Dependencies are pinned in constraints.txt; torch is pinned to the CPU build 2.13.0 (any other
# torch pulls gigabytes of CUDA packages).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install java browser demo test lint bench evaluate clean

install: $(STAMP) java

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sparkscaler needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -c constraints.txt -e ".[all,dev]"
	@touch $(STAMP)

# Spark 4 runs on Java 17 or 21; install Java 17 with apt-get when no java is on PATH.
java:
	@command -v java >/dev/null 2>&1 || { \
		echo "java not found: installing openjdk-17-jre-headless with apt-get"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jre-headless; }
	@java -version 2>&1 | head -n 1

# The dashboard's browser test drives Debian's Chromium through Playwright (no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "chromium not found: installing it with apt-get (for the dashboard's browser test)"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	@chromium --version 2>/dev/null | head -n 1

demo: install
	$(VENV)/bin/sparkscaler demo

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

test: install browser lint
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/controller_loop.py
	$(PY) benchmarks/reaction_time.py

# The full evaluation behind the README's headline tables (about 40 minutes on 2 cores).
evaluate: install
	$(VENV)/bin/sparkscaler evaluate --out docs/evaluation

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
