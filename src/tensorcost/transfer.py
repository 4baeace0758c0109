"""Transfer to new target hardware: the learning-curve study (the paper's central claim), and the
choice of the model a new machine is served.

On the target's records, a fixed test side is held out by program hash; the rest is the pool
from which the first k% (by a second hash, so smaller k is a subset of larger k) is the target
data an approach may use. Approaches, all scored on the same test side:

- `zero_shot:<source>` (k = 0): a source platform's model as pulled from the registry;
- `zero_shot:blend` (k = 0): the sources' models blended (an ensemble on one score scale);
- `pooled:<preset>` (k = 0): a model trained from scratch on every source platform's records
  pooled (no record of the target): the default a new machine gets;
- `finetune:<source>`: that model trained further on k% of the target's records (`warm_start`);
- every peer (`attention`, `lightgbm_rank`, `tvm_xgb`...): trained from scratch on the same k%.

The choice (`choose`): the approach with the best mean of the candidate metrics on the test
side among the servable ones (evaluation.serving_problems: at least a random ranking's expected
PCA, top-1 and top-5 there, and a model that is not a tree model within EARN_PCA_MARGIN of the
best tree model's PCA), unless a bootstrap over the test tasks cannot tell it from the default
(its confidence interval of the difference reaches 0): then the default stays. A machine's first model is thus
never one the measurements do not prefer over the pooled zero-shot model.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from .evaluation import ModelSpec, fit, model_input, predict, serving_problems
from .metrics import bootstrap_difference, figures_from_stats, objective, random_expectation, task_stats
from .models import CostModel
from .models.ensemble import MAX_MEMBERS, EnsembleCostModel

DEFAULT_METRICS = ("pca", "top1", "top5")


def _h(key: str, salt: str) -> float:
    return int.from_bytes(hashlib.blake2b(f"{salt}|{key}".encode(), digest_size=8).digest(), "little") / 2**64


def target_split(data, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(test mask, pool order): the test side by program hash; the pool ranked by a second hash."""
    keys = (data.frame["task_id"].astype(str) + "|" + data.frame["program_id"].astype(str)).to_numpy()
    test = np.fromiter((_h(k, f"test{seed}") < test_fraction for k in keys), dtype=bool, count=len(keys))
    pool = np.flatnonzero(~test)
    order = pool[np.argsort(np.fromiter((_h(keys[i], f"pool{seed}") for i in pool), dtype=np.float64, count=len(pool)), kind="stable")]
    return test, order


@dataclass
class Candidate:
    """One approach at one k, as scored on the test side."""

    approach: str
    k: str
    n_train: int
    stats: np.ndarray  # task_stats rows, in the test side's task order
    model: CostModel | None = None
    tree_model: bool = False  # a tree model's family (the serving reference)

    @property
    def key(self) -> str:
        return f"{self.approach}@{self.k}"

    def figures(self) -> dict:
        return {m: float(v) for m, v in figures_from_stats(self.stats).items()}


@dataclass
class TransferStudy:
    curves: dict  # {approach: {k: {pca, top1, top5, n_train}}}
    choice: dict  # what is served and why
    model: CostModel | None  # the chosen model
    finetuned: dict[str, CostModel] = field(default_factory=dict)  # {source: fine-tuned at keep_finetuned_at}


def blend_sources(sources: dict[str, CostModel], unlabeled) -> CostModel | None:
    """The sources' models as one ensemble, each score scaled by its spread within tasks on
    `unlabeled` rows of the target (predictions only: no target label is used). None with fewer
    than two sources or a source that cannot be a member (one reading MetaSchedule's features
    whole: TVM's XGBoost)."""
    models = list(sources.values())
    if len(models) < 2 or len(models) > MAX_MEMBERS:
        return None
    try:
        return EnsembleCostModel.from_members(models, list(sources), unlabeled)
    except ValueError:  # e.g. a source that is itself a blend of blends
        return None


