"""Time to quality with registry models (issue 15): how fast a tuning run reaches TVM's XGBoost's
final latency when its cost model comes from the registry.

    .venv/bin/python benchmarks/tuning_study.py                 # resumable; see --help for the sizes

On this machine's target, for each network (zoo names; `seen` = some task of it is in the bundled
program set the models trained on) and seed, tune with:

- `tvm_xgb`: TVM's XGBoost from scratch, at budget B (the baseline);
- `native`: the registry model of this platform (`models:/tensorcost-<host target>@<alias>`);
- `transfer_zero_shot`: another platform's registry model, scoring with this host's hardware features;
- `transfer_few_shot`: the model the transfer stage fine-tuned on a small fresh measurement of
  this machine (`@transferred`);

the learned ones at B/10, B/4, B/2 and B trials. Each row: final network latency (median of
repeated timings, min and max), tuning wall time, measured trials, and the seconds until the
run's tuned-task objective (sum of weight x best latency over the tuned tasks, what the task
scheduler minimises) first matched the baseline's final one at B (same seed; null if never).
Rows go to --out as they finish: a killed study continues where it stopped. Needs a registry
with those models: run `make run` first (it registers `candidate` and `transferred`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def progress_curve(weights: list[float], curve: list, t0: list):
    """A MetaSchedule measure callback appending (seconds since the search started, trials,
    objective us) after each batch of 8: the objective once every tuned task has a valid measurement."""
    import tvm
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    from tensorcost.tuning import measured_latency

    best: dict[int, float] = {}
    trials = [0]
    t0[0] = time.perf_counter()  # made right before the search starts (tune_network): time is search time

    @tvm.ir.utils.derived_object
    class Curve(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
            for b, r in zip(builder_results, runner_results):
                trials[0] += 1
                sec = measured_latency(r) if b.error_msg is None else None
                if sec is not None:
                    best[int(task_id)] = min(best.get(int(task_id), float("inf")), sec)
            if len(best) == len(weights):
                curve.append([round(time.perf_counter() - t0[0], 3), trials[0], sum(w * best[i] for i, w in enumerate(weights)) * 1e6])

    return [Curve()]


def seconds_to(curve: list, target_us: float | None) -> float | None:
    if target_us is None:
        return None
    return next((t for t, _, us in curve if us <= target_us * (1 + 1e-9)), None)


def torch_eager_ms(network: str, repeats: int = 20) -> float:
    import torch

    from tensorcost.zoo import get_network

    spec = get_network(network)
    model = spec.build().eval()
    x = torch.randn(*spec.input_shape)
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def bundled_networks() -> set[str]:
    from tensorcost import dataset

    tasks = json.loads((dataset.programs_dir("cpu") / "tasks.json").read_text())["tasks"]
    return {n for t in tasks for n in t["networks"]}


def main() -> None:
    from tensorcost import hardware
    from tensorcost.params import load_params
    from tensorcost.tuning import TuneConfig, cost_model, tune_network

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default="resnet18-b1-112,mobilenet_v2-b1-112,bert_tiny-b1-64,mlp")
    ap.add_argument("--budget", type=int, default=64, help="B: trials of the baseline (the learned models also run B/10, B/4, B/2)")
    ap.add_argument("--max-tasks", type=int, default=3)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cost-models", default="tvm_xgb,native,transfer_zero_shot,transfer_few_shot")
    ap.add_argument("--alias", default="candidate", help="alias of the native and the zero-shot source models")
    ap.add_argument("--source", default="sapphirerapids-2c.avx2-t1", help="the zero-shot source platform's target")
    ap.add_argument("--mode", default="frozen", choices=("frozen", "online"))
    ap.add_argument("--out", default="docs/results/tuning.json")
    ap.add_argument("--summary", action="store_true", help="no tuning: summarize --out's rows over seeds (JSON beside it, a markdown table)")
    args = ap.parse_args()
    if args.summary:
        rows = json.loads(Path(args.out).read_text())
        summary = summarize(rows, args.budget)
        Path(args.out).with_name(Path(args.out).stem + "-summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        print(summary_markdown(summary))
        return

    p = load_params()
    host_file = Path("data/host/target.json")  # the pipeline's resolved host target
    host = hardware.Target.from_dict(json.loads(host_file.read_text())) if host_file.exists() else hardware.resolve_target("auto", p.host.variants)
    uris = {"native": f"models:/tensorcost-{host.id}@{args.alias}", "transfer_zero_shot": f"models:/tensorcost-{args.source}@{args.alias}",
            "transfer_few_shot": f"models:/tensorcost-{host.id}@transferred"}
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    done = {(r["network"], r["cost_model"], r["budget_trials"], r["seed"]) for r in rows}
    seen_nets = bundled_networks()
    B = args.budget
    budgets = sorted({max(1, B // 10), max(1, B // 4), max(1, B // 2), B})
    jobs = []
    for net in args.networks.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            for cm in args.cost_models.split(","):
                for b in ([B] if cm == "tvm_xgb" else budgets):
                    if (net, cm, b, seed) not in done:
                        jobs.append((net, cm, b, seed))
    print(f"{len(jobs)} tuning runs to go on {host.id} (B={B}); {len(done)} already in {out}")
    eager: dict[str, float] = {}
    for i, (net, cm, b, seed) in enumerate(jobs):
        print(f"[{i + 1}/{len(jobs)}] {net} {cm} {b} trials, seed {seed}", flush=True)
        cfg = TuneConfig(network=net, max_tasks=args.max_tasks, max_trials_global=b, num_trials_per_iter=min(8, b), population_size=128, seed=seed)
        model = "xgb" if cm == "tvm_xgb" else cost_model(uris[cm], mode=args.mode, hardware=host)
        curve, t0 = [], [time.perf_counter()]
        r = tune_network(host, cfg, model, Path(".tensorcost/tuning_study") / f"{net}-{cm}-{b}-{seed}", p.measure,
                         extra_callbacks=lambda w, curve=curve, t0=t0: progress_curve(w, curve, t0))
        if net not in eager:
            eager[net] = torch_eager_ms(net)
        rows.append({"network": net, "seen": net in seen_nets, "cost_model": cm, "mode": None if cm == "tvm_xgb" else args.mode,
                     "model_uri": uris.get(cm), "target": host.id, "budget_trials": b, "seed": seed,
                     "final_latency_ms": r["network_latency_ms"]["median"], "latency_ms_min": r["network_latency_ms"]["min"], "latency_ms_max": r["network_latency_ms"]["max"],
                     "tuning_seconds": r["tuning_wall_s"], "trials_measured": r["trials_measured"], "objective_us": r["tuned_tasks_weighted_latency_us"],
                     "torch_eager_ms": eager[net], "curve": curve, "seconds_to_baseline_latency": None})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(fill_time_to_baseline(rows, B), indent=0))
    rows = fill_time_to_baseline(rows, B)
    out.write_text(json.dumps(rows, indent=0))
    plot(rows, out.with_suffix(".png"))


def fill_time_to_baseline(rows: list[dict], budget: int) -> list[dict]:
    """`seconds_to_baseline_latency` of every row: when its objective first matched the final
    objective of TVM's XGBoost at `budget` on the same network and seed."""
    base = {(r["network"], r["seed"]): r["objective_us"] for r in rows if r["cost_model"] == "tvm_xgb" and r["budget_trials"] == budget}
    for r in rows:
        r["seconds_to_baseline_latency"] = seconds_to(r["curve"], base.get((r["network"], r["seed"])))
    return rows


