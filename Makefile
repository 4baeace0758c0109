# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-deps run run-team study scale test test-fast services services-stop clean-state mlflow-ui

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

# The full study (1 h 50 min on a fresh clone, 2 vCPUs; docs/RESULTS.md, ninth session): every bundled target, all five splits, the
# full attention model, a bigger sample of this machine, fifteen pruned variants, then the pruning
# study (benchmarks/pruning_study.py, resumable; its committed results: docs/results/pruning.json). An experiment over params-study.yaml:
# it leaves the study's params and results in the workspace (`git checkout params.yaml` and
# `dvc checkout` return to the default profile).
study: setup
	@test -d .dvc || $(BIN)/dvc init -q
	cp params-study.yaml params.yaml
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc exp run --name study-$$(date +%Y%m%d-%H%M%S)
	$(BIN)/python benchmarks/pruning_study.py --out-dir reports/pruning-study

# The scale benchmark (docs/SCALE.md): ROWS synthetic TenSet-format records (default: one TenSet
# CPU platform) through import, validation, featurize, LightGBM and evaluation, one process a
# stage, wall time and peak RSS each; resumable in .tensorcost/scale-<ROWS>. SCALE_FLAGS=--dask
# trains on a two-worker Dask LocalCluster instead.
ROWS ?= 8600000
scale: setup
	$(BIN)/python benchmarks/scale_pipeline.py --rows $(ROWS) --work .tensorcost/scale-$(ROWS) --out reports/scale/scale-$(ROWS).json $(SCALE_FLAGS)

# PostgreSQL and OpenSSH's server for the team-stack tests (apt-get as root; elsewhere one line says
# what is missing and those tests skip with that line).
system-deps:
	@bash scripts/system_deps.sh

# Two pytest-xdist workers, a test file each at a time (--dist loadfile): the pipeline tests share
# one `dvc repro` run, so they live in one file (tests/pipeline/test_pipeline.py).
test: setup system-deps
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -n 2 --dist loadfile

# The tests not marked slow (a few minutes): no dvc pipeline, no long TVM measurement.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# The team stack on this machine (README "A team stack"): MLflow on PostgreSQL, an SSH-served DVC
# remote (this repo's `team` remote) and a TVM RPC tracker with one server; prints the ports.
SERVICES_ENV := .tensorcost/services/env.sh
services: setup system-deps
	@test -d .dvc || $(BIN)/dvc init -q
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/tensorcost services up

services-stop: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/tensorcost services down

# `make run` against the stack: registry on the server, the host measured through the tracker,
# then the data pushed to the team remote. Works after `make run` (the `registry` stage records
# which registry the stages register into: a new one re-runs them). An experiment (like `make
# study`): params.yaml keeps measure.rpc afterwards, set by a round-trip editor that keeps every
# comment (`tensorcost params set measure.rpc null`, or `git checkout params.yaml`, returns to local measurement).
run-team: setup
	@test -f $(SERVICES_ENV) || { echo "error: no team stack here ($(SERVICES_ENV) missing): run make services first" >&2; exit 2; }
	. ./$(SERVICES_ENV) && $(BIN)/tensorcost params set measure.rpc "{tracker: '$$TENSORCOST_RPC_TRACKER', key: '$$TENSORCOST_RPC_KEY'}"
	. ./$(SERVICES_ENV) && PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc exp run --name team-$$(date +%Y%m%d-%H%M%S)
	. ./$(SERVICES_ENV) && PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc push -r team

mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db