def transfer_study(
    sources: dict[str, CostModel],
    data,
    fractions: Sequence[float],
    peers: dict[str, ModelSpec],
    *,
    test_fraction: float,
    seed: int,
    log: Callable[[str], None] | None = None,
    pooled: dict[str, CostModel] | None = None,
    select_metrics: Sequence[str] = DEFAULT_METRICS,
    confidence: float = 0.95,
    keep_finetuned_at: float | None = None,
) -> TransferStudy:
    """Every approach on the same test side of `data` (a FeatureTable or a store view), and the
    choice among them (`choose`). `pooled`: models already trained on the source platforms'
    records. Sources that cannot continue training get no `finetune` curve."""
    test_mask, order = target_split(data, test_fraction, seed)
    test = data.take(np.flatnonzero(test_mask))
    te = test.frame
    weights = test.task_weights()
    curves: dict = {}
    scored_all: list[Candidate] = []
    floor = random_expectation(te["task_id"], te["latency_s"].to_numpy(), weights)
    fixed: dict[str, Candidate] = {}  # the k = 0 approaches: the default is among them
    finetuned: dict[str, CostModel] = {}

    def scored(approach: str, k: str, model: CostModel, n_train: int) -> Candidate:
        scores = predict(model, test)
        _, stats = task_stats(te["task_id"], scores, te["latency_s"].to_numpy(), weights)
        cand = Candidate(approach, k, int(n_train), stats, model, type(model).tree_model)
        figures = cand.figures()
        curves.setdefault(approach, {})[k] = {"pca": figures["pca"], "top5": figures["top5"], "top1": figures["top1"], "n_train": int(n_train)}
        scored_all.append(cand)
        return cand

    for name, model in sources.items():
        fixed[f"zero_shot:{name}"] = scored(f"zero_shot:{name}", "0", model, 0)
    blend = blend_sources(sources, data.take(order)) if len(sources) > 1 else None
    if blend is not None:
        fixed["zero_shot:blend"] = scored("zero_shot:blend", "0", blend, 0)
    for name, model in (pooled or {}).items():
        fixed[f"pooled:{name}"] = scored(f"pooled:{name}", "0", model, 0)
    per_k = sum(1 for s in sources.values() if s.can_warm_start) + len(peers)
    bar = tqdm(total=len(fractions) * per_k, desc=f"transfer {data.slot}", unit="model", disable=None)  # shown on a terminal only
    for k in fractions:
        n = max(2, int(round(len(order) * k / 100.0)))
        train = data.take(np.sort(order[:n]))
        key = f"{k:g}"
        if log:
            log(f"{data.slot}: k={key}% ({n} target records)")
        for name, source in sources.items():
            if not source.can_warm_start:
                continue
            bar.set_postfix_str(f"k={key}% finetune {name}")
            model = copy.deepcopy(source)
            model.fit(model_input(train, model), warm_start=True, seed=seed)
            scored(f"finetune:{name}", key, model, n)
            bar.update(1)
            if keep_finetuned_at is not None and abs(k - keep_finetuned_at) < 1e-9:
                finetuned[name] = model
        for name, spec in peers.items():
            bar.set_postfix_str(f"k={key}% {name}")
            bar.update(1)
            if "ms_features" in spec.inputs and not has_ms_features(data):
                continue  # e.g. tvm_xgb on a target without MetaSchedule features
            model, _ = fit(spec, train)
            scored(name, key, model, n)
    bar.close()
    best, problems = best_servable(scored_all, select_metrics, floor)
    choice, model = choose(best, fixed, select_metrics, confidence, seed)
    choice["random_floor"] = floor
    choice["not_served"] = {k: why for k, why in problems.items() if why}
    return TransferStudy(curves, choice, model, finetuned)


def evaluation_set_id(data_hash: str, test_fraction: float, seed: int) -> str:
    """The name of the transfer's test side of a machine's data (see `splits.evaluation_set_id`)."""
    return f"transfer:{data_hash}:{test_fraction}:{seed}"


