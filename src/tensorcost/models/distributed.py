"""Training beyond one process: LightGBM on a Dask cluster (`lightgbm.dask`).

The partitions are the store's fragments, read *on the workers* (a fragment path and the rows of
it in the training view: the client never holds the matrix); every fragment holds whole ranking
groups, so lambdarank's groups never straddle two partitions. The result is an ordinary
LightGBMCostModel (its booster trained by the cluster) that saves, loads and predicts like any
other. Fragments must be readable at the same path on every worker (a shared file system, or the
same DVC checkout on each host).

The attention model's multi-process training (torchrun, DistributedDataParallel) is
`models.ddp_train`. Heavy packages are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _fragment_inputs(model_dir_params: dict, path: str, local: np.ndarray, slot: str, names: list) -> np.ndarray:
    """On a worker: one fragment's model inputs (group-relative features see whole groups)."""
    from ..features.store import read_fragment
    from .lightgbm_model import LightGBMCostModel

    part = read_fragment(Path(path), slot, names, ("flat",))
    if len(local) != len(part) or np.any(local != np.arange(len(part))):
        part = part.take(local)
    model = LightGBMCostModel.create("worker", "worker", names, **model_dir_params)
    return np.ascontiguousarray(model._inputs(part), dtype=np.float32)


def lightgbm_dask_client(scheduler: str | None, n_workers: int = 2):
    """(client, cluster or None): a client of `scheduler` ("tcp://host:8786"), or of a
    LocalCluster of `n_workers` one-thread worker processes when it is None or "local"."""
    from distributed import Client, LocalCluster

    if scheduler in (None, "", "local"):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster
    return Client(scheduler), None


def train_lightgbm_dask(model, view, scheduler: str | None = None, n_workers: int = 2):
    """`model` (a LightGBMCostModel, untrained) trained on a store view's rows by
    lightgbm.dask on a cluster; returns the model with its booster."""
    import dask
    import dask.array as da
    import lightgbm as lgb

    from .lightgbm_model import _fragment_rows

    params = model._lgb_params()
    rounds = params.pop("num_boost_round")
    params.pop("finetune_rounds")
    params.pop("finetune_learning_rate")
    objective = params.pop("objective")
    params.pop("group_relative", None)  # ours, not LightGBM's: applied by _fragment_inputs
    if model.metadata.objective == "lambdarank":
        params["label_gain"] = list(range(31))
    n_inputs = model.n_inputs
    xs, ys, gs = [], [], []
    family_params = dict(model.metadata.params)
    for frag, rows in _fragment_rows(view):
        part = view.take(rows)
        local = np.asarray(part.local)
        x = dask.delayed(_fragment_inputs)(family_params, str(view.paths[frag]), local, view.slot, list(view.feature_names or []))
        xs.append(da.from_delayed(x, shape=(len(rows), n_inputs), dtype=np.float32))
        labels = part.labels
        ys.append(da.from_array(model.relevance(labels) if objective == "lambdarank" else labels, chunks=len(rows)))
        groups = part.groups
        cuts = np.concatenate([[0], np.flatnonzero(groups[1:] != groups[:-1]) + 1, [len(groups)]])
        gs.append(da.from_array(np.diff(cuts), chunks=len(cuts) - 1))
    X, y, group = da.concatenate(xs), da.concatenate(ys), da.concatenate(gs)
    client, cluster = lightgbm_dask_client(scheduler, n_workers)
    try:
        cls = lgb.DaskLGBMRanker if objective == "lambdarank" else lgb.DaskLGBMRegressor
        est = cls(client=client, objective=objective, n_estimators=rounds, **params)
        est.fit(X, y, group=group) if objective == "lambdarank" else est.fit(X, y)
        model.booster = est.to_local().booster_
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return model


def cluster_fit(cluster):
    """A `fit(model, train, valid, log)` for `train.cluster` (params.ClusterParams): LightGBM on
    the Dask cluster from a store view; every other family trains as always (from the view:
    the attention model streams it)."""

    def fit(model, train, valid=None, log=None):
        if model.family == "lightgbm" and not isinstance(train, _feature_table()):
            if log:
                log(f"on the Dask cluster {cluster.scheduler}")
            train_lightgbm_dask(model, train, scheduler=cluster.scheduler, n_workers=cluster.workers)
            return {}
        return model.fit(train, valid, log=log)

    return fit


def _feature_table():
    from ..features.table import FeatureTable

    return FeatureTable
