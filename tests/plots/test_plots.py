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