def chosen_sources(approach: str, pulled: dict) -> str:
    """The registry versions (`name/version`, comma-separated) the chosen approach was made from:
    its source model for zero-shot or fine-tuned, every source for their blend, "" for a model
    trained here (pooled or from scratch). `pulled`: {source: {"name", "version", ...}}."""
    _, _, source = approach.partition(":")
    if source in pulled:
        return f"{pulled[source]['name']}/{pulled[source]['version']}"
    if approach == "zero_shot:blend":
        return ",".join(f"{r['name']}/{r['version']}" for r in pulled.values())
    return ""


def becomes_candidate(target_id: str, slot: str, train_targets) -> bool:
    """Whether the transferred model becomes the machine's `candidate` too: yes unless the
    pipeline trains this target itself (then its train stage's measured best is the candidate),
    so a new machine's first model is the one its own measurements chose."""
    return target_id not in train_targets and slot not in train_targets


def best_servable(cands: Sequence[Candidate], keys: Sequence[str], floor: dict) -> tuple[Candidate | None, dict[str, str]]:
    """(the best of `cands` by the mean of `keys` among the servable ones, else among all;
    why each is not servable: evaluation.serving_problems)."""
    figures = {c.key: c.figures() for c in cands}
    problems = serving_problems(figures, [c.key for c in cands if c.tree_model], floor)
    eligible = [c for c in cands if not problems[c.key]] or list(cands)
    best = max(eligible, key=lambda c: float(objective(figures[c.key], keys)), default=None)
    return best, problems


def has_ms_features(data) -> bool:
    if getattr(data, "ms_features", None) is not None:
        return True
    directory = getattr(data, "directory", None)  # a store view: the msfeatures stage's files beside the store
    return directory is not None and (directory / f"{data.slot}.ms_index.parquet").exists()


def default_approach(fixed: dict[str, Candidate]) -> str | None:
    """What a new machine gets when its measurements cannot tell: the model of the source
    platforms pooled; without one, the blend of their models; else the best single source."""
    for prefix in ("pooled:", "zero_shot:blend"):
        hit = [a for a in fixed if a.startswith(prefix)]
        if hit:
            return hit[0]
    return next(iter(fixed), None)


def choose(best: Candidate | None, fixed: dict[str, Candidate], keys: Sequence[str], confidence: float, seed: int) -> tuple[dict, CostModel | None]:
    """(the choice's record, its model): the best approach when a bootstrap over test tasks
    puts its advantage over the default above 0 at `confidence`, else the default."""
    if best is None:
        return {"approach": None, "reason": "no approach was scored"}, None
    name = default_approach(fixed)
    record = {"metrics": list(keys), "confidence": confidence, "best": {"approach": best.approach, "k": best.k, **best.figures()}}
    if name is None or name == best.approach:
        return record | {"approach": best.approach, "k": best.k, "n_train": best.n_train, "default": name, **best.figures(),
                         "reason": f"the best mean of {', '.join(keys)} on the test side" + (" (and the default)" if name else "")}, best.model
    default = fixed[name]
    lo, hi = bootstrap_difference(best.stats, default.stats, keys, confidence, seed=seed)
    record |= {"default": name, "difference_ci": [lo, hi], "n_test_tasks": int(len(best.stats))}
    if np.isfinite(lo) and lo > 0:
        return record | {"approach": best.approach, "k": best.k, "n_train": best.n_train, **best.figures(),
                         "reason": f"better than the default {name} on the test side: {confidence:.0%} CI of the difference in mean "
                                   f"{', '.join(keys)} [{lo:+.3f}, {hi:+.3f}] over {len(best.stats)} tasks"}, best.model
    return record | {"approach": name, "k": default.k, "n_train": default.n_train, **default.figures(),
                     "reason": f"the default: the test side ({len(best.stats)} tasks) cannot tell the best, {best.approach} at k={best.k}, "
                               f"from it ({confidence:.0%} CI of the difference [{lo:+.3f}, {hi:+.3f}] reaches 0)"}, default.model
