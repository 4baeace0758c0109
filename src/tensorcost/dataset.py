"""The dataset: the bundled layout (one directory per platform, one records file per variant),
relabelling, sampling, merging, and dataset-level views (statistics, rank agreement between
targets, pass-to-pass noise). Pure Arrow and NumPy, no TVM.

    data/bundled/programs/<kind>/{tasks.json, programs.parquet}   the program sets (cpu, gpu)
    data/bundled/platforms/<platform>/<variant>.parquet          records of target <platform>.<variant>
    data/bundled/platforms/<platform>/noise-<variant>.parquet    a second pass over a sample of them
    data/bundled/platforms/<platform>/superseded-<variant>.parquet  earlier records of tasks measured again whole
    data/bundled/platforms/<platform>/SOURCE.md                  the machine, the command, the date
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import records as rec
from .errors import MissingDataError
from .metrics import pairwise_counts
from .records import program_id
from .records.sorted_files import is_sorted, merge_sorted
from .safeio import write_text

BUNDLED_DIR = Path("data/bundled")
NOT_TARGET_PREFIXES = ("noise-", "superseded-")  # files beside a platform's records that are not a target's


def stats(paths: Iterable[str | Path] | None = None) -> dict:
    """`{"targets": {target: {"tasks", "networks", "valid_records", "error_records"}}, "total_valid_records"}`
    of records files, or of the bundled dataset (under its real target ids) when `paths` is None."""
    table = rec.read_records(list(paths)) if paths else pa.concat_tables(bundled_tables(bundled_targets()).values())
    cols = table.select(["target", "task_id", "networks", "error_no"]).to_pydict()
    per: dict[str, dict] = {}
    for target, task, nets, err in zip(cols["target"], cols["task_id"], cols["networks"], cols["error_no"]):
        s = per.setdefault(target, {"tasks": set(), "networks": set(), "valid_records": 0, "error_records": 0})
        if task not in s["tasks"]:
            s["tasks"].add(task)
            s["networks"].update(json.loads(nets).keys())
        if err == 0:
            s["valid_records"] += 1
        else:
            s["error_records"] += 1
    out = {t: {"tasks": len(s["tasks"]), "networks": len(s["networks"]), "valid_records": s["valid_records"], "error_records": s["error_records"]} for t, s in sorted(per.items())}
    return {"targets": out, "total_valid_records": int(sum(s["valid_records"] for s in out.values()))}


def platforms_dir(root: Path = BUNDLED_DIR) -> Path:
    return root / "platforms"


def programs_dir(kind: str, root: Path = BUNDLED_DIR) -> Path:
    """The bundled program set measured on every platform of this kind ("cpu" or "gpu")."""
    return root / "programs" / kind


def bundled_records_path(target_id: str, root: Path = BUNDLED_DIR) -> Path:
    platform_id, _, variant_id = target_id.partition(".")
    return platforms_dir(root) / platform_id / f"{variant_id}.parquet"


def bundled_targets(root: Path = BUNDLED_DIR) -> list[str]:
    """Target ids with records in the bundled dataset (`<platform>.<variant>`)."""
    base = platforms_dir(root)
    return sorted(f"{f.parent.name}.{f.stem}" for f in base.glob("*/*.parquet") if not f.stem.startswith(NOT_TARGET_PREFIXES)) if base.exists() else []


def relabel(table, target_id: str):
    """Records under their real target id: `target` set and `record_id` recomputed from it (files
    measured before platforms existed carry a host label such as `cpu-avx2-t1`, and the same
    programs re-measured on another machine would otherwise collide)."""
    tasks = table.column("task_id").to_pylist()
    programs = table.column("program_id").to_pylist()
    out = table.set_column(table.schema.get_field_index("target"), "target", pa.array([target_id] * table.num_rows, pa.string()))
    ids = pa.array([rec.record_id(target_id, t, p) for t, p in zip(tasks, programs)], pa.string())
    return out.set_column(out.schema.get_field_index("record_id"), "record_id", ids)


def _unit_hash(key: str, seed: int) -> float:
    return int.from_bytes(hashlib.blake2b(f"{seed}|{key}".encode(), digest_size=8).digest(), "little") / 2**64


def sample_task_ids(task_ids: Iterable[str], tasks: int, seed: int) -> list[str]:
    """The tasks `sample_programs` draws from a program set holding `task_ids` (0 = all), in its
    order: a reader can then load only their programs (records.read_programs)."""
    # salted: the split strategies hash the same (task, program) keys, and a sample drawn by the
    # same hash would fall entirely on one side of a split
    chosen = sorted(task_ids, key=lambda t: _unit_hash(f"sample|{t}", seed))
    return chosen[:tasks] if tasks else chosen


def sample_programs(programs: dict[str, list[str]], tasks: int, per_task: int, seed: int) -> dict[str, list[str]]:
    """A reproducible sample of a program set: `tasks` tasks and `per_task` programs of each,
    ranked by a seeded hash of their ids (0 = all). The same seed picks the same programs on
    every machine, so fresh measurements line up with the bundled ones."""
    out = {}
    for t in sample_task_ids(programs, tasks, seed):
        ranked = sorted(programs[t], key=lambda tr: _unit_hash(f"sample|{t}|{program_id(tr)}", seed))
        out[t] = ranked[:per_task] if per_task else ranked
    return out




def _ranks(x):
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x), dtype=np.float64)
    r[order] = np.arange(len(x))
    return r


def spearman(a, b) -> float:
    if len(a) < 2:
        return float("nan")
    ra, rb = _ranks(np.asarray(a)), _ranks(np.asarray(b))
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den else float("nan")


def cross_target_agreement(tables: dict) -> dict:
    """For each pair of targets: rank agreement of the same programs' latencies, per task.

    `tables` maps target id -> canonical records table. Returns
    `{"a|b": {"spearman_median", "spearman_mean", "pca", "same_best", "tasks", "programs"}}` where
    Spearman is computed within each task over the programs valid on both targets, PCA pools the
    pairs, and `same_best` counts the tasks whose fastest program is the same on both.
    """
    lat: dict[str, dict[tuple, float]] = {}
    for t, table in tables.items():
        d = table.filter(pc.equal(table["error_no"], 0)).select(["task_id", "program_id", "latency_s"]).to_pydict()
        lat[t] = {(a, b): c for a, b, c in zip(d["task_id"], d["program_id"], d["latency_s"])}
    out = {}
    names = sorted(lat)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sorted(set(lat[a]) & set(lat[b]))
            if not common:  # other program sets (a GPU's): nothing to compare
                continue
            by_task: dict[str, list] = {}
            for key in common:
                by_task.setdefault(key[0], []).append((lat[a][key], lat[b][key]))
            rhos, good, total, same_best = [], 0.0, 0, 0
            for pairs in by_task.values():
                if len(pairs) < 3:
                    continue
                x, y = np.array(pairs).T
                rhos.append(spearman(x, y))
                g, n = pairwise_counts(-y, x)  # does b's order (faster = higher score) match a's?
                good += g
                total += n
                same_best += int(np.argmin(x) == np.argmin(y))
            out[f"{a}|{b}"] = {
                "spearman_median": float(np.nanmedian(rhos)) if rhos else float("nan"),
                "spearman_mean": float(np.nanmean(rhos)) if rhos else float("nan"),
                "pca": good / total if total else float("nan"),
                "same_best": same_best,
                "tasks": len(rhos),
                "programs": len(common),
            }
    return out


def relative_differences(first, second) -> dict:
    """Median and p90 of |second - first| / first over programs measured twice (same record id)."""
    a = dict(zip(first.column("record_id").to_pylist(), first.column("latency_s").to_pylist()))
    diffs = []
    for rid, lat in zip(second.column("record_id").to_pylist(), second.column("latency_s").to_pylist()):
        if lat is not None and a.get(rid):
            diffs.append(abs(lat - a[rid]) / a[rid])
    if not diffs:
        return {"n": 0}
    d = np.array(diffs)
    return {"n": len(d), "median": float(np.median(d)), "p90": float(np.percentile(d, 90)), "max": float(d.max())}


def pack(work_dir: Path, targets: list[str], kind: str, root: Path = BUNDLED_DIR, merge: bool = False) -> dict:
    """Copy a collection run (`tensorcost dataset sample` + `dataset collect` in `work_dir`) into
    the bundled layout: each target's records (sorted, zstd) and the program set of `kind`.

    `merge`: the run's tasks join the existing program set, and its records the targets'
    existing files. A task the set already has is left out (its records too: the set's own
    programs of that task are the ones every platform measures), unless the run **extends** it
    (`sample.extend`): its programs hold every program the set has of the task, and more. Then
    the new programs join the set, and each target's records of the task are the run's, measured
    whole in one window (labels are normalised within a task: one task's records from two
    sessions would mix their drift); the target's earlier records of it move to
    `superseded-<variant>.parquet` beside it, nothing is dropped. A task to extend that some
    target of the run has not measured whole (a collect stopped early, `--task-limit`) is left
    out and named (`tasks_not_measured_whole`): collect again, pack again (a task packed already
    is in the set, so a second pack adds only the rest)."""
    dest = programs_dir(kind, root)
    src = work_dir / "data/programs"
    skip: set[str] = set()
    extended: set[str] = set()
    unfinished: set[str] = set()
    if not (src / "tasks.json").exists():
        raise MissingDataError(f"{src / 'tasks.json'}: no sampled run there: run `tensorcost dataset sample --work {work_dir}` first")
    for t in targets:
        if not (work_dir / "data/raw" / t / "parts").exists():
            raise MissingDataError(f"{work_dir / 'data/raw' / t / 'parts'}: no records of {t} in this run: run "
                                   f"`tensorcost dataset collect --work {work_dir} --target {t}` first (nothing was written)")
    run_records = {t: rec.read_records(work_dir / "data/raw" / t / "parts") for t in targets}
    dest.mkdir(parents=True, exist_ok=True)
    if merge and (dest / "tasks.json").exists():
        old, new = json.loads((dest / "tasks.json").read_text()), json.loads((src / "tasks.json").read_text())
        have = {t["task_id"] for t in old["tasks"]}
        run_programs = pq.read_table(src / "programs.parquet")
        # the set's programs of the run's tasks only, their ids without traces: never the set whole
        set_programs = rec.read_program_ids(dest / "programs.parquet", run_programs.column("task_id").unique().to_pylist())
        extended = extended_tasks(set_programs, run_programs, have)
        unfinished = set().union(*(not_measured_whole(table, run_programs, extended) for table in run_records.values()))
        extended -= unfinished
        skip = ({t["task_id"] for t in new["tasks"]} & have) - extended
        old["tasks"] += [t for t in new["tasks"] if t["task_id"] not in have]
        entry = {k: v for k, v in new["meta"].items()} | {"tasks": len(new["tasks"]) - len(skip) - len(extended)}
        if extended:
            entry["extended_tasks"] = len(extended)
        old["meta"].setdefault("merged", []).append(entry)
        held_ids = program_keys(set_programs)
        keep = [tid not in skip and (tid, pid) not in held_ids
                for tid, pid in zip(run_programs.column("task_id").to_pylist(), run_programs.column("program_id").to_pylist())]
        additions = run_programs.filter(pa.array(keep, pa.bool_()))
    counts = {}
    superseded_counts = {}
    # the records first, the program set last: a pack killed in between is packed again whole
    # (the set does not hold the new programs yet, so the tasks are still extended; records the
    # file or the superseded file hold already are not moved twice)
    for t, table in run_records.items():
        table = table.filter(pc.invert(pc.is_in(table["task_id"], value_set=pa.array(sorted(skip), pa.string()))))
        path = bundled_records_path(t, root)
        if merge and path.exists():
            counts[t], moved = merge_target_records(t, path, table, extended, root)
            if moved:
                superseded_counts[t] = moved
        else:
            rec.write_records(table.sort_by([(k, "ascending") for k in RECORD_KEYS]), path)
            counts[t] = table.num_rows
    if merge and (dest / "tasks.json").exists():
        rec.merge_programs(dest / "programs.parquet", additions)
        write_text(dest / "tasks.json", json.dumps(old, indent=1))
    else:
        for name in ("tasks.json", "programs.parquet"):
            shutil.copy(src / name, dest / name)
    out = {"records": counts, "tasks_already_in_the_set": sorted(skip - unfinished)}
    if extended or unfinished:
        out |= {"tasks_extended": sorted(extended), "records_superseded": superseded_counts, "tasks_not_measured_whole": sorted(unfinished)}
    return out


RECORD_KEYS = ["task_id", "program_id"]  # a packed records file's order
SCAN_BATCH_ROWS = 65_536  # a batch of a few id columns


def merge_target_records(target_id: str, path: Path, run: pa.Table, extended: set, root: Path = BUNDLED_DIR) -> tuple[int, int]:
    """A target's packed records file (`path`) with a run's records merged in, as `pack --merge`
    does: the target's earlier records of `extended` tasks move to its superseded file (except
    measurements the run holds: a pack done again) and the run's records take their place; a
    record the file holds already keeps the file's row. Streamed: the file is read a batch at a
    time, twice (memory: a batch, the run's records and the extended tasks' earlier ones, never
    the file). Returns (records in the file, records moved to the superseded file)."""
    run, _ = merge_records([run])
    grown = pa.array(sorted(extended), pa.string())
    run_ids = run.column("record_id").unique()
    earlier_parts, held = [], set()
    with rec.open_records_file(path) as pf:
        for batch in pf.iter_batches(batch_size=rec.COPY_BATCH_ROWS, columns=list(rec.COLUMNS)):
            part = pa.Table.from_batches([batch]).cast(rec.RECORDS_SCHEMA)
            is_grown = pc.is_in(part.column("task_id"), value_set=grown)
            earlier_parts.append(part.filter(is_grown))
            others = part.filter(pc.invert(is_grown))
            held.update(others.filter(pc.is_in(others.column("record_id"), value_set=run_ids)).column("record_id").to_pylist())
    earlier = pa.concat_tables(earlier_parts) if earlier_parts else rec.RECORDS_SCHEMA.empty_table()
    run_now = set(_measurements(run))
    earlier = earlier.filter(pa.array([k not in run_now for k in _measurements(earlier)], pa.bool_()))
    if earlier.num_rows:
        keep_superseded(target_id, earlier, root)
    run = run.filter(pc.invert(pc.is_in(run.column("record_id"), value_set=pa.array(sorted(held), pa.string()))))

    def drop_grown(part: pa.Table) -> pa.Table:
        return part.filter(pc.invert(pc.is_in(part.column("task_id"), value_set=grown)))

    if is_sorted(path, RECORD_KEYS):
        rows = merge_sorted(path, run, path, RECORD_KEYS, rec.RECORDS_SCHEMA, rec.COPY_BATCH_ROWS, transform=drop_grown, compression="zstd")
    else:  # a file another writer left unsorted: sorted whole, once
        table = pa.concat_tables([drop_grown(rec.read_records(path)), run.select(rec.COLUMNS).cast(rec.RECORDS_SCHEMA)])
        rec.write_records(table.sort_by([(k, "ascending") for k in RECORD_KEYS]), path)
        rows = table.num_rows
    return rows, earlier.num_rows


def program_keys(table: pa.Table) -> set[tuple[str, str]]:
    """The (task id, program id) pairs of a records or programs table."""
    return set(zip(table.column("task_id").to_pylist(), table.column("program_id").to_pylist()))


def split_tasks(records: pa.Table, task_ids) -> tuple[pa.Table, pa.Table]:
    """(records of other tasks, records of `task_ids`)."""
    mask = pc.is_in(records["task_id"], value_set=pa.array(sorted(task_ids), pa.string()))
    return records.filter(pc.invert(mask)), records.filter(mask)


def _measurements(table: pa.Table) -> list[tuple]:
    """(record id, measurement time, mean latency) of each record: one measurement of one program."""
    return list(zip(table.column("record_id").to_pylist(), table.column("measured_at").to_pylist(), table.column("latency_s").to_pylist()))


def keep_superseded(target_id: str, earlier: pa.Table, root: Path = BUNDLED_DIR) -> Path:
    """Append a target's earlier records of tasks measured again whole to its
    superseded-<variant>.parquet (a second pass of those programs, from another session); a
    measurement it holds already is not appended twice."""
    path = superseded_records_path(target_id, root)
    if not path.exists():
        rec.write_records(earlier, path)
        return path
    # the file read a batch at a time: its measurements of these records only, then copied with them after
    ids, held = earlier.column("record_id").unique(), set()
    with rec.open_records_file(path) as pf:  # a superseded file cut short is named, not a traceback
        for batch in pf.iter_batches(batch_size=SCAN_BATCH_ROWS, columns=["record_id", "measured_at", "latency_s"]):
            part = pa.Table.from_batches([batch])
            held.update(_measurements(part.filter(pc.is_in(part.column("record_id"), value_set=ids))))
    earlier = earlier.filter(pa.array([k not in held for k in _measurements(earlier)], pa.bool_()))
    rec.copy_records(path, path, then=earlier)
    return path


def extended_tasks(set_programs: pa.Table, run_programs: pa.Table, have: set) -> set:
    """Tasks of the set whose programs in the run are a strict superset of the set's."""
    def by_task(t: pa.Table) -> dict:
        out: dict[str, set] = {}
        for tid, pid in zip(t.column("task_id").to_pylist(), t.column("program_id").to_pylist()):
            out.setdefault(tid, set()).add(pid)
        return out

    held, run = by_task(set_programs), by_task(run_programs)
    return {tid for tid, pids in run.items() if tid in have and held.get(tid, set()) < pids}


