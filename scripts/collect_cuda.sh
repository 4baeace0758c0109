#!/usr/bin/env bash
# Collect a CUDA GPU dataset on a GPU machine in one call, from the repository root:
#
#   OUT=/some/dir scripts/collect_cuda.sh [BUDGET_S]        (default budget 540 s, all phases)
#
# 1. installs the carried wheels in .whl/ (apache_tvm, apache_tvm_ffi for this Python) into
#    /tmp/site, no network; tensorcost itself runs from src/ (PYTHONPATH), it is not installed;
# 2. finds the CUDA toolkit (CUDA_HOME / CUDA_PATH / /usr/local/cuda*, nvcc on PATH) for TVM's
#    CUDA compile callback and libcudart for TVM's CUDA runtime;
# 3. smoke check (scripts/cuda_smoke.py): GPU -> target id, TVM target, 2 programs built and run;
#    picks the CUDA compile mode that works (nvcc first, then NVRTC);
# 4. samples the GPU task set (docs/dataset-params-cuda.yaml: the bundled dataset's tasks,
#    programs from the CUDA design space) unless one is carried in $PROGRAMS (default
#    data/bundled/programs/gpu when it exists: a task set sampled beforehand anywhere, no GPU needed);
# 5. measures under `timeout` with what is left of the budget; the collector writes a part per
#    batch, so the kill loses at most one batch, and a second call on the same machine resumes;
# 6. packs the records into $OUT in the bundled layout (`tensorcost dataset pack`):
#    platforms/<platform>/cuda.parquet, programs/gpu/{tasks.json,programs.parquet}, and collect-cuda.log.
#
# Environment: OUT (default $WORK/out), WORK (default /tmp/tensorcost-cuda), PROGRAMS,
# TVM_CUDA_COMPILE_MODE (nvcc | nvrtc; default nvcc, the other one is tried when it fails),
# MODE (collect | remeasure: the 5% noise study of the bundled records of this GPU instead),
# HIDE_TORCH (default 1: the collector needs no torch, and tvm_ffi imports it in every builder
# worker otherwise, about 2 s per process), TASK_LIMIT (measure only the first N tasks).
set -uo pipefail
T0=$(date +%s)
BUDGET=${1:-${BUDGET_S:-540}}
RESERVE=35                                  # seconds kept for packing and the summary
repo=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/tensorcost-cuda}
OUT=${OUT:-$WORK/out}
mkdir -p "$WORK/tmp" "$OUT"
# Builder artifacts and nvcc's temporaries stay in the work dir (a killed batch leaves some).
export TMPDIR="$WORK/tmp"
log="$OUT/collect-cuda.log"
exec > >(tee -a "$log") 2>&1
left() { echo $((T0 + BUDGET - $(date +%s))); }
say() { echo "[collect_cuda +$(($(date +%s) - T0))s] $*"; }

say "repo $repo, work $WORK, out $OUT, budget ${BUDGET}s; $(python3 --version 2>&1); $(nproc) cores"

