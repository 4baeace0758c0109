"""Measuring a program set on one target: each trace re-applied, built and run (locally or through an RPC tracker), written as canonical records in resumable parts; the MetaSchedule database of the best."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from .. import records as rec
from .. import rpc
from ..errors import UserError
from ..hardware import Target
from ..params import MeasureConfig
from ..rpc import UNAVAILABLE_MARK, check_servers, is_unavailable, servers_registered
from ..safeio import write_text
from ..tvm_support import apply_trace_json, build_in_target_scope, register_x86_intrinsics_only, tvm_target, tvm_version
from .programs import Task

log = logging.getLogger(__name__)


# Error codes follow auto_scheduler's MeasureErrorNo so TenSet and our records agree.
NO_ERROR, INSTANTIATION_ERROR, COMPILE_HOST, RUNTIME_DEVICE, BUILD_TIMEOUT, RUN_TIMEOUT = 0, 1, 2, 4, 6, 7
# Ours, past auto_scheduler's codes (0-8): no RPC server could run the program (the server died,
# or none was registered under the key). Not a fact about the program: a resumed run measures it
# again, and the records suite refuses a dataset that still holds one.
RUNNER_UNAVAILABLE = 9


class RunIncomplete(UserError):
    """Some programs could not be run (no RPC server): their error records are retried by the next run."""


def clip_error(msg: str, limit: int = 2000) -> str:
    """At most `limit` characters of an error message: its head and its tail (a TVM traceback
    ends with the error itself: a CUDA runtime error, an nvcc message)."""
    if len(msg) <= limit:
        return msg
    head = limit // 4
    return msg[:head] + "\n[...]\n" + msg[-(limit - head - 7):]


def _record(task: Task, hw: Target, trace: str, lat: list[float], error_no: int, error_msg: str | None, version: str) -> dict:
    pid = rec.program_id(trace)
    return {
        "record_id": rec.record_id(hw.id, task.task_id, pid),
        "source": "tvm-metaschedule",
        "target": hw.id,
        "task_id": task.task_id,
        "task_name": task.task_name,
        "networks": json.dumps(task.networks, sort_keys=True),
        "task_weight": task.weight,
        "op_kind": task.op_kind,
        "shapes": json.dumps(task.shapes),
        "flops": task.flops,
        "bytes_moved": task.bytes_moved,
        "program_id": pid,
        "trace": trace,
        "latencies": lat,
        "latency_s": (sum(lat) / len(lat)) if (error_no == NO_ERROR and lat) else None,
        "error_no": error_no,
        "error_msg": error_msg,
        "measured_at": time.time(),
        "tvm_version": version,
    }


def runner_device_type(hw: Target) -> str:
    """The device string of `RunnerInput` (`tvm.runtime.device`): "cpu" or "cuda"."""
    return "cuda" if hw.kind == "gpu" else "cpu"


def make_builder_runner(hw: Target, cfg: MeasureConfig, servers: int = 0):
    """LocalBuilder with cheap intrinsics in its workers; LocalRunner on `hw.threads` threads
    (CPU) or on CUDA device 0 (GPU; its timings are taken one program at a time). With
    `cfg.rpc`, MetaSchedule's RPCRunner instead: builds stay here, runs go to the key's servers,
    one session per server at a time (`servers`, else `rpc.servers`, else as many as are
    registered), each on `hw.threads` threads."""
    import tvm.s_tir.meta_schedule as ms

    evaluator = ms.runner.EvaluatorConfig(number=cfg.number, repeat=cfg.repeat, min_repeat_ms=cfg.min_repeat_ms, enable_cpu_cache_flush=False)
    if cfg.rpc is not None:
        builder = ms.builder.LocalBuilder(
            max_workers=cfg.builder_workers, timeout_sec=cfg.build_timeout_s, initializer=register_x86_intrinsics_only,
            f_build=build_in_target_scope if hw.kind == "gpu" else None,
        )
        workers = servers or cfg.rpc.servers or rpc.servers_registered(cfg.rpc) or 1
        return builder, rpc.make_runner(cfg.rpc, evaluator, workers, hw.threads if hw.kind == "cpu" else 0)
    if hw.kind == "cpu":
        # The runner's worker inherits the environment at spawn; without this the TVM runtime
        # uses half the cores on x86, whatever num-cores the target claims. A GPU target's
        # `threads` are its SMs: the host side of a CUDA module only launches kernels, so the
        # thread pool is left as it is.
        os.environ["TVM_NUM_THREADS"] = str(hw.threads)
    builder = ms.builder.LocalBuilder(
        max_workers=cfg.builder_workers, timeout_sec=cfg.build_timeout_s, initializer=register_x86_intrinsics_only,
        f_build=build_in_target_scope if hw.kind == "gpu" else None,  # CPU: MetaSchedule's default build
    )
    runner = ms.runner.LocalRunner(timeout_sec=cfg.run_timeout_s, evaluator_config=evaluator)
    return builder, runner


def measure_task(task: Task, traces: list[str], hw: Target, builder, runner, cfg: MeasureConfig) -> Iterator[list[dict]]:
    """Build and run programs of one task on `hw`, yielding the records of each batch as soon as
    it is measured (so a caller can persist them); failures become error records."""
    import tvm.s_tir.meta_schedule as ms

    target = tvm_target(hw)
    version = tvm_version()
    device_type = runner_device_type(hw)
    for start in range(0, len(traces), cfg.run_batch):
        rows: list[dict] = []
        chunk = []  # (trace, schedule)
        if cfg.rpc is not None and servers_registered(cfg.rpc) == 0:
            # Nothing could run these: record them at once (retried by the next run) rather
            # than build them and wait for a server per program.
            msg = f"{UNAVAILABLE_MARK} no server registered under key {cfg.rpc.key!r} at {cfg.rpc.tracker} when its batch started"
            yield [_record(task, hw, tr, [], RUNNER_UNAVAILABLE, msg, version) for tr in traces[start:start + cfg.run_batch]]
            continue
        for tr in traces[start:start + cfg.run_batch]:
            try:
                chunk.append((tr, apply_trace_json(task.mod, tr)))
            except Exception as exc:  # noqa: BLE001  (any TVM error while replaying is this program's failure)
                rows.append(_record(task, hw, tr, [], INSTANTIATION_ERROR, clip_error(f"apply trace: {exc}"), version))
        built = builder.build([ms.builder.BuilderInput(sch.mod, target) for _, sch in chunk]) if chunk else []
        run_inputs, run_idx = [], []
        for i, ((tr, sch), b) in enumerate(zip(chunk, built)):
            if b.error_msg:
                code = BUILD_TIMEOUT if "timeout" in b.error_msg.lower() else COMPILE_HOST
                rows.append(_record(task, hw, tr, [], code, clip_error(str(b.error_msg)), version))
                continue
            args = ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)
            run_inputs.append(ms.runner.RunnerInput(b.artifact_path, device_type, args))
            run_idx.append(i)
        results = [f.result() for f in runner.run(run_inputs)] if run_inputs else []
        for i, res in zip(run_idx, results):
            tr = chunk[i][0]
            if res.error_msg:
                code = run_error_code(str(res.error_msg))
                rows.append(_record(task, hw, tr, [], code, clip_error(str(res.error_msg)), version))
            else:
                rows.append(_record(task, hw, tr, [float(x) for x in res.run_secs], NO_ERROR, None, version))
        for b in built:
            if b.artifact_path:
                shutil.rmtree(Path(b.artifact_path).parent, ignore_errors=True)
        yield rows


def run_error_code(msg: str) -> int:
    """A runner's error as a code: the infrastructure's (retried), a timeout, or the program's."""
    if is_unavailable(msg):
        return RUNNER_UNAVAILABLE
    return RUN_TIMEOUT if "timeout" in msg.lower() else RUNTIME_DEVICE


