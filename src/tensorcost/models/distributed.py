"""Training beyond one process: LightGBM on a Dask cluster (`lightgbm.dask`).

The partitions are the store's fragments, read *on the workers* (a fragment path and the rows of
it in the training view: the client holds labels and group sizes, and for the bins at most
`bin_construct_sample_cnt` sampled rows, as one LightGBM process does); every fragment holds
whole ranking groups, so lambdarank's groups never straddle two partitions. The result is an
ordinary LightGBMCostModel (its booster trained by the cluster) that saves, loads and predicts
like any other. Fragments must be readable at the same path on every worker (a shared file
system, or the same DVC checkout on each host).

The same model as one process, as far as data-parallel LightGBM allows: every rank bins each
feature as one process does (`one_process_bins`, given as forced bins; otherwise each feature's
bins come from one worker's rows), fragments go to workers by a fixed rule (`place_fragments`)
and LightGBM's ranks follow the workers' order, so a cluster trains the same model every run; it
differs from one process's only by the order of floating-point sums (per-worker histograms).

The attention model's multi-process training (torchrun, DistributedDataParallel) is
`models.ddp_train`. Heavy packages are imported inside the functions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..features.store import read_fragment
from ..features.table import FeatureTable
from .lightgbm_model import LightGBMCostModel, _fragment_rows


def _fragment_inputs(model_dir_params: dict, path: str, local: np.ndarray, slot: str, names: list) -> np.ndarray:
    """On a worker: one fragment's model inputs (group-relative features see whole groups)."""
    part = read_fragment(Path(path), slot, names, ("flat",))
    if len(local) != len(part) or np.any(local != np.arange(len(part))):
        part = part.take(local)
    model = LightGBMCostModel.create("worker", "worker", names, **model_dir_params)
    return np.ascontiguousarray(model._inputs(part), dtype=np.float32)


def _ordered_client_class():
    from distributed import Client

    class OrderedClient(Client):
        """A Client whose `who_has` lists keys by their worker's place in `worker_order`, then in
        the order asked. lightgbm.dask numbers its machines (LightGBM ranks) and concatenates a
        worker's partitions in the order of `who_has`; rank r finds the bins of its slice of the
        features from its own rows, and the row order fixes the sums' rounding. With both fixed,
        the same placement gives the same model every run (otherwise key hashes decide)."""

        worker_order: list[str] = []

        def who_has(self, futures=None, **kwargs):
            found = super().who_has(futures, **kwargs)
            rank = {w: i for i, w in enumerate(self.worker_order)}
            given = {getattr(f, "key", f): i for i, f in enumerate(futures or [])}  # lightgbm.dask passes its parts in row order

            def place(kv):
                return min((rank.get(w, len(rank)) for w in kv[1]), default=len(rank)), given.get(kv[0], len(given))

            return dict(sorted(found.items(), key=place))

    return OrderedClient


def lightgbm_dask_client(scheduler: str | None, n_workers: int = 2):
    """(client, cluster or None): a client of `scheduler` ("tcp://host:8786"), or of a
    LocalCluster of `n_workers` one-thread worker processes when it is None or "local"."""
    from distributed import LocalCluster

    client_cls = _ordered_client_class()
    if scheduler in (None, "", "local"):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return client_cls(cluster), cluster
    return client_cls(scheduler), None


def place_fragments(rows: list[int], workers: list[str]) -> list[str]:
    """The worker of each fragment: largest first onto the worker with the fewest rows so far
    (ties: the first in `workers`' order). Deterministic, so a cluster of the same workers trains
    the same model each time (lightgbm.dask otherwise takes wherever the scheduler ran a read:
    data-parallel LightGBM finds each feature's bins on one worker's rows, so the model depends on
    which rows each worker holds)."""
    load = {w: 0 for w in workers}
    placed = [""] * len(rows)
    for i in sorted(range(len(rows)), key=lambda i: (-rows[i], i)):
        w = min(workers, key=lambda w: load[w])
        placed[i], load[w] = w, load[w] + rows[i]
    return placed


_ZERO = 1e-35  # LightGBM's kZeroThreshold: the bounds around zero it adds itself
BIN_SAMPLE_ROWS = 200_000  # LightGBM's bin_construct_sample_cnt: the rows one process bins from


