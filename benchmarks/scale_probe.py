"""What breaks first at TenSet scale (52M records): the in-memory stages, measured as they grow.

    .venv/bin/python benchmarks/scale_probe.py --sizes 4368 17472 69888 --out docs/results/scale_probe.json

Each size runs in a fresh process (so peak RSS is that size's own): the bundled Sapphire Rapids
`avx2-t1` records, repeated with fresh record ids up to the size, are featurized exactly as the
featurize stage does (`featurize_table`), written as the feature Parquet, read back, and a
LightGBM regressor is trained on the flat matrix (the GBDT baseline's input; 100 rounds).
Reports seconds, rows/s and peak RSS per phase, and bytes per row on disk and in memory, which
docs/SCALE.md extrapolates to 52M rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "data/bundled/platforms/sapphirerapids-2c/avx2-t1.parquet"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def probe(size: int) -> dict:
    """One size, in this process."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from tensorcost import records as rec
    from tensorcost.features import featurize_table
    from tensorcost.features.table import FeatureTable
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES, describe_target

    base = rec.read_records(SOURCE)
    reps = -(-size // base.num_rows)
    parts = []
    for r in range(reps):  # distinct ids and task ids per copy, as more tasks of a bigger dataset would be
        t = base.set_column(base.schema.get_field_index("record_id"), "record_id", pc.binary_join_element_wise(base.column("record_id"), pa.scalar(f"-{r}"), ""))
        t = t.set_column(t.schema.get_field_index("task_id"), "task_id", pc.binary_join_element_wise(t.column("task_id"), pa.scalar(f"-{r}"), ""))
        parts.append(t)
    table = pa.concat_tables(parts).slice(0, size)
    out = {"rows": size, "rss_mb_records": _rss_mb()}
    hw = describe_target("sapphirerapids-2c.avx2-t1")  # studied here, not measured
    t0 = time.perf_counter()
    df = featurize_table(table, hw.features(), HARDWARE_FEATURE_NAMES, slot="scale")
    out["featurize_s"] = time.perf_counter() - t0
    out["featurize_rows_per_s"] = len(df) / out["featurize_s"]
    out["rss_mb_featurized"] = _rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "scale.parquet"
        t0 = time.perf_counter()
        df.to_parquet(f, index=False)
        out["write_s"] = time.perf_counter() - t0
        out["feature_parquet_bytes_per_row"] = f.stat().st_size / len(df)
        del df
        import pandas as pd

        t0 = time.perf_counter()
        frame = pd.read_parquet(f)
        out["read_s"] = time.perf_counter() - t0
    ft = FeatureTable(frame, "scale")
    x = ft.flat
    out["flat_dims"] = int(x.shape[1])
    out["flat_bytes_per_row"] = x.nbytes / len(x)
    out["tokens_bytes_per_row_float32"] = float(np.mean(frame["n_tokens"])) * len(frame["tokens"].iloc[0]) / max(1, frame["n_tokens"].iloc[0]) * 4
    out["rss_mb_loaded"] = _rss_mb()
    import lightgbm as lgb

    t0 = time.perf_counter()
    ds = lgb.Dataset(x, label=ft.labels, params={"verbose": -1, "max_bin": 255})
    lgb.train({"objective": "regression", "verbose": -1, "num_threads": 2, "learning_rate": 0.1, "num_leaves": 63}, ds, num_boost_round=100)
    out["lightgbm_train_s"] = time.perf_counter() - t0
    out["rss_mb_trained"] = _rss_mb()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[4368, 17472, 69888])
    ap.add_argument("--out", type=Path, default=REPO / "docs/results/scale_probe.json")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: run one size in this process
    args = ap.parse_args()
    if args.one:
        print(json.dumps(probe(args.one)))
        return
    from tqdm import tqdm

    rows = []
    for size in tqdm(args.sizes, desc="sizes"):
        proc = subprocess.run([sys.executable, __file__, "--one", str(size)], capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        tqdm.write(json.dumps(rows[-1]))
    import os

    result = {"command": "python benchmarks/scale_probe.py --sizes " + " ".join(map(str, args.sizes)), "cpu": _cpu(), "cores": os.cpu_count(), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
