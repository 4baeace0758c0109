"""Growing the team's dataset: this machine becomes one more platform of it.

`add_host_platform` re-measures the bundled program set (every task, every program: the
programs are re-applied from their traces, so records line up program by program with every
other platform), measures a sample a second time (the noise study), writes the platform's
directory under data/bundled/platforms/, adds the platform to the catalog, checks the new records
with the records suite (Great Expectations) and commits. Its targets join a profile's dataset slots
(and, with `train`, its registered models' targets): by default the study profile
(params-study.yaml), because every slot of params.yaml costs about a minute of every `make run`;
with the default profile the new slots' data stages run now and are pushed to the DVC remote.
Resumable: a killed run measures only what is missing when started again. A platform the dataset
holds already, whose program set grew since it was measured (the second program set of issue 13),
gets only the tasks it lacks; its records and its SOURCE.md history stay, the extension is appended.
"""

from __future__ import annotations

import datetime
import json
import platform as _platform
import shutil
import subprocess
import time
from importlib import resources
from pathlib import Path
from typing import Callable

import pyarrow as pa

from . import collect, dataset, hardware, validation
from . import records as rec
from .errors import UserError
from .params import load_collection_params
from .params_io import edit_params
from .safeio import write_text

WORK_DIR = Path(".tensorcost/platform")
CATALOG = "data/catalog.yaml"


def catalog_entry_yaml(p: hardware.Platform) -> str:
    """The platform as a block of the catalog's `platforms:` mapping (appended as text, so the
    catalog's comments survive)."""
    lines = [f"  {p.id}:", f"    kind: {p.kind}", f"    vendor: {p.vendor}", f"    model_name: {json.dumps(p.model_name)}", f"    microarch: {p.microarch}",
             f"    cores: {p.cores}", f"    clock_ghz: {p.clock_ghz:g}", f"    l1d_kb: {p.l1d_kb:g}", f"    l2_kb: {p.l2_kb:g}", f"    l3_kb: {p.l3_kb:g}",
             f"    isa: [{', '.join(p.isa)}]"]
    if p.fingerprint:
        lines.append("    fingerprint: {" + ", ".join(f"{k}: {v}" for k, v in p.fingerprint.items()) + "}")
    lines.append(f"    source: {json.dumps(p.source)}")
    return "\n".join(lines) + "\n"


def add_to_catalog(p: hardware.Platform, catalog_file: Path | None = None) -> bool:
    """Append the platform to the catalog unless it is there; True when it was added."""
    if p.id in hardware.platforms():
        return False
    path = catalog_file or Path(str(resources.files("tensorcost").joinpath(CATALOG)))
    text = path.read_text()
    write_text(path, text.rstrip("\n") + "\n" + catalog_entry_yaml(p))
    hardware.catalog._raw.cache_clear()
    return True


def _run(cmd: list[str], log) -> subprocess.CompletedProcess:
    log("$ " + " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ''}")
    return proc


def source_md(p: hardware.Platform, results: dict, command: str) -> str:
    """The platform directory's SOURCE.md: the machine, the command, what was measured."""
    # A resumed run measured only what was missing: its wall time says so.
    rows = "\n".join(f"| `{t}` | {r['records']} | {r['errors']} | {r['seconds'] / 60:.1f} min ({r['measured_now']} programs measured by this run) | " + (
        f"{r['noise']['n']} programs: median {100 * r['noise']['median']:.1f}%, p90 {100 * r['noise']['p90']:.1f}%, max {100 * r['noise']['max']:.0f}% |"
        if r.get("noise", {}).get("n") else "not measured |") for t, r in results.items())
    return f"""# {p.id}: {p.model_name}

The bundled CPU program set (data/bundled/programs/cpu), re-applied from its traces and measured on
this machine by `tensorcost platform add`, with the bundled dataset's protocol (the `measure`
section of docs/dataset-params.yaml).

| | |
| --- | --- |
| machine | {p.vendor} {p.model_name}, {p.microarch} (archspec), {p.cores} usable cores, L1d {p.l1d_kb:g} KiB and L2 {p.l2_kb:g} KiB per core, L3 {p.l3_kb:g} KiB; {p.source} |
| fingerprint | {json.dumps(p.fingerprint)} ({_platform.machine()}, Linux {_platform.release()}) |
| ISA | {' '.join(p.isa)} |
| date | {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC |
| command | `{command}` |

| target | records | errors | wall time | noise (second pass, relative difference of mean latency) |
| --- | --- | --- | --- | --- |
{rows}
"""