def not_measured_whole(records: pa.Table, run_programs: pa.Table, tasks: set) -> set:
    """The tasks of `tasks` with a program of the run that `records` has no record of (valid or
    error): an extended task replaces a target's earlier records only when measured whole."""
    if not tasks:
        return set()
    measured = program_keys(records)
    return {tid for tid, pid in zip(run_programs.column("task_id").to_pylist(), run_programs.column("program_id").to_pylist())
            if tid in tasks and (tid, pid) not in measured}


def merge_records(sources: list) -> tuple:
    """Concatenate record tables, keeping the first record of each record id (earlier sources
    win: a program measured in both the bundled dataset and a fresh run keeps its bundled
    record, since labels are normalised per task and mixing sessions within a task would mix
    their drift). Returns (table, duplicates dropped)."""
    table = pa.concat_tables(sources)
    seen: set = set()
    keep = []
    for rid in table.column("record_id").to_pylist():
        keep.append(rid not in seen)
        seen.add(rid)
    merged = table.filter(pa.array(keep, pa.bool_()))  # typed: an empty list would be nulls
    return merged, table.num_rows - merged.num_rows


def most_distant_pair(tables: dict) -> tuple[str, str, dict]:
    """The two targets whose rankings of the same programs agree least (lowest median
    Spearman), with every pair's agreement."""
    agreement = cross_target_agreement(tables)
    if not agreement:
        raise ValueError(f"need at least two targets with common programs, got {sorted(tables)}")
    pair = min(agreement, key=lambda k: agreement[k]["spearman_median"])
    a, b = pair.split("|")
    return a, b, agreement


