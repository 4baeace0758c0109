#!/usr/bin/env bash
# Collect the bundled dataset (docs/DATASET.md): sample once, measure on every target, pack.
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
cp "$repo/docs/dataset-params.yaml" "$work/params.yaml"
cd "$work"
targets=$(python -c 'import yaml; print(" ".join(yaml.safe_load(open("params.yaml"))["targets"]))')
[ -f data/programs/tasks.json ] || tensorcost stage sample
n_tasks=$(python -c 'import json; print(len(json.load(open("data/programs/tasks.json"))["tasks"]))')
for ((limit = step; limit < n_tasks + step; limit += step)); do
  for t in $targets; do
    tensorcost stage collect --target "$t" --task-limit $((limit < n_tasks ? limit : n_tasks))
  done
done
targs=(); for t in $targets; do targs+=(--target "$t"); done
tensorcost dataset pack --work-dir "$work" --dest "$repo/data/bundled" "${targs[@]}"
