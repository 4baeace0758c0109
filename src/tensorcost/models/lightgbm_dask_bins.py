"""lightgbm.dask estimators that bin every feature as one LightGBM process does (imported by
models.distributed only when a cluster trains; it imports lightgbm and distributed).

Data-parallel LightGBM finds each feature's bins on the rows of one rank, so a cluster's model
differs from one process's. models.distributed finds one process's bins on the client and hands
them to every rank as forced bins. LightGBM 4.7's distributed Dataset construction reads the
forced bounds of feature start+i of a rank's feature slice from entry i (lightgbm-org/LightGBM
PR #7436, open), so each rank writes its own file: its slice's bounds renumbered from 0.
"""

from __future__ import annotations

import json
import os
import tempfile
from urllib.parse import urlparse

import lightgbm as lgb


def rank_bins(forced: list[dict], rank: int, n_machines: int, n_features: int) -> list[dict]:
    """The forcedbins entries rank `rank` of `n_machines` must read (LightGBM gives rank r the
    features [r*step, (r+1)*step), step = ceil(n_features / n_machines))."""
    step = max(1, -(-n_features // n_machines))
    first = rank * step
    by_feature = {e["feature"]: e["bin_upper_bound"] for e in forced}
    return [{"feature": f - first, "bin_upper_bound": by_feature[f]} for f in range(first, min(first + step, n_features)) if f in by_feature]


def _fit_with_bins(est, super_fit, *args, **kwargs):
    from distributed import get_worker

    forced, n_features = est.tensorcost_bins
    p = est.get_params()
    machines = [m.rsplit(":", 1) for m in str(p["machines"]).split(",")]
    me = (urlparse(get_worker().address).hostname, int(p["local_listen_port"]))  # as lightgbm.dask writes `machines`
    rank = [i for i, (host, port) in enumerate(machines) if (host, int(port)) == me]
    if len(rank) != 1:
        raise RuntimeError(f"cannot find this worker {me} in LightGBM's machines {p['machines']}")
    fd, path = tempfile.mkstemp(prefix="tensorcost-bins-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(rank_bins(forced, rank[0], len(machines), n_features), f)
    try:
        est.set_params(forcedbins_filename=path)
        return super_fit(est, *args, **kwargs)
    finally:
        est.set_params(forcedbins_filename="")
        os.unlink(path)


def with_bins(base: type, forced: list[dict], n_features: int) -> type:
    """lightgbm.dask's model factory (a class: it checks issubclass): `base` (LGBMRanker or
    LGBMRegressor) training with its rank's share of `forced`, one process's bins
    (`models.distributed.one_process_bins`). Made here, so Dask pickles it by value."""

    def fit(self, *args, **kwargs):
        return _fit_with_bins(self, base.fit, *args, **kwargs)

    return type(f"{base.__name__}WithBins", (base,), {"fit": fit, "tensorcost_bins": (forced, n_features)})
