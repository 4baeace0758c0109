"""Program sets: the tasks of networks (torch or ONNX -> Relax -> TIR tasks), random schedules of each (target-independent trace JSON), a task set saved and loaded."""

from __future__ import annotations

import json
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pyarrow as pa

from .. import hardware
from .. import records as rec
from ..errors import MissingDataError, UserError
from ..hardware import Target
from ..records import classify_op
from ..records.programs import PROGRAMS_SCHEMA, program_task_counts, read_programs, write_programs
from ..safeio import write_text
from ..tvm_support import register_intrinsics_for, register_x86_intrinsics_only, structural_hash_hex, to_plain_json, trace_to_json, tvm_target, tvm_version, workload_info
from ..zoo import ZOO_NAMES, get_network


@dataclass
class Task:
    task_id: str
    task_name: str
    networks: dict[str, int]
    mod: object  # tvm.IRModule holding one PrimFunc
    op_kind: str
    shapes: list
    flops: float
    bytes_moved: float

    @property
    def weight(self) -> int:
        return int(sum(self.networks.values()))


def network_to_relax(network, target, fuse: bool = True) -> object:
    """torch.nn network -> torch.export -> Relax with inference-mode ops decomposed (an ONNX
    network: TVM's ONNX frontend). `network`: a zoo name or a `zoo.NetworkSpec`.

    With `fuse`, also legalized and fused into TIR tasks (extract_tasks needs that). Without it,
    the module is what `compile_relax` expects: it runs the same legalize/fuse passes itself,
    so its database keys match the tasks extracted from the fused module.
    """
    import torch
    import tvm
    import tvm.relax.frontend.torch  # noqa: F401  (registers from_exported_program)
    from tvm import relax

    spec = get_network(network) if isinstance(network, str) else network
    model = spec.build()
    if spec.kind == "onnx":
        from tvm.relax.frontend.onnx import from_onnx

        try:
            mod = from_onnx(model, shape_dict={spec.input_name: list(spec.input_shape)}, dtype_dict=spec.input_dtype)
        except Exception as exc:  # an operator TVM's frontend lacks, a malformed graph
            raise UserError(f"network {spec.name}: TVM's ONNX frontend could not convert it ({type(exc).__name__}: {str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else ''})") from exc
    else:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)  # torch's own deprecation, inside export
                exported = torch.export.export(model, (torch.randn(*spec.input_shape),))
                mod = relax.frontend.torch.from_exported_program(exported)
        except UserError:
            raise
        except Exception as exc:  # a shape the module does not take, an op torch.export or TVM cannot trace
            if spec.name in ZOO_NAMES:  # the zoo's own networks convert; a failure there is a bug
                raise
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
            raise UserError(f"network {spec.name} with input {spec.input_shape}: torch.export / TVM's PyTorch frontend failed ({type(exc).__name__}: {first})") from exc
    mod = relax.transform.DecomposeOpsForInference()(mod)
    if not fuse:
        return mod
    passes = tvm.ir.transform.Sequential(
        [
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
        ]
    )
    with target:
        return passes(mod)


def extract_tasks(networks: Iterable[str], target) -> list[Task]:
    """Tuning tasks of the given networks, deduplicated by workload hash across networks.

    Each task keeps its occurrence count in every network that uses it.
    """
    import tvm.s_tir.meta_schedule as ms

    register_x86_intrinsics_only()
    tasks: dict[str, Task] = {}
    for net in networks:
        mod = network_to_relax(net, target)
        for ext in ms.relax_integration.extract_tasks(mod, target):
            wl = ext.dispatched[0]
            tid = structural_hash_hex(wl)
            if tid in tasks:
                tasks[tid].networks[net] = tasks[tid].networks.get(net, 0) + int(ext.weight)
                continue
            info = workload_info(wl)
            tasks[tid] = Task(
                task_id=tid,
                task_name=str(ext.task_name),
                networks={net: int(ext.weight)},
                mod=wl,
                op_kind=classify_op(str(ext.task_name)),
                shapes=info["shapes"],
                flops=info["flops"],
                bytes_moved=info["bytes_moved"],
            )
    return sorted(tasks.values(), key=lambda t: (-t.flops, t.task_id))


