"""Featurization speed (issue 26 item 2): rows/s of `encode_programs` (batched, plan-caching)
against `encode_programs_reference` on the bundled MetaSchedule traces, single process.

    .venv/bin/python benchmarks/encode_speed.py
    .venv/bin/python benchmarks/encode_speed.py --file data/bundled/platforms/h200/cuda.parquet --repeats 5

Each run encodes the whole file. `cold` runs start from empty plan caches (what a fresh process
pays), `warm` runs reuse the caches of the previous run (a tuning loop or a second file of the
same tasks). The median of `--repeats` runs is reported with min and max, since the machine may
be shared. The outputs are checked to be identical to the reference first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tensorcost.features import encode as E
from tensorcost.features.program import encode_programs_reference

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "data/bundled/platforms/zen5-2c/avx2-t1.parquet"


def _clear() -> None:
    E.clear_caches()


def _rate(fn, traces, before=None) -> float:
    if before is not None:
        before()
    t0 = time.perf_counter()
    fn(traces)
    return len(traces) / (time.perf_counter() - t0)


def _summary(rates: list[float]) -> dict:
    return {"median": round(statistics.median(rates)), "min": round(min(rates)), "max": round(max(rates)),
            "runs": [round(r) for r in rates]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reference-repeats", type=int, default=None, help="default: --repeats")
    args = ap.parse_args()

    traces = pd.read_parquet(args.file, columns=["trace"])["trace"].tolist()
    _clear()
    got, want = E.encode_programs(traces), encode_programs_reference(traces)
    identical = all(np.array_equal(g.view(np.uint8), w.view(np.uint8)) and g.shape == w.shape for g, w in zip(got, want))

    cold = [_rate(E.encode_programs, traces, _clear) for _ in range(args.repeats)]
    E.encode_programs(traces)
    warm = [_rate(E.encode_programs, traces) for _ in range(args.repeats)]
    ref = [_rate(encode_programs_reference, traces) for _ in range(args.reference_repeats or args.repeats)]
    report = {
        "file": str(args.file),
        "rows": len(traces),
        "identical_to_reference": identical,
        "rows_per_s": {"encode_programs_cold": _summary(cold), "encode_programs_warm": _summary(warm),
                       "reference": _summary(ref)},
        "speedup_median": {"cold": round(statistics.median(cold) / statistics.median(ref), 1),
                           "warm": round(statistics.median(warm) / statistics.median(ref), 1)},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
