"""Synthetic TenSet-format record files of any size, from the bundled programs: scale data one can
make anywhere, labelled synthetic so that it can never be taken for measurements.

Real TenSet (about 52M records) cannot be downloaded everywhere; the scale benchmark and the tests
need its size and its format, not its numbers. `write_synthetic_tenset` copies the bundled program
set as many times as it takes to reach `rows` records:

* layout as TenSet's: `<out>/measure_records/synthetic-<platform>/<task hash>.json`, one file a
  (copied) task, one auto_scheduler v0.6 JSON line a record:
  `{"i": [[workload_key, target, hardware_params], [[], trace]], "r": [costs, 0, all_cost, timestamp], "v": "v0.6"}`;
  `tensorcost import-tenset` imports it as target `synthetic-<platform>.tenset`;
* the steps field carries the bundled program's MetaSchedule trace (`[[instructions], [decisions]]`)
  verbatim: the importer stores the steps as the record's trace, so the imported trace is exactly
  the bundled one and featurizing it costs what featurizing the real program costs;
* copy `c` of a task gets the workload key `["<md5 of (source task, c, seed)>", *shape dims]`
  (TenSet's form: a hash, then the flattened shapes), hence a new task id and file; record ids
  are the importer's (file tag + line), new for every file;
* latencies: each of the program's measured repeats (on `source_target`) times one lognormal
  factor per record, `exp(sigma * z)`, z ~ N(0, 1). `sigma` is the platform's measured
  pass-to-pass noise: the median relative difference m between the two passes of its noise file
  (`dataset.relative_differences`, what `tensorcost dataset noise` reports), converted assuming
  each pass carries independent lognormal noise: log(b/a) ~ N(0, 2 sigma^2), so the median of
  |log(b/a)| ~= m (small noise) is 0.6745 * sqrt(2) * sigma, sigma = m / (0.6745 * sqrt(2));
* streaming: one file's lines at a time (memory flat in `rows`), deterministic for a seed, written
  under a temporary directory renamed into place when complete.

It exists for the scale benchmark and the tests only: no accuracy figure may come from it, and
the registry refuses any model trained on a synthetic target (`is_synthetic_target`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from . import dataset
from .errors import MissingDataError, UserError
from .hardware.catalog import catalog_target
from .records import read_records
from .records.synthetic import synthetic_platform
from .safeio import write_text

SOURCE_NOTE = "SYNTHETIC.md"  # not *.json: `import-tenset <out>` does not take it for records
_MEDIAN_ABS_NORMAL = 0.6744897501960817  # median of |z|, z ~ N(0, 1)


def noise_sigma(source_target: str, root: Path | None = None) -> tuple[float, dict]:
    """(sigma of the per-record lognormal factor, the measured noise it comes from) for a bundled
    target with a noise file (see the module docstring for the conversion)."""
    root = Path(root) if root is not None else dataset.BUNDLED_DIR
    path = dataset.noise_records_path(source_target, root)
    if not path.exists():
        with_noise = [t for t in dataset.bundled_targets(root) if dataset.noise_records_path(t, root).exists()]
        raise MissingDataError(f"{path}: no measured noise for {source_target}; targets with a noise file: {', '.join(with_noise)}")
    first = dataset.bundled_tables([source_target], root)[source_target]
    noise = dataset.relative_differences(first, dataset.relabel(read_records(path), source_target))
    if not noise.get("n"):
        raise MissingDataError(f"{path}: no program measured in both passes of {source_target}")
    return noise["median"] / (_MEDIAN_ABS_NORMAL * math.sqrt(2.0)), noise


def _source_tasks(source_target: str, root: Path) -> tuple[list[dict], str, list]:
    """The source's tasks with their valid programs: [{task_id, dims, programs: [(trace bytes,
    latencies, measured_at)]}], the TenSet target string, the hardware params."""
    hw = catalog_target(source_target)
    progs_dir = dataset.programs_dir(hw.kind, root)
    records_path = dataset.bundled_records_path(source_target, root)
    for p in (progs_dir / "programs.parquet", progs_dir / "tasks.json", records_path):
        if not p.exists():
            raise MissingDataError(f"{p}: not in the bundled dataset; bundled targets: {', '.join(dataset.bundled_targets(root))}")
    programs = pq.read_table(progs_dir / "programs.parquet", columns=["task_id", "program_id", "trace"]).to_pydict()
    trace_of = {(t, p): tr for t, p, tr in zip(programs["task_id"], programs["program_id"], programs["trace"])}
    measured = pq.read_table(records_path, columns=["task_id", "program_id", "latencies", "error_no", "measured_at"])
    measured = measured.filter(pc.equal(measured["error_no"], 0)).to_pydict()
    shapes = {t["task_id"]: t["shapes"] for t in json.loads((progs_dir / "tasks.json").read_text())["tasks"]}
    tasks: dict[str, dict] = {}
    for t, p, lats, at in zip(measured["task_id"], measured["program_id"], measured["latencies"], measured["measured_at"]):
        trace = trace_of.get((t, p))
        if trace is None or t not in shapes or not lats:
            continue
        task = tasks.setdefault(t, {"task_id": t, "dims": [int(d) for s in shapes[t] for d in s], "programs": []})
        task["programs"].append((orjson.dumps(orjson.loads(trace)), lats, at))  # the importer's spelling of the steps
    if not tasks:
        raise MissingDataError(f"{records_path}: no measured program of {source_target} with a bundled trace")
    platform = synthetic_platform(source_target)
    if hw.kind == "cpu":
        target_str = f"llvm -keys=cpu -mcpu={hw.variant.mcpu or 'generic'} -num-cores={hw.threads} -model={platform}"
        hardware = [hw.threads, hw.vector_bytes or 16, 64, 0, 0, 0, 0, 0]
    else:
        target_str = f"cuda -keys=cuda,gpu -model={platform}"
        hardware = [-1, 16, 64, 49152, 2147483647, 1024, 8, 32]
    return [tasks[t] for t in sorted(tasks)], target_str, hardware


def write_synthetic_tenset(out_dir: str | Path, rows: int, source_target: str = "zen5-2c.avx2-t1", seed: int = 0,
                           programs_per_task: int | None = None, progress: bool = True, root: str | Path | None = None) -> dict:
    """Write `rows` synthetic TenSet records under `out_dir/measure_records/synthetic-<platform>/`
    (module docstring: layout, ids, latencies); returns a summary dict.

    Tasks are copied in turn (copy 0 of every task, then copy 1, ...), each copy one file of
    `programs_per_task` records (default: the task's bundled programs, once each; more cycle
    through them again, with other noise), the last file cut to reach `rows` exactly. The platform
    directory must not exist yet (written under a temporary name, renamed when complete).
    """
    if rows < 1:
        raise UserError(f"--rows must be at least 1, got {rows}")
    if programs_per_task is not None and programs_per_task < 1:
        raise UserError(f"--programs-per-task must be at least 1, got {programs_per_task}")
    root = Path(root) if root is not None else dataset.BUNDLED_DIR
    started = time.perf_counter()
    sigma, noise = noise_sigma(source_target, root)
    tasks, target_str, hardware = _source_tasks(source_target, root)
    platform = synthetic_platform(source_target)
    base = Path(out_dir) / "measure_records"
    final = base / platform
    if final.exists():
        raise UserError(f"{final} already exists: remove it or choose another --out")
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".{platform}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    rng = np.random.default_rng(seed)
    target_json, hardware_json = orjson.dumps(target_str), orjson.dumps(hardware)
    head = b'{"i":[['
    written = files = copies = 0
    nbytes = 0
    try:
        with tqdm(total=rows, desc="synth-tenset", unit="row", unit_scale=True, disable=not progress) as bar:
            while written < rows:
                for task in tasks:
                    progs = task["programs"]
                    n = min(programs_per_task or len(progs), rows - written)
                    key = hashlib.md5(f"synthetic|{source_target}|{task['task_id']}|{copies}|{seed}".encode()).hexdigest()
                    wkey = orjson.dumps(orjson.dumps([key, *task["dims"]]).decode())
                    prefix = head + wkey + b"," + target_json + b"," + hardware_json + b"],[[],"
                    factors = np.exp(sigma * rng.standard_normal(n)).tolist()
                    lines = []
                    for i in range(n):
                        trace, lats, at = progs[i % len(progs)]
                        costs = [v * factors[i] for v in lats]
                        lines.append(prefix + trace + b']],"r":[' + orjson.dumps(costs) + b",0," + orjson.dumps(sum(costs) + 1.0)
                                     + b"," + str(int(at) + i).encode() + b'],"v":"v0.6"}\n')
                    data = b"".join(lines)
                    (tmp / f"{key}.json").write_bytes(data)
                    nbytes += len(data)
                    files += 1
                    written += n
                    bar.update(n)
                    if written >= rows:
                        break
                copies += 1
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary = {
        "out_dir": str(out_dir), "platform_dir": str(final), "target_id": f"{platform}.tenset", "synthetic": True,
        "source_target": source_target, "rows": written, "files": files, "source_tasks": len(tasks),
        "source_programs": sum(len(t["programs"]) for t in tasks), "copies": copies, "seed": seed,
        "programs_per_task": programs_per_task, "noise_sigma": sigma, "noise": noise, "bytes": nbytes,
        "seconds": round(time.perf_counter() - started, 3),
    }
    note = (f"# Synthetic TenSet-format records: not measurements\n\n`{final.name}/` holds {written:,} records made by "
            f"`tensorcost dataset synth-tenset` from the bundled programs of `{source_target}` (their measured latencies times a "
            f"lognormal factor, sigma {sigma:.4f} from the platform's measured noise). They import as target "
            f"`{platform}.tenset`; for the scale benchmark and tests only: no accuracy figure may come from them.\n\n"
            f"```json\n{json.dumps(summary, indent=1)}\n```\n")
    write_text(Path(out_dir) / SOURCE_NOTE, note)
    return summary
