#!/usr/bin/env bash
# Collect a program set (docs/DATASET.md): sample once, measure on every target of this machine, pack
# into data/bundled (programs/cpu and platforms/<this platform>/<variant>.parquet).
#   scripts/collect_dataset.sh [WORK_DIR] [TASKS_PER_ROUND]
# Targets are interleaved a few tasks at a time, so that every target's records cover the same
# tasks measured in the same time window. Resumable: run it again after an interruption and it
# measures only what is missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/tensorcost-dataset}
step=${2:-6}
export PATH="$repo/.venv/bin:$PATH"
mkdir -p "$work"
params="$repo/docs/dataset-params.yaml"
targets=$(python -c 'import sys, yaml; print(" ".join(yaml.safe_load(open(sys.argv[1]))["targets"]))' "$params")
[ -f "$work/data/programs/tasks.json" ] || tensorcost dataset sample --params "$params" --work "$work"
n_tasks=$(python -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["tasks"]))' "$work/data/programs/tasks.json")
for ((limit = step; limit < n_tasks + step; limit += step)); do
  for t in $targets; do
    tensorcost dataset collect --work "$work" --params "$params" --target "$t" --task-limit $((limit < n_tasks ? limit : n_tasks))
  done
done
targs=(); for t in $targets; do targs+=(--target "$t"); done
tensorcost dataset pack --work "$work" --dest "$repo/data/bundled" --kind cpu "${targs[@]}"
