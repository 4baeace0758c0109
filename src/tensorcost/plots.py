"""Plots people would rather see than read (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def ranking_scatter(measured_rank: Sequence[int], predicted_rank: Sequence[int], title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(measured_rank, predicted_rank, s=12, alpha=0.7)
    n = max(len(measured_rank), 1)
    ax.plot([0, n], [0, n], "k--", lw=0.8, label="perfect ranking")
    ax.set_xlabel("measured rank (0 = fastest)")
    ax.set_ylabel("predicted rank")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