def select_tasks(tasks: list[Task], max_tasks: int, min_flops: float = 0.0, max_flops: float = float("inf"), skip: set[str] | None = None,
                 op_kinds_first: bool = False, op_kinds: list[str] | None = None) -> list[Task]:
    """Pick up to `max_tasks` tasks, round-robin over networks (largest FLOPs first within each),
    so that every network contributes; tasks outside [min_flops, max_flops] or in `skip` (a set
    that already has them) are left out. `op_kinds_first`: within a network, a task of an op
    kind no chosen task has comes before larger ones (a new network's new operator structures
    rather than its biggest convolutions). `op_kinds`: only tasks of these op kinds (a set that
    fills one operator gap, e.g. the matrix products of networks that are mostly convolutions)."""
    skip = skip or set()
    eligible = [t for t in tasks if min_flops <= t.flops <= max_flops and t.task_id not in skip
                and (op_kinds is None or t.op_kind in op_kinds)]
    by_net: dict[str, list[Task]] = {}
    for t in sorted(eligible, key=lambda t: (-t.flops, t.task_id)):
        by_net.setdefault(min(t.networks), []).append(t)
    chosen: list[Task] = []
    seen: set[str] = set()
    while len(chosen) < max_tasks and any(by_net.values()):
        for net in sorted(by_net):
            queue = [t for t in by_net[net] if t.task_id not in seen]
            if op_kinds_first:
                kinds = {t.op_kind for t in chosen}
                queue.sort(key=lambda t: t.op_kind in kinds)  # stable: largest first among equals
            by_net[net] = queue
            if queue and len(chosen) < max_tasks:
                t = queue.pop(0)
                chosen.append(t)
                seen.add(t.task_id)
    return chosen


def sample_programs(task: Task, target, n: int, seed: int, max_rounds: int = 4) -> list[str]:
    """Up to `n` distinct random programs (trace JSON) from MetaSchedule's design space.

    The design space is the target's: post-order-apply with MetaSchedule's default rules for
    its kind (LLVM: tiling, parallel, vectorize; CUDA: tiling with thread binding, shared-memory
    caching, cross-thread reduction), so GPU programs need a sample set of their own."""
    import tvm.s_tir.meta_schedule as ms

    register_intrinsics_for(target)
    seen: set[str] = set()
    traces: list[str] = []
    for round_ in range(max_rounds):
        ctx = ms.TuneContext(
            task.mod, target=target, space_generator="post-order-apply", search_strategy="replay-trace",
            rand_state=seed + 7919 * round_, num_threads=1,
        )
        spaces = ctx.generate_design_space()
        strategy = ctx.search_strategy
        strategy.pre_tuning(max_trials=n, num_trials_per_iter=n, design_spaces=spaces, database=None, cost_model=None)
        cands = strategy.generate_measure_candidates() or []
        strategy.post_tuning()
        for cand in cands:
            h = structural_hash_hex(cand.sch.mod)
            if h in seen:
                continue
            seen.add(h)
            traces.append(trace_to_json(cand.sch.trace))
            if len(traces) >= n:
                return traces
    return traces


def _sample_worker(workload_json: str, target_config: dict, n: int, seed: int) -> list[str]:
    """`sample_programs` in a worker process (plain arguments only: workload JSON, target dict)."""
    import tvm

    task = Task("", "", {}, tvm.ir.load_json(workload_json), "", [], 0.0, 0.0)
    return sample_programs(task, tvm.target.Target(target_config), n, seed)


