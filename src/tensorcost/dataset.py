"""Dataset-level views of canonical records: per-target statistics. Pure Arrow, no TVM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pyarrow.compute as pc

from . import records as rec

BUNDLED_DIR = Path("data/bundled")


def stats(paths: Iterable[str | Path]) -> dict:
    """`{"targets": {target: {"tasks", "networks", "valid_records", "error_records"}}, "total_valid_records"}`."""
    table = rec.read_records(list(paths))
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


def default_paths() -> list[Path]:
    files = sorted(BUNDLED_DIR.glob("records-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no bundled dataset under {BUNDLED_DIR} (run from the repository root)")
    return files


__all__ = ["stats", "default_paths", "cross_target_agreement", "relative_differences", "spearman"]


def _ranks(x):
    import numpy as np

    order = np.argsort(x, kind="stable")
    r = np.empty(len(x), dtype=np.float64)
    r[order] = np.arange(len(x))
    return r


def spearman(a, b) -> float:
    import numpy as np

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
    `{"a|b": {"spearman_median", "spearman_mean", "pca", "tasks", "programs"}}` where Spearman is
    computed within each task over the programs valid on both targets, and PCA pools the pairs.
    """
    import numpy as np

    from .metrics import pairwise_counts

    lat: dict[str, dict[tuple, float]] = {}
    for t, table in tables.items():
        d = table.filter(pc.equal(table["error_no"], 0)).select(["task_id", "program_id", "latency_s"]).to_pydict()
        lat[t] = {(a, b): c for a, b, c in zip(d["task_id"], d["program_id"], d["latency_s"])}
    out = {}
    names = sorted(lat)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = sorted(set(lat[a]) & set(lat[b]))
            by_task: dict[str, list] = {}
            for key in common:
                by_task.setdefault(key[0], []).append((lat[a][key], lat[b][key]))
            rhos, good, total = [], 0.0, 0
            for pairs in by_task.values():
                if len(pairs) < 3:
                    continue
                x, y = np.array(pairs).T
                rhos.append(spearman(x, y))
                g, n = pairwise_counts(-y, x)  # does b's order (faster = higher score) match a's?
                good += g
                total += n
            out[f"{a}|{b}"] = {
                "spearman_median": float(np.nanmedian(rhos)) if rhos else float("nan"),
                "spearman_mean": float(np.nanmean(rhos)) if rhos else float("nan"),
                "pca": good / total if total else float("nan"),
                "tasks": len(rhos),
                "programs": len(common),
            }
    return out


def relative_differences(first, second) -> dict:
    """Median and p90 of |second - first| / first over programs measured twice (same record id)."""
    import numpy as np

    a = dict(zip(first.column("record_id").to_pylist(), first.column("latency_s").to_pylist()))
    diffs = []
    for rid, lat in zip(second.column("record_id").to_pylist(), second.column("latency_s").to_pylist()):
        if lat is not None and a.get(rid):
            diffs.append(abs(lat - a[rid]) / a[rid])
    if not diffs:
        return {"n": 0}
    d = np.array(diffs)
    return {"n": len(d), "median": float(np.median(d)), "p90": float(np.percentile(d, 90)), "max": float(d.max())}


def pack(work_dir: Path, dest: Path, targets: list[str]) -> dict:
    """Copy a collection run (`tensorcost stage sample/collect` in `work_dir`) into a bundled
    dataset: one zstd Parquet per target, its hardware description, and the task set."""
    import shutil

    dest.mkdir(parents=True, exist_ok=True)
    counts = {}
    for t in targets:
        table = rec.read_records(work_dir / "data/raw" / t / "parts")
        rec.write_records(table.sort_by([("task_id", "ascending"), ("program_id", "ascending")]), dest / f"records-{t}.parquet")
        shutil.copy(work_dir / "data/raw" / t / "hardware.json", dest / f"hardware-{t}.json")
        counts[t] = table.num_rows
    for name in ("tasks.json", "programs.parquet"):
        shutil.copy(work_dir / "data/programs" / name, dest / name)
    return counts
