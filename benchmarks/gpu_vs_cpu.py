"""How far the bundled GPU target is from the CPU ones (docs/DATASET.md): the programs differ, so
the comparison is per task.

    .venv/bin/python benchmarks/gpu_vs_cpu.py

Spearman correlation of the tasks' best latencies (GPU vs a CPU target, and between two CPU
targets on the same tasks), the best-CPU / best-GPU speed-up per task, the spread of random
programs within a task (slowest / fastest), and the spread of one measurement's repeats.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from tensorcost import dataset


def valid(target: str) -> pd.DataFrame:
    df = pd.read_parquet(dataset.bundled_records_path(target))
    return df[df.error_no == 0]


def main(gpu: str = "h200.cuda", cpu: str = "sapphirerapids-2c.avx512-t2", other_cpu: str = "sapphirerapids-2c.sse42-t2") -> None:
    g, c, o = valid(gpu), valid(cpu), valid(other_cpu)
    best_g = g.groupby("task_id").latency_s.min()
    best_c = c.groupby("task_id").latency_s.min().reindex(best_g.index)
    best_o = o.groupby("task_id").latency_s.min().reindex(best_g.index)
    print(f"tasks: {len(best_g)}")
    print(f"Spearman of best latencies, {gpu} vs {cpu}: {spearmanr(best_g, best_c).correlation:.2f}")
    print(f"Spearman of best latencies, {cpu} vs {other_cpu}: {spearmanr(best_c, best_o).correlation:.2f}")
    speedup = best_c / best_g
    print(f"best {cpu} / best {gpu}: median {speedup.median():.1f}, min {speedup.min():.1f}, max {speedup.max():.1f}")
    spread = lambda df: df.groupby("task_id").latency_s.agg(lambda x: x.max() / x.min()).median()  # noqa: E731
    print(f"slowest / fastest program within a task, median: {gpu} {spread(g):.0f}, {cpu} {spread(c[c.task_id.isin(best_g.index)]):.0f}")
    rep = g.latencies.apply(lambda l: (max(l) - min(l)) / np.mean(l))
    print(f"{gpu}: repeats of one measurement, (max - min) / mean, median {rep.median() * 100:.2f}%")


if __name__ == "__main__":
    main()
