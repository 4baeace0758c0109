"""The split-strategy study: every model under every split, per target, side by side.

For each target and split strategy the same training rows feed every model; the same test rows
score them. Reports PCA, top-1, top-5 (task-weighted), train time and prediction throughput,
and the same per held-out network. Pure orchestration over `splits`, `metrics` and `models`:
models are named presets (`ModelSpec`: a family and its params), never special-cased.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from .features import FeatureTable
from .features.store import StoreView
from .metrics import peak_score, random_expectation, ranking_report
from .models import CostModel, create_model, family_class
from .plots import pca_per_split, ranking_scatter, topk_per_network
from .safeio import atomic_output
from .splits import DEFAULT_TEST_FAMILIES, DEFAULT_TEST_NETWORKS, assign_test, hardware_split, network_family


@dataclass(frozen=True)
class ModelSpec:
    """A model of the study: a family and the params it is created with."""

    family: str
    params: dict = field(default_factory=dict)

    @classmethod
    def preset(cls, params, name: str) -> "ModelSpec":
        """The spec of a preset of params.yaml's `models` (`params`: the loaded Params)."""
        return cls(*params.model_spec(name))

    def create(self, table, target: str | None = None) -> CostModel:
        """An untrained model for `table`'s rows: their feature schema and names, and their target
        unless `target` names the one the model is for (trained on other machines' rows)."""
        return create_model(self.family, target or table.target_id, table.feature_schema, list(table.feature_names or []), **self.params)

    @property
    def inputs(self) -> tuple[str, ...]:
        return family_class(self.family).inputs_of(self.params)

    def train_and_score(self, train: FeatureTable, test: FeatureTable, log=None, fit=None) -> "TrainResult":
        """Train on `train` (learning curves on `test` where the family records them) and report
        PCA / top-1 / top-5 on `test`. `fit(model, train, test, log)`: how to train (default:
        `model.fit`; a cluster's, models.distributed.cluster_fit)."""
        model = self.create(train)
        t0 = time.perf_counter()
        if fit is not None:
            curves = fit(model, train, test, log)
        else:
            curves = model.fit(model_input(train, model), model_input(test, model), log=log)
        train_s = time.perf_counter() - t0
        return TrainResult(model, score(model, test), curves, train_s)


def model_specs(params, names) -> dict[str, ModelSpec]:
    """{preset name: its ModelSpec}, in the order given."""
    return {k: ModelSpec.preset(params, k) for k in names}


def model_input(table, model: CostModel):
    """What `model` reads from `table`: a store view as it is (the learners and predictors read
    it a fragment at a time, MetaSchedule features included where the model streams them), except
    for a model that reads MetaSchedule features whole (TVM's XGBoost): then the rows whole, with them."""
    if table is None or isinstance(table, FeatureTable) or "ms_features" not in model.inputs or model.streams_ms_features:
        return table
    return table.materialize(tuple(model.inputs))


def predict(model: CostModel, table) -> np.ndarray:
    return np.asarray(model.predict(model_input(table, model)), dtype=np.float64)


def study_figures(test, scores: np.ndarray) -> dict:
    """PCA, top-1, top-5, n_tasks, n_records of `scores` on `test`, as every study and benchmark
    scores them: each task weighted by its occurrences over the networks (`task_weight`)."""
    te = test.frame
    return ranking_report(te["task_id"], scores, te["latency_s"].to_numpy(), network_weights(te)).to_dict()


def score(model: CostModel, test) -> dict:
    """`study_figures` of `model`'s predictions on `test`."""
    return study_figures(test, predict(model, test))


def pool(parts: Sequence, slot: str):
    """Several slots' rows as one training side: store views stay views (nothing read), tables
    are concatenated."""
    parts = list(parts)
    if all(isinstance(p, FeatureTable) for p in parts):
        return FeatureTable.concat(parts, slot)

    return StoreView.concat(parts, slot)


