# One entry point for every task. The virtualenv is created on first use, so a
# fresh machine needs only Python 3.11+ and make.
SHELL := /bin/bash
# The interpreter .venv is built from (scripts/venv-python.sh says which, and why).
PYTHON ?= $(shell scripts/venv-python.sh)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install dev test lint audit migrate invoke redrive verify-infra bench bench-smoke eval localstack \
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

test-localstack: $(STAMP) ## Contract tests through LocalStack on this machine (tests/localstack_contract, about 5 min)
	scripts/localstack-tools.sh
	$(PY) -m pytest tests/localstack_contract -m localstack -p no:cacheprovider $(PYTEST_ARGS)

test: $(STAMP) ## Run the test suite with coverage
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

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

bench: $(STAMP) ## Benchmarks (about 5 min): bench/results/<date>.json/.md/.png and docs/performance.md
	$(PY) -m bench $(BENCH_ARGS)

eval: $(STAMP) ## Checklists scored against known statements (EVAL_ARGS="--set large"; docs/evaluation.md)
	$(PY) -m evaluation $(EVAL_ARGS)

bench-smoke: $(STAMP) ## Every benchmark phase on tiny counts (CI); results in .local/bench/
	$(PY) -m bench --quick
