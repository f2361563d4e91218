# The two commands a newcomer needs (see README.md):
#   make run   - create .venv, install, start the server on its embedded defaults
#   make test  - create .venv, install everything the tests need (incl. Debian's chromium), run all
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The test suite runs in a network namespace of its own with only a loopback interface:
# browsers gather no candidates on the machine's real interfaces, so no test datagram can
# go anywhere but 127.0.0.1 / ::1, by construction. (As non-root: a user namespace too.)
NETNS := $(shell if [ "$$(id -u)" = 0 ]; then echo "unshare --net --"; \
	else echo "unshare --net --map-root-user --"; fi)

.PHONY: run test lint build-deps system-deps js-deps venv venv-test

# A C compiler and Python's headers build the worker's C fan-out kernel at install time
# (src/incamera/media/fanout_kernel.py); without them the install still works, slower.
build-deps:
	@missing=""; \
	command -v cc >/dev/null || missing="$$missing gcc libc6-dev"; \
	$(PYTHON) -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
	  || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

KERNEL_SOURCES := setup.py src/incamera/media/_fanout.c src/incamera/media/_udp.c

$(VENV)/.installed: pyproject.toml $(KERNEL_SOURCES) | build-deps $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(KERNEL_SOURCES) | build-deps $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

venv: $(VENV)/.installed
venv-test: $(VENV)/.installed-test

# Debian packages the tests use: Chromium and Firefox ESR for the browser tests, openssl for DTLS interop.
system-deps:
	@missing=""; \
	for p in chromium chromium-driver firefox-esr openssl iproute2; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@# Node.js + npm run the browser E2EE code's tests and the OIDC provider (machines of this
	@# kind ship Node 20 + npm 11; Debian's packages are the fallback).
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm; }

# npm packages, from the lockfiles, before the tests run without a network: the pinned
# bundler + MLS library (client/) and the OIDC provider the sign-in tests start.
js-deps: system-deps
	cd client && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cd tests/support/oidc && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

run: venv
	$(BIN)/incamera serve

lint: venv-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: venv-test system-deps js-deps lint
	$(NETNS) sh -c 'ip link set lo up && exec "$$@"' sh $(BIN)/pytest -q
