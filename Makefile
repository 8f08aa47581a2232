# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Dependencies are pinned in constraints.txt; torch is pinned to the CPU build 2.13.0 (any other
# torch pulls gigabytes of CUDA packages). uv installs them (pip installs uv first): a fresh
# install took 42 s in a fresh clone, against 54.5 s with pip. uv is told pip's index and find-links
# (PIP_INDEX_URL, PIP_FIND_LINKS; this machine keeps the CPU torch wheel there), and compiles
# the .pyc files at install (--compile-bytecode): where PYTHONDONTWRITEBYTECODE is set (this
# machine sets it), Python never writes them, so without them every process compiles torch and
# sklearn from source on import (3 s more each), which made the test lanes 15-20 % slower.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
UV     := $(VENV)/bin/uv
UV_PIP := $(UV) pip install --quiet --python $(PY) --compile-bytecode \
	$(if $(PIP_INDEX_URL),--index-url $(PIP_INDEX_URL)) \
	$(foreach dir,$(PIP_FIND_LINKS),--find-links $(dir))
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install java browser sshd demo test test-lanes test-fast test-spark lane-fast-isolated lane-spark \
	lint bench evaluate clean

install: $(STAMP) java

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "sparkscaler needs Python 3.11 or newer")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet -c constraints.txt uv
	$(UV_PIP) -c constraints.txt "torch==2.13.0" -e ".[all,dev]"
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

# The hosts backend's tests run their own sshd in each of a few Linux network namespaces (ip
# from iproute2), from a config they generate: the system's sshd is not used, nor started here.
sshd:
	@{ test -x /usr/sbin/sshd && command -v ssh-keygen >/dev/null && command -v ip >/dev/null; } || { \
		echo "sshd not found: installing openssh-server with apt-get (for the hosts backend's tests)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server iproute2; }
	@/usr/sbin/sshd -V 2>&1 | head -n 1

demo: install
	$(VENV)/bin/sparkscaler demo

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

# The tests run in lanes (pyproject.toml names the markers):
# - the fast lane: everything without real Spark or a browser, on two pytest-xdist workers
#   (a test file stays on one worker, so its module fixtures are built once);
# - the Spark lane: the tests marked spark or browser (real local clusters, local-mode apps,
#   Chromium), one at a time: two JVM-heavy tests at once on 2 cores make their waits flaky;
# - the isolated Spark lane: Spark tests whose daemons use only addresses and ports of their
#   own (namespace hosts, a master started by hand), one at a time, after the fast lane.
# The few tests marked timing assert a wall-clock latency, so they run first, on their own.
# `make test` installs and lints, runs the timing tests, then the Spark lane beside the fast lane
# followed by the isolated one; make prints each side's report when that side is done, and
# fails if anything fails. Each lane keeps its own pytest cache, so `--lf` works per lane.
PYTEST      := $(PY) -m pytest
TIMING      := $(PYTEST) -m "timing and not spark and not browser" -p no:cacheprovider
FAST_LANE   := $(PYTEST) -m "not spark and not browser and not timing" -n 2 --dist loadfile \
	-o cache_dir=.pytest_cache/fast
SPARK_LANE  := $(PYTEST) -m "(spark or browser) and not isolated" -o cache_dir=.pytest_cache/spark
ISOLATED_LANE := $(PYTEST) -m "spark and isolated" -o cache_dir=.pytest_cache/isolated

test: install browser sshd lint
	@$(MAKE) --no-print-directory test-lanes

# What `make test` runs after install and lint (benchmarks/test_lanes.py times it).
test-lanes:
	$(TIMING)
	@echo "running the Spark lane beside the fast lane and then the isolated Spark lane;" \
		"each side's report appears when that side is done"
	@$(MAKE) --no-print-directory -k -j2 --output-sync=target lane-fast-isolated lane-spark

# The fast lane alone (no Java, no browser needed): a few minutes.
test-fast: $(STAMP)
	$(TIMING)
	$(FAST_LANE)

# Every Spark test, one at a time: real local clusters, namespace hosts, Chromium.
test-spark: install browser sshd
	$(SPARK_LANE); spark=$$?; $(ISOLATED_LANE); isolated=$$?; exit $$((spark || isolated))

lane-fast-isolated:
	$(FAST_LANE); fast=$$?; $(ISOLATED_LANE); isolated=$$?; exit $$((fast || isolated))

lane-spark:
	$(SPARK_LANE)

bench: install
	$(PY) benchmarks/controller_loop.py
	$(PY) benchmarks/reaction_time.py

# The full evaluation behind the README's headline tables (about 40 minutes on 2 cores).
evaluate: install
	$(VENV)/bin/sparkscaler evaluate --out docs/evaluation

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