def noise_records_path(target_id: str, root: Path = BUNDLED_DIR) -> Path:
    platform_id, _, variant_id = target_id.partition(".")
    return platforms_dir(root) / platform_id / f"noise-{variant_id}.parquet"


def superseded_records_path(target_id: str, root: Path = BUNDLED_DIR) -> Path:
    """Where a target's records of tasks measured again whole go (kept: a free second pass)."""
    platform_id, _, variant_id = target_id.partition(".")
    return platforms_dir(root) / platform_id / f"superseded-{variant_id}.parquet"


def bundled_tables(targets: Iterable[str], root: Path = BUNDLED_DIR) -> dict:
    """Each bundled target's records, relabelled to its id."""
    targets = list(targets)
    if not targets:
        raise MissingDataError(f"no bundled dataset under {platforms_dir(root)} (run from the repository root)")
    out = {}
    for t in targets:
        path = bundled_records_path(t, root)
        if not path.exists():
            raise MissingDataError(f"{path}: {t} is not in the bundled dataset; bundled targets: {', '.join(bundled_targets(root))}")
        out[t] = relabel(rec.read_records(path), t)
    return out


def agreement_markdown(agreement: dict) -> str:
    """`cross_target_agreement`'s result as a Markdown table (docs/DATASET.md)."""
    lines = ["| targets | Spearman (median over tasks) | PCA | same fastest program | tasks | programs |",
             "| --- | --- | --- | --- | --- | --- |"]
    for pair, r in agreement.items():
        a, b = pair.split("|")
        lines.append(f"| `{a}` vs `{b}` | {r['spearman_median']:.3f} | {r['pca']:.3f} | {r['same_best']} of {r['tasks']} | {r['tasks']} | {r['programs']:,} |")
    return "\n".join(lines)


