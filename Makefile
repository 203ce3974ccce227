# Driftwatch — every CI step is a make target.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
export DRIFTWATCH_HOME ?= $(CURDIR)/.driftwatch

.DEFAULT_GOAL := help
.PHONY: help install system-deps demo test unit integration lint typecheck check bench bench-nannyml clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

system-deps: ## Install prometheus, prometheus-alertmanager, postgresql, nginx and wrk (Debian packages) when missing
	@scripts/install-system-deps.sh

$(BIN)/driftwatch: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 ($(PYTHON)) is required" >&2; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

# The prometheus-operator CRD schemas that tests/unit/deploy/test_kubernetes.py validates against (npm).
K8S_VALIDATION := deploy/kubernetes/validation
$(K8S_VALIDATION)/node_modules/.package-lock.json: $(K8S_VALIDATION)/package-lock.json
	npm ci --prefix $(K8S_VALIDATION) --ignore-scripts --no-audit --no-fund --loglevel=error

install: system-deps $(BIN)/driftwatch $(K8S_VALIDATION)/node_modules/.package-lock.json ## Install everything (Debian packages, virtualenv in .venv, npm validators)

demo: install ## The main job: the whole loop end to end on embedded defaults
	$(BIN)/driftwatch demo

test: install ## Install everything and run the whole test suite (what CI runs)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

unit: install ## Unit tests only
	$(BIN)/pytest tests/unit

integration: install ## Integration tests only (real mlflow, prometheus, alertmanager)
	$(BIN)/pytest tests/integration

lint: install ## ruff
	$(BIN)/ruff check .

typecheck: install ## mypy --strict on the packages
	$(BIN)/mypy

# NannyML (bench_quality.py's CBPE peer) in a virtualenv of its own: its pins conflict with boto3's.
NANNYML_VENV := benchmarks/.venv-nannyml
$(NANNYML_VENV)/bin/nannyml-installed: benchmarks/requirements-nannyml.txt
	@[ -x $(NANNYML_VENV)/bin/python ] || $(PYTHON) -m venv $(NANNYML_VENV)
	$(NANNYML_VENV)/bin/pip install -q -r benchmarks/requirements-nannyml.txt
	@touch $@

bench-nannyml: $(NANNYML_VENV)/bin/nannyml-installed ## NannyML in benchmarks/.venv-nannyml for bench_quality.py

bench: install bench-nannyml ## Benchmarks against peers (prints ratios)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## Remove the virtualenv and the local data folder
	rm -rf $(VENV) $(NANNYML_VENV) .driftwatch .mypy_cache .ruff_cache .pytest_cache