PROFILES = {"study": Path("params-study.yaml"), "default": Path("params.yaml")}


def add_host_platform(variants: list[str], noise_fraction: float, params_file: Path, *, run_dvc: bool = True, commit: bool = True, train: bool = False,
                      log: Callable[[str], None] = print, profile: str = "study", programs_per_task: int = 0) -> dict:
    """Measure this machine into the dataset (see the module docstring). Returns what was done.
    `programs_per_task` > 0 measures only the first that many programs of each task (0: all)."""
    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    if programs_per_task < 0:
        raise UserError(f"--programs-per-task {programs_per_task}: must be 0 (every program) or more")
    params_yaml = PROFILES[profile]
    platform = hardware.host_platform()
    targets = [hardware.resolve_target(f"{platform.id}.{v}") for v in variants]
    measure = load_collection_params(params_file).measure
    task_dir = dataset.programs_dir("cpu")
    tasks, programs, meta = collect.load_task_set(task_dir)
    programs = first_programs(programs, programs_per_task)
    results = {}
    extended = False
    for t in targets:
        collect.check_task_set_kind(meta, t, task_dir)
        work = WORK_DIR / t.id
        out = dataset.bundled_records_path(t.id)
        held = rec.read_records(out) if out.exists() else None
        todo = missing_tasks(tasks, held, programs)
        if held is not None:
            # the platform is in the dataset already and the program set grew since: measure
            # the tasks it lacks, and whole (one window) the tasks whose programs grew
            extended = True
            log(f"{t.id}: {out} holds {len(tasks) - len(todo)} of the program set's {len(tasks)} tasks whole; measuring the other {len(todo)}")
        log(f"{t.id}: measuring {sum(len(programs.get(x.task_id, [])) for x in todo)} programs of {len(todo)} tasks (resumable; work dir {work})")
        t0 = time.perf_counter()
        counts = collect.measure_task_set(todo, programs, t, work, measure)
        fresh = rec.read_records(collect.parts_dir(work)) if todo else None
        if fresh is not None:
            wanted = {x.task_id for x in todo}
            fresh = fresh.filter(pa.array([tid in wanted for tid in fresh.column("task_id").to_pylist()]))
        earlier = None
        if held is not None and fresh is not None:
            held, earlier = dataset.split_tasks(held, {x.task_id for x in todo})  # a task's records come from one window
        parts = [x for x in (held, fresh) if x is not None]
        table = dataset.merge_records(parts)[0] if len(parts) > 1 else parts[0]
        table = table.sort_by([("task_id", "ascending"), ("program_id", "ascending")])
        check_records(table, t.id, out)  # before writing: a failed suite leaves the dataset's file as it was (the run's parts stay in its work dir)
        if earlier is not None and earlier.num_rows:
            dataset.keep_superseded(t.id, earlier)
        rec.write_records(table, out)
        result = {"records": table.num_rows, "errors": int(sum(e != 0 for e in table.column("error_no").to_pylist())), "seconds": time.perf_counter() - t0,
                  "measured_now": counts["measured"], "file": str(out), "tasks_added": len(todo) if held is not None else None}
        if noise_fraction > 0:
            noise_file = dataset.noise_records_path(t.id)
            if not noise_file.exists():
                log(f"{t.id}: measuring {noise_fraction:.0%} of the programs a second time (noise)")
                rec.write_records(collect.remeasure(table, tasks, t, noise_fraction, 0, measure), noise_file)
            result["noise"] = dataset.relative_differences(table, rec.read_records(noise_file))
        results[t.id] = result
    added = add_to_catalog(platform)
    command = ("tensorcost platform add " + " ".join(f"--variant {v}" for v in variants) + (f" --noise-fraction {noise_fraction:g}" if noise_fraction != 0.05 else "")
               + (f" --programs-per-task {programs_per_task}" if programs_per_task else ""))
    pdir = dataset.platforms_dir() / platform.id
    source = pdir / "SOURCE.md"
    if extended and source.exists():  # the platform's history stays; the extension is a section of it
        write_text(source, source.read_text().rstrip("\n") + "\n\n## Extended: the tasks the program set gained\n\n" + source_md(platform, results, command).split("\n", 2)[2])
    else:
        write_text(source, source_md(platform, results, command))
    done = {"platform": platform.id, "catalog_entry_added": added, "targets": results, "profile": str(params_yaml)}
    done["validation"] = {t.id: "passed" for t in targets}  # check_records passed before each file was written
    add_to_profile(params_yaml, [t.id for t in targets], train)
    if profile == "default" and run_dvc and shutil.which("dvc"):
        stages = [f"{stage}@{t.id}" for t in targets for stage in ("records", "validate", "featurize")]
        _run(["dvc", "repro", "--single-item", *stages], log)
        if _remote_configured():
            _run(["dvc", "push", *stages], log)
            done["pushed"] = True
        else:
            log("no default DVC remote: nothing pushed (`dvc remote add -d NAME URL`, then `dvc push`)")
    elif profile == "study":
        log(f"{', '.join(t.id for t in targets)}: in {params_yaml}; `make study` runs their stages "
            "(`--profile default` puts them in every `make run`, about a minute each)")
    if commit and shutil.which("git"):
        paths = [str(pdir), str(params_yaml), "dvc.lock", f"src/tensorcost/{CATALOG}"]
        _run(["git", "add", "--", *[p for p in paths if Path(p).exists()]], log)
        _run(["git", "commit", "-q", "-m", f"dataset: platform {platform.id} ({', '.join(variants)}) measured by tensorcost platform add"], log)
        done["committed"] = True
    return done


