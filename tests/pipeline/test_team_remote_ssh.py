"""A team sharing its data through a DVC remote over SSH, for real: a private OpenSSH daemon on
loopback (tensorcost.services.ssh_remote), real `dvc push`/`dvc pull`, real git clones.

The fast test checks the remote alone in a tiny repository. The slow one uses the session's
pipeline run (conftest.py) as the first clone: it pushes everything there, a teammate clones,
pulls the raw dataset and one pruned variant, adds a platform slot, pushes data and commit, and
the first clone pulls both. It changes the shared copy (a `team` default remote, one more slot
in params.yaml), so it runs after test_pipeline.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.pipeline_setup import GIT, PRUNED, SOURCES, md5_tree, run
from tensorcost import records as rec
from tensorcost.newplatform import add_to_profile
from tensorcost.services import ServiceUnavailable, port_open
from tensorcost.services.ssh_remote import SSHRemoteError, configure_dvc_remote, start_ssh_remote, stop_ssh_remote, verify_host_key

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
