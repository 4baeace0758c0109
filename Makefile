# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run study test test-fast clean-state mlflow-ui

# Idempotent and fast when nothing changed: re-installs only when the pins or the package metadata change.
setup: $(STAMP)
$(STAMP): pyproject.toml setup.py constraints.txt src/tensorcost/records/_recscan.c
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: setup
	@test -d .dvc || $(BIN)/dvc init -q
	$(BIN)/dvc config core.analytics false
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

# The full study (docs/RESULTS.md has its wall time): every bundled target, all five splits, the
# full attention model, a bigger sample of this machine, fifteen pruned variants, then the pruning
# study (benchmarks/pruning_study.py, resumable; its committed results: docs/results/pruning.json). An experiment over params-study.yaml:
# it leaves the study's params and results in the workspace (`git checkout params.yaml` and
# `dvc checkout` return to the default profile).
study: setup
	@test -d .dvc || $(BIN)/dvc init -q
	cp params-study.yaml params.yaml
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc exp run --name study-$$(date +%Y%m%d-%H%M%S)
	$(BIN)/python benchmarks/pruning_study.py --out-dir reports/pruning-study

test: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

# Unit tests only (seconds): no TVM measurement, no dvc pipeline.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db
