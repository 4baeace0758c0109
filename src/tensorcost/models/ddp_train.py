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
import sys
from pathlib import Path


def torchrun_command(torchrun, features_dir: Path, slot: str, out: Path, *, preset: str = "attention", params: Path = Path("params.yaml"),
                     epochs: int | None = None, curve: Path | None = None, python: str = sys.executable) -> list[str]:
    """The command that trains `preset` on `slot`'s store under torchrun, from `train.torchrun`
    (params.TorchrunParams: nproc_per_node, nnodes, rdzv_endpoint, rdzv_id; None: one plain process). One host:
    `--standalone`; several: the same command on every host (a c10d rendezvous at rdzv_endpoint,
    which numbers the hosts). Run it with subprocess.run(..., check=True): rank 0 writes `out`."""
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
    return launch + args


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
    a = ap.parse_args(argv)

    import os

    import torch
    import torch.distributed as dist

    from ..features import FEATURE_SCHEMA_VERSION
    from ..features.store import StoreView
    from ..params import load_params
    from . import create_model

    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if distributed else 0
    try:
        family, params = load_params(a.params).model_spec(a.preset)
        params = {**params, "threads": a.threads, **({"epochs": a.epochs} if a.epochs else {})}
        view = StoreView(a.features_dir, a.slot)
        model = create_model(family, view.target_id, FEATURE_SCHEMA_VERSION, view.feature_names, **params)
        curves = model.fit(view, log=(lambda m: print(f"[rank {rank}] {m}", file=sys.stderr, flush=True)))
        if rank == 0:
            model.save(a.out)
            if a.curve:
                a.curve.write_text(json.dumps(curves))
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