@dataclass
class TrainResult:
    model: CostModel
    metrics: dict
    curves: dict
    train_s: float


def reuse_trained(spec: ModelSpec, trained: dict[str, tuple[CostModel, float]], train: FeatureTable) -> tuple[CostModel, float] | None:
    """`spec` built from models already trained on `train`, if its family can be (a blend of
    them: `CostModel.reuse_trained`), with its cost; None otherwise."""
    return family_class(spec.family).reuse_trained(spec.params, trained, train)


def train_models(specs: dict[str, ModelSpec], train: FeatureTable, test: FeatureTable,
                 log: Callable[[str, str], None] | None = None, fit=None) -> dict[str, TrainResult]:
    """Every spec trained on `train` and scored on `test` (in order; an ensemble whose members
    came earlier blends those models). `log(key, message)`."""
    results: dict[str, TrainResult] = {}
    with tqdm(total=len(specs), desc="train", unit="model", disable=None) as bar:  # None: shown on a terminal only
        for key, spec in specs.items():
            bar.set_postfix_str(key)
            blended = reuse_trained(spec, {k: (r.model, r.train_s) for k, r in results.items()}, train)
            if blended is None:
                results[key] = spec.train_and_score(train, test, log=(lambda m, k=key: log(k, m)) if log else None, fit=fit)
            else:
                model, train_s = blended
                results[key] = TrainResult(model, score(model, test), {}, train_s)
            bar.update(1)
    return results


# A model of another kind than the tree models is served only with a PCA this close to the best
# tree model's on the same test side (and a top-1 at least random's): issue 27 item 3.
EARN_PCA_MARGIN = 0.02


def serving_problems(metrics_by_model: dict[str, dict], tree_models: Sequence[str], floor: dict | None = None,
                     margin: float = EARN_PCA_MARGIN) -> dict[str, str]:
    """Why each model may not be served ('' where it may), all on one test side: below a random
    ranking's expected PCA, top-1 or top-5 (`floor`, metrics.random_expectation); or, for a model
    not in `tree_models`, a PCA more than `margin` below the best tree model's."""
    trees = [m for m in metrics_by_model if m in set(tree_models)]
    best_tree = max((metrics_by_model[m]["pca"] for m in trees), default=None)
    out = {}
    for m, r in metrics_by_model.items():
        below = [k for k in ("pca", "top1", "top5") if floor is not None and k in floor and k in r and r[k] < floor[k]]
        if below:
            out[m] = "below a random ranking's expected " + ", ".join(f"{k} ({r[k]:.3f} < {floor[k]:.3f})" for k in below)
        elif m not in trees and best_tree is not None and r["pca"] < best_tree - margin:
            out[m] = f"PCA {r['pca']:.3f} more than {margin:g} below the best tree model's ({best_tree:.3f})"
        else:
            out[m] = ""
    return out


def pick_candidate(metrics_by_model: dict[str, dict], keys: Sequence[str], floor: dict | None = None,
                   tree_models: Sequence[str] | None = None) -> str:
    """The model with the best mean of `keys` (PCA, top-1, top-5...); ties go to the higher PCA.
    Among the servable ones (`serving_problems`; `tree_models` None: every model counts as one),
    else among all."""
    problems = serving_problems(metrics_by_model, list(metrics_by_model) if tree_models is None else tree_models, floor)
    eligible = [m for m in metrics_by_model if not problems[m]] or list(metrics_by_model)
    return max(eligible, key=lambda m: (float(np.mean([metrics_by_model[m][k] for k in keys])), metrics_by_model[m]["pca"]))


def tree_model_keys(specs: dict[str, "ModelSpec"]) -> list[str]:
    """The keys of `specs` whose family is a tree model (the serving reference)."""
    return [k for k, spec in specs.items() if family_class(spec.family).tree_model]


