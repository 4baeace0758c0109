"""What the split benchmarks of issue 27 share: the bundled CPU platforms, their feature tables,
a split's two sides, and the figures as JSON and Markdown cells. Scoring is the package's
(`evaluation.score` / `study_figures`: tasks weighted by their occurrences over the networks), so
a benchmark's cell and the split study's cell are the same figure."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable

import numpy as np

from tensorcost import dataset
from tensorcost.evaluation import other_platforms, pool, split_mask
from tensorcost.features import FeatureTable, featurize_records
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.hardware.catalog import catalog_target

CPU_SLOTS = ("sapphirerapids-2c-0ceb.avx2-t1", "sapphirerapids-2c.avx2-t1", "zen3-2c.avx2-t1", "zen4-2c.avx2-t1", "zen5-2c.avx2-t1")
# the splits scored on a platform's own data (by_hardware trains on the other platforms)
OWN_SPLITS = ("within_task", "by_task", "by_network", "by_family")
FIGURES = ("pca", "top1", "top5")


def split_benchmark_args(doc: str, splits: Iterable[str] = OWN_SPLITS) -> argparse.ArgumentParser:
    """The options every split benchmark takes (--slots, --splits, --out); a script adds its own."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--slots", default=",".join(CPU_SLOTS))
    ap.add_argument("--splits", default=",".join(splits))
    ap.add_argument("--out", required=True)
    return ap


def bundled_feature_tables(slots: Iterable[str]) -> dict[str, FeatureTable]:
    """The feature table of each bundled slot, featurized from its records (no DVC stage needed)."""
    raw = dataset.bundled_tables(slots)
    return {s: featurize_records(raw[s], catalog_target(s).features(), HARDWARE_FEATURE_NAMES, slot=s) for s in raw}


def without_features(table: FeatureTable, names: Iterable[str]) -> FeatureTable:
    """The same rows without the flat columns `names` (an ablation: a model created from the
    result reads only the others)."""
    drop = set(names)
    keep = [i for i, n in enumerate(table.feature_names) if n not in drop]
    return FeatureTable(table.frame, table.slot, table.ms_features, flat=table.flat[:, keep], token_offsets=table.token_offsets,
                        token_rows=table.token_rows, feature_names=[table.feature_names[i] for i in keep], feature_schema=table.feature_schema)


def split_sides(table: FeatureTable, split: str, split_params: dict) -> tuple[FeatureTable, FeatureTable] | None:
    """(training side, test side) of `split` on `table`; None where the split holds out nothing
    or everything there (e.g. by_network without a held-out network in this data)."""
    mask = split_mask(split, table, split_params)
    if mask.all() or not mask.any():
        return None
    return table.take(np.flatnonzero(~mask)), table.take(np.flatnonzero(mask))


def seen_halves(test: FeatureTable, split_params: dict) -> tuple[FeatureTable, FeatureTable]:
    """(half A, half B) of each test task's programs, within_task's hash at 0.5 (the same programs
    on every platform): A labelled from its own programs, so B's latencies reach no label of a
    model trained with A (the `seen` ceiling: what a model reaches on tasks it has seen half of)."""
    from tensorcost.pruning import kept_table

    half_b = split_mask("within_task", test, {**split_params, "test_fraction": 0.5})
    return kept_table(test, np.flatnonzero(~half_b)), test.take(np.flatnonzero(half_b))


def benchmark_sides(tables: dict[str, FeatureTable], slot: str, split: str, split_params: dict):
    """(training side, test side) of `slot` under `split`; by_hardware: the other platforms of
    `tables` pooled against the whole slot. None where the split leaves one side empty."""
    if split == "by_hardware":
        others = other_platforms(tables, slot)
        return (pool([tables[t] for t in others], slot), tables[slot]) if others else None
    return split_sides(tables[slot], split, split_params)


def rounded(report: dict) -> dict:
    """The figures a benchmark keeps of a `study_figures` report, to 4 digits."""
    return {k: round(float(report[k]), 4) for k in (*FIGURES, "n_tasks")}


def mean_cell(reports: Iterable[dict]) -> str:
    """'PCA / top-1 / top-5', each the mean over `reports` (one per platform)."""
    m = np.mean([[r[k] for k in FIGURES] for r in reports], axis=0)
    return " / ".join(f"{x:.3f}" for x in m)


def pca_changes(after: dict, before: dict, slots: Iterable[str]) -> str:
    """The PCA change per platform, in `slots`' order, where both sides have it."""
    return " ".join(f"{after[s]['pca'] - before[s]['pca']:+.3f}" for s in slots if s in after and s in before)


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run (written into its JSON). A flag (`store_true`) is
    written bare where set and left out where not: `--pooled 'True'` is no valid command line."""
    parts = []
    for k, v in vars(args).items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            parts += [flag] if v else []
        elif v is not None:
            parts.append(f"{flag} '{v}'")
    return " ".join(["python", Path(sys.argv[0]).as_posix(), *parts])


def write_json(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))


def extract_ms_features(slot: str, directory: Path) -> None:
    """The msfeatures stage's work on a bundled slot's records, into `directory` (the feature
    cache beside it: a second slot of the same tasks reads most of it back). The records as the
    records stage writes them, relabelled to the slot: files measured under a host label get new
    record ids there (`dataset.relabel`), and features keyed by the file's ids would not match."""
    from tqdm import tqdm as bar

    from tensorcost import records as rec
    from tensorcost.collect import load_tasks
    from tensorcost.features.metaschedule import ms_features_of_records
    from tensorcost.tvm_support import tvm_target

    tasks = load_tasks([dataset.programs_dir("cpu")])
    directory.mkdir(parents=True, exist_ok=True)
    relabelled = directory / f"{slot}.records.parquet"
    rec.write_records(dataset.bundled_tables([slot])[slot], relabelled)
    try:
        with bar(desc=f"MetaSchedule features {slot}", unit="rec") as progress:
            ms_features_of_records(relabelled, tasks, tvm_target(catalog_target(slot)), directory, slot, progress.update,
                                   cache_dir=directory / "cache")
    finally:  # a failed or interrupted extraction leaves no copy of the records behind
        relabelled.unlink(missing_ok=True)


def attach_ms_features(tables: dict[str, FeatureTable], directory: Path) -> set[str]:
    """Each table's MetaSchedule features from `directory` (extracted there first where missing);
    returns the slots that have them (a slot whose features belong to another version of its
    records is skipped, and the output says so)."""
    from tensorcost.errors import UserError
    from tensorcost.features.metaschedule import load_ms_features

    with_ms = set()
    for s, t in tables.items():
        if not (directory / f"{s}.ms_index.parquet").exists():
            extract_ms_features(s, directory)
        try:
            ms = load_ms_features(directory, s, t.frame["record_id"].tolist())
        except UserError as exc:
            print(f"{s}: no MetaSchedule features ({str(exc)[:160]})")
            continue
        if ms is not None:
            t.ms_features = ms
            with_ms.add(s)
    return with_ms