def sample_task_set(tasks: list[Task], target, n: int, seed: int, workers: int = 1, progress=None) -> dict[str, list[str]]:
    """`sample_programs` for every task, by task id; `workers` > 1 spreads the tasks over that
    many processes (spawned: each imports TVM and, for CUDA, the CUDA intrinsics once). Random
    GPU programs cost more to sample than CPU ones (every candidate is lowered and checked
    against the thread and shared-memory limits, and many are rejected), hence the processes."""
    if workers <= 1 or len(tasks) <= 1:
        out = {}
        for task in tasks:
            out[task.task_id] = sample_programs(task, target, n, seed)
            if progress:
                progress(1)
        return out

    import tvm

    config = {k: v for k, v in to_plain_json(target.export()).items() if k not in ("tag", "keys")}
    results: dict[str, list[str]] = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_sample_worker, tvm.ir.save_json(t.mod), config, n, seed): t.task_id for t in tasks}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if progress:
                progress(1)
    return {t.task_id: results[t.task_id] for t in tasks}


def save_task_set(tasks: list[Task], programs: dict[str, list[str]], out_dir: Path, meta: dict) -> None:
    """tasks.json (metadata + workload IRModules as TVM JSON) and programs.parquet."""
    import tvm

    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": meta,
        "tasks": [
            {
                "task_id": t.task_id, "task_name": t.task_name, "networks": t.networks, "op_kind": t.op_kind,
                "shapes": t.shapes, "flops": t.flops, "bytes_moved": t.bytes_moved,
                "workload": tvm.ir.save_json(t.mod),
            }
            for t in tasks
        ],
    }
    write_text(out_dir / "tasks.json", json.dumps(doc, indent=1))
    rows = [
        {"task_id": tid, "program_id": rec.program_id(tr), "trace": tr}
        for tid, trs in programs.items()
        for tr in trs
    ]
    write_programs(pa.Table.from_pylist(rows, schema=PROGRAMS_SCHEMA), out_dir / "programs.parquet")


def read_tasks(in_dir: Path) -> tuple[list[Task], dict]:
    """A task set's tasks (workloads included) and meta: its tasks.json alone, no program."""
    import tvm

    doc = json.loads((in_dir / "tasks.json").read_text())
    tasks = [
        Task(
            task_id=d["task_id"], task_name=d["task_name"], networks=d["networks"], mod=tvm.ir.load_json(d["workload"]),
            op_kind=d["op_kind"], shapes=d["shapes"], flops=d["flops"], bytes_moved=d["bytes_moved"],
        )
        for d in doc["tasks"]
    ]
    return tasks, doc.get("meta", {})


def task_program_counts(in_dir: Path) -> dict[str, int]:
    """Programs each task of a task set holds (its programs.parquet's task ids only; {} when none)."""
    path = in_dir / "programs.parquet"
    return program_task_counts(path) if path.exists() else {}


