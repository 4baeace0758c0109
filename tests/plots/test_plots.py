"""Plots are written as PNG files people can look at, from the reports' own shapes."""

from __future__ import annotations

from tensorcost import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_learning_curves_pca_per_split_topk_and_ranking(tmp_path):
    curves = {"zero_shot:a": {"0": {"pca": 0.6, "top5": 0.8}}, "finetune:a": {"5": {"pca": 0.65, "top5": 0.8}, "100": {"pca": 0.8, "top5": 0.9}},
              "attention": {"5": {"pca": 0.55, "top5": 0.7}, "100": {"pca": 0.85, "top5": 0.92}}}
    plots.learning_curves(curves, "a -> b", tmp_path / "curves.png")
    metrics = {"t": {"by_network": {"m1": {"pca": 0.7, "top5": 0.8}, "m2": {"pca": 0.6, "top5": 0.7}}, "by_hardware": {"m1": {"pca": 0.65, "top5": 0.75}}}}
    plots.pca_per_split(metrics, tmp_path / "pca.png")
    plots.topk_per_network({"resnet50": {"m1": {"pca": 0.7, "top1": 0.5, "top5": 0.8}}}, "t", tmp_path / "topk.png")
    plots.ranking_scatter([0, 1, 2, 3], [1, 0, 2, 3], "task", tmp_path / "rank.png")
    for name in ("curves", "pca", "topk", "rank"):
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name


def test_programs_per_task_curves_draw_a_line_per_curve_and_side(tmp_path, monkeypatch):
    point = {"pca": 0.8, "top1": 0.5, "top5": 0.9}
    curves = {"lightgbm_reg / tc-feat-4": {"pooled": {"points": {"13": point, "104": point, "416": point}}, "bundled_only": {"points": {"13": point, "104": {**point, "train_programs_per_task": 75}}}},
              "lightgbm_reg / tc-feat-3": {"pooled": {"points": {"13": point, "208": point}}, "bundled_only": {"points": {}}}}
    captured = {}
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, out: (captured.setdefault("fig", fig), real_save(fig, out)))
    plots.programs_per_task_curves(curves, "zen3", tmp_path / "programs.png")
    assert (tmp_path / "programs.png").read_bytes().startswith(PNG)
    axes = captured["fig"].axes
    assert [len(ax.lines) for ax in axes] == [3, 3, 3]  # two pooled lines and one bundled-only (the empty side draws nothing)
    assert sorted(int(x) for x in axes[0].lines[0].get_xdata()) == [13, 104, 416]
    assert sorted(int(x) for x in axes[0].lines[1].get_xdata()) == [13, 75]  # where the bundled programs ran out
    assert [t.get_text() for t in axes[-1].get_legend().get_texts()] == list(curves)


def test_many_models_get_distinct_colours_and_the_legend_covers_no_bar(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for n in (3, 10, 12, 20):
        cs = plots.colours(n)
        assert len(set(cs)) == n, n
    models = {f"model_{i}": {"pca": 0.5 + i / 40, "top5": 0.8} for i in range(12)}
    captured = {}
    real_save = plots._save

    def keep(fig, out):
        captured["fig"] = fig
        real_save(fig, out)

    plots._save = keep
    try:
        plots.pca_per_split({"t": {"by_network": models}}, tmp_path / "pca.png")
    finally:
        plots._save = real_save
    fig = captured["fig"]
    ax = fig.axes[0]
    fig.canvas.draw()
    colours = {tuple(p.get_facecolor()) for p in ax.patches}
    assert len(colours) == 12  # one colour a model
    legend_box = ax.get_legend().get_window_extent()
    axes_box = ax.get_window_extent()
    assert legend_box.x0 >= axes_box.x1  # beside the axes, not over the bars
    plt.close(fig)


def test_dvc_bar_plots_have_one_bar_per_model(tmp_path):
    import csv

    from tensorcost.evaluation import write_study_reports

    metrics = {"t": {"by_network": {"m1": {"pca": 0.7, "top1": 0.5, "top5": 0.8}, "m2": {"pca": 0.6, "top1": 0.4, "top5": 0.7}}}}
    per_network = {"t": {"by_network": {"resnet50": {"m1": {"pca": 0.7, "top1": 0.5, "top5": 0.8}, "m2": {"pca": 0.6, "top1": 0.4, "top5": 0.7}}}}}
    import numpy as np
    import pandas as pd

    te = pd.DataFrame({"task_id": ["a"] * 4, "label": [0.1, 0.4, 0.2, 0.3]})
    preds = {"t": {"by_network": (te, {"m1": np.array([0.1, 0.2, 0.3, 0.4]), "m2": np.array([0.4, 0.3, 0.2, 0.1])})}}
    write_study_reports(metrics, per_network, preds, tmp_path / "plots", tmp_path / "figures")
    for name in ("pca_per_split.csv", "topk_per_network.csv"):
        rows = list(csv.DictReader(open(tmp_path / "plots" / name)))
        assert len({r["bar"] for r in rows}) == len(rows) == 2, name  # DVC draws a bar per distinct `bar`


def test_pca_per_split_gives_a_model_one_colour_in_every_panel(tmp_path, monkeypatch):
    """Panels of different models (one platform's study ran attention, another's did not): a
    model's bars have its colour everywhere and the legend names every model once."""
    captured = {}
    real_save = plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, out: (captured.setdefault("fig", fig), real_save(fig, out)))
    cell = {"pca": 0.7, "top5": 0.8}
    metrics = {"a": {"s": {"attention": cell, "lightgbm_reg": cell}}, "b": {"s": {"lightgbm_joint": cell, "lightgbm_reg": cell}}}
    plots.pca_per_split(metrics, tmp_path / "pca.png")
    fig = captured["fig"]
    colour_of = {}
    for ax in fig.axes:
        for bars in ax.containers:
            colour_of.setdefault(bars.get_label(), set()).update(tuple(p.get_facecolor()) for p in bars.patches)
    assert set(colour_of) == {"attention", "lightgbm_joint", "lightgbm_reg"} and all(len(c) == 1 for c in colour_of.values())
    assert len({next(iter(c)) for c in colour_of.values()}) == 3
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == ["attention", "lightgbm_joint", "lightgbm_reg"]
