"""The whole pipeline, for real: `dvc repro` on a micro profile in a temporary copy of the repo.

Real TVM builds and runs on this machine, a real Great Expectations suite, real LightGBM and
attention training, a real MLflow store and registry, the transfer of other platforms' models to
this machine, and real MetaSchedule tuning with both cost models. The bundled dataset of the copy
is cut to the same 8 tasks x 16 programs on every platform (small real inputs). The run itself is
conftest.py's session fixture `pipeline_run`.

The team's SSH remote (at the end): a private OpenSSH daemon on loopback
(tensorcost.services.ssh_remote), real `dvc push`/`dvc pull`, real git clones. The first test
checks the remote alone in a tiny repository; the second uses the pipeline run as the first
clone: it pushes everything there, a teammate clones, pulls the raw dataset and one pruned
variant, adds a platform slot, pushes data and commit, and the first clone pulls both. It changes
the shared copy (a `team` default remote, one more slot in params.yaml), so it comes last; one
file keeps every user of the pipeline run on one pytest-xdist worker (`make test`: --dist loadfile).
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.pipeline_setup import GIT, PRUNED, SOURCES, md5_tree, run
from tensorcost import dataset
from tensorcost import records as rec
from tensorcost.collect import load_task_set
from tensorcost.features.metaschedule import MS_FEATURE_DIM, load_ms_features
from tensorcost.newplatform import add_to_profile
from tensorcost.services import ServiceUnavailable, port_open
from tensorcost.services.ssh_remote import SSHRemoteError, configure_dvc_remote, start_ssh_remote, stop_ssh_remote, verify_host_key

pytestmark = pytest.mark.slow


def test_host_measurement_and_bundled_slots(pipeline_run):
    work, host = pipeline_run["work"], pipeline_run["host"]
    summary = json.loads((work / "data/raw/host/summary.json").read_text())
    assert summary["records"] == 16 and summary["database_records"] > 0
    t = rec.read_records(work / "data/records/host.parquet")
    assert set(t.column("target").to_pylist()) == {host}
    # host.programs: fresh: the bundled tasks' programs no platform measured (no model trained on them)
    _, programs, _ = load_task_set(work / "data/bundled/programs/cpu")
    held = {(task, rec.program_id(tr)) for task, trs in programs.items() for tr in trs}
    assert {task for task, _ in dataset.program_keys(t)} <= set(programs) and not dataset.program_keys(t) & held
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
    for slot in ("host", *SOURCES):  # the msfeatures stage (written a batch at a time): a matrix for every valid record
        t = rec.read_records(work / f"data/records/{slot}.parquet")
        valid = [r for r, e in zip(t.column("record_id").to_pylist(), t.column("error_no").to_pylist()) if e == 0]
        mats = load_ms_features(work / "data/features", slot, valid)
        assert len(mats) == len(valid) > 0 and all(m.ndim == 2 and m.shape[1] == MS_FEATURE_DIM for m in mats), slot
        assert sum(len(m) for m in mats) == len(np.load(work / f"data/features/{slot}.ms_rows.npy", mmap_mode="r")), slot


def test_every_family_registered_and_the_best_on_unseen_networks_is_candidate(pipeline_run):
    work, env = pipeline_run["work"], pipeline_run["env"]
    for slot in SOURCES:
        report = json.loads((work / "reports/train" / f"{slot}.json").read_text())
        assert set(report["models"]) == {"lightgbm_reg", "lightgbm_joint", "ensemble_trees", "lightgbm_rank", "attention", "ensemble"}
        assert sorted(p.name for p in (work / "models" / slot / "ensemble").iterdir()) == ["MLmodel", "input_example.json", "member-0", "member-1", "member-2", "metadata.json"]
        # the trees' blend: lightgbm_reg and the joint as trained above (blended, not trained again)
        assert sorted(p.name for p in (work / "models" / slot / "ensemble_trees").iterdir()) == ["MLmodel", "input_example.json", "member-0", "member-1", "metadata.json"]
        for i, member in enumerate(("lightgbm_reg", "lightgbm_joint")):
            assert (work / "models" / slot / "ensemble_trees" / f"member-{i}" / "model.txt").read_bytes() == (work / "models" / slot / member / "model.txt").read_bytes()
        scores = {k: sum(m["metrics"][x] for x in ("pca", "top1", "top5")) for k, m in report["models"].items()}
        # a model that is not a tree model is served only within 0.02 PCA of the best tree's (issue 27 item 3)
        best_tree = max(report["models"][t]["metrics"]["pca"] for t in ("lightgbm_reg", "lightgbm_joint", "lightgbm_rank"))
        for k in ("attention", "ensemble", "ensemble_trees"):
            if report["models"][k]["metrics"]["pca"] < best_tree - 0.02:
                assert k in report["not_served"], k
        assert all("random" in why or "best tree model" in why for why in report["not_served"].values())
        servable = {k: v for k, v in scores.items() if k not in report["not_served"]} or scores
        best = max(servable, key=servable.get)
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
    summary = json.loads((work / "reports/summary/evaluate.json").read_text())
    slot, split = summary["slot"], summary["split"]
    best = max(metrics[slot][split], key=lambda m: metrics[slot][split][m]["pca"])
    assert summary["model"] == best and abs(summary["pca"] - metrics[slot][split][best]["pca"]) < 1e-3


def test_dvc_metrics_show_fits_a_terminal(pipeline_run):
    """The metrics DVC shows are the stages' few-key summaries, the detail reports beside them."""
    table = run(["dvc", "metrics", "show"], pipeline_run["work"], pipeline_run["env"]).stdout
    widths = [len(line) for line in table.splitlines()]
    assert widths and max(widths) <= 240, max(widths)
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], pipeline_run["work"], pipeline_run["env"]).stdout)
    files = [f for ws in shown.values() for f in (ws.get("data") or {})]
    assert files and all(f.startswith("reports/summary/") for f in files), files


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
    # the default, and the sources blended where there are two (on a host of a source's platform there is one)
    assert "pooled:lightgbm_reg" in curves and ("zero_shot:blend" in curves) == (len(sources) > 1)
    assert "pooled:lightgbm_joint" in curves  # MetaSchedule's features beside ours, on the sources' and this machine's msfeatures
    assert "pooled:ensemble_trees" in curves  # the two above blended
    # served: the best measured approach, or the pooled default when the sample cannot tell (the CI says which)
    choice, reg = study["choice"], study["registered"]
    assert choice["default"] == "pooled:lightgbm_joint" and choice["approach"] in curves and choice["reason"]
    # `candidate` too, unless the pipeline trains this target itself (a host of a train target's platform and variant)
    trains_host = host in SOURCES
    assert reg["name"] == f"tensorcost-{host}" and reg["approach"] == choice["approach"] and "transferred" in reg["aliases"]
    assert ("candidate" in reg["aliases"]) != trains_host
    tags = json.loads(run(["tensorcost", "registry", "show", "--target", host, "--alias", "transferred"], work, env).stdout.split("\n", 1)[1])
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