# 1. TVM from the carried wheels ------------------------------------------------------------
site=/tmp/site
export PYTHONPATH="$site:$repo/src${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c 'import tvm' >/dev/null 2>&1; then
  if [ -f "$repo/.devcarry/B/tvm-py.tar.xz" ]; then
    # The apache-tvm wheel (100 MB) is over what one device call carries (64 MiB): it travels
    # re-packed over two calls (scripts/pack_tvm_for_device.sh): libtvm_compiler.so, xz-compressed,
    # in a first call that unpacks it to $TVM_COMPILER_CACHE, the rest of the wheel in this one.
    cache=${TVM_COMPILER_CACHE:-/root/tvm-cache}
    mkdir -p "$site" && tar xJf "$repo/.devcarry/B/tvm-py.tar.xz" -C "$site" || { say "unpacking tvm failed"; exit 2; }
    if [ -f "$cache/libtvm_compiler.so" ]; then
      cp "$cache/libtvm_compiler.so" "$site/tvm/lib/"
    elif [ -f "$repo/.devcarry/A/libtvm_compiler.so.xz" ]; then
      xz -T0 -dc "$repo/.devcarry/A/libtvm_compiler.so.xz" > "$site/tvm/lib/libtvm_compiler.so"
    else
      say "libtvm_compiler.so is neither in $cache nor carried in .devcarry/A"; exit 2
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$repo"/.devcarry/B/*.whl \
      || { say "pip install of tvm_ffi failed"; exit 2; }
  elif ls "$repo"/.whl/*.whl >/dev/null 2>&1; then
    say "installing $(ls "$repo"/.whl/ | tr '\n' ' ')"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$repo"/.whl/*.whl \
      || { say "pip install failed"; exit 2; }
  else
    say "no TVM importable and no wheels in $repo/.whl/"; exit 2
  fi
fi
say "installed: $(python3 -c 'import tvm, tvm_ffi; print("tvm", tvm.__version__, "tvm_ffi", tvm_ffi.__version__)' 2>&1 | tail -1)"

# 2. CUDA toolkit and runtime libraries -----------------------------------------------------
cuda=""
for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda /usr/local/cuda-13.0 /usr/local/cuda-13 /usr/local/cuda-1*; do
  if [ -n "$d" ] && [ -x "$d/bin/nvcc" ]; then cuda=$d; break; fi
done
if [ -z "$cuda" ] && command -v nvcc >/dev/null; then
  d=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  [ -x "$d/bin/nvcc" ] && cuda=$d
fi
if [ -n "$cuda" ]; then
  # TVM's callback runs `nvcc` from PATH; NVRTC finds headers through CUDA_PATH (a wrapper
  # script on PATH would point it at the wrong root).
  export CUDA_HOME=$cuda CUDA_PATH=$cuda PATH="$cuda/bin:$PATH"
  export LD_LIBRARY_PATH="$cuda/lib64:$cuda/targets/x86_64-linux/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
# libcudart.so.13 / libnvrtc.so.13 of the pip CUDA wheels next to torch, as a fallback.
nvlibs=$(python3 - <<'EOF' 2>/dev/null
import glob, os, site, sysconfig
roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
dirs = sorted({os.path.dirname(p) for r in roots for p in glob.glob(os.path.join(r, "nvidia", "**", "lib", "lib*.so*"), recursive=True)})
print(":".join(dirs))
EOF
)
[ -n "$nvlibs" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$nvlibs"
export TVM_CUDA_COMPILE_MODE=${TVM_CUDA_COMPILE_MODE:-nvcc}
export TVM_FFI_DISABLE_TORCH_C_DLPACK=1 TQDM_MININTERVAL=20   # progress bars: a line every 20 s in the log
say "CUDA toolkit: ${cuda:-not found}; nvcc: $(command -v nvcc || echo none) ($(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo '?')); host compiler: $(command -v g++ || command -v gcc || command -v cc || echo none)"
nvidia-smi --query-gpu=index,name,memory.total,compute_cap,clocks.max.sm,driver_version --format=csv,noheader 2>&1 | sed 's/^/[nvidia-smi] /'

if [ "${HIDE_TORCH:-1}" = 1 ]; then
  mkdir -p "$WORK/notorch/torch"
  echo 'raise ImportError("torch is hidden from the collector (scripts/collect_cuda.sh, HIDE_TORCH=0 to keep it)")' > "$WORK/notorch/torch/__init__.py"
  export PYTHONPATH="$WORK/notorch:$PYTHONPATH"
fi

# 3. Smoke check ----------------------------------------------------------------------------
cd "$WORK"
timeout -k 10 180 python3 "$repo/scripts/cuda_smoke.py" "$WORK/smoke.env" "$repo/data/bundled/programs/cpu"
rc=$?
if [ $rc -ne 0 ] || [ ! -f "$WORK/smoke.env" ]; then
  say "smoke check failed (rc $rc): not collecting"; sleep 1; exit 3
fi
# shellcheck disable=SC1091
source "$WORK/smoke.env"
export TVM_CUDA_COMPILE_MODE
say "target $TARGET, CUDA compile mode $TVM_CUDA_COMPILE_MODE"

# 3b. MODE=remeasure: the noise study of the bundled GPU records instead of a collection ------
# (a random 5% of the valid records measured again on the same kind of GPU; see docs/DATASET.md)
if [ "${MODE:-collect}" = remeasure ]; then
  first="$repo/data/bundled/platforms/${TARGET%%.*}/cuda.parquet"
  [ -f "$first" ] || { say "no bundled records for $TARGET ($first): re-measure needs the GPU they came from"; exit 5; }
  t=$(( $(left) - 10 ))
  say "re-measuring 5% of $first (timeout ${t}s)"
  (cd "$repo" && timeout -k 10 $t python3 -m tensorcost.cli dataset remeasure --target "$TARGET" --out "$OUT/noise-cuda.parquet" \
    --fraction 0.05 --seed 0 --params "$repo/docs/dataset-params-cuda.yaml")
  say "remeasure rc $?"
  ls -la "$OUT"
  sleep 1
  exit 0
fi

# 4. The GPU task set -----------------------------------------------------------------------
python3 - "$repo/docs/dataset-params-cuda.yaml" "$WORK/params.yaml" "$TARGET" "$repo/data/bundled/programs/cpu" <<'EOF'
import sys, yaml
src, dst, target, tasks_from = sys.argv[1:]
p = yaml.safe_load(open(src))
p["targets"] = [target]
p["sample"].update({"reference_target": target, "tasks_from": tasks_from})
open(dst, "w").write(yaml.safe_dump(p, sort_keys=False))
EOF
PROGRAMS=${PROGRAMS:-$repo/data/bundled/programs/gpu}
if [ -f data/programs/tasks.json ]; then
  say "task set already in $WORK/data/programs (resuming)"
elif [ -f "$PROGRAMS/tasks.json" ]; then
  mkdir -p data/programs && cp "$PROGRAMS/tasks.json" "$PROGRAMS/programs.parquet" data/programs/
  say "task set copied from $PROGRAMS"
else
  t=$(( $(left) - RESERVE - 120 )); [ $t -gt 240 ] && t=240
  [ $t -lt 30 ] && { say "no time left to sample"; exit 4; }
  say "sampling (timeout ${t}s)"
  timeout -k 10 $t python3 -m tensorcost.cli dataset sample --params "$WORK/params.yaml" --work "$WORK" || { say "sampling failed"; exit 4; }
fi
python3 -c 'import json; d = json.load(open("data/programs/tasks.json")); print("[collect_cuda] task set:", len(d["tasks"]), "tasks, meta", {k: v for k, v in d["meta"].items() if k != "networks"})'

# 5. Measure --------------------------------------------------------------------------------
t=$(( $(left) - RESERVE ))
if [ $t -gt 20 ]; then
  say "measuring on $TARGET (timeout ${t}s)"
  timeout -k 10 $t python3 -m tensorcost.cli dataset collect --work "$WORK" --params "$WORK/params.yaml" --target "$TARGET" ${TASK_LIMIT:+--task-limit $TASK_LIMIT}
  rc=$?
  [ $rc -eq 124 ] && say "measuring stopped by the budget (resumable: run again to continue)" || say "collect rc $rc"
else
  say "no time left to measure"
fi
rm -rf "${TMPDIR:?}"/*

# 6. Pack -----------------------------------------------------------------------------------
if ls "data/raw/$TARGET/parts/"*.parquet >/dev/null 2>&1; then
  python3 -m tensorcost.cli dataset pack --work "$WORK" --dest "$OUT" --target "$TARGET" --kind gpu
  python3 - "$OUT/platforms/${TARGET%%.*}/cuda.parquet" <<'EOF'
import sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1]).to_pandas()
ok = t[t.error_no == 0]
print(f"[summary] {len(t)} records, {len(ok)} valid, {t.task_id.nunique()} tasks ({ok.task_id.nunique()} with valid records)")
if len(ok):
    g = ok.groupby(["task_id", "task_name"]).latency_s.agg(["count", "min", "median", "max"]) * [1, 1e6, 1e6, 1e6]
    print("[summary] per task: valid programs, latency min/median/max (us)")
    print(g.round(2).to_string())
    print(f"[summary] measured between {t.measured_at.min():.0f} and {t.measured_at.max():.0f} ({(t.measured_at.max() - t.measured_at.min()) / max(len(t), 1):.3f} s per record)")
for code, grp in t[t.error_no != 0].groupby("error_no"):
    print(f"[summary] error {code}: {len(grp)} records, e.g. {str(grp.error_msg.iloc[0])[-600:]!r}")
EOF
else
  say "no measured records to pack"
fi
ls -la "$OUT"
say "done in $(($(date +%s) - T0)) s"
sleep 1