def seconds_to_baseline_network_latency(rows: list[dict], network: str, cost_model: str, seed: int, budget: int) -> float | None:
    """Tuning seconds of the smallest budget whose run of `cost_model` ended with a network latency
    at or below the baseline's final one (TVM's XGBoost at `budget`, same network and seed); each
    budget is its own run from scratch, so this is the wall time a user would have spent. None if
    no budget got there."""
    base = next((r for r in rows if (r["network"], r["cost_model"], r["budget_trials"], r["seed"]) == (network, "tvm_xgb", budget, seed)), None)
    if base is None:
        return None
    runs = sorted((r for r in rows if (r["network"], r["cost_model"], r["seed"]) == (network, cost_model, seed)), key=lambda r: r["budget_trials"])
    return next((r["tuning_seconds"] for r in runs if r["final_latency_ms"] <= base["final_latency_ms"]), None)


def summarize(rows: list[dict], budget: int) -> list[dict]:
    """Per network and cost model, over seeds: final latency and tuning time at B (median, range),
    and both time-to-baseline ratios per seed (a run's seconds over the baseline's seconds at B):
    by the tuned-task objective (the search's own curve) and by network latency (budgets)."""
    out = []
    for net in sorted({r["network"] for r in rows}):
        for cm in ("tvm_xgb", "native", "transfer_zero_shot", "transfer_few_shot"):
            at_b = [r for r in rows if (r["network"], r["cost_model"], r["budget_trials"]) == (net, cm, budget)]
            if not at_b:
                continue
            seeds = sorted(r["seed"] for r in at_b)
            base_s = {r["seed"]: r["tuning_seconds"] for r in rows if (r["network"], r["cost_model"], r["budget_trials"]) == (net, "tvm_xgb", budget)}
            by_objective, by_latency = [], []
            for seed in seeds:
                if seed not in base_s:
                    continue
                first = min((r for r in rows if (r["network"], r["cost_model"], r["seed"]) == (net, cm, seed)), key=lambda r: r["budget_trials"]
                            if r["seconds_to_baseline_latency"] is not None else float("inf"))
                by_objective.append(None if first["seconds_to_baseline_latency"] is None else first["seconds_to_baseline_latency"] / base_s[seed])
                t = seconds_to_baseline_network_latency(rows, net, cm, seed, budget)
                by_latency.append(None if t is None else t / base_s[seed])
            lat = [r["final_latency_ms"] for r in at_b]
            out.append({"network": net, "seen": at_b[0]["seen"], "cost_model": cm, "seeds": seeds,
                        "final_latency_ms_median": float(np.median(lat)), "final_latency_ms_range": [min(lat), max(lat)],
                        "tuning_seconds_median": float(np.median([r["tuning_seconds"] for r in at_b])),
                        "ratio_to_baseline_objective": by_objective, "ratio_to_baseline_network_latency": by_latency})
    return out


def summary_markdown(summary: list[dict]) -> str:
    def ratios(xs: list) -> str:
        return ", ".join("never" if x is None else f"{x:.2f}" for x in xs)

    lines = ["| network | cost model | seeds | latency at B, ms: median (range) | tuning s at B (median) | time to baseline / baseline's time, by objective | by network latency |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in summary:
        lo, hi = r["final_latency_ms_range"]
        name = f"{r['network']} ({'seen' if r['seen'] else 'unseen'})"
        lines.append(f"| {name} | {r['cost_model']} | {len(r['seeds'])} | {r['final_latency_ms_median']:.3f} ({lo:.3f}-{hi:.3f}) | {r['tuning_seconds_median']:.1f} | "
                     f"{'baseline' if r['cost_model'] == 'tvm_xgb' else ratios(r['ratio_to_baseline_objective'])} | "
                     f"{'baseline' if r['cost_model'] == 'tvm_xgb' else ratios(r['ratio_to_baseline_network_latency'])} |")
    return "\n".join(lines)


def plot(rows: list[dict], out: Path) -> None:
    """Best tuned-task objective against trials and against wall time, per network (seed 0, each
    cost model at its largest budget)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nets = sorted({r["network"] for r in rows})
    fig, axes = plt.subplots(len(nets), 2, figsize=(10, 3.2 * len(nets)), squeeze=False)
    for ax_row, net in zip(axes, nets):
        mine = [r for r in rows if r["network"] == net and r["seed"] == min(x["seed"] for x in rows)]
        for cm in sorted({r["cost_model"] for r in mine}):
            r = max((x for x in mine if x["cost_model"] == cm), key=lambda x: x["budget_trials"])
            if not r["curve"]:
                continue
            t, n, us = zip(*r["curve"])
            ax_row[0].plot(n, us, marker=".", label=cm)
            ax_row[1].plot(t, us, marker=".", label=cm)
        for ax, xl in zip(ax_row, ("trials", "tuning wall time (s)")):
            ax.set_xlabel(xl)
            ax.set_ylabel("sum of weight x best latency (us)")
            ax.set_title(f"{net} ({'seen' if mine and mine[0]['seen'] else 'unseen'})", fontsize=9)
            ax.grid(alpha=0.3)
        ax_row[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