def test_second_repro_runs_only_the_host_and_registry_checks(pipeline_run):
    t0 = time.time()
    proc = run(["dvc", "repro"], pipeline_run["work"], pipeline_run["env"])
    ran = [l for l in proc.stdout.splitlines() if l.startswith("Running stage")]
    assert ran == ["Running stage 'host':", "Running stage 'registry':"], proc.stdout
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


# -- the team's SSH remote (last: it changes the shared copy) ------------------------------

NEW_SLOT = "zen3-2c.avx2-t1"  # bundled (in git) but not a slot of the micro profile
NEW_SLOT_STAGES = [f"{stage}@{NEW_SLOT}" for stage in ("records", "validate", "featurize")]
NEW_SLOT_OUTS = [f"data/records/{NEW_SLOT}.parquet", f"data/records/{NEW_SLOT}.target.json", f"data/features/{NEW_SLOT}/meta.json",
                 f"data/features/{NEW_SLOT}/part-00000.parquet"]


@pytest.fixture
def ssh_remote(tmp_path):
    """A private sshd serving `<state>/dvc-remote`, stopped afterwards; a machine without sshd
    (and no way to install it) skips, saying so."""
    state = tmp_path / "ssh-remote"
    try:
        info = start_ssh_remote(state)
    except ServiceUnavailable as exc:
        pytest.skip(f"no OpenSSH server for the SSH DVC remote: {exc}")
    yield info
    stop_ssh_remote(state)


def _venv_env(**extra: str) -> dict:
    """This interpreter's venv first on PATH: `dvc` is the project's."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def _cloud_status(repo: Path, env: dict) -> dict:
    """`dvc status -c`: path -> new (cache only) | deleted (remote only) | missing; {} is in sync."""
    return json.loads(run(["dvc", "status", "-c", "--json"], repo, env).stdout or "{}")


def test_ssh_remote_pushes_pulls_checks_host_key_and_fails_fast_when_down(ssh_remote, tmp_path):
    info, env = ssh_remote, _venv_env()
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    blob = repo / "blob.bin"
    blob.write_bytes(os.urandom(64 * 1024))
    run(["dvc", "add", "-q", "blob.bin"], repo, env)
    original = blob.read_bytes()

    configure_dvc_remote(repo, info)
    local_config = (repo / ".dvc/config.local").read_text()
    assert info["url"] in local_config and info["keyfile"] in local_config and "team" not in (repo / ".dvc/config").read_text()
    assert _cloud_status(repo, env) == {"blob.bin": "new"}
    run(["dvc", "push"], repo, env, timeout=120)
    assert _cloud_status(repo, env) == {}
    assert len([p for p in Path(info["storage"]).rglob("*") if p.is_file()]) == 1

    shutil.rmtree(repo / ".dvc/cache")
    blob.unlink()
    run(["dvc", "pull"], repo, env, timeout=120)
    assert blob.read_bytes() == original

    other_key = tmp_path / "other_known_hosts"  # the client's key posing as the host's: a changed server
    other_key.write_text(f"[{info['host']}]:{info['port']} " + " ".join(Path(info["keyfile"] + ".pub").read_text().split()[:2]) + "\n")
    with pytest.raises(SSHRemoteError, match="host key is not the one in"):
        verify_host_key({**info, "known_hosts": str(other_key)})

    assert stop_ssh_remote(Path(info["storage"]).parent) and not port_open(info["port"])
    blob.write_bytes(os.urandom(1024))
    run(["dvc", "add", "-q", "blob.bin"], repo, env)
    t0 = time.monotonic()
    down = subprocess.run(["dvc", "push"], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert down.returncode != 0 and "Connect call failed" in down.stderr and time.monotonic() - t0 < 60, down.stderr
    with pytest.raises(SSHRemoteError) as err:
        configure_dvc_remote(repo, info)
    assert "cannot log in by SSH" in str(err.value) and "\n" not in str(err.value)


def _same_programs(a: Path, b: Path) -> bool:
    """The fixture cut every bundled file to one program sample: the new slot's must match."""
    pairs = [set(zip(t.column("task_id").to_pylist(), t.column("program_id").to_pylist())) for t in map(rec.read_records, (a, b))]
    return pairs[0] == pairs[1]


