# The two set-up commands of README's Quick start: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
INSTANCE ?= var
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
ONLY_BINARY := --only-binary lxml,xmlsec,cryptography,bcrypt,argon2-cffi-bindings,cffi

.PHONY: run test check install install-test system-test-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(ONLY_BINARY) -e .
	$(BIN)/python -c "import lxml.etree, xmlsec; assert lxml.etree.LIBXML_VERSION[:2] == xmlsec.get_libxml_version()[:2]"
	touch $@

install: $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet $(ONLY_BINARY) -e '.[test]'
	touch $@

install-test: $(TEST_STAMP) system-test-deps

# The xmlsec1 CLI cross-checks issued tokens in the tests (Debian package).
system-test-deps:
	@command -v xmlsec1 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq xmlsec1 >/dev/null; }

$(INSTANCE)/sts.toml: | $(STAMP)
	$(BIN)/sts init --demo $(INSTANCE)

run: $(STAMP) $(INSTANCE)/sts.toml
	$(BIN)/sts --config $(INSTANCE)/sts.toml serve

check: install-test
	$(BIN)/ruff check sts tests
	$(BIN)/mypy

test: check
	$(BIN)/pytest -q

.PHONY: fuzz
fuzz: install-test
	STS_FUZZ=1 $(BIN)/pytest -q tests/test_fuzz.py

.PHONY: bench
# Benchmark (not part of `make test`): a few minutes on 2 cores; writes bench/results/<timestamp>.{md,json}.
# wrk is a Debian package, installed like xmlsec1 above. BENCH_ARGS passes options (bench/run.py --help).
bench: install
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
