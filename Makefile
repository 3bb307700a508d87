# One entry point for every task. The virtualenv is created on first use, so a
# fresh machine needs only Python 3.11+ and make.
SHELL := /bin/bash
# The interpreter .venv is built from (scripts/venv-python.sh says which, and why).
PYTHON ?= $(shell scripts/venv-python.sh)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The unit tier in a network namespace of its own where the system allows it: a test that opens
# any socket fails there, which proves the tier does no I/O.
NO_NETWORK := $(shell unshare -n true 2>/dev/null && echo unshare -n)

.DEFAULT_GOAL := help
.PHONY: help install dev test test-unit lint audit migrate invoke redrive verify-infra bench bench-smoke eval localstack \
	test-localstack

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt layers/core/requirements.txt functions/process/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

install: $(STAMP) ## Create .venv and install everything the service and tests need

dev: $(STAMP) ## Run the whole service on this machine, no Docker (Ctrl-C stops it)
	$(PY) -m devstack dev

localstack: $(STAMP) ## Run the stack inside LocalStack 4.14.0 on this machine, no Docker (Ctrl-C stops it)
	scripts/localstack-tools.sh
	$(PY) localstack/host.py

test-localstack: $(STAMP) ## LocalStack on this machine: stopping it leaves nothing behind, then the contract tests (about 5 min)
	scripts/localstack-tools.sh
	$(PY) -m pytest tests/e2e/test_localstack_stop.py tests/e2e/localstack_contract -m localstack -p no:cacheprovider $(PYTEST_ARGS)

test: $(STAMP) ## Run the three tiers (tests/unit, tests/integration, tests/e2e) with coverage
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

# --confcutdir: the shared tests/conftest.py (PostgreSQL, moto, the offline LLM) is not loaded.
test-unit: $(STAMP) ## The unit tier alone: domain logic against in-memory fakes, no I/O (seconds)
	$(NO_NETWORK) $(PY) -m pytest tests/unit --confcutdir=tests/unit -p no:cacheprovider -q $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (with the bandit security rules)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

audit: $(STAMP) ## pip-audit of the functions' pinned dependencies (needs the PyPI vulnerability service)
	$(VENV)/bin/pip install --quiet pip-audit
	$(VENV)/bin/pip-audit --strict -r layers/core/requirements.txt -r functions/process/requirements.txt

migrate: $(STAMP) ## Apply database migrations to DATABASE_URL (or the embedded server)
	$(PY) -m devstack migrate

invoke: $(STAMP) ## Invoke one function with an event: make invoke FN=submit EVENT=events/submit.json
	$(PY) -m devstack invoke $(FN) $(EVENT)

redrive: $(STAMP) ## Move dead-lettered jobs back to the queue of the running `make dev`
	$(PY) -m devstack redrive

verify-infra: $(STAMP) ## cfn-lint, sam validate --lint, sam build, compose config: no AWS, no Docker
	scripts/verify-infra.sh

bench: $(STAMP) ## Benchmarks of the service (about 2 min); rewrites the table in docs/performance.md
	scripts/sam-tools.sh
	$(PY) -m bench $(BENCH_ARGS)

eval: $(STAMP) ## Checklists scored against known statements (EVAL_ARGS="--set large"; docs/evaluation.md)
	$(PY) -m evaluation $(EVAL_ARGS)

bench-smoke: $(STAMP) ## Every benchmark phase on tiny counts (CI); the table goes to .local/bench/quick.md
	scripts/sam-tools.sh
	$(PY) -m bench --quick
