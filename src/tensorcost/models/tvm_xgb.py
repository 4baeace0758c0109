"""TVM MetaSchedule's own XGBoost cost model, trained offline on the same records: the peer.

Inputs are MetaSchedule's `PerStoreFeature` matrices (`features.metaschedule`). Training and
prediction go through `XGBModel`'s own pack-sum objective and prediction (`_train` / `_predict`)
with its default `XGBConfig`: the same model MetaSchedule tunes with, fed our training records
instead of its online measurements. Saved in XGBoost's JSON format (no pickle).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..features import FeatureTable
from ..features.metaschedule import MS_FEATURE_DIM
from .base import CostModel, FamilyConfig, ModelFormatError, ModelMetadata, artifact_file, make_config

MODEL_FILE = "xgb_model.json"
MAX_MODEL_BYTES = 1 << 30


def check_model_json(path: Path) -> None:
    """Cheap structural check of an XGBoost JSON model before XGBoost parses it (registry loads
    are also hash-checked; this covers a local path): valid JSON with the learner / booster /
    trees keys, and as many trees as its header says."""
    try:
        doc = json.loads(artifact_file(path.parent, path.name, MAX_MODEL_BYTES).read_bytes())
        model = doc["learner"]["gradient_booster"]["model"]
        trees, n_trees = model["trees"], int(model["gbtree_model_param"]["num_trees"])
        int(doc["learner"]["learner_model_param"]["num_feature"])
    except ModelFormatError:
        raise
    except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise ModelFormatError(f"{path}: not a complete XGBoost JSON model ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(trees, list) or len(trees) != n_trees:
        raise ModelFormatError(f"{path}: XGBoost model lists {len(trees) if isinstance(trees, list) else 'no'} trees, its header says {n_trees}")
    problem = _header_problem(doc, model, n_trees)
    if problem:
        raise ModelFormatError(f"{path}: not a model this project writes ({problem})")
    n_feature = int(doc["learner"]["learner_model_param"]["num_feature"])
    for i, tree in enumerate(trees):
        _check_tree(path, i, tree, n_feature)


def _header_problem(doc: dict, model: dict, n_trees: int) -> str | None:
    """The header fields XGBoost sizes its buffers by, as MetaSchedule's XGBoost writes them: one
    target, no classes, one tree an iteration, no categories (the fuzz found edits of these
    crashing XGBoost's loader or predictor; benchmarks/loader_fuzz.py)."""
    try:
        lp = doc["learner"]["learner_model_param"]
        gp = model["gbtree_model_param"]
        if lp.get("num_class") != "0" or lp.get("num_target") != "1" or gp.get("num_parallel_tree") != "1":
            return "num_class, num_target or num_parallel_tree edited"
        if not 0 < int(lp["num_feature"]) <= 100_000:
            return f"num_feature {lp['num_feature']}"
        info, indptr = model.get("tree_info"), model.get("iteration_indptr")
        if not isinstance(info, list) or len(info) != n_trees or any(v != 0 for v in info):
            return "tree_info does not list one group-0 entry a tree"
        if indptr is not None and (not isinstance(indptr, list) or indptr != list(range(n_trees + 1))):
            return "iteration_indptr is not one tree an iteration"
        if model.get("cats") not in (None, {}) and any(v for v in (model.get("cats") or {}).values()):
            return "categorical data"
    except (KeyError, TypeError, ValueError) as exc:
        return f"header: {type(exc).__name__}"
    return None


def _check_tree(path: Path, index: int, tree: dict, n_feature: int | None = None) -> None:
    """A tree XGBoost can walk without leaving it: XGBoost trusts child indices, and a child that
    points back up (a loop) or past the end crashes the process at predict time. Children are
    either -1 (a leaf) or other nodes of the same tree, each reached from the root exactly once
    (node order is XGBoost's allocation order, not guaranteed parent-first, so walk it)."""
    try:
        left, right = tree["left_children"], tree["right_children"]
        n = len(left)
        if n == 0 or len(right) != n or any(len(tree[k]) != n for k in ("split_indices", "split_conditions", "base_weights")):
            raise ModelFormatError(f"{path}: tree {index}: empty, or node arrays of different lengths")
        if any(k in tree and len(tree[k]) != n for k in ("parents", "default_left", "split_type", "loss_changes", "sum_hessian")):
            raise ModelFormatError(f"{path}: tree {index}: node arrays of different lengths")
        param = tree.get("tree_param", {})
        if str(param.get("num_nodes")) != str(n) or str(param.get("num_deleted", "0")) != "0" or str(param.get("size_leaf_vector", "1")) not in ("0", "1"):
            raise ModelFormatError(f"{path}: tree {index}: tree_param {param!r} does not describe its {n} nodes")
        if n_feature is not None and str(param.get("num_feature")) != str(n_feature):
            raise ModelFormatError(f"{path}: tree {index}: num_feature {param.get('num_feature')!r}, the model's is {n_feature}")
        if any(tree.get(k) for k in ("categories", "categories_nodes", "categories_segments", "categories_sizes")) or any(v != 0 for v in tree.get("split_type", [])):
            raise ModelFormatError(f"{path}: tree {index}: categorical splits (this project never makes them)")
        if n_feature is not None and any(not (isinstance(f, int) and 0 <= f < n_feature) for f, c in zip(tree["split_indices"], left) if c != -1):
            raise ModelFormatError(f"{path}: tree {index}: a split on a feature outside 0..{n_feature - 1}")
        if not all(isinstance(v, (int, float)) for v in tree["split_conditions"] + tree["base_weights"]):
            raise ModelFormatError(f"{path}: tree {index}: a non-numeric split condition or weight")
        if tree.get("id", index) != index:
            raise ModelFormatError(f"{path}: tree {index}: its id says {tree.get('id')!r}")
        parents = tree.get("parents")
        if parents is not None:  # XGBoost walks up through these: each must name the node whose child it is
            if parents[0] != 2147483647 or any(c != -1 and parents[c] != node for node, pair in enumerate(zip(left, right)) for c in pair
                                              if isinstance(c, int) and 0 < c < n):
                raise ModelFormatError(f"{path}: tree {index}: parents do not match the children")
        seen, stack = {0}, [0]
        while stack:
            node = stack.pop()
            a, b = left[node], right[node]
            if (a == -1) != (b == -1):
                raise ModelFormatError(f"{path}: tree {index} node {node}: one child is a leaf marker, the other is not")
            for child in (a, b) if a != -1 else ():
                if not (isinstance(child, int) and 0 < child < n) or child in seen:
                    raise ModelFormatError(f"{path}: tree {index} node {node}: child {child} is outside the tree or reached twice (a loop)")
                seen.add(child)
                stack.append(child)
    except (KeyError, TypeError) as exc:
        raise ModelFormatError(f"{path}: tree {index} is incomplete ({type(exc).__name__}: {str(exc)[:100]})") from None


class TVMXGBConfig(FamilyConfig):
    """MetaSchedule's own `XGBConfig` defaults: nothing to set (it is the peer, as TVM ships it)."""


class TVMXGBCostModel(CostModel):
    family = "tvm_xgb"
    tree_model = True
    inputs = ("ms_features",)
    Config = TVMXGBConfig

    def __init__(self, metadata: ModelMetadata, booster=None):
        super().__init__(metadata)
        self.booster = booster

    @classmethod
    def create(cls, target: str, feature_schema: str, feature_names: list[str] | None = None, **params) -> "TVMXGBCostModel":
        cfg = make_config(TVMXGBConfig, params, "tvm_xgb params")
        return cls(ModelMetadata(family="tvm_xgb", feature_schema=feature_schema, target=target, objective="pack-sum-regression",
                                 feature_names=[f"ms{i}" for i in range(MS_FEATURE_DIM)], params=cfg.model_dump()))

    @staticmethod
    def _xgb_model():
        from tvm.s_tir.meta_schedule.cost_model.xgb_model import XGBModel

        return XGBModel(num_tuning_cores=2, verbose_eval=10**9)

    def fit(self, train: FeatureTable, valid: FeatureTable | None = None, *, warm_start: bool = False, seed: int | None = None, log=None) -> dict[str, list[float]]:
        """Labels are per-task throughputs min_cost/cost, exactly what XGBModel.update trains on."""
        train.require(self.inputs, "tvm_xgb")
        if warm_start:
            raise ValueError("tvm_xgb trains from scratch only (MetaSchedule's XGBModel has no continued training)")
        model = self._xgb_model()
        model._train(xs=list(train.ms_features), ys=np.asarray(train.labels, dtype=np.float32))  # noqa: SLF001  (TVM's own training path)
        self.booster = model.booster
        return {}

    def predict(self, table: FeatureTable) -> np.ndarray:
        self._check_trained(self.booster is not None)
        table.require(self.inputs, "tvm_xgb")
        if not len(table):
            return np.zeros(0)
        model = self._xgb_model()
        model.booster = self.booster
        return np.asarray(model._predict(xs=list(table.ms_features)), dtype=np.float64)  # noqa: SLF001

    def _save_weights(self, directory: Path) -> None:
        self.booster.save_model(str(directory / MODEL_FILE))

    @classmethod
    def _load(cls, metadata: ModelMetadata, directory: Path) -> "TVMXGBCostModel":
        import xgboost as xgb

        path = directory / MODEL_FILE
        check_model_json(path)
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as exc:
            raise ModelFormatError(f"{path}: XGBoost cannot load it: {str(exc).strip().splitlines()[0][:300]}") from None
        return cls(metadata, booster)