def _share(work: Path, env: dict, info: dict, origin: Path) -> str:
    """The first clone publishes: data to the SSH remote, history to a bare repo (git refuses a
    push into a checked-out branch, so the team's git server is bare). Returns the branch."""
    configure_dvc_remote(work, info)
    run(["dvc", "push"], work, env, timeout=900)
    run(GIT + ["add", "-f", "dvc.lock"], work, env)
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=work).returncode != 0:
        run(GIT + ["commit", "-q", "-m", "dataset version"], work, env)
    run(["git", "clone", "-q", "--bare", str(work), str(origin)], work, env)
    run(["git", "remote", "add", "team", str(origin)], work, env)
    return run(["git", "rev-parse", "--abbrev-ref", "HEAD"], work, env).stdout.strip()


@pytest.mark.slow
def test_a_teammate_pulls_adds_a_platform_and_pushes_through_the_ssh_remote(pipeline_run, ssh_remote, tmp_path):
    work, env, info = pipeline_run["work"], pipeline_run["env"], ssh_remote
    branch = _share(work, env, info, tmp_path / "team.git")

    mate = tmp_path / "teammate"
    mate_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{mate / 'mlflow.db'}"}
    run(["git", "clone", "-q", str(tmp_path / "team.git"), str(mate)], tmp_path, mate_env)
    configure_dvc_remote(mate, info)
    run(["dvc", "pull", "records"], mate, mate_env)  # the raw dataset: every slot's records
    run(["dvc", "pull", f"prune@{PRUNED}"], mate, mate_env)  # one pruned variant
    assert md5_tree(mate / "data/records") == md5_tree(work / "data/records")
    variant = Path("data/pruned") / SOURCES[0] / PRUNED
    assert md5_tree(mate / variant) == md5_tree(work / variant)
    assert not (mate / "data/features").exists()  # nothing else came

    # The teammate's platform: what `platform add --profile default` does after measuring.
    assert NEW_SLOT not in yaml.safe_load((mate / "params.yaml").read_text())["targets"]
    assert _same_programs(mate / f"data/bundled/platforms/{NEW_SLOT.replace('.', '/')}.parquet", mate / f"data/bundled/platforms/{SOURCES[0].replace('.', '/')}.parquet")
    add_to_profile(mate / "params.yaml", [NEW_SLOT], train=False)
    run(["dvc", "repro", "--single-item", *NEW_SLOT_STAGES], mate, mate_env)
    run(["dvc", "push", *NEW_SLOT_STAGES], mate, mate_env)
    run(GIT + ["add", "params.yaml", "dvc.lock"], mate, mate_env)
    run(GIT + ["commit", "-q", "-m", f"dataset: platform slot {NEW_SLOT}"], mate, mate_env)
    run(["git", "push", "-q", "origin", f"HEAD:{branch}"], mate, mate_env)
    assert set(_cloud_status(mate, mate_env).values()) <= {"deleted"}  # what it has is pushed; the rest it never pulled

    # The first clone takes the commit and the data.
    run(["git", "pull", "-q", "--ff-only", "team", branch], work, env)
    assert NEW_SLOT in yaml.safe_load((work / "params.yaml").read_text())["targets"]
    run(["dvc", "pull", f"records@{NEW_SLOT}", f"featurize@{NEW_SLOT}"], work, env)
    for out in NEW_SLOT_OUTS:
        assert (work / out).read_bytes() == (mate / out).read_bytes(), out
    assert set(rec.read_records(work / NEW_SLOT_OUTS[0]).column("target").to_pylist()) == {NEW_SLOT}
    assert _cloud_status(work, env) == {}