def read_task_programs(in_dir: Path, task_ids: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Task id -> traces of a task set's programs; with `task_ids`, of those tasks only (the row
    groups holding them: `records.programs.read_programs`)."""
    path = in_dir / "programs.parquet"
    return read_programs(path, task_ids) if path.exists() else {}


def load_task_set(in_dir: Path) -> tuple[list[Task], dict[str, list[str]], dict]:
    """A task set whole: tasks, every program, meta (for the commands that measure all of it)."""
    tasks, meta = read_tasks(in_dir)
    return tasks, read_task_programs(in_dir), meta


def load_tasks(dirs: Iterable[Path]) -> dict[str, Task]:
    """Tasks by id from every task set (tasks.json) found in `dirs` (bundled and fresh)."""
    out: dict[str, Task] = {}
    for d in dirs:
        if (Path(d) / "tasks.json").exists():
            for t in read_tasks(Path(d))[0]:
                out.setdefault(t.task_id, t)
    return out


def task_set_kind(meta: dict) -> str:
    """The kind of target ("cpu" or "gpu") a task set's programs were sampled for: its
    `reference_kind`, else the kind of its `reference_target` in the catalog."""
    if meta.get("reference_kind") in ("cpu", "gpu"):
        return str(meta["reference_kind"])
    ref = meta.get("reference_target")
    try:
        return hardware.codegen_target(str(ref)).kind
    except (UserError, ValueError, KeyError) as exc:
        raise UserError(f"a task set names neither a reference_kind (cpu or gpu) nor a catalog target as its reference_target ({ref!r}): "
                        f"re-sample it (tensorcost stage sample)") from exc


def check_task_set_kind(meta: dict, hw: Target, where: Path) -> None:
    """Programs sampled for one kind of target (CPU or GPU) cannot be measured on the other."""
    if task_set_kind(meta) != hw.kind:
        raise UserError(f"{hw.id} is a {hw.kind} target but {where} holds programs sampled for {meta.get('reference_target')} "
                        f"({task_set_kind(meta)}): sample a task set for this kind first")


def check_op_kinds(op_kinds: list[str] | None) -> None:
    """`sample.op_kinds` names op kinds the classifier knows (a typo would select no task)."""
    if op_kinds is None:
        return
    unknown = [k for k in op_kinds if k not in rec.OP_KINDS]
    if unknown or not op_kinds:
        raise UserError(f"sample.op_kinds: {unknown or '[]'} {'is' if len(unknown) == 1 else 'are'} not op kinds "
                        f"(one of: {', '.join(rec.OP_KINDS)})")


def extend_programs(held: list[str], fresh: list[str], n: int) -> list[str]:
    """A task's programs grown to `n`: every program it `held` (first, in order: the records
    every platform measured line up), then `fresh` ones it lacks (by program id) until `n`."""
    have = {rec.program_id(tr) for tr in held}
    out = list(held)
    for tr in fresh:
        if len(out) >= n:
            break
        pid = rec.program_id(tr)
        if pid not in have:
            have.add(pid)
            out.append(tr)
    return out


def fresh_programs(tasks: list[Task], held: dict[str, list[str]], counts: dict[str, int], target, seed: int, progress=None) -> dict[str, list[str]]:
    """For each task, up to `counts[task_id]` programs of its design space that `held[task_id]`
    lacks (by program id): programs no platform of the set measured, so no model trained on the
    set has seen them (a machine's test side then holds unseen programs on unseen hardware, what
    its tuning runs meet). Drawn in this process (TVM imported once); a task whose design space
    the set holds whole gets none."""
    out: dict[str, list[str]] = {}
    for task in tasks:
        have = held.get(task.task_id, [])
        want = counts.get(task.task_id, 0)
        drawn = sample_programs(task, target, want + len(have), seed) if want else []  # enough even if every held one comes back
        out[task.task_id] = extend_programs(have, drawn, len(have) + want)[len(have):]  # the drawn ones `have` lacks
        if progress:
            progress(1)
    return out


FRESH_SEED = 1009  # a machine's fresh programs: the program sets were drawn at seeds 0, 7, 11 and grown at 13 and 17


def fresh_sample(tasks: list[Task], programs: dict[str, list[str]], chosen: dict[str, list[str]], meta: dict, seed: int,
                 progress=None) -> dict[str, list[str]]:
    """`chosen` (a sample of a program set: task id -> programs) with each task's programs
    replaced by as many fresh ones (`fresh_programs`, from the set's reference target's design
    space at FRESH_SEED + `seed`); a task left without a fresh program is left out."""
    target = tvm_target(hardware.codegen_target(meta["reference_target"]))
    todo = [t for t in tasks if t.task_id in chosen]
    fresh = fresh_programs(todo, programs, {t: len(v) for t, v in chosen.items()}, target, FRESH_SEED + seed, progress)
    return {t: v for t, v in fresh.items() if v}


def sample_task_set_from(params, out_dir: Path, progress=None, on_tasks=None) -> dict:
    """A collection run's first step (`CollectionParams`): tasks from the zoo's networks (or from
    an existing task set, `sample.tasks_from`), programs drawn once from the reference target's
    design space, saved to `out_dir` (tasks.json, programs.parquet). Returns counts.
    `on_tasks(n)`: called once the tasks are chosen (fewer than `max_tasks` when fewer qualify)."""
    sp = params.sample
    if sp is None:
        raise UserError("the collection params have no `sample` section")
    check_op_kinds(sp.op_kinds)
    for key, where in (("tasks_from", sp.tasks_from), ("skip_tasks_of", sp.skip_tasks_of)):
        if where and not (Path(where) / "tasks.json").exists():
            raise MissingDataError(f"sample.{key}: {Path(where) / 'tasks.json'} is not there (a relative path is read from the folder "
                                   f"you run in, {Path.cwd()}: the repository root for docs/dataset-params-*.yaml)")
    ref = hardware.codegen_target(sp.reference_target)  # sampling needs no device
    for t in params.targets:
        hw = hardware.codegen_target(t)
        if hw.kind != ref.kind:
            raise UserError(f"target {t} ({hw.kind}) cannot measure programs sampled for {ref.id} ({ref.kind}): sample a separate task set for each kind")
    target = tvm_target(ref)
    held_counts: dict[str, int] = {}
    if sp.tasks_from:
        tasks, _ = read_tasks(Path(sp.tasks_from))
        held_counts = task_program_counts(Path(sp.tasks_from))
        networks = sorted({n for t in tasks for n in t.networks})
    else:
        tasks = extract_tasks(params.zoo.networks, target)
        networks = list(params.zoo.networks)
    skip = {t.task_id for t in read_tasks(Path(sp.skip_tasks_of))[0]} if sp.skip_tasks_of else set()
    if sp.extend:  # a task already holding the asked number of programs has nothing to gain, nor one of a single program (its space is one program)
        skip |= {t.task_id for t in tasks if not 2 <= held_counts.get(t.task_id, 0) < sp.programs_per_task}
    tasks = select_tasks(tasks, sp.max_tasks, sp.min_flops, sp.max_flops, skip, sp.op_kinds_first, sp.op_kinds)
    held = read_task_programs(Path(sp.tasks_from), [t.task_id for t in tasks]) if sp.extend and sp.tasks_from and tasks else {}
    if not tasks:
        raise UserError(f"no task of the networks {', '.join(networks)} fits the `sample` section "
                        f"(FLOPs {sp.min_flops:g}-{sp.max_flops:g}, op kinds {sp.op_kinds or 'any'}, not in {sp.skip_tasks_of or '-'}"
                        + (f", fewer than {sp.programs_per_task} programs in {sp.tasks_from}" if sp.extend else "") + ")")
    if on_tasks is not None:
        on_tasks(len(tasks))
    programs = sample_task_set(tasks, target, sp.programs_per_task, sp.seed, sp.workers, progress)
    if sp.extend:
        programs = {t.task_id: extend_programs(held.get(t.task_id, []), programs[t.task_id], sp.programs_per_task) for t in tasks}
        # a design space the set has drawn whole (an elementwise task: one program) cannot grow:
        # measuring it again would only replace its records
        tasks = [t for t in tasks if len(programs[t.task_id]) > len(held.get(t.task_id, []))]
        programs = {t.task_id: programs[t.task_id] for t in tasks}
        if not tasks:
            raise UserError(f"no chosen task of {sp.tasks_from} has programs to gain: their design spaces are drawn whole")
    meta = {"reference_target": ref.id, "reference_kind": ref.kind, "tvm_version": tvm_version(), "networks": networks}
    if sp.tasks_from:
        meta["tasks_from"] = str(sp.tasks_from)
    if sp.extend:
        meta["extends"] = {"programs_per_task": sp.programs_per_task, "seed": sp.seed}
    save_task_set(tasks, programs, out_dir, meta)
    return {"tasks": len(tasks), "programs": sum(map(len, programs.values()))}