def noise_markdown(report: dict) -> str:
    """`noise_and_platforms`' result as a Markdown table: noise first, then the other platforms."""
    lines = ["| target | programs | noise median / p90 | two passes: PCA, Spearman | vs other target: PCA, Spearman |",
             "| --- | --- | --- | --- | --- |"]
    for t, r in report.items():
        n, p = r["noise"], r["two_passes"]
        others = "; ".join(f"`{o}` {v['pca']:.3f}, {v['spearman_median']:.3f}" for o, v in r["vs"].items())
        lines.append(f"| `{t}` | {r['programs']} | {n['median']:.1%} / {n['p90']:.1%} | {p['pca']:.3f}, {p['spearman_median']:.3f} | {others} |")
    return "\n".join(lines)


def _program_keys(table: pa.Table) -> pa.ChunkedArray:
    return pc.binary_join_element_wise(table["task_id"], table["program_id"], "/")


def noise_and_platforms(targets: list[str], root: Path = BUNDLED_DIR) -> dict:
    """Each target's pass-to-pass noise next to the distance between platforms, on the same
    programs: for every target with a noise file, the relative differences and the rank
    agreement (PCA, Spearman) of its two passes, and its first pass against every other target
    on exactly the programs of its noise sample. Agreement between platforms above the noise
    ceiling is measurement noise; below it, the platforms differ."""
    tables = bundled_tables(targets, root)
    out = {}
    for t in targets:
        path = noise_records_path(t, root)
        if not path.exists():
            continue
        second = relabel(rec.read_records(path), f"{t}#2")
        first = tables[t]
        # One trace can be a program of two tasks (same loop structure, other shapes): a program is
        # (task_id, program_id), never program_id alone.
        keys = sorted(set(_program_keys(second).to_pylist()))
        subset = {name: tab.filter(pc.is_in(_program_keys(tab), value_set=pa.array(keys))) for name, tab in tables.items()}
        row = {"programs": len(keys), "noise": relative_differences(first, relabel(rec.read_records(path), t))}
        passes = cross_target_agreement({t: subset[t], f"{t}#2": second})
        row["two_passes"] = next(iter(passes.values()))
        row["vs"] = {}
        for o in targets:
            pair = cross_target_agreement({t: subset[t], o: subset[o]}) if o != t else {}
            if pair:  # empty: another program set (a GPU's)
                row["vs"][o] = next(iter(pair.values()))
        out[t] = row
    return out
