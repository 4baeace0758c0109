"""The pipeline room's one expensive fixture: the micro profile's `dvc repro` in a temporary copy
of the repo, run once per pytest session and shared by every module here (test_pipeline.py reads
its outputs; its SSH-remote tests share them with a teammate's clone). Tests that change the
copy (a promotion, a remote, a new platform slot) say so."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from pipeline.pipeline_setup import GIT, copy_repo, micro_params, run, shrink_bundled


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("repo")
    copy_repo(work)
    shrink_bundled(work)
    micro_params(work / "params.yaml")
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    run(["git", "init", "-q"], work, env)
    run(GIT + ["add", "-A"], work, env)
    run(GIT + ["commit", "-q", "-m", "micro"], work, env)
    t0 = time.time()
    first = run(["dvc", "repro"], work, env, timeout=1800)
    host = json.loads((work / "data/host/target.json").read_text())["target_id"]
    return {"work": work, "env": env, "host": host, "first": first, "first_s": time.time() - t0}
