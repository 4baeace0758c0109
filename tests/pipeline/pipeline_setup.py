"""What the pipeline tests share: the micro profile's constants and the steps that build its
temporary copy of the repo (conftest.py's `pipeline_run` runs them once per session), and small
helpers to run commands and compare trees. Imported as `pipeline.pipeline_setup` (tests/ is on
sys.path)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import yaml

from tensorcost import dataset
from tensorcost import records as rec
from tensorcost.collect import load_task_set
from tensorcost.hardware import get_platform

REPO = Path(__file__).resolve().parents[2]
SOURCES = ["sapphirerapids-2c.avx2-t1", "zen5-2c.avx2-t1"]
PRUNED = "uncertainty-20"  # params.yaml's default variant
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]


def copy_repo(dest: Path) -> None:
    """The working tree as git sees it (tracked and untracked, ignored files left out)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def shrink_bundled(root: Path, tasks: int = 8, per_task: int = 16) -> None:
    """Every bundled records file cut to the same programs (a seeded hash picks them among the
    tasks every platform of the kind measured: the later program sets are on some platforms only)."""
    for kind in ("cpu", "gpu"):
        _, programs, _ = load_task_set(root / "data/bundled/programs" / kind)
        tables = {f: rec.read_records(f) for f in (root / "data/bundled/platforms").glob("*/*.parquet")
                  if get_platform(f.parent.name).kind == kind and not f.stem.startswith("superseded-")}  # not read by the pipeline
        if not tables:
            continue
        everywhere = set.intersection(*(set(t.column("task_id").to_pylist()) for t in tables.values()))
        # a grown task's new programs are on the platform that grew it only (the noise files hold a sample)
        measured = set.intersection(*(dataset.program_keys(t) for f, t in tables.items() if not f.stem.startswith("noise-")))
        shared = {t: [tr for tr in trs if (t, rec.program_id(tr)) in measured] for t, trs in programs.items() if t in everywhere}
        keep = {(t, rec.program_id(tr)) for t, trs in dataset.sample_programs(shared, tasks, per_task, 0).items() for tr in trs}
        for f, table in tables.items():
            mask = [(t, p) in keep for t, p in zip(table.column("task_id").to_pylist(), table.column("program_id").to_pylist())]
            rec.write_records(table.filter(mask), f)


def micro_params(path: Path) -> None:
    p = yaml.safe_load(path.read_text())
    p["targets"] = {k: v for k, v in p["targets"].items() if k in ("host", *SOURCES)}
    p["targets"]["h200.cuda"] = "data/bundled/platforms/h200/cuda.parquet"  # the study profile's GPU slot, kept small here
    p["host"].update({"tasks": 2, "programs_per_task": 8})
    p["measure"].update({"number": 2, "repeat": 2, "min_repeat_ms": 5})
    p["split"].update({"strategy": "within_task", "test_fraction": 0.3})
    p["models"]["lightgbm_rank"]["num_boost_round"] = 20
    p["models"]["attention"].update({"d_model": 16, "n_heads": 2, "epochs": 2, "programs_per_group": 8, "finetune_steps": 4})
    p["train"]["targets"] = SOURCES
    p["evaluate"].update({"targets": [], "splits": ["within_task", "by_network", "by_hardware"]})
    p["transfer"].update({"fractions": [25, 100]})
    p["tune"].update({"max_tasks": 1, "max_trials_global": 8, "num_trials_per_iter": 8, "population_size": 32, "timing_number": 5, "timing_repeat": 3})
    path.write_text(yaml.safe_dump(p, sort_keys=False))


def run(cmd, cwd, env, timeout=900) -> subprocess.CompletedProcess:
    """`cmd` must succeed; a failure quotes the ends of its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}"
    return proc


def md5_tree(root: Path) -> dict:
    """Relative path -> md5 of every file under `root` (a file: itself)."""
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root.parent if root.is_file() else root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}