def first_programs(programs: dict, n: int) -> dict:
    """The first `n` programs of each task in the set's order (0: all). A task grown by
    `sample.extend` keeps the programs it held first, so n = 104 is the grown tasks' programs from
    before they grew: every platform's records of a task are then one window's, whatever n."""
    return {t: trs[:n] for t, trs in programs.items()} if n else programs


def missing_tasks(tasks: list, held, programs: dict | None = None) -> list:
    """The tasks of the program set `held` (a records table; None: all) does not hold whole: no
    record of the task, or (with `programs`, the set's traces by task) none of some program of it
    (a task the set grew since, `tensorcost dataset sample` with `sample.extend`)."""
    if held is None:
        return list(tasks)
    have = set(held.column("task_id").to_pylist())
    measured = dataset.program_keys(held) if programs else set()
    return [t for t in tasks if t.task_id not in have
            or (programs and any((t.task_id, rec.program_id(tr)) not in measured for tr in programs.get(t.task_id, [])))]


def check_records(table, target_id: str, path: Path) -> None:
    """The records suite on a platform's records before they join the dataset: a bad measurement
    is refused here, not in a teammate's pipeline. Checked as the records stage will read them:
    relabelled to the target id (files measured before platforms existed carry a host label)."""
    summary = validation.validate_records(dataset.relabel(table, target_id).to_pandas(), target_id)
    if not summary.success:
        raise UserError(f"{path}: the records suite failed, file left as it was: {summary.readable()}")


def add_to_profile(params_yaml: Path, target_ids: list[str], train: bool) -> None:
    """The targets become dataset slots of the profile (and, with `train`, registered models'
    targets); comments and every other line are kept."""
    def add(doc) -> None:
        for tid in target_ids:
            if tid not in doc["targets"]:
                doc["targets"][tid] = str(dataset.bundled_records_path(tid))
            if train and tid not in doc["train"]["targets"]:  # each train target adds minutes to every run of the profile: a choice
                doc["train"]["targets"].append(tid)

    edit_params(params_yaml, add, validate=False)  # the round-trip editor: every comment stays in place


def _remote_configured() -> bool:
    proc = subprocess.run(["dvc", "remote", "default"], capture_output=True, text=True)
    return proc.returncode == 0 and bool(proc.stdout.strip())
