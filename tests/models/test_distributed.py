"""Training beyond one process: LightGBM on a two-worker Dask LocalCluster and the attention model
under a two-process torchrun, against one process on the same real data."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tensorcost.evaluation import ModelSpec
from tensorcost.features import featurize_records, write_feature_store
from tensorcost.features.store import StoreView
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.hardware.catalog import catalog_target
from tensorcost.metrics import pairwise_comparison_accuracy
from tensorcost.models import load_model

pytestmark = pytest.mark.slow
SLOT = "zen5-2c.avx2-t1"
ROOT = Path(__file__).resolve().parents[2]


def _store(directory: Path, n_tasks: int | None = None, rows_per_fragment: int = 1000) -> StoreView:
    table = pq.read_table(ROOT / "data/bundled/platforms/zen5-2c/avx2-t1.parquet")
    if n_tasks:
        tasks = table.column("task_id").to_numpy(zero_copy_only=False)
        table = table.filter(np.isin(tasks, list(dict.fromkeys(tasks))[:n_tasks]))
    write_feature_store(featurize_records(table, catalog_target(SLOT).features(), HARDWARE_FEATURE_NAMES, slot=SLOT), directory, SLOT,
                        rows_per_fragment=rows_per_fragment)
    return StoreView(directory, SLOT)


def _pca(model, view) -> float:
    return pairwise_comparison_accuracy(view.frame["task_id"].astype(str), model.predict(view), view.frame["latency_s"])


@pytest.mark.parametrize("objective", ["regression", "lambdarank"])
def test_lightgbm_on_a_two_worker_dask_cluster_matches_one_process(tmp_path, objective):
    from tensorcost.models.distributed import train_lightgbm_dask

    view = _store(tmp_path)
    tasks = sorted(set(view.frame["task_id"].astype(str)))
    test = np.isin(view.frame["task_id"].astype(str), tasks[::4])
    train, held = view.take(np.flatnonzero(~test)), view.take(np.flatnonzero(test))
    spec = ModelSpec("lightgbm", {"objective": objective, "num_boost_round": 60, "num_threads": 1, "group_relative": True})
    one = spec.create(SLOT, "s", view.feature_names)
    one.fit(train)
    cluster = train_lightgbm_dask(spec.create(SLOT, "s", view.feature_names), train, scheduler="local", n_workers=2)
    cluster.save(tmp_path / "m")
    again = load_model(tmp_path / "m")  # an ordinary model: saves, loads, predicts
    p1, p2 = _pca(one, held), _pca(again, held)
    assert p1 > 0.65 and abs(p1 - p2) < 0.01, (p1, p2)


def test_attention_under_a_two_process_torchrun_learns_like_one_process(tmp_path):
    _store(tmp_path / "store", n_tasks=16, rows_per_fragment=200)

    def run(n: int, out: str) -> list[float]:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n)] if n > 1 else [sys.executable]
        cmd = launcher + ["-m", "tensorcost.models.ddp_train", "--features-dir", str(tmp_path / "store"), "--slot", SLOT, "--params",
                          str(ROOT / "params.yaml"), "--out", str(tmp_path / out), "--epochs", "4", "--curve", str(tmp_path / f"{out}.json")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads((tmp_path / f"{out}.json").read_text())["train_ranknet_loss"]

    single, double = run(1, "one"), run(2, "two")
    # Both fall; two ranks average two steps' gradients (half the steps a rank, twice the programs a
    # step), so their curve is the same shape, not the same numbers: within 0.05 of each other.
    assert single[-1] < single[0] and double[-1] < double[0]
    assert max(abs(a - b) for a, b in zip(single, double)) < 0.05, (single, double)
    view = StoreView(tmp_path / "store", SLOT)
    assert _pca(load_model(tmp_path / "two"), view) > 0.55


def test_the_train_stage_trains_lightgbm_on_the_cluster_of_train_cluster(tmp_path, monkeypatch):
    """`train.cluster` set: the stage reads the store a fragment at a time, LightGBM trains on a
    two-worker LocalCluster, and the versions are registered as always."""
    import shutil

    import yaml

    from tensorcost import stages
    from tensorcost.hardware import describe_target
    from tensorcost.records import write_records

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update({"cluster": {"scheduler": "local", "workers": 2}, "models": ["lightgbm_reg", "lightgbm_rank"]})
    params["split"]["strategy"] = "within_task"
    params["models"]["lightgbm_rank"]["num_boost_round"] = 30
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    table = pq.read_table(ROOT / "data/bundled/platforms/zen5-2c/avx2-t1.parquet")
    tasks = table.column("task_id").to_numpy(zero_copy_only=False)
    from tensorcost import dataset

    write_records(dataset.relabel(table.filter(np.isin(tasks, list(dict.fromkeys(tasks))[:12])), SLOT), stages.RECORDS_DIR / f"{SLOT}.parquet")
    (stages.RECORDS_DIR / f"{SLOT}.target.json").write_text(json.dumps(describe_target(SLOT).to_dict()))
    stages.validate(SLOT)
    stages.featurize(SLOT)
    stages.train(SLOT)
    report = json.loads((tmp_path / "reports/train" / f"{SLOT}.json").read_text())
    assert set(report["models"]) == {"lightgbm_reg", "lightgbm_rank"}
    assert all(r["metrics"]["pca"] > 0.6 and r["version"] for r in report["models"].values())
    shutil.rmtree(tmp_path / "mlruns", ignore_errors=True)