def random_floor(test) -> dict:
    """A random ranking's expected PCA, top-1, top-5 on `test` (what pick_candidate's floor is)."""
    te = test.frame
    return random_expectation(te["task_id"], te["latency_s"].to_numpy(), test.task_weights())


def train_test(table: FeatureTable, strategy: str, params: dict) -> tuple[FeatureTable, FeatureTable]:
    """The two sides of a split of one slot's table (by_hardware needs other slots: run_study)."""
    test = split_mask(strategy, table, params)
    return table.take(np.flatnonzero(~test)), table.take(np.flatnonzero(test))


def split_mask(strategy: str, data: FeatureTable, params: dict) -> np.ndarray:
    df = data.frame
    return assign_test(
        strategy, df["task_id"], df["program_id"], float(params.get("test_fraction", 0.2)), int(params.get("seed", 0)),
        networks=df["networks"], test_networks=tuple(params.get("test_networks") or DEFAULT_TEST_NETWORKS),
        test_families=tuple(params.get("test_families") or DEFAULT_TEST_FAMILIES), targets=df["slot"], test_target=data.slot,
    )


def network_weights(df, network: str | None = None) -> dict:
    """Task weights of a frame: occurrences over all networks, or in one network family (a row
    per task is read: the frame's size does not matter)."""
    first = df.drop_duplicates("task_id")
    if network is None:
        return dict(zip(first["task_id"].astype(str), first["task_weight"].astype(float)))
    return {str(tid): float(sum(w for n, w in json.loads(nets).items() if network_family(n) == network))
            for tid, nets in zip(first["task_id"], first["networks"])}


THROUGHPUT_BATCH = 4096


def throughput(model: CostModel, table: FeatureTable) -> float:
    """Candidates scored per second from the feature table, on a batch of at least
    THROUGHPUT_BATCH rows (best of 3), so small test sets do not turn the figure into a
    measurement of call overhead."""
    if not isinstance(table, FeatureTable):  # a store view: a batch's worth of its rows, in memory (no disk read timed)
        table = table.take(np.arange(min(len(table), THROUGHPUT_BATCH))).materialize(tuple(model.inputs) + ("flat",))
    n = len(table)
    reps = max(1, -(-THROUGHPUT_BATCH // max(n, 1)))
    big = table.take(np.tile(np.arange(n), reps))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        model.predict(big)
        best = min(best, time.perf_counter() - t0)
    return n * reps / max(best, 1e-9)


def fit(spec: ModelSpec, train: FeatureTable) -> tuple[CostModel, float]:
    """`spec` trained on `train`, and the seconds it took."""
    model = spec.create(train)
    t0 = time.perf_counter()
    model.fit(model_input(train, model))
    return model, time.perf_counter() - t0


def fit_predict(spec: ModelSpec, train: FeatureTable, test: FeatureTable) -> tuple[np.ndarray, float, float]:
    """Train `spec` on `train`, score `test`; returns (scores, train seconds, candidates/s)."""
    model, train_s = fit(spec, train)
    return predict(model, test), train_s, throughput(model, test)


def other_platforms(datasets: dict[str, FeatureTable], slot: str) -> list[str]:
    """The slots by_hardware trains on when `slot` is held out: every slot of another platform
    of the same kind (the whole test machine is held out, whichever variants of it the dataset
    holds; CPU and GPU programs come from different design spaces)."""
    held = datasets[slot]
    return [t for t, d in datasets.items() if d.platform_id != held.platform_id and d.kind == held.kind]


def hardware_sides(datasets: dict, slot: str, program_split: str | None, split_params: dict):
    """(training side, test side) with `slot`'s platform held out: trained on every other platform
    of its kind (`other_platforms`), pooled; with a `program_split`, only that split's training
    side of each of them, tested on `slot`'s test side of it (no test program, nor network, is
    trained on anywhere). None where nothing is left to train or test on."""
    others = other_platforms(datasets, slot)
    if not others:
        return None
    data = datasets[slot]
    if program_split is None:
        return pool([datasets[t] for t in others], slot), data
    mask = split_mask(program_split, data, split_params)
    if not mask.any():
        return None
    parts = [datasets[t].take(np.flatnonzero(~split_mask(program_split, datasets[t], split_params))) for t in others]
    parts = [d for d in parts if len(d)]
    if not parts:
        return None
    return pool(parts, slot), data.take(np.flatnonzero(mask))


def joint_training_side(datasets: dict, slot: str, strategy: str, split_params: dict, own_train=None):
    """`slot`'s training side of a split joined by the same split's training side of every other
    slot of its kind (the paper's joint training over hardware: the hardware features tell the
    platforms apart). Splits are keyed by task and program, never by slot, so a program on
    `slot`'s test side is on every slot's test side: nothing tested is seen on any machine."""
    if hardware_split(strategy)[0]:
        raise ValueError(f"joint_training_side: {strategy} already trains on the other platforms")
    data = datasets[slot]
    if own_train is None:
        own_train = data.take(np.flatnonzero(~split_mask(strategy, data, split_params)))
    others = [t for t, d in datasets.items() if t != slot and d.kind == data.kind]
    parts = [own_train] + [datasets[t].take(np.flatnonzero(~split_mask(strategy, datasets[t], split_params))) for t in others]
    return pool(parts, slot) if len(parts) > 1 else own_train


def run_study(
    datasets: dict[str, FeatureTable],
    strategies: Sequence[str],
    models: dict[str, ModelSpec],
    split_params: dict,
    *,
    progress: Callable[[str], None] | None = None,
    only: Sequence[str] | None = None,
    pool_platforms: bool = False,
) -> tuple[dict, dict, dict]:
    """`datasets`: the feature table of each dataset slot; `only`: the slots evaluated (default
    all; the others still train by_hardware models); `pool_platforms`: the splits other than
    by_hardware train on their training side of every slot of the same kind, not only the
    evaluated one's (`joint_training_side`). Returns (metrics, per_network, predictions) where
    metrics = {target: {split: {model: {pca, top1, top5, n_tasks, n_records, train_s, candidates_per_s}}}},
    per_network = {target: {split: {network: {model: {pca, top1, top5, n_tasks}}}}},
    predictions = {target: {split: (test frame, {model: scores})}} for plots."""
    metrics: dict = {}
    per_network: dict = {}
    predictions: dict = {}
    for strategy in strategies:  # a typo fails here, not after the models of the splits before it trained
        hardware_split(strategy)
    unknown = [t for t in (only or []) if t not in datasets]
    if unknown:  # a typo would otherwise evaluate nothing and report an empty study as done
        raise ValueError(f"run_study: no dataset slot {unknown[0]!r} among {sorted(datasets)}")
    slots = [t for t in datasets if only is None or t in only]
    bar = tqdm(total=len(slots) * len(strategies) * len(models), desc="evaluate", unit="model", disable=None)
    for target, data in datasets.items():
        if only is not None and target not in only:
            continue
        for strategy in strategies:
            holds_hardware, program_split = hardware_split(strategy)
            if holds_hardware:
                sides = hardware_sides(datasets, target, program_split, split_params)
                if sides is None:
                    bar.update(len(models))
                    continue
                train, test = sides
            else:
                mask = split_mask(strategy, data, split_params)
                if mask.all() or not mask.any():
                    bar.update(len(models))
                    continue  # e.g. by_network when no held-out network is in this data
                train, test = data.take(np.flatnonzero(~mask)), data.take(np.flatnonzero(mask))
                if pool_platforms:
                    train = joint_training_side(datasets, target, strategy, split_params, train)
            te = test.frame
            scores_by_model = {}
            trained: dict[str, tuple[CostModel, float]] = {}
            for key, spec in models.items():
                if progress:
                    progress(f"{target} / {strategy} / {key}")
                bar.set_postfix_str(f"{target} {strategy} {key}")
                bar.update(1)
                model, train_s = reuse_trained(spec, trained, train) or fit(spec, train)
                trained[key] = (model, train_s)
                scores, per_s = predict(model, test), throughput(model, test)
                scores_by_model[key] = scores
                rep = study_figures(test, scores)
                rep["peak5"] = peak_score(te["task_id"], scores, te["latency_s"].to_numpy(), 5)  # TenSet's figure, beside top-5
                metrics.setdefault(target, {}).setdefault(strategy, {})[key] = rep | {"train_s": train_s, "candidates_per_s": per_s}
                for net in sorted({network_family(n) for nets in te["networks"].unique() for n in json.loads(nets)}):
                    w = network_weights(te, net)
                    rows = (te["task_id"].astype(str).map(w).fillna(0.0).to_numpy(dtype=np.float64) > 0)
                    if not rows.any():
                        continue
                    sub = te[rows]
                    r = ranking_report(sub["task_id"].astype(str), scores[rows], sub["latency_s"].to_numpy(), w)
                    per_network.setdefault(target, {}).setdefault(strategy, {}).setdefault(net, {})[key] = {"pca": r.pca, "top1": r.top1, "top5": r.top5, "n_tasks": r.n_tasks}
            predictions.setdefault(target, {})[strategy] = (te, scores_by_model)
    bar.close()
    return metrics, per_network, predictions


def write_study_reports(metrics: dict, per_network: dict, predictions: dict, plots_dir: Path, figures_dir: Path) -> None:
    """The study's DVC plots (CSV) and figures: top-k per network, PCA per split, and one
    task's measured-vs-predicted ranking per target."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    # `bar`: the label DVC's bar templates draw one bar per value of (they have no colour-by column)
    _write_csv(plots_dir / "topk_per_network.csv", ["target", "split", "network", "model", "bar", "pca", "top1", "top5"],
               ({"target": t, "split": sp, "network": net, "model": m, "bar": f"{net} · {m}", "pca": r["pca"], "top1": r["top1"], "top5": r["top5"]}
                for t, by_split in per_network.items() for sp, by_net in by_split.items() for net, by_model in by_net.items() for m, r in by_model.items()))
    _write_csv(plots_dir / "pca_per_split.csv", ["target", "split", "model", "bar", "pca", "top5"],
               ({"target": t, "split": sp, "model": m, "bar": f"{t} {sp} · {m}", "pca": r["pca"], "top5": r["top5"]}
                for t, by_split in metrics.items() for sp, by_model in by_split.items() for m, r in by_model.items()))
    pca_per_split(metrics, figures_dir / "pca_per_split.png")
    rows = []
    for t in per_network:
        split = "by_network" if "by_network" in per_network[t] else next(iter(per_network[t]))
        topk_per_network(per_network[t][split], f"{t} ({split})", figures_dir / f"topk_per_network_{t}.png")
        te, scores = predictions[t][split]
        model_key = "lightgbm_rank" if "lightgbm_rank" in scores else next(iter(scores))
        task = te["task_id"].value_counts().idxmax()
        m = (te["task_id"] == task).to_numpy()
        meas_rank = (-te["label"].to_numpy()[m]).argsort().argsort()
        pred_rank = (-scores[model_key][m]).argsort().argsort()
        rows += [{"target": t, "task_id": task, "measured_rank": int(a), "predicted_rank": int(b)} for a, b in zip(meas_rank, pred_rank)]
        ranking_scatter(meas_rank, pred_rank, f"{t} {split} {model_key}: task {task}", figures_dir / f"ranking_{t}.png")
    _write_csv(plots_dir / "ranking.csv", ["target", "task_id", "measured_rank", "predicted_rank"], rows)


def _write_csv(path: Path, fields: list[str], rows) -> None:
    with atomic_output(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
