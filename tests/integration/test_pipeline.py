"""The whole pipeline, for real: `dvc repro` on a micro profile in a temporary copy of the repo.

Real TVM builds and runs, a real Great Expectations suite, real LightGBM training, a real MLflow
store and registry, and real MetaSchedule tuning with both cost models.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tensorcost.hardware import available_targets

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _micro_targets() -> list[str]:
    """Two targets of this host, as different as it offers (vector width first)."""
    ts = available_targets()
    prefs = [t for t in ("cpu-avx2-t1", "cpu-sse42-t2", "cpu-sse42-t1", "cpu-avx2-t2") if t in ts]
    return (prefs + sorted(ts))[:2]


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src = REPO / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def _micro_params(path: Path, targets: list[str]) -> None:
    target = targets[0]
    p = yaml.safe_load(path.read_text())
    p["targets"] = targets
    p["zoo"]["networks"] = ["tiny_resnet"]
    p["sample"].update({"reference_target": target, "max_tasks": 2, "programs_per_task": 8})
    p["records"]["bundled"] = False
    p["split"]["test_fraction"] = 0.5  # 8 programs a task: leave pairs on the test side
    p["measure"].update({"number": 2, "repeat": 2, "min_repeat_ms": 5})
    p["train"]["lightgbm"]["num_boost_round"] = 20
    p["attention"].update({"d_model": 16, "n_heads": 2, "n_layers": 1, "epochs": 2, "programs_per_group": 8})
    p["transfer"].update({"fractions": [25, 100], "finetune_epochs": 1, "register_k": 100, "test_fraction": 0.3})
    p["tune"].update({"target": target, "max_tasks": 1, "max_trials_global": 8, "num_trials_per_iter": 8, "population_size": 32, "timing_number": 5, "timing_repeat": 3})
    path.write_text(yaml.safe_dump(p, sort_keys=False))


def _run(cmd, cwd, env, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def pipeline_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("repo")
    _copy_repo(work)
    targets = _micro_targets()
    target = targets[0]
    _micro_params(work / "params.yaml", targets)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    _run(["git", "init", "-q"], work, env)
    _run(git + ["add", "-A"], work, env)
    _run(git + ["commit", "-q", "-m", "micro"], work, env)
    t0 = time.time()
    first = _run(["dvc", "repro"], work, env, timeout=1500)
    return {"work": work, "env": env, "target": target, "targets": targets, "first": first, "first_s": time.time() - t0}


def test_stages_wrote_their_outputs(pipeline_run):
    work, target = pipeline_run["work"], pipeline_run["target"]
    summary = json.loads((work / "data/raw" / target / "summary.json").read_text())
    assert summary["records"] == 16 and summary["database_records"] > 0
    assert (work / "data/raw" / target / "database" / "database_tuning_record.json").stat().st_size > 0
    val = json.loads((work / "reports/validation" / f"{target}.json").read_text())
    assert val["success"] is True and val["n_rows"] == 16
    assert (work / "reports/validation" / target / "data_docs" / "index.html").exists()
    metrics = json.loads((work / "reports/metrics/evaluate.json").read_text())
    m = metrics[target]["within_task"]["lightgbm_rank"]
    assert 0.0 <= m["pca"] <= 1.0 and 0.0 < m["top1"] <= 1.0 and m["n_records"] > 0
    for split in ("within_task", "by_task", "by_hardware"):  # by_network: no held-out network in the micro zoo
        assert set(metrics[target][split]) == {"lightgbm_rank", "lightgbm_reg", "tvm_xgb", "attention", "random"}, split
        for r in metrics[target][split].values():
            assert r["n_records"] > 0 and r["candidates_per_s"] > 0
    assert (work / "reports/plots/ranking.csv").read_text().startswith("target,task_id,measured_rank,predicted_rank")
    assert (work / "models" / target / "model.txt").exists()


def test_transfer_study_and_finetuned_registration(pipeline_run):
    work, env = pipeline_run["work"], pipeline_run["env"]
    report = json.loads((work / "reports/transfer/study.json").read_text())
    primary, gpu = report["studies"]
    source, target = report["source"], primary["target"]
    assert {source, target} == set(pipeline_run["targets"])
    transfer = json.loads((work / "reports/metrics/transfer.json").read_text())
    curves = transfer[target]
    assert set(curves["zero_shot"]) == {"0"}
    for approach in ("finetune", "scratch", "lightgbm_rank", "tvm_xgb"):
        assert set(curves[approach]) == {"25", "100"}, approach
    assert report["source_model"]["name"] == f"tensorcost-{source}"
    for study in (primary, gpu):
        reg = study["finetuned_registered"]
        show = _run(["tensorcost", "registry", "show", "--target", study["target"], "--alias", "candidate"], work, env)
        tags = json.loads(show.stdout.split("\n", 1)[1])
        assert tags["source_model"] == f"tensorcost-{source}/{report['source_model']['version']}" and reg["name"] == f"tensorcost-{study['target']}"
        assert (work / "reports/transfer/curves" / f"{study['target']}.png").stat().st_size > 0
    # the bundled GPU target: studied from its bundled records, TVM's XGBoost on MetaSchedule's CUDA features
    assert gpu["target"] == "cuda-h200"
    for approach in ("finetune", "scratch", "lightgbm_rank", "tvm_xgb"):
        assert set(transfer["cuda-h200"][approach]) == {"25", "100"}, approach
    assert (work / "reports/transfer/learning_curve.png").stat().st_size > 0


def test_tune_report_has_both_cost_models(pipeline_run):
    work, target = pipeline_run["work"], pipeline_run["target"]
    report = json.loads((work / "reports/tune" / f"{target}.json").read_text())
    for name in ("tensorcost", "tvm_xgb"):
        r = report["cost_models"][name]
        assert r["trials_measured"] > 0
        assert r["network_latency_ms"]["median"] > 0
    assert report["cost_models"]["tensorcost"]["model"]["alias_used"] == "candidate"  # no champion yet
    assert "falling back to 'candidate'" in pipeline_run["first"].stderr


def test_registry_candidate_and_promotion(pipeline_run):
    work, env, target = pipeline_run["work"], pipeline_run["env"], pipeline_run["target"]
    show = _run(["tensorcost", "registry", "show", "--target", target, "--alias", "candidate"], work, env)
    tags = json.loads(show.stdout.split("\n", 1)[1])
    for key in ("target", "model_family", "feature_schema", "train_data_hash", "git_commit", "validation", "metric.pca"):
        assert key in tags
    assert tags["validation"] == "passed" and tags["git_commit"] != "unknown"
    promoted = _run(["tensorcost", "promote", "--target", target], work, env)
    assert "to champion" in promoted.stdout
    again = subprocess.run(["tensorcost", "promote", "--target", target], cwd=work, env=env, capture_output=True, text=True)
    assert again.returncode == 1 and "already the champion" in again.stderr


def test_second_repro_is_a_noop(pipeline_run):
    t0 = time.time()
    proc = _run(["dvc", "repro"], pipeline_run["work"], pipeline_run["env"])
    assert "didn't change, skipping" in proc.stdout or "up to date" in proc.stdout
    assert "Running stage" not in proc.stdout
    assert time.time() - t0 < 60


def _md5_tree(root: Path) -> dict:
    import hashlib

    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dvc_push_then_pull_into_a_fresh_clone_restores_identical_data(pipeline_run, tmp_path):
    work, env, target = pipeline_run["work"], pipeline_run["env"], pipeline_run["target"]
    remote = tmp_path / "remote"
    _run(["dvc", "remote", "add", "-f", "--local", "-d", "testremote", str(remote)], work, env)
    _run(["dvc", "push"], work, env)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    _run(git + ["add", "-f", "dvc.lock"], work, env)
    _run(git + ["commit", "-q", "-m", "dataset version"], work, env)
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(work), str(clone)], tmp_path, env)
    _run(["dvc", "remote", "add", "-f", "--local", "-d", "testremote", str(remote)], clone, env)
    _run(["dvc", "pull"], clone, env)
    for out in (Path("data/raw") / target, Path("data/programs"), Path("data/records")):
        original, restored = _md5_tree(work / out), _md5_tree(clone / out)
        assert original and original == restored, out
    # Every cached output (the data) is restored; only uncached reports (cache: false) are missing.
    status = _run(["dvc", "status"], clone, env).stdout
    assert "data/" not in status and "models/" not in status, status
