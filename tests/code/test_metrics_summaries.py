"""dvc.yaml declares as metrics only the stages' summaries (a few keys each), so that
`dvc metrics show` fits a terminal; the detail reports stay declared as outputs."""

from __future__ import annotations

from pathlib import Path

import yaml

from tensorcost.reports import evaluation_summary, ranking_summary

DVC_YAML = Path(__file__).resolve().parents[2] / "dvc.yaml"


def _paths(entries) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def test_every_metrics_file_is_a_summary():
    stages = yaml.safe_load(DVC_YAML.read_text())["stages"]
    metrics = {}
    for name, st in stages.items():
        body = st.get("do", st)
        metrics[name] = _paths(body.get("metrics"))
    assert any(metrics.values())
    for name, paths in metrics.items():
        assert all(p.startswith("reports/summary/") for p in paths), (name, paths)


def test_summaries_hold_a_few_keys():
    s = ranking_summary("lightgbm_reg", {"pca": 0.81234, "top1": 0.5, "top5": 0.9, "n_tasks": 3, "n_records": 40, "train_s": 1.0})
    assert s == {"model": "lightgbm_reg", "pca": 0.812, "top1": 0.5, "top5": 0.9, "records": 40}
    detail = {"host": {"by_hardware": {"a": {"pca": 0.7, "top1": 0.5, "top5": 1}, "b": {"pca": 0.8, "top1": 0.4, "top5": 1}, "c": {"pca": float("nan")}},
                       "by_network": {"a": {"pca": 0.9}}}, "zen5": {"by_hardware": {"a": {"pca": 0.95}}}}
    assert evaluation_summary(detail) == {"slot": "host", "split": "by_hardware", "model": "b", "pca": 0.8, "top1": 0.4, "top5": 1.0}
