"""Train a model preset on a feature store with several processes: torchrun + DistributedDataParallel.

    torchrun --standalone --nproc_per_node 2 -m tensorcost.models.ddp_train \\
        --features-dir data/features --slot zen5-2c.avx2-t1 --preset attention --out models/ddp/attention

Across hosts: the same command on each host with `--nnodes N --node_rank I --rdzv-endpoint
HOST:29400` instead of `--standalone` (the store must be readable at the same path on every
host). The backend is gloo on CPUs and NCCL where every rank has a GPU. Each rank streams its own
share of the store's fragments (models.streaming), gradients are averaged by DDP, every rank takes
the same number of steps, and rank 0 writes the model (a normal model directory: `CostModel.load`).
With one process (plain `python -m ...`) it is ordinary streamed training.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from ..evaluation import joint_training_side, train_test
from ..features.store import StoreView
from ..params import load_params
from ..safeio import write_text
from . import create_model, load_model


def torchrun_command(torchrun, features_dir: Path, slot: str, out: Path, *, preset: str = "attention", params: Path = Path("params.yaml"),
                     epochs: int | None = None, curve: Path | None = None, python: str = sys.executable, spec: Path | None = None,
                     split: bool = False, pool: Sequence[str] = (), trained_on: Path | None = None) -> list[str]:
    """The command that trains `preset` on `slot`'s store under torchrun, from `train.torchrun`
    (params.TorchrunParams: nproc_per_node, nnodes, rdzv_endpoint, rdzv_id; None: one plain process). One host:
    `--standalone`; several: the same command on every host (a c10d rendezvous at rdzv_endpoint,
    which numbers the hosts). `pool` (with `split`): the other slots whose training side joins
    `slot`'s (`train.pool_platforms`); `trained_on`: a JSON file rank 0 writes the rows and slots
    it trained on to. Run it with subprocess.run(..., check=True): rank 0 writes `out`."""
    if torchrun is None:  # null: one process, no launcher
        launch = [python]
    elif torchrun.nnodes == 1 and not torchrun.rdzv_endpoint:
        launch = [python, "-m", "torch.distributed.run", "--nproc_per_node", str(torchrun.nproc_per_node), "--standalone"]
    else:
        launch = [python, "-m", "torch.distributed.run", "--nproc_per_node", str(torchrun.nproc_per_node)]
        launch += ["--nnodes", str(torchrun.nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", torchrun.rdzv_endpoint, "--rdzv-id", torchrun.rdzv_id]
    args = ["-m", "tensorcost.models.ddp_train", "--features-dir", str(features_dir), "--slot", slot, "--preset", preset, "--params", str(params),
            "--out", str(out)]
    args += (["--epochs", str(epochs)] if epochs else []) + (["--curve", str(curve)] if curve else [])
    args += (["--spec", str(spec)] if spec else []) + (["--split"] if split else [])
    args += ["--pool-slots", ",".join(pool)] if pool else []
    args += ["--trained-on", str(trained_on)] if trained_on else []
    return launch + args


def torchrun_fit(torchrun, features_dir: Path, slot: str, params: Path, workdir: Path, inner=None, pool: Sequence[str] = ()):
    """A `fit(model, train, valid, log)` for `train.torchrun`: an attention model is trained by
    a torchrun launch of this module on the split's training side of `slot`'s store, joined by
    that of each slot of `pool` (the same rows as `train`: the split is a hash of ids), then its
    weights are loaded (hash-checked, no pickle) into `model`; other families go to `inner`
    (e.g. the Dask fit) or train as always."""

    def fit(model, train, valid=None, log=None):
        if model.family != "attention":
            return inner(model, train, valid, log) if inner is not None else model.fit(train, valid, log=log)

        work = Path(workdir) / f"torchrun-{os.getpid()}"
        work.mkdir(parents=True, exist_ok=True)
        try:  # the launch's files are read into `model` and the curve: nothing in `work` outlives the fit
            spec, out, curve, seen = work / "spec.json", work / "model", work / "curve.json", work / "trained_on.json"
            spec.write_text(json.dumps({"family": model.family, "params": dict(model.metadata.params)}))
            cmd = torchrun_command(torchrun, features_dir, slot, out, params=params, curve=curve, spec=spec, split=True, pool=pool, trained_on=seen)
            if log:
                log(f"under torchrun: {' '.join(cmd[1:6])} ...")
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"the torchrun launch of the attention model failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}")
            records = json.loads(seen.read_text())["records"]
            if records != len(train):  # the launch splits and pools on its own: it must have read the stage's rows
                raise UserError(f"the torchrun launch trained the attention model on {records} records, the stage's training side has {len(train)}")
            trained = load_model(out, model.metadata.feature_schema)
            model.__dict__.update(trained.__dict__)  # the trained weights in the object the stage scores and registers
            return json.loads(curve.read_text())
        finally:
            shutil.rmtree(work, ignore_errors=True)

    return fit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features-dir", type=Path, required=True)
    ap.add_argument("--slot", required=True)
    ap.add_argument("--preset", default="attention", help="a model preset of --params (its family must train from a store view)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--out", type=Path, required=True, help="model directory rank 0 writes")
    ap.add_argument("--epochs", type=int, help="override the preset's epochs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads a rank")
    ap.add_argument("--curve", type=Path, help="JSON file rank 0 writes the per-epoch loss to")
    ap.add_argument("--spec", type=Path, help="JSON {family, params} of the model instead of --preset (the train stage's)")
    ap.add_argument("--split", action="store_true", help="train on the training side of --params' split only (as the train stage does)")
    ap.add_argument("--trained-on", type=Path, help="JSON file rank 0 writes {records, slots} of the training rows to")
    ap.add_argument("--pool-slots", default="", help="with --split: comma-separated slots whose training side joins --slot's (train.pool_platforms)")
    a = ap.parse_args(argv)
    pool = [s for s in a.pool_slots.split(",") if s]
    if pool and not a.split:
        ap.error("--pool-slots joins training sides: it needs --split")

    import torch
    import torch.distributed as dist

    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    try:
        p = load_params(a.params)
        if a.spec:
            given = json.loads(a.spec.read_text())
            family, params = given["family"], given["params"]
        else:
            family, params = p.model_spec(a.preset)
        params = {**params, "threads": a.threads, **({"epochs": a.epochs} if a.epochs else {})}
        view = StoreView(a.features_dir, a.slot)
        if a.split:
            own, _ = train_test(view, p.split.strategy, p.split.model_dump())
            stores = {a.slot: view} | {s: StoreView(a.features_dir, s) for s in pool}
            view = joint_training_side(stores, a.slot, p.split.strategy, p.split.model_dump(), own) if pool else own
        model = create_model(family, view.target_id, view.feature_schema, view.feature_names, **params)
        curves = model.fit(view, log=(lambda m: print(f"[rank {rank}] {m}", file=sys.stderr, flush=True)))
        if rank == 0:
            model.save(a.out)
            if a.curve:
                write_text(a.curve, json.dumps(curves))
            if a.trained_on:
                write_text(a.trained_on, json.dumps({"records": len(view), "slots": [a.slot, *pool]}))
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


def _run() -> int:
    """main, a user's mistake (a slot without a store, bad params) as one line and exit 2."""
    try:
        return main()
    except UserError as e:
        print(f"ddp_train: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_run())
