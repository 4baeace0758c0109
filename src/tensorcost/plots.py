"""Plots people would rather see than read (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .safeio import atomic_output


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
    _save(fig, out)
    plt.close(fig)


def _save(fig, out: Path) -> None:
    """Write a figure atomically: a killed run leaves the previous figure, not half of one."""
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")  # "tight": legends outside the axes are kept


def colours(n: int) -> list:
    """`n` distinct colours (matplotlib's default cycle repeats after ten)."""
    plt = _plt()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _legend_outside(ax, **kw) -> None:
    """A legend right of the axes: it never hides a bar or a line."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def topk_per_network(by_net: dict, title: str, out: Path) -> None:
    """Grouped bars: top-5 (and top-1 hatched) per held-out network, one bar per model."""
    plt = _plt()
    out.parent.mkdir(parents=True, exist_ok=True)
    nets = sorted(by_net)
    models = sorted({m for v in by_net.values() for m in v})
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(nets) * max(1, len(models)) / 3), 3.8))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(nets))
    palette = colours(len(models))
    for i, m in enumerate(models):
        top5 = [by_net[n].get(m, {}).get("top5", np.nan) for n in nets]
        top1 = [by_net[n].get(m, {}).get("top1", np.nan) for n in nets]
        ax.bar(x + i * width, top5, width, label=f"{m} top-5", color=palette[i])
        ax.bar(x + i * width, top1, width, fill=False, hatch="//", edgecolor="k", linewidth=0.4)
    ax.set_xticks(x + width * (len(models) - 1) / 2, nets, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("top-k score (hatched: top-1)")
    ax.set_title(title, fontsize=9)
    _legend_outside(ax)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def pca_per_split(metrics: dict, out: Path) -> None:
    """PCA per split strategy, one panel per target, one bar per model: a model has one colour in
    every panel (panels may hold different models) and the legend names every model."""
    plt = _plt()
    out.parent.mkdir(parents=True, exist_ok=True)
    targets = sorted(metrics)
    every = sorted({m for t in targets for v in metrics[t].values() for m in v})
    palette = dict(zip(every, colours(len(every))))
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.6), squeeze=False)
    for ax, t in zip(axes[0], targets):
        splits = list(metrics[t])
        models = [m for m in every if any(m in v for v in metrics[t].values())]
        width = 0.8 / max(1, len(models))
        x = np.arange(len(splits))
        for i, m in enumerate(models):
            ax.bar(x + i * width, [metrics[t][s].get(m, {}).get("pca", np.nan) for s in splits], width, label=m, color=palette[m])
        ax.axhline(0.5, color="k", lw=0.6, ls="--")
        ax.set_xticks(x + width * (len(models) - 1) / 2, splits, rotation=15, fontsize=8)
        ax.set_ylim(0.3, 1.0)
        ax.set_title(t, fontsize=9)
        ax.set_ylabel("PCA")
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[m]) for m in every]
    axes[0][-1].legend(handles, every, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def learning_curves(curves: dict, title: str, out: Path) -> None:
    """PCA and top-5 against the share k of target data, one line per approach."""
    plt = _plt()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    palette = dict(zip(curves, colours(len(curves))))
    for ax, metric in zip(axes, ("pca", "top5")):
        for approach, by_k in curves.items():
            if not by_k:
                continue
            ks = sorted(by_k, key=float)
            xs = [max(float(k), 0.5) for k in ks]  # k = 0 (zero-shot) drawn at 0.5 on the log axis
            zero = approach.startswith("zero_shot")
            ax.plot(xs, [by_k[k][metric] for k in ks], marker="*" if zero else "o", ms=9 if zero else 4, label=approach, ls="-" if len(ks) > 1 else "none",
                    color=palette[approach])
        ax.set_xscale("log")
        ax.set_xlabel("k = % of the target's data used (zero-shot at 0.5)")
        ax.set_ylabel(metric.upper() if metric == "pca" else "top-5")
        ax.grid(alpha=0.3)
    _legend_outside(axes[-1])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def programs_per_task_curves(curves: dict, title: str, out: Path, dashed: str | None = "the bundled programs only") -> None:
    """PCA, top-1 and top-5 against the training programs a task, one colour per curve
    ({name: {"pooled": {"points": {n: figures}}, "bundled_only": ...}}, drawn at a point's
    `train_programs_per_task` where it has one); dashed: the `bundled_only` side (`dashed` says
    what it is in the title; None: no such side)."""
    plt = _plt()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    palette = dict(zip(curves, colours(len(curves))))
    for ax, metric in zip(axes, ("pca", "top1", "top5")):
        for name, sides in curves.items():
            for side, style in (("pooled", "-"), ("bundled_only", "--")):
                points = (sides.get(side) or {}).get("points", {})
                ns = sorted(points, key=int)
                if ns:
                    xs = [points[n].get("train_programs_per_task", int(n)) for n in ns]  # a task may hold fewer than n
                    ax.plot(xs, [points[n][metric] for n in ns], style, marker="o", ms=4, color=palette[name],
                            label=name if side == "pooled" else None)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training programs a task")
        ax.set_ylabel({"pca": "PCA", "top1": "top-1", "top5": "top-5"}[metric])
        ax.grid(alpha=0.3)
    _legend_outside(axes[-1])
    fig.suptitle(title + (f" (dashed: {dashed})" if dashed else ""), fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)