def one_process_bins(sample: np.ndarray, params: dict) -> tuple[list[dict], list[int]]:
    """The bins one LightGBM process finds on `sample` (its bin-construction rows), as
    (`forcedbins` entries, `max_bin_by_feature`): given to every rank of a distributed run, they
    make it bin each feature as one process does (data-parallel LightGBM otherwise finds each
    feature's bins on one rank's rows). LightGBM builds a Dataset of the sample; the bin of every
    sample value (its text dump) gives each boundary, at the midpoint of the two distinct values it
    separates, as LightGBM puts it; the bounds at zero LightGBM adds itself."""
    import lightgbm as lgb

    keys = ("max_bin", "min_data_in_bin", "min_data_in_leaf", "feature_pre_filter", "bin_construct_sample_cnt", "use_missing", "zero_as_missing")
    ds = lgb.Dataset(sample, np.zeros(len(sample)), params={"verbosity": -1, **{k: params[k] for k in keys if k in params}},
                     free_raw_data=False).construct()
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "bins.txt")
        ds._dump_text(dump)  # a header, then each row's bin of every feature ("NA": not used)
        n_bins = [int(ds.feature_num_bin(f)) for f in range(sample.shape[1])]
        del ds
        with open(dump) as f:
            header = sum(1 for _ in f) - len(sample)
        bins = pd.read_csv(dump, header=None, skiprows=header, na_values=["NA"], skipinitialspace=True, dtype=np.float32,
                           usecols=range(sample.shape[1])).to_numpy()
    forced, max_bins = [], []
    for f in range(sample.shape[1]):
        b = bins[:, f]
        if np.isnan(b).any():  # a feature LightGBM does not use (one value, or no split): its own rule
            max_bins.append(int(params.get("max_bin", 255)))
            continue
        order = np.lexsort((sample[:, f], b))  # by bin, then value
        v, b = sample[order, f].astype(np.float64), b[order]
        starts = np.concatenate([[0], np.flatnonzero(b[1:] != b[:-1]) + 1])
        ends = np.concatenate([starts[1:], [len(b)]]) - 1
        hi, lo = v[ends], v[starts]  # each present bin's largest and smallest value
        bounds = [float((h + n) / 2) for h, n in zip(hi[:-1], lo[1:]) if not (h <= -_ZERO < n or h <= _ZERO < n)]
        forced.append({"feature": f, "bin_upper_bound": bounds})
        max_bins.append(n_bins[f])
    return forced, max_bins


def train_lightgbm_dask(model, view, scheduler: str | None = None, n_workers: int = 2, same_bins: bool = True):
    """`model` (a LightGBMCostModel, untrained) trained on a store view's rows by
    lightgbm.dask on a cluster (`scheduler`: "tcp://HOST:8786", or None / "local" for a
    LocalCluster of `n_workers` processes); returns the model with its booster. Each fragment is
    read on the worker `place_fragments` gives it. `same_bins`: bin as one process does (see the
    module); False leaves it to LightGBM (each feature's bins from one worker's rows)."""
    import dask
    import dask.array as da
    import lightgbm as lgb

    params = model._lgb_params()
    rounds = params.pop("num_boost_round")
    params.pop("finetune_rounds")
    params.pop("finetune_learning_rate")
    params.pop("num_threads", None)  # lightgbm.dask gives each worker its own threads (threads_per_worker / --nthreads)
    objective = params.pop("objective")
    params.pop("group_relative", None)  # ours, not LightGBM's: applied by _fragment_inputs
    if model.metadata.objective == "lambdarank":
        params["label_gain"] = list(range(31))
    n_inputs = model.n_inputs
    family_params = dict(model.metadata.params)
    client, cluster = lightgbm_dask_client(scheduler, n_workers)
    try:
        parts = list(_fragment_rows(view))
        workers = sorted(client.scheduler_info()["workers"])
        client.worker_order = workers  # LightGBM rank r: workers[r] (see _ordered_client_class)
        placed = place_fragments([len(rows) for _, rows in parts], workers)
        xs, ys, gs = [], [], []
        for (frag, rows), worker in zip(parts, placed):
            part = view.take(rows)
            local = np.asarray(part.local)
            x = dask.delayed(_fragment_inputs)(family_params, str(view.paths[frag]), local, view.slot, list(view.feature_names or []))
            xs.append(client.persist(da.from_delayed(x, shape=(len(rows), n_inputs), dtype=np.float32), workers=[worker]))
            labels = model._fit_labels(part.labels)  # label_transform, as in one process
            y = da.from_array(model.relevance(labels) if objective == "lambdarank" else labels, chunks=len(rows))
            ys.append(client.persist(y, workers=[worker]))  # beside its rows: lightgbm.dask's parts then stay there
            groups = part.groups
            cuts = np.concatenate([[0], np.flatnonzero(groups[1:] != groups[:-1]) + 1, [len(groups)]])
            gs.append(client.persist(da.from_array(np.diff(cuts), chunks=len(cuts) - 1), workers=[worker]))
        X, y, group = da.concatenate(xs), da.concatenate(ys), da.concatenate(gs)
        cls = lgb.DaskLGBMRanker if objective == "lambdarank" else lgb.DaskLGBMRegressor
        est = cls(client=client, objective=objective, n_estimators=rounds, **params)
        fit_kwargs = {"group": group} if objective == "lambdarank" else {}
        if same_bins:  # every feature binned as one process bins it, from the rows it would sample
            cnt = int(params.get("bin_construct_sample_cnt", BIN_SAMPLE_ROWS))
            n = int(X.shape[0])
            sample = X.compute() if n <= cnt else X[np.sort(np.random.default_rng(params.get("seed", 0)).choice(n, cnt, replace=False))].compute()
            forced, max_bins = one_process_bins(np.asarray(sample, dtype=np.float32), params)
            del sample
            est.set_params(max_bin_by_feature=max_bins, feature_pre_filter=False)
            from .lightgbm_dask_bins import with_bins  # lazy: that module imports LightGBM at its top

            factory = with_bins(lgb.LGBMRanker if objective == "lambdarank" else lgb.LGBMRegressor, forced, n_inputs)
            est._lgb_dask_fit(model_factory=factory, X=X, y=y, **fit_kwargs)  # lightgbm.dask's fit, our estimator class on the workers
        else:
            est.fit(X, y, **fit_kwargs)
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
        if model.family == "lightgbm" and not isinstance(train, FeatureTable):
            if log:
                log(f"on the Dask cluster {cluster.scheduler}")
            train_lightgbm_dask(model, train, scheduler=cluster.scheduler, n_workers=cluster.workers)
            return {}
        return model.fit(train, valid, log=log)

    return fit
