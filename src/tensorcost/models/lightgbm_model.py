"""LightGBM cost model (the TenSet-style GBDT baseline): ranking or regression on flat features."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
from pydantic import Field, StrictBool

from ..features import FeatureTable
from ..features.cross import LANE_FEATURE_NAMES, lane_features
from ..features.metaschedule import MS_FEATURE_DIM
from .base import CostModel, FamilyConfig, ModelFormatError, ModelMetadata, artifact_file, make_config

if TYPE_CHECKING:
    import lightgbm as lgb

MODEL_FILE = "model.txt"  # LightGBM's own text format: loads without executing code
MAX_MODEL_BYTES = 1 << 30
LOG_LABEL_FLOOR = 2.0 ** -20  # `label_transform: log`: a program a million times slower than its task's best fits as one


class LightGBMConfig(FamilyConfig):
    objective: Literal["lambdarank", "regression"] = "lambdarank"
    num_boost_round: int = Field(200, ge=1, le=100_000)
    learning_rate: float = Field(0.05, gt=0.0, le=1.0)
    num_leaves: int = Field(31, ge=2, le=131_072)
    min_data_in_leaf: int = Field(5, ge=0)
    seed: int = Field(0, ge=0)
    deterministic: StrictBool = True
    num_threads: int = Field(2, ge=0)  # 0: LightGBM's default (all cores)
    lambdarank_truncation_level: int = Field(20, ge=1)
    finetune_rounds: int = Field(50, ge=1, le=100_000)  # trees added by a warm start (fine-tuning)
    finetune_learning_rate: float = Field(0.01, gt=0.0, le=1.0)  # their shrinkage: small, a few target records must not undo the source
    # Also feed each feature minus its mean over the program's ranking group (its task's candidates):
    # a ranking is decided within a task, and the deviation from the task's own programs is what
    # carries over to operators whose absolute feature values no training task had (issue 13).
    group_relative: StrictBool = False
    # What the trees fit: the label `min_latency / latency` itself (TenSet's), its square root,
    # which spreads the slow programs' labels (most of a task's pairs) away from 0, or its log2
    # (clipped at LOG_LABEL_FLOOR), which spreads them evenly: each halving of speed is worth the
    # same. Monotone maps: predictions rank the same way either way, but the squared error weighs
    # pairs differently. Measured: benchmarks/label_transform.py.
    label_transform: Literal["identity", "sqrt", "log"] = "identity"
    # LightGBM's own regularizers, by their LightGBM names: each tree reads a random share of the
    # features (seeded: still deterministic; many correlated columns describe one tile), and an L2
    # penalty on leaf values. The presets keep LightGBM's defaults (benchmarks/split_levers.py).
    feature_fraction: float = Field(1.0, gt=0.0, le=1.0)
    lambda_l2: float = Field(0.0, ge=0.0)
    # Also read the hardware x program cross columns of features.cross (the innermost tiles in the
    # machine's vector lanes), derived from the flat columns at input time.
    lane_features: StrictBool = False


def group_deviation(x: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """x minus the mean of x over each row's group (its task's programs)."""
    rel = np.empty_like(x)
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    for g in range(int(inverse.max()) + 1 if len(inverse) else 0):
        rows = inverse == g
        rel[rows] = x[rows] - x[rows].mean(axis=0)
    return rel


def group_relative_features(x: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """[x, x - mean of x over the row's group]: the columns a `group_relative` model reads."""
    return np.concatenate([x, group_deviation(x, groups)], axis=1)


def check_model_text(path: Path, n_features: int | None = None) -> bytes:
    """Cheap structural checks of a LightGBM text model before LightGBM parses it: its parser
    aborts the process on some truncated files and silently loads others (it seeks by the
    header's `tree_sizes`). Checks the header, that each `Tree=i` block starts where
    `tree_sizes` says and their count matches, the `end of trees` marker, a parameters section
    that ends where one starts, and the final `pandas_categorical` line. (Registry loads are also hash-checked;
    this covers a local path.)"""
    data = artifact_file(path.parent, path.name, MAX_MODEL_BYTES).read_bytes()

    def bad(why: str) -> ModelFormatError:
        return ModelFormatError(f"{path}: not a complete LightGBM model ({why}); retrain or restore the file")

    if not data.startswith(b"tree\n"):
        raise bad("no 'tree' header")
    head_end = data.find(b"\n\n")
    if head_end < 0:
        raise bad("no end of header")
    header = dict(line.split(b"=", 1) for line in data[:head_end].split(b"\n")[1:] if b"=" in line)
    try:
        sizes = [int(x) for x in header[b"tree_sizes"].split()]
        max_feature_idx = int(header[b"max_feature_idx"])
    except (KeyError, ValueError):
        raise bad("header without valid tree_sizes / max_feature_idx") from None
    if n_features and max_feature_idx + 1 != n_features:
        raise bad(f"it reads {max_feature_idx + 1} features, the metadata names {n_features}")
    pos = head_end + 2
    for i, size in enumerate(sizes):
        if size <= 0 or not data.startswith(f"Tree={i}\n".encode(), pos):
            raise bad(f"tree {i} is not where the header's tree_sizes put it")
        pos += size
    n_trees = data.count(b"\nTree=")
    if n_trees != len(sizes):
        raise bad(f"{n_trees} trees but the header lists {len(sizes)}")
    if not data.startswith(b"end of trees", pos):
        raise bad("no 'end of trees' after the last tree")
    start = head_end + 2
    for i, size in enumerate(sizes):  # every block where it belongs: now what is in each
        problem = _tree_problem(data[start:start + size], max_feature_idx + 1)
        if problem:
            raise bad(f"tree {i}: {problem}")
        start += size
    # The last line LightGBM's Python package writes is `pandas_categorical:`; the parameters
    # section before it exists only when the booster has parameters, and one this loader built
    # has none (it is not given them, below), so a loaded model saved again (a transfer blend's
    # members) ends with the feature importances and that line.
    tail = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    if not tail.startswith(b"pandas_categorical:") or not data.endswith(b"\n"):
        raise bad("truncated trailer (expected a last line 'pandas_categorical:...')")
    params_at = data.find(b"\nparameters:\n", pos)
    if params_at >= 0 and data.find(b"\nend of parameters\n", params_at) < 0:
        raise bad("truncated parameters section (no 'end of parameters')")
    try:
        json.loads(tail[len(b"pandas_categorical:"):])
    except ValueError:
        raise bad("truncated pandas_categorical line") from None
    problem = _grammar_problem(data[:head_end], data[head_end + 2:pos], max_feature_idx + 1)
    if problem:
        raise bad(problem)
    # what LightGBM is given: the header and the trees, checked line by line; not the feature
    # importances and parameters after them (informational, and their parser aborts on edits)
    return data[:pos] + b"end of trees\n\npandas_categorical:null\n"


_NUMBER = re.compile(rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf")
_TREE_KEYS = {b"num_leaves", b"num_cat", b"split_feature", b"split_gain", b"threshold", b"decision_type", b"left_child", b"right_child",
              b"leaf_value", b"leaf_weight", b"leaf_count", b"internal_value", b"internal_weight", b"internal_count", b"is_linear", b"shrinkage"}
_HEADER_KEYS = {b"version", b"num_class", b"num_tree_per_iteration", b"label_index", b"max_feature_idx", b"objective", b"feature_names",
                b"feature_infos", b"tree_sizes"}
_FEATURE_INFO = re.compile(rb"none|\[[-+]?[0-9.eE+-]+:[-+]?[0-9.eE+-]+\]")


def _grammar_problem(header: bytes, trees: bytes, n_features: int) -> str | None:
    """Every line of the header and of the trees as this project's LightGBM writes them: ASCII,
    known keys, one class and one tree an iteration, a feature info a feature, numbers only in the
    trees (the fuzz found a flipped bit in any number aborting LightGBM's parser; benchmarks/loader_fuzz.py)."""
    try:
        header.decode("ascii")
        trees.decode("ascii")
    except UnicodeDecodeError:
        return "bytes that are not ASCII"
    fields = {}
    for line in header.split(b"\n")[1:]:
        key, eq, value = line.partition(b"=")
        if not eq or key not in _HEADER_KEYS or key in fields:
            return f"header line {line[:40]!r}"
        fields[key] = value
    if fields.get(b"version") != b"v4" or fields.get(b"num_class") != b"1" or fields.get(b"num_tree_per_iteration") != b"1" or fields.get(b"label_index") != b"0":
        return "header: version, num_class, num_tree_per_iteration or label_index edited"
    if not re.fullmatch(rb"[a-z_]+( [a-z_:0-9.]+)*", fields.get(b"objective", b"")):
        return "header: objective"
    infos = fields.get(b"feature_infos", b"").split(b" ")
    if len(infos) != n_features or not all(_FEATURE_INFO.fullmatch(v) for v in infos) or len(fields.get(b"feature_names", b"").split(b" ")) != n_features:
        return f"header: feature_names / feature_infos do not describe {n_features} features"
    for line in trees.split(b"\n"):
        if not line or line.startswith(b"Tree="):
            if line.startswith(b"Tree=") and not line[5:].isdigit():
                return f"line {line[:40]!r}"
            continue
        key, eq, value = line.partition(b"=")
        if not eq or key not in _TREE_KEYS or not all(_NUMBER.fullmatch(v) for v in (value.split(b" ") if value else [])):
            return f"tree line {line[:40]!r}"
    return None


MAX_LEAVES = 131_072  # LightGBM's own limit on num_leaves
_INTERNAL_ARRAYS = ("split_feature", "split_gain", "threshold", "decision_type", "left_child", "right_child", "internal_value", "internal_weight",
                    "internal_count")
_LEAF_ARRAYS = ("leaf_value", "leaf_weight", "leaf_count")


def _tree_problem(block: bytes, n_features: int) -> str | None:
    """What is wrong with one `Tree=i` block of a LightGBM text model (None: nothing). LightGBM
    trusts these fields: an edited count, a short array or a child index out of range or
    pointing back up makes it abort, crash or loop in predict. Checked: num_leaves in range, no
    categorical splits (this project never makes them), every array of its node count, split
    features in range, and the children forming one tree (each node one parent, children after
    their parent, leaves in range)."""
    fields = dict(line.split(b"=", 1) for line in block.split(b"\n")[1:] if b"=" in line)
    try:
        n_leaves = int(fields[b"num_leaves"])
        num_cat = int(fields.get(b"num_cat", b"0"))
    except (KeyError, ValueError):
        return "no valid num_leaves / num_cat"
    if not 1 <= n_leaves <= MAX_LEAVES:
        return f"num_leaves {n_leaves} out of range"
    if num_cat != 0:
        return f"num_cat {num_cat}: categorical splits are not produced by this project"
    if n_leaves == 1:
        return None if len((fields.get(b"leaf_value") or b"").split()) == 1 else "a one-leaf tree needs one leaf_value"
    arrays = {}
    for name, n in [(a, n_leaves - 1) for a in _INTERNAL_ARRAYS] + [(a, n_leaves) for a in _LEAF_ARRAYS]:
        raw = fields.get(name.encode())
        if raw is None:
            if name in ("split_feature", "threshold", "decision_type", "left_child", "right_child", "leaf_value"):
                return f"no {name}"
            continue
        values = raw.split()
        if len(values) != n:
            return f"{name} holds {len(values)} values, num_leaves {n_leaves} needs {n}"
        arrays[name] = values
    try:
        feats = [int(v) for v in arrays["split_feature"]]
        left, right = [int(v) for v in arrays["left_child"]], [int(v) for v in arrays["right_child"]]
        decision = [int(v) for v in arrays["decision_type"]]
    except ValueError:
        return "a non-numeric value in its arrays"
    if any(not 0 <= f < n_features for f in feats):
        return f"a split on feature {max(feats) if max(feats) >= n_features else min(feats)} (the model reads {n_features})"
    if any(d & 1 for d in decision):  # bit 0: a categorical split
        return "a categorical decision_type"
    parents_internal, parents_leaf = [0] * (n_leaves - 1), [0] * n_leaves
    for node, children in enumerate(zip(left, right)):
        for c in children:
            if c >= 0:
                if not node < c < n_leaves - 1:
                    return f"node {node}'s child {c} is not a later internal node"
                parents_internal[c] += 1
            else:
                if not 0 <= ~c < n_leaves:
                    return f"node {node}'s leaf {~c} is out of range"
                parents_leaf[~c] += 1
    if parents_internal[0] != 0 or any(n != 1 for n in parents_internal[1:]) or any(n != 1 for n in parents_leaf):
        return "its children do not form one tree (a node with no parent or two)"
    return None


_TREE_LINE = re.compile(r"^Tree=\d+\n", re.M)


def stack_boosters(first: lgb.Booster, then: lgb.Booster) -> lgb.Booster:
    """One LightGBM booster whose raw score is `first`'s plus `then`'s: `first`'s header and
    trees, then `then`'s trees numbered after them. What LightGBM's warm start (`init_model`)
    builds, for a continuation trained apart on `first`'s raw scores as initial scores (the
    streamed fine-tune: LightGBM cannot score Sequence data itself). Only the header and trees
    are given to LightGBM, as `check_model_text` does on load."""
    import lightgbm as lgb

    def parts(text: str) -> tuple[str, list[str]]:
        end = text.index("\nend of trees\n") + 1
        starts = [m.start() for m in _TREE_LINE.finditer(text, 0, end)]
        blocks = [text[a:b] for a, b in zip(starts, starts[1:] + [end])]
        return text[:starts[0]] if starts else text[:text.index("\n\n") + 2], [_TREE_LINE.sub("", b, count=1) for b in blocks]

    head, trees = parts(first.model_to_string())
    _, more = parts(then.model_to_string())
    blocks = [f"Tree={i}\n{b}" for i, b in enumerate(trees + more)]
    head = re.sub(r"(?m)^tree_sizes=.*$", "tree_sizes=" + " ".join(str(len(b.encode())) for b in blocks), head)
    return lgb.Booster(model_str=head + "".join(blocks) + "end of trees\n\npandas_categorical:null\n")


def _fragment_rows(view):
    """(fragment index, the view's rows in it) in view order."""
    frag = np.asarray(view.fragment)
    bounds = np.flatnonzero(np.diff(frag)) + 1 if len(frag) else np.array([], np.int64)
    for s, e in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(frag)]])):
        if e > s:
            yield int(frag[s]), np.arange(s, e)


def _group_sizes(groups: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Order rows by group (stable) and return the permutation and group sizes LightGBM needs."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    _, sizes = np.unique(groups[order], return_counts=True)
    return order, sizes.tolist()


class LightGBMCostModel(CostModel):
    family = "lightgbm"
    inputs = ("flat",)
    can_warm_start = True
    tree_model = True
    streams_ms_features = True  # a fragment's Sequence materializes that fragment alone (lightgbm_joint)
    Config = LightGBMConfig

    def __init__(self, metadata: ModelMetadata, booster=None):
        super().__init__(metadata)
        self.booster = booster

    @classmethod
    def create(cls, target: str, feature_schema: str, feature_names: list[str], **params) -> "LightGBMCostModel":
        cfg = make_config(cls.Config, params, f"{cls.family} params")
        return cls(ModelMetadata(family=cls.family, feature_schema=feature_schema, target=target, objective=cfg.objective, feature_names=feature_names,
                                 params=cfg.model_dump()))

    def _lgb_params(self) -> dict:
        """LightGBM's own params, and (apart) the rounds of a fit and of a warm start."""
        p = make_config(self.Config, self.metadata.params, f"{self.family} params").model_dump()
        rounds, finetune_rounds, truncation = p.pop("num_boost_round"), p.pop("finetune_rounds"), p.pop("lambdarank_truncation_level")
        finetune_lr = p.pop("finetune_learning_rate")
        for ours in ("label_transform", "lane_features", "ms_pooling"):  # ours (_fit_labels, _inputs), not LightGBM's
            p.pop(ours, None)
        base = {"objective": p.pop("objective"), "verbosity": -1, "num_threads": p.pop("num_threads")}
        if base["objective"] == "lambdarank":
            # Labels are throughputs in (0, 1]; lambdarank needs integer relevance grades.
            base["lambdarank_truncation_level"] = truncation
        return base | p | {"num_boost_round": rounds, "finetune_rounds": finetune_rounds, "finetune_learning_rate": finetune_lr}

    @staticmethod
    def relevance(labels: np.ndarray, levels: int = 31) -> np.ndarray:
        """Throughput label in (0, 1] -> integer grade 0..levels-1 (lambdarank's label gain)."""
        return np.clip(np.floor(np.asarray(labels) * (levels - 1) + 0.5), 0, levels - 1).astype(np.int32)

    @property
    def n_inputs(self) -> int:
        """Columns the booster reads: the flat features, the lane columns, a subclass's extra
        ones; twice with `group_relative`."""
        n = len(self.metadata.feature_names) + self.n_lane_inputs + self.n_extra_inputs
        return 2 * n if self.metadata.params.get("group_relative") else n

    @property
    def n_lane_inputs(self) -> int:
        return len(LANE_FEATURE_NAMES) if self.metadata.params.get("lane_features") else 0

    @property
    def n_extra_inputs(self) -> int:  # columns a subclass adds after the flat (and lane) features
        return 0

    def _extra_inputs(self, table: FeatureTable) -> np.ndarray | None:
        return None

    def _inputs(self, table: FeatureTable) -> np.ndarray:
        x = table.flat
        if x.ndim != 2 or (len(x) and x.shape[1] != len(self.metadata.feature_names)):
            raise ValueError(f"expected features of shape (n, {len(self.metadata.feature_names)}), got {x.shape}")
        parts = [x]
        if self.n_lane_inputs:
            parts.append(lane_features(x, self.metadata.feature_names))
        extra = self._extra_inputs(table)
        if extra is not None:
            parts.append(extra)
        if len(parts) > 1:
            x = np.concatenate([p.astype(x.dtype, copy=False) for p in parts], axis=1)
        return group_relative_features(x, table.groups) if self.metadata.params.get("group_relative") and len(x) else x

    def _fit_labels(self, labels: np.ndarray) -> np.ndarray:
        """The labels the trees fit (`label_transform`)."""
        transform = self.metadata.params.get("label_transform", "identity")
        if transform == "sqrt":
            return np.sqrt(np.clip(np.asarray(labels, dtype=np.float64), 0.0, None))
        if transform == "log":
            return np.log2(np.clip(np.asarray(labels, dtype=np.float64), LOG_LABEL_FLOOR, None))
        return labels

    def _dataset(self, table: FeatureTable, reference=None, init_from=None):
        """LightGBM's Dataset of `table`; with `init_from` (a booster) its raw scores as the
        rows' initial scores (a warm start trained apart, then `stack_boosters`)."""
        import lightgbm as lgb

        if not isinstance(table, FeatureTable):  # a store view: binned from fragments, never one float matrix
            return self._streamed_dataset(table, reference, init_from)
        order, sizes = _group_sizes(table.groups)
        x, y = self._inputs(table)[order], self._fit_labels(table.labels[order])
        init = init_from.predict(x, raw_score=True) if init_from is not None and len(x) else None
        if self.metadata.objective == "lambdarank":
            return lgb.Dataset(x, self.relevance(y), group=sizes, reference=reference, init_score=init, free_raw_data=True)
        return lgb.Dataset(x, y, reference=reference, init_score=init, free_raw_data=True)

    def _streamed_dataset(self, view, reference=None, init_from=None):
        """LightGBM's Dataset from a store view through `lightgbm.Sequence`s, one a fragment:
        LightGBM samples rows for its bins, then pushes batches; a Sequence holds one fragment's
        inputs at a time. Groups are whole inside fragments, so rows keep the view's order.
        `init_from`'s raw scores (initial scores) are read a fragment at a time too."""
        import lightgbm as lgb

        model = self
        held: list = [None]  # the one Sequence whose fragment is in memory

        class FragmentSequence(lgb.Sequence):
            def __init__(self, tables, n):
                self.tables, self.n, self.cached = tables, n, None

            def _x(self):
                if self.cached is None:
                    if held[0] is not None:
                        held[0].cached = None
                    self.cached, held[0] = model._inputs(self.tables()), self
                return self.cached

            def __getitem__(self, idx):
                rows = self._x()[idx]
                return rows.astype(np.float64) if np.ndim(rows) == 1 else rows  # sampled rows: LightGBM wants doubles

            def __len__(self):
                return self.n

        seqs, labels, sizes, init = [], [], [], []
        for frag, rows in _fragment_rows(view):
            part = view.take(rows)
            seqs.append(FragmentSequence(lambda part=part: part.materialize(self.inputs), len(rows)))
            seqs[-1].batch_size = len(rows)
            labels.append(part.labels)
            if init_from is not None:  # through the Sequence's cache: it holds one fragment's inputs at a time
                init.append(init_from.predict(seqs[-1]._x(), raw_score=True))
            groups = part.groups
            cuts = np.concatenate([[0], np.flatnonzero(groups[1:] != groups[:-1]) + 1, [len(groups)]])
            sizes += np.diff(cuts).tolist()  # groups are contiguous in a fragment: sizes in row order
        y = self._fit_labels(np.concatenate(labels) if labels else np.zeros(0))
        # LightGBM 4.7 pre-filters features built from Sequences under its default min_data_in_leaf
        # (20), not ours: a small view (a pruned task's rows) lost every feature and grew one-leaf
        # trees. Off, the trees are the in-memory ones (the filter only skips unsplittable features).
        ds_params = {"feature_pre_filter": False}
        init_score = np.concatenate(init) if init else None
        if self.metadata.objective == "lambdarank":
            return lgb.Dataset(seqs, self.relevance(y), group=sizes, reference=reference, init_score=init_score, free_raw_data=True, params=ds_params)
        return lgb.Dataset(seqs, y, reference=reference, init_score=init_score, free_raw_data=True, params=ds_params)

    def fit(self, train: FeatureTable, valid: FeatureTable | None = None, *, warm_start: bool = False, seed: int | None = None, log=None) -> dict[str, list[float]]:
        """Train (or, with `warm_start`, add `finetune_rounds` trees to the current ones); with
        `valid` also record learning curves on it (recorded only: no early stopping)."""
        import lightgbm as lgb

        params = self._lgb_params()
        rounds = params.pop("num_boost_round")
        finetune_rounds = params.pop("finetune_rounds")
        finetune_lr = params.pop("finetune_learning_rate")
        if seed is not None:
            params["seed"] = seed
        if self.metadata.objective == "lambdarank":
            params["label_gain"] = list(range(31))
            params.setdefault("eval_at", [1, 5])
        warm = warm_start and self.booster is not None
        # LightGBM 4.7 cannot score Sequence data for a warm start's initial scores: a store
        # view's (k% of a new machine's records, read a fragment at a time) are ours, the new
        # trees are trained apart on them and stacked after the current ones
        apart = self.booster if warm and not isinstance(train, FeatureTable) else None
        data = self._dataset(train, init_from=apart)
        evals: dict = {}
        kwargs: dict = {}
        if valid is not None:
            kwargs = {"valid_sets": [self._dataset(valid, reference=data, init_from=apart)], "valid_names": ["valid"],
                      "callbacks": [lgb.record_evaluation(evals)]}
        if warm:
            rounds, params["learning_rate"] = finetune_rounds, finetune_lr
            if apart is None:
                kwargs["init_model"] = self.booster
        booster = lgb.train(params, data, num_boost_round=rounds, **kwargs)
        self.booster = stack_boosters(apart, booster) if apart is not None else booster
        return {f"valid_{k}".replace("@", "_at_"): list(map(float, v)) for k, v in evals.get("valid", {}).items()}

    def predict(self, table: FeatureTable) -> np.ndarray:
        self._check_trained(self.booster is not None)
        parts = []
        for part in table.iter_tables(self.inputs):  # a store view: one fragment at a time
            x = self._inputs(part)
            if len(x):
                parts.append(np.asarray(self.booster.predict(x), dtype=np.float64))
        return np.concatenate(parts) if parts else np.zeros(0)

    def _save_weights(self, directory: Path) -> None:
        self.booster.save_model(str(directory / MODEL_FILE))

    @classmethod
    def _load(cls, metadata: ModelMetadata, directory: Path) -> "LightGBMCostModel":
        import lightgbm as lgb

        path = directory / MODEL_FILE
        model = cls(metadata)
        checked = check_model_text(path, model.n_inputs or None)
        try:
            model.booster = lgb.Booster(model_str=checked.decode("ascii"))
            return model
        except (lgb.basic.LightGBMError, ValueError) as exc:
            raise ModelFormatError(f"{path}: LightGBM cannot load it: {str(exc).strip()[:300]}") from None


MS_FLOAT_OP_COLUMNS = 7  # PerStoreFeature's first columns: a store's float ops by kind (mad, add/sub, mul, div/mod, cmp, math, other)


def pooled_ms_features(matrices: Sequence[np.ndarray], main_store: bool = False) -> np.ndarray:
    """One row a program from MetaSchedule's per-store feature matrices (a row a buffer store):
    their mean and their maximum over the stores, the store count and, with `main_store`, the row
    of the store with the most float work (a conv2d's accumulation, not its padding or epilogue:
    the mean and maximum mix the two). A tree model needs fixed columns; XGBoost in MetaSchedule
    instead sums per-store predictions."""
    width = 2 * MS_FEATURE_DIM + 1 + (MS_FEATURE_DIM if main_store else 0)
    out = np.zeros((len(matrices), width), dtype=np.float32)
    for i, m in enumerate(matrices):
        m = np.asarray(m, dtype=np.float32).reshape(-1, MS_FEATURE_DIM)
        if len(m):
            out[i, :MS_FEATURE_DIM], out[i, MS_FEATURE_DIM:2 * MS_FEATURE_DIM] = m.mean(axis=0), m.max(axis=0)
            if main_store:
                out[i, 2 * MS_FEATURE_DIM + 1:] = m[int(np.argmax(m[:, :MS_FLOAT_OP_COLUMNS].sum(axis=1)))]
        out[i, 2 * MS_FEATURE_DIM] = len(m)
    return out


class LightGBMJointConfig(LightGBMConfig):
    # how a program's per-store matrix becomes columns: mean and max over stores (and the count),
    # or those and the main store's own row (`pooled_ms_features`; benchmarks/within_task_levers.py)
    ms_pooling: Literal["mean_max", "mean_max_main"] = "mean_max"


class LightGBMJointCostModel(LightGBMCostModel):
    """LightGBM on our flat features and MetaSchedule's per-store features side by side (issue
    27's lever "the MetaSchedule features next to ours in one model"): the per-store matrices
    pooled per program (`pooled_ms_features`)."""

    family = "lightgbm_joint"
    inputs = ("flat", "ms_features")
    Config = LightGBMJointConfig

    @property
    def n_extra_inputs(self) -> int:
        return 2 * MS_FEATURE_DIM + 1 + (MS_FEATURE_DIM if self._main_store else 0)

    @property
    def _main_store(self) -> bool:
        return self.metadata.params.get("ms_pooling", "mean_max") == "mean_max_main"

    def _extra_inputs(self, table: FeatureTable) -> np.ndarray:
        table.require(self.inputs, self.family)
        return pooled_ms_features(table.ms_features, main_store=self._main_store)
