"""The whole pipeline, for real: `dvc repro` on a micro profile in a temporary copy of the repo.

Real TVM builds and runs on this machine, a real Great Expectations suite, real LightGBM and
attention training, a real MLflow store and registry, the transfer of other platforms' models to
this machine, and real MetaSchedule tuning with both cost models. The bundled dataset of the copy
is cut to the same 8 tasks x 16 programs on every platform (small real inputs). The run itself is
conftest.py's session fixture `pipeline_run`.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.pipeline_setup import GIT, PRUNED, SOURCES, md5_tree, run
from tensorcost import records as rec

pytestmark = pytest.mark.slow


def test_host_measurement_and_bundled_slots(pipeline_run):
    work, host = pipeline_run["work"], pipeline_run["host"]
    summary = json.loads((work / "data/raw/host/summary.json").read_text())
    assert summary["records"] == 16 and summary["database_records"] > 0
    t = rec.read_records(work / "data/records/host.parquet")
    assert set(t.column("target").to_pylist()) == {host}
    for slot in SOURCES:  # bundled records relabelled to their platform's target id
        t = rec.read_records(work / f"data/records/{slot}.parquet")
        assert set(t.column("target").to_pylist()) == {slot}
    zen5 = set(rec.read_records(work / "data/records/zen5-2c.avx2-t1.parquet").column("record_id").to_pylist())
    spr = set(rec.read_records(work / "data/records/sapphirerapids-2c.avx2-t1.parquet").column("record_id").to_pylist())
    assert not zen5 & spr  # the same programs on two machines: distinct records
    for slot in ("host", *SOURCES, "h200.cuda"):
        val = json.loads((work / "reports/validation" / f"{slot}.json").read_text())
        assert val["success"] is True, slot
    assert (work / "reports/validation/host/data_docs/index.html").exists()


def test_every_family_registered_and_the_best_on_unseen_networks_is_candidate(pipeline_run):
    work, env = pipeline_run["work"], pipeline_run["env"]
    for slot in SOURCES:
        report = json.loads((work / "reports/train" / f"{slot}.json").read_text())
        assert set(report["models"]) == {"lightgbm_reg", "lightgbm_rank", "attention", "ensemble"}
        assert sorted(p.name for p in (work / "models" / slot / "ensemble").iterdir()) == ["member-0", "member-1", "member-2", "metadata.json"]
        scores = {k: sum(m["metrics"][x] for x in ("pca", "top1", "top5")) for k, m in report["models"].items()}
        best = max(scores, key=scores.get)
        assert report["candidate"]["model"] == best
        show = run(["tensorcost", "registry", "show", "--target", slot, "--alias", "candidate"], work, env)
        tags = json.loads(show.stdout.split("\n", 1)[1])
        assert tags["model_key"] == best and tags["validation"] == "passed" and tags["git_commit"] != "unknown"


def test_evaluation_holds_out_whole_platforms(pipeline_run):
    work = pipeline_run["work"]
    metrics = json.loads((work / "reports/metrics/evaluate.json").read_text())
    for slot in ("host", *SOURCES):
        assert set(metrics[slot]["by_hardware"]) == {"lightgbm_rank", "lightgbm_reg", "tvm_xgb", "attention", "ensemble", "random"}, slot
        for r in metrics[slot]["by_hardware"].values():
            assert 0.0 <= r["pca"] <= 1.0 and r["n_records"] > 0 and r["candidates_per_s"] > 0
    assert (work / "reports/plots/ranking.csv").read_text().startswith("target,task_id,measured_rank,predicted_rank")


def test_transfer_to_this_machine(pipeline_run):
    work, env, host = pipeline_run["work"], pipeline_run["env"], pipeline_run["host"]
    curves = json.loads((work / "reports/metrics/transfer.json").read_text())
    study = json.loads((work / "reports/transfer/study.json").read_text())
    # sources: the train targets of *other* platforms (on a Zen 5 host, zen5-2c's model is not a transfer)
    sources = [s for s in SOURCES if s.split(".")[0] != host.split(".")[0]]
    assert sources and study["target_id"] == host and set(study["sources"]) == set(sources)
    for s in sources:
        assert set(curves[f"zero_shot:{s}"]) == {"0"} and set(curves[f"finetune:{s}"]) == {"25", "100"}
    for peer in ("attention", "lightgbm_rank", "tvm_xgb"):
        assert set(curves[peer]) == {"25", "100"}, peer
    assert "pooled:lightgbm_reg" in curves and "zero_shot:blend" in curves  # the default, and the sources blended
    # served: the best measured approach, or the pooled default when the sample cannot tell (the CI says which)
    choice, reg = study["choice"], study["registered"]
    assert choice["default"] == "pooled:lightgbm_reg" and choice["approach"] in curves and choice["reason"]
    assert reg["name"] == f"tensorcost-{host}" and reg["approach"] == choice["approach"] and {"transferred", "candidate"} <= set(reg["aliases"])
    tags = json.loads(run(["tensorcost", "registry", "show", "--target", host, "--alias", "candidate"], work, env).stdout.split("\n", 1)[1])
    assert tags["model_key"] == choice["approach"] and tags["split"] == f"transfer:{choice['k']}%"
    assert abs(float(tags["metric.pca"]) - choice["pca"]) < 1e-9
    assert (work / "reports/transfer/learning_curve.png").stat().st_size > 0


def test_tune_pulls_the_model_by_alias(pipeline_run):
    work = pipeline_run["work"]
    report = json.loads((work / "reports/tune/report.json").read_text())
    assert report["target"] == pipeline_run["host"]
    for name in ("tensorcost", "tvm_xgb"):
        r = report["cost_models"][name]
        assert r["trials_measured"] > 0 and r["network_latency_ms"]["median"] > 0
    assert report["cost_models"]["tensorcost"]["model"]["alias_used"] == "candidate"  # no champion yet
    assert "falling back to 'candidate'" in pipeline_run["first"].stderr


def test_promotion(pipeline_run):
    work, env = pipeline_run["work"], pipeline_run["env"]
    promoted = run(["tensorcost", "promote", "--target", SOURCES[0]], work, env)
    assert "to champion" in promoted.stdout
    again = subprocess.run(["tensorcost", "promote", "--target", SOURCES[0]], cwd=work, env=env, capture_output=True, text=True)
    assert again.returncode == 1 and "already the champion" in again.stderr


def test_pruned_variant_is_a_validated_dataset_with_the_test_side_whole(pipeline_run):
    work = pipeline_run["work"]
    slot = SOURCES[0]
    report = json.loads((work / "reports/prune" / slot / f"{PRUNED}.json").read_text())
    assert report["validation"]["success"] and report["strategy"] == "uncertainty" and report["kept_percent"] == 20
    assert 0 < report["kept_records"] < report["pool_records"]
    variant = rec.read_records(work / "data/pruned" / slot / PRUNED / "records.parquet")
    assert variant.num_rows == report["kept_records"] + report["test_records"] == report["records"]
    full = rec.read_records(work / "data/records" / f"{slot}.parquet")
    assert set(variant.column("record_id").to_pylist()) < set(full.column("record_id").to_pylist())
    assert (work / "reports/prune" / slot / PRUNED / "data_docs/index.html").exists()


def test_pruned_model_is_registered_with_its_variant_promoted_like_any_other_and_loads_by_alias(pipeline_run):
    import hashlib

    work, env = pipeline_run["work"], pipeline_run["env"]
    slot = SOURCES[0]
    tags = json.loads(run(["tensorcost", "registry", "show", "--target", slot, "--alias", f"pruned-{PRUNED}"], work, env).stdout.split("\n", 1)[1])
    variant_md5 = hashlib.md5((work / "data/pruned" / slot / PRUNED / "records.parquet").read_bytes()).hexdigest()
    assert tags["dataset_variant"] == PRUNED and tags["prune_strategy"] == "uncertainty" and tags["prune_kept_percent"] == "20"
    assert tags["dataset_md5"] == variant_md5 == tags["train_data_hash"]
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    outs = {o["path"]: o["md5"] for o in lock["stages"][f"prune@{PRUNED}"]["outs"]}
    assert outs[f"data/pruned/{slot}/{PRUNED}/records.parquet"] == variant_md5  # the registry tag is the DVC hash
    version = json.loads((work / "reports/prune" / slot / f"{PRUNED}.train.json").read_text())["best"]["version"]
    promoted = run(["tensorcost", "promote", "--target", slot, "--version", version, "--min-gain", "-1"], work, env)
    assert "to champion" in promoted.stdout
    code = ("import json,sys; from tensorcost import registry; from tensorcost.features import FEATURE_SCHEMA_VERSION;"
            f"m, r = registry.load_by_alias({slot!r}, 'champion', expected_feature_schema=FEATURE_SCHEMA_VERSION);"  # the tune stage's call
            "print(json.dumps({'version': r.version, 'family': m.family}))")
    loaded = json.loads(run([sys.executable, "-c", code], work, env).stdout.strip().splitlines()[-1])
    assert loaded == {"version": version, "family": "lightgbm"}


def test_second_repro_runs_only_the_host_check(pipeline_run):
    t0 = time.time()
    proc = run(["dvc", "repro"], pipeline_run["work"], pipeline_run["env"])
    ran = [l for l in proc.stdout.splitlines() if l.startswith("Running stage")]
    assert ran == ["Running stage 'host':"], proc.stdout
    assert time.time() - t0 < 60


def test_dvc_push_then_pull_into_a_fresh_clone_restores_identical_data(pipeline_run, tmp_path):
    work, env = pipeline_run["work"], pipeline_run["env"]
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-f", "--local", "-d", "testremote", str(remote)], work, env)
    run(["dvc", "push"], work, env)
    run(GIT + ["add", "-f", "dvc.lock"], work, env)
    run(GIT + ["commit", "-q", "-m", "dataset version"], work, env)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(work), str(clone)], tmp_path, env)
    run(["dvc", "remote", "add", "-f", "--local", "-d", "testremote", str(remote)], clone, env)
    variant = Path("data/pruned") / SOURCES[0] / PRUNED / "records.parquet"
    run(["dvc", "pull", f"prune@{PRUNED}"], clone, env)  # one pruned variant alone
    assert (clone / variant).read_bytes() == (work / variant).read_bytes() and not (clone / "data/features").exists()
    run(["dvc", "pull"], clone, env)
    for out in (Path("data/raw/host"), Path("data/records"), Path("data/features")):
        original, restored = md5_tree(work / out), md5_tree(clone / out)
        assert original and original == restored, out