def parts_dir(out_dir: Path) -> Path:
    return out_dir / "parts"


def set_aside_unavailable(out_dir: Path) -> int:
    """Error records of programs no server could run (RUNNER_UNAVAILABLE) leave their parts, so
    that a resumed run measures those programs again and every record id stays unique. They are
    moved to `retried/` first (a log of what happened, not data), then the part is rewritten
    atomically: a crash in between only logs them twice. Returns how many were set aside."""
    n = 0
    for f in sorted(parts_dir(out_dir).glob("*.parquet")):
        try:
            errors = pq.read_table(f, columns=["error_no"]).column("error_no")
        except (pa.ArrowInvalid, OSError):
            continue  # finished_record_ids sets an unreadable part aside
        mask = pc.equal(errors, RUNNER_UNAVAILABLE)
        k = int(pc.sum(mask).as_py() or 0)
        if not k:
            continue
        table = pq.read_table(f)
        rec.write_records(table.filter(mask), out_dir / "retried" / f"{f.stem}-{time.time_ns()}.parquet")
        kept = table.filter(pc.invert(mask))
        if kept.num_rows:
            rec.write_records(kept, f)
        else:
            f.unlink()
        n += k
    return n


def finished_record_ids(out_dir: Path) -> set[str]:
    """Record ids already persisted under `out_dir/parts`. A part is written atomically, but a
    crash of the machine (not of the process) can still leave an empty or torn file: it is set
    aside as `<name>.unreadable` (kept for inspection, no longer read) and its programs are
    measured again, so a resume never stops on it and never reads half a part."""
    ids: set[str] = set()
    for f in sorted(parts_dir(out_dir).glob("*.parquet")):
        try:
            ids.update(pq.read_table(f, columns=["record_id"]).column("record_id").to_pylist())
        except (pa.ArrowInvalid, OSError) as exc:
            log.warning("%s: unreadable part (%s): set aside, its programs are measured again", f, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            f.rename(f.with_name(f.name + ".unreadable"))
    return ids


def measure_task_set(tasks: list[Task], programs: dict[str, list[str]], hw: Target, out_dir: Path, cfg: MeasureConfig) -> dict:
    """Measure every program of every task on `hw`, persisting each batch as its own part.

    Resumable: programs whose record already exists are skipped, and a part is written
    atomically after its batch, so a run killed at any point and started again loses no
    finished measurement and duplicates none. Returns counts.
    """
    retried = set_aside_unavailable(out_dir)
    done = finished_record_ids(out_dir)
    todo: dict[str, list[str]] = {}
    for t in tasks:
        rest = [tr for tr in programs.get(t.task_id, []) if rec.record_id(hw.id, t.task_id, rec.program_id(tr)) not in done]
        if rest:
            todo[t.task_id] = rest
    total = sum(map(len, todo.values()))
    counts = {"tasks": len(tasks), "programs_already_measured": len(done), "measured": 0, "errors": 0}
    if retried:
        counts["retried"] = retried
    if not todo:
        return counts
    servers = 0
    if cfg.rpc is not None:
        info = check_servers(cfg.rpc, hw)  # records are labelled with the servers' platform: it must be hw's
        servers = cfg.rpc.servers or info.servers
        counts["rpc"] = {"key": cfg.rpc.key, "servers": info.servers, "platform_reported": info.reported}
    builder, runner = make_builder_runner(hw, cfg, servers)
    # Continue numbering after the highest existing part (never overwrite one).
    seq = 1 + max((int(f.name.split("-")[1]) for f in parts_dir(out_dir).glob("part-*.parquet")), default=-1)
    with tqdm(total=total, desc=f"measure {hw.id}", unit="prog", smoothing=0.05) as bar:
        for task in tasks:
            for rows in measure_task(task, todo.get(task.task_id, []), hw, builder, runner, cfg):
                if not rows:
                    continue
                rec.write_records(rec.to_table(rows), parts_dir(out_dir) / f"part-{seq:06d}-{task.task_id}.parquet")
                seq += 1
                counts["measured"] += len(rows)
                counts["errors"] += sum(r["error_no"] != NO_ERROR for r in rows)
                unavailable = sum(r["error_no"] == RUNNER_UNAVAILABLE for r in rows)
                if unavailable:
                    counts["unavailable"] = counts.get("unavailable", 0) + unavailable
                bar.update(len(rows))
    return counts


def write_metaschedule_database(tasks: list[Task], table: pa.Table, hw: Target, db_dir: Path) -> int:
    """Rebuild a MetaSchedule JSONDatabase from the measured records (derived, never appended to)."""
    import tvm.s_tir.meta_schedule as ms

    shutil.rmtree(db_dir, ignore_errors=True)
    db_dir.mkdir(parents=True)
    db = ms.database.JSONDatabase(work_dir=str(db_dir))
    target = tvm_target(hw)
    by_task = {t.task_id: t for t in tasks}
    n = 0
    for row in table.filter(pa.compute.equal(table["error_no"], 0)).to_pylist():
        task = by_task.get(row["task_id"])
        if task is None:
            continue
        sch = apply_trace_json(task.mod, row["trace"])
        wl = db.commit_workload(task.mod)
        db.commit_tuning_record(
            ms.database.TuningRecord(
                sch.trace, wl, [float(x) for x in row["latencies"]], target,
                ms.arg_info.ArgInfo.from_prim_func(next(iter(task.mod.functions.values()))),
            )
        )
        n += 1
    return n


def remeasure(table: pa.Table, tasks: list[Task], hw: Target, fraction: float, seed: int, cfg: MeasureConfig) -> pa.Table:
    """Measure again a random `fraction` of the valid records of `table` (same programs, same
    target, a later pass): the noise study that bounds every accuracy figure."""
    by_task = {t.task_id: t for t in tasks}
    chosen: dict[str, list[str]] = {}
    valid = table.filter(pa.compute.equal(table["error_no"], 0)).select(["record_id", "task_id", "trace"]).to_pydict()
    for rid, tid, tr in zip(valid["record_id"], valid["task_id"], valid["trace"]):
        h = int.from_bytes(hashlib.blake2b(f"{seed}|{rid}".encode(), digest_size=8).digest(), "little") / 2**64
        if h < fraction and tid in by_task:
            chosen.setdefault(tid, []).append(tr)
    if cfg.rpc is not None:
        check_servers(cfg.rpc, hw)  # the second pass runs on the machine the first was labelled with
    builder, runner = make_builder_runner(hw, cfg)
    rows: list[dict] = []
    with tqdm(total=sum(map(len, chosen.values())), desc=f"re-measure {hw.id}", unit="prog") as bar:
        for tid, traces in chosen.items():
            for batch in measure_task(by_task[tid], traces, hw, builder, runner, cfg):
                rows.extend(batch)
                bar.update(len(batch))
    return rec.to_table(rows)


def collect_target(tasks: list[Task], programs: dict[str, list[str]], hw: Target, out: Path, cfg: MeasureConfig, task_limit: int | None = None) -> dict:
    """Measure the programs of `tasks` on `hw` into `out` (parts/, target.json); once every task
    is measured, also the MetaSchedule database and summary.json. Resumable. Returns counts."""
    parts_dir(out).mkdir(parents=True, exist_ok=True)
    write_text(out / "target.json", json.dumps(hw.to_dict(), indent=1))
    if not any(programs.get(t.task_id) for t in tasks):
        summary = {"tasks": len(tasks), "measured": 0, "records": 0}
        write_text(out / "summary.json", json.dumps(summary, indent=1))
        return summary
    counts = measure_task_set(tasks[:task_limit], programs, hw, out, cfg)
    if counts.get("unavailable"):
        key = f"key {cfg.rpc.key!r} at {cfg.rpc.tracker}" if cfg.rpc is not None else "the runner"
        raise RunIncomplete(f"{counts['unavailable']} of {counts['measured']} programs measured now could not be run (no server of {key}): "
                            f"their records (error_no {RUNNER_UNAVAILABLE}) are measured again by the next run; start the servers and run again")
    if task_limit is not None and task_limit < len(tasks):
        return counts | {"partial": f"first {task_limit} of {len(tasks)} tasks"}
    table = rec.read_records(parts_dir(out))
    n_db = write_metaschedule_database(tasks, table, hw, out / "database")
    summary = counts | {"records": table.num_rows, "database_records": n_db}
    write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary
