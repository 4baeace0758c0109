"""Is this machine the bundled platform the catalog says it is? A `tensorcost dataset remeasure`
file (programs of a bundled target measured again here) against the bundled figures of that
target, beside how far every other bundled platform's figures of the same programs are from them:
a re-measure on the same platform should sit near its noise, far below another machine.

    .venv/bin/tensorcost dataset remeasure --target sapphirerapids-2c.avx2-t1 --seed 1 --out /tmp/remeasure.parquet
    .venv/bin/python benchmarks/remeasure_distance.py --target sapphirerapids-2c.avx2-t1 --remeasure /tmp/remeasure.parquet
    .venv/bin/python benchmarks/remeasure_distance.py --target zen3-2c.avx2-t1 \
        --remeasure data/bundled/platforms/zen3-2c/superseded-avx2-t1.parquet --own-programs   # grown tasks: both passes

`--own-programs`: every program both files hold (not only those every other platform measured),
and the level: today's latency over the re-measure's, its median per task, by the day the
re-measure's records were taken.

Relative difference of a program's latency: |a - b| / min(a, b); median and p90 over the programs
valid on both sides, and the rank agreement (PCA within tasks) of the two sets of figures.
"""

from __future__ import annotations

import argparse

import numpy as np

from tensorcost import dataset
from tensorcost import records as rec
from tensorcost.metrics import ranking_report


def distance(a, b) -> dict:
    """Median / p90 relative latency difference and PCA of two frames of the same programs."""
    m = a.merge(b, on=["task_id", "program_id"])
    m = m[(m["error_no_x"] == 0) & (m["error_no_y"] == 0)]
    rel = np.abs(m["latency_s_x"] - m["latency_s_y"]) / np.minimum(m["latency_s_x"], m["latency_s_y"])
    pca = ranking_report(m["task_id"], -m["latency_s_x"].to_numpy(), m["latency_s_y"].to_numpy()).pca
    return {"programs": len(m), "median": float(np.median(rel)), "p90": float(np.percentile(rel, 90)), "pca": pca}


def own_programs(target: str, remeasure: str, cols: list[str]) -> int:
    """Both passes on every program they share, and the level between them per task."""
    import datetime

    base = dataset.bundled_tables([target])[target].to_pandas()[cols]
    again = rec.read_records(remeasure).to_pandas()[cols + ["measured_at"]]
    # a task grown twice holds two earlier passes of its first programs: the latest of each here, every pass by day below
    latest = again.sort_values("measured_at", kind="stable").drop_duplicates(["task_id", "program_id"], keep="last")
    d = distance(latest[cols], base)
    print(f"both passes (the re-measure's latest of each program), every shared program: {d['programs']} programs, "
          f"median {d['median']:.1%}, p90 {d['p90']:.1%}, PCA {d['pca']:.3f}")
    again["day"] = [datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%d") for t in again["measured_at"]]
    for day, sub in again.groupby("day"):
        m = sub.merge(base, on=["task_id", "program_id"], suffixes=("_again", ""))
        m = m[(m["error_no_again"] == 0) & (m["error_no"] == 0)]
        ratio = (m["latency_s"] / m["latency_s_again"]).groupby(m["task_id"]).median()
        d = distance(sub[cols], base)
        print(f"re-measure taken {day}: {ratio.size} tasks, {d['programs']} programs; bundled / re-measure latency, median per task "
              f"{ratio.min():.2f}-{ratio.max():.2f}; median difference {d['median']:.1%}, PCA {d['pca']:.3f}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help="the bundled target the re-measure repeats")
    ap.add_argument("--remeasure", required=True, help="the Parquet file `tensorcost dataset remeasure` wrote")
    ap.add_argument("--own-programs", action="store_true", help="every program both hold, and the level per task by measurement day")
    a = ap.parse_args()
    cols = ["task_id", "program_id", "latency_s", "error_no"]
    if a.own_programs:
        return own_programs(a.target, a.remeasure, cols)
    others = [t for t in dataset.bundled_targets() if t != a.target and t.endswith(a.target.split(".", 1)[1])]
    tables = {t: tb.to_pandas()[cols] for t, tb in dataset.bundled_tables([a.target, *others]).items()}
    again = rec.read_records(a.remeasure).to_pandas()[cols]
    base = tables[a.target]
    # every row on the same programs: those the re-measure holds and every other platform measured
    # (a program set only this target holds was measured days later, hours before the re-measure)
    same = again[["task_id", "program_id"]]
    for t in others:
        same = same.merge(tables[t][["task_id", "program_id"]])
    again = again.merge(same)
    print("| figures | against the bundled | programs | median | p90 | PCA |\n| --- | --- | --- | --- | --- | --- |")
    rows = [("this machine, re-measured", again)] + [(f"`{t}` (bundled)", tables[t].merge(same)) for t in others]
    for name, frame in rows:
        d = distance(frame, base)
        print(f"| {name} | `{a.target}` | {d['programs']} | {d['median']:.1%} | {d['p90']:.1%} | {d['pca']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
