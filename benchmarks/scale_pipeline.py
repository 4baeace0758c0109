"""The scale benchmark (issue 26): TenSet-size data through the whole data path on one machine.

    .venv/bin/python benchmarks/scale_pipeline.py --rows 1000000 --work /tmp/tc-scale-1m --out docs/results/scale-1m.json
    make scale ROWS=8600000          # one TenSet CPU platform (work dir .tensorcost/scale-<rows>)

Stages, each in its own process (its wall time and peak RSS measured, the RSS summed over the
stage's whole process tree, workers included): synth (TenSet-format files written from the
bundled programs, target `synthetic-...`: synthetic_tenset.py) -> import (`import_tenset`) ->
validate (the records suite, partition by partition) -> featurize (parallel, resumable, then the
features suite fragment by fragment) -> train (LightGBM from the store through
`lightgbm.Sequence`, or `--dask` on a two-worker LocalCluster) -> evaluate (predictions a fragment
at a time). Resumable: a stage whose result is in `<work>/results.json` is not run again
(`--force STAGE` re-runs it). The data is synthetic: the PCA / top-k it prints checks that the
pipeline ran end to end; it is no accuracy figure and is never reported as one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

STAGES = ("synth", "import", "validate", "featurize", "train", "evaluate")
SLOT = "scale"


def _tree_pss(pid: int) -> int:
    """The memory a process tree uses: the sum of its processes' proportional set sizes (pages
    a forked worker shares with its parent counted once, not once a process as RSS would)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def run_stage(stage: str, args: argparse.Namespace) -> dict:
    """One stage in a child process: wall seconds and the peak RSS of its process tree."""
    cmd = [sys.executable, __file__, "--stage", stage, "--rows", str(args.rows), "--work", str(args.work), "--source-target", args.source_target,
           "--workers", str(args.workers), "--rounds", str(args.rounds)] + (["--dask"] if args.dask else []) + (["--keep-input"] if args.keep_input else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_pss(proc.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.join(timeout=1)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed (exit {proc.returncode})")
    detail = json.loads((args.work / f"{stage}.json").read_text())
    return {"stage": stage, "wall_s": round(wall, 1), "peak_pss_tree_mb": round(peak[0] / 2**20), "peak_rss_stage_process_mb": round(usage.ru_maxrss / 1024), **detail}


# -- the stages (run inside the child) ------------------------------------------------------------

def stage_synth(a) -> dict:
    from tensorcost.synthetic_tenset import write_synthetic_tenset

    return write_synthetic_tenset(a.work / "tenset", a.rows, source_target=a.source_target, seed=0)


def stage_import(a) -> dict:
    from tensorcost.records.importer import import_tenset

    out = a.work / "records.parquet"
    report = import_tenset([a.work / "tenset"], out, workers=a.workers)
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(out).metadata.num_rows
    target = pq.read_table(out, columns=["target"]).column("target")[0].as_py()
    if not a.keep_input:  # 3 KB a line of JSON (26 GB at 8.6M rows): the records file is what later stages read
        import shutil

        shutil.rmtree(a.work / "tenset")
    return {"rows": rows, "target": target, "bytes_on_disk": out.stat().st_size, "bytes_per_row_on_disk": round(out.stat().st_size / max(rows, 1), 1),
            "quarantined": getattr(report, "quarantined", None)}


def stage_validate(a) -> dict:
    from tensorcost.validation import validate_records_file

    target = json.loads((a.work / "import.json").read_text())["target"]
    summary = validate_records_file(a.work / "records.parquet", target)
    if not summary.success:
        raise SystemExit(summary.readable())
    return {"rows": summary.n_rows, "success": summary.success, "partitions": summary.statistics.get("partitions")}


def stage_featurize(a) -> dict:
    from tensorcost.features import FEATURE_SCHEMA_VERSION, flat_feature_names
    from tensorcost.features.build import featurize_file
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES
    from tensorcost.hardware.catalog import catalog_target
    from tensorcost.validation import validate_feature_fragments

    target = json.loads((a.work / "import.json").read_text())["target"]
    hw = catalog_target(target).features()  # synthetic-<platform>: the hardware of the platform its programs were copied from
    t0 = time.perf_counter()
    writer = featurize_file(a.work / "records.parquet", a.work / "features", SLOT, hw, HARDWARE_FEATURE_NAMES, workers=a.workers)
    featurize_s = time.perf_counter() - t0
    names = flat_feature_names(HARDWARE_FEATURE_NAMES)
    summary = validate_feature_fragments(sorted(writer.partial.glob("part-*.parquet")), SLOT, target, FEATURE_SCHEMA_VERSION, names)
    validate_s = time.perf_counter() - t0 - featurize_s
    if not summary.success:
        raise SystemExit(summary.readable())
    meta = writer.commit({"feature_names": names, "target": target})
    size = sum(f.stat().st_size for f in (a.work / "features" / SLOT).glob("part-*.parquet"))
    return {"rows": meta["valid_records"], "fragments": meta["fragments"], "featurize_s": round(featurize_s, 1),
            "featurize_rows_per_s": round(meta["valid_records"] / featurize_s), "features_validate_s": round(validate_s, 1),
            "bytes_on_disk": size, "bytes_per_row_on_disk": round(size / max(meta["valid_records"], 1), 1)}


def _split(view):
    import numpy as np

    from tensorcost.splits import assign_test

    f = view.frame
    test = assign_test("by_task", f["task_id"].to_numpy(), None, 0.2, 0)
    return view.take(np.flatnonzero(~test)), view.take(np.flatnonzero(test))


def _spec(a):
    from tensorcost.evaluation import ModelSpec
    from tensorcost.params import load_params

    family, params = load_params(Path(__file__).resolve().parents[1] / "params.yaml").model_spec("lightgbm_reg")
    return ModelSpec(family, {**params, "num_boost_round": a.rounds, "num_threads": a.workers})


def stage_train(a) -> dict:
    from tensorcost.features.store import StoreView

    t0 = time.perf_counter()
    view = StoreView(a.work / "features", SLOT)
    train, test = _split(view)
    model = _spec(a).create(view)
    del view  # the two sides hold their own rows
    load_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    if a.dask:
        from tensorcost.models.distributed import train_lightgbm_dask

        model = train_lightgbm_dask(model, train, scheduler=None, n_workers=a.workers)
    else:
        model.fit(train)
    fit_s = time.perf_counter() - t1
    out = a.work / ("model-dask" if a.dask else "model")
    model.save(out)
    return {"train_rows": len(train), "test_rows": len(test), "metadata_load_and_split_s": round(load_s, 1), "fit_s": round(fit_s, 1),
            "rounds": a.rounds, "engine": "dask LocalCluster" if a.dask else "one process (lightgbm.Sequence)", "model": str(out)}


def stage_evaluate(a) -> dict:
    from tensorcost.features.store import StoreView
    from tensorcost.metrics import ranking_report
    from tensorcost.models import load_model

    view = StoreView(a.work / "features", SLOT)
    _, test = _split(view)
    model = load_model(a.work / ("model-dask" if a.dask else "model"))
    t0 = time.perf_counter()
    scores = model.predict(test)
    predict_s = time.perf_counter() - t0
    rep = ranking_report(test.frame["task_id"], scores, test.frame["latency_s"].to_numpy(), test.task_weights())  # columnar: task codes, not lists
    return {"test_rows": len(test), "predict_s": round(predict_s, 1), "predict_rows_per_s": round(len(test) / max(predict_s, 1e-9)),
            "metrics_s": round(time.perf_counter() - t0 - predict_s, 1),
            "sanity_not_accuracy": {"pca": round(rep.pca, 4), "top1": round(rep.top1, 4), "top5": round(rep.top5, 4)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (kept: a re-run resumes)")
    ap.add_argument("--out", type=Path, help="results JSON (default: <work>/results.json only)")
    ap.add_argument("--source-target", default="zen5-2c.avx2-t1")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=100, help="LightGBM rounds")
    ap.add_argument("--dask", action="store_true", help="train on a LocalCluster of --workers workers (lightgbm.dask)")
    ap.add_argument("--keep-input", action="store_true", help="keep the TenSet-format files after the import (else removed)")
    ap.add_argument("--force", action="append", default=[], choices=STAGES)
    ap.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    if "--markdown" in sys.argv:  # the docs/SCALE.md tables from results files
        print(markdown([Path(p) for p in sys.argv[sys.argv.index("--markdown") + 1:]]))
        return
    a = ap.parse_args()
    a.work = a.work.resolve()
    if a.stage:
        detail = globals()[f"stage_{a.stage}"](a)
        (a.work / f"{a.stage}.json").write_text(json.dumps(detail, indent=1, default=str))
        return
    a.work.mkdir(parents=True, exist_ok=True)
    results_file = a.work / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {"rows": a.rows, "stages": {}}
    if results["rows"] != a.rows:
        raise SystemExit(f"{a.work} holds a run of {results['rows']} rows, not {a.rows}: use another --work")
    engine = "-dask" if a.dask else ""  # the Dask run shares the data stages, its own train and evaluate
    keys = [s if s in ("synth", "import", "validate", "featurize") else s + engine for s in STAGES]
    for stage, key in zip(STAGES, keys):
        if key in results["stages"] and stage not in a.force:
            print(f"[scale] {key}: done ({results['stages'][key]['wall_s']} s)", file=sys.stderr)
            continue
        print(f"[scale] {key} ...", file=sys.stderr, flush=True)
        results["stages"][key] = run_stage(stage, a)
        results_file.write_text(json.dumps(results, indent=1))
        r = results["stages"][key]
        print(f"[scale] {key}: {r['wall_s']} s, peak memory (PSS of the tree) {r['peak_pss_tree_mb']} MB", file=sys.stderr, flush=True)
    done = [results["stages"][k] for k in keys]
    results.update({f"total_wall_s{engine}": round(sum(r["wall_s"] for r in done), 1), f"peak_memory_mb{engine}": max(r.get("peak_pss_tree_mb", r.get("peak_rss_tree_mb", 0)) for r in done),
                    "host": _host(), "workers": a.workers})
    results_file.write_text(json.dumps(results, indent=1))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "stages"}, indent=1))


def markdown(files: list[Path]) -> str:
    """Per stage and size: wall time, rows/s, peak RSS of the stage's process tree, and per row."""
    runs = [json.loads(f.read_text()) for f in files]
    lines = ["| rows | stage | wall | rows/s | peak memory (PSS, process tree) | largest process (RSS) | on disk per row |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in sorted(runs, key=lambda r: r["rows"]):
        n = run["rows"]
        for key, r in run["stages"].items():
            disk = f"{r['bytes_per_row_on_disk']:.0f} B" if "bytes_per_row_on_disk" in r else ""
            lines.append(f"| {n:,} | {key} | {r['wall_s']:,.0f} s | {n / max(r['wall_s'], 1e-9):,.0f} | {r.get('peak_pss_tree_mb', r.get('peak_rss_tree_mb')):,} MB | "
                         f"{r['peak_rss_stage_process_mb']:,} MB | {disk} |")
        for engine in ("", "-dask"):
            if f"total_wall_s{engine}" in run:
                lines.append(f"| {n:,} | **total{engine or ''}** | **{run[f'total_wall_s{engine}'] / 60:.1f} min** | | **{run.get(f'peak_memory_mb{engine}', run.get(f'peak_rss_mb{engine}', 0)):,} MB** | | |")
    runs = sorted(runs, key=lambda r: r["rows"])
    if len(runs) >= 2:  # what a stage holds per row: the growth of its peak between the smallest and largest run
        small, big = runs[0], runs[-1]
        dn = big["rows"] - small["rows"]
        lines += ["", f"| stage | time per row ({big['rows']:,} rows) | memory per row ({small['rows']:,} -> {big['rows']:,} rows: growth of the peak / growth of the rows) |",
                  "| --- | --- | --- |"]
        for key, r in big["stages"].items():
            if key not in small["stages"]:
                continue
            peak = lambda x: x.get("peak_pss_tree_mb", x.get("peak_rss_tree_mb", 0)) * 2**20  # noqa: E731
            grow = (peak(r) - peak(small["stages"][key])) / dn
            lines.append(f"| {key} | {r['wall_s'] / big['rows'] * 1e6:.1f} us | {max(grow, 0):,.0f} B |")
    return "\n".join(lines)


def _host() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    main()
