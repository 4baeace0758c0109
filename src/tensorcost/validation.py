"""Great Expectations suites that guard the data between stages: the records table (validate
stage) and the feature table (featurize stage, before it is written). GX lives only here.

Checks GX cannot express on list or JSON cells (`latencies`, `trace`, `flat`, `tokens`) run on
derived columns: `*_problem` is null for a good row and names the record and the defect otherwise,
so the failure examples say which rows are bad and why.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .records import COLUMNS

SUITE_NAME = "records"
FEATURES_SUITE_NAME = "features"


@dataclass
class ValidationSummary:
    success: bool
    target: str
    n_rows: int
    failures: list[dict] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)
    suite: str = SUITE_NAME

    def to_dict(self) -> dict:
        return {"suite": self.suite, "success": self.success, "target": self.target, "n_rows": self.n_rows, "failures": self.failures,
                "statistics": self.statistics}

    def readable(self) -> str:
        head = f"{self.suite} validation for {self.target}: {'PASSED' if self.success else 'FAILED'} ({self.n_rows} rows)"
        lines = [head]
        for f in self.failures:
            lines.append(f"  - {f['expectation']} on {f.get('column') or '(table)'}: {f['unexpected_count']} rows; examples: {f['examples']}")
        return "\n".join(lines)

    def failed_expectations(self) -> str:
        """The failures on one line (for a UserError)."""
        return "; ".join(f"{f['expectation']} on {f.get('column') or '(table)'} ({f['unexpected_count']} rows)" for f in self.failures)


def _latencies_problem(record_id: str, values) -> str | None:
    """Why a record's timed repeats are unusable (empty, NaN/inf, <= 0), or None."""
    vals = [float(v) for v in (values if values is not None else [])]
    if vals and all(math.isfinite(v) and v > 0 for v in vals):
        return None
    return f"{record_id}: latencies {vals[:5]}"


def _trace_problem(record_id: str, trace) -> str | None:
    """Why a trace cannot be featurized (not JSON, not a JSON list), or None. A null trace is
    reported by its own not-null expectation."""
    if trace is None:
        return None
    try:
        obj = json.loads(trace)
    except (TypeError, ValueError) as exc:
        return f"{record_id}: trace is not JSON ({exc})"
    return None if isinstance(obj, list) else f"{record_id}: trace is a JSON {type(obj).__name__}, not a list"


def _nonfinite_problem(record_id: str, values, names: Sequence[str] | None = None) -> str | None:
    """Which entries of a feature vector are NaN/inf, or None."""
    arr = np.asarray(values, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if not len(bad):
        return None
    shown = ", ".join(f"{names[i] if names is not None and i < len(names) else i}={arr[i]}" for i in bad[:3])
    return f"{record_id}: {len(bad)} non-finite ({shown})"


def _expectations(target: str):
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    measured, failed = Column("error_no") == 0, Column("error_no") != 0

    # `latencies` (a list column) is replaced by `latencies_problem` before validation, `trace`
    # gets `trace_problem`; every other column must be there.
    columns = [c for c in COLUMNS if c != "latencies"] + ["latencies_problem", "trace_problem"]
    exps = [gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True), gxe.ExpectTableRowCountToBeBetween(min_value=1)]
    for col in ("record_id", "source", "target", "task_id", "task_name", "program_id", "trace", "error_no", "measured_at", "tvm_version", "op_kind", "flops"):
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
    exps += [
        gxe.ExpectColumnValuesToBeUnique(column="record_id"),
        # One hardware id per target: a records file must hold exactly the target it claims.
        gxe.ExpectColumnValuesToBeInSet(column="target", value_set=[target]),
        gxe.ExpectColumnValuesToBeInSet(column="error_no", value_set=list(range(0, 9))),
        gxe.ExpectColumnValuesToNotBeNull(column="latency_s", row_condition=measured),
        gxe.ExpectColumnValuesToBeBetween(column="latency_s", min_value=0, strict_min=True, max_value=3600, row_condition=measured),
        gxe.ExpectColumnValuesToBeNull(column="latency_s", row_condition=failed),
        gxe.ExpectColumnValuesToBeBetween(column="flops", min_value=0),
        gxe.ExpectColumnValuesToBeBetween(column="task_weight", min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="source", value_set=["tvm-metaschedule", "tenset"]),
        gxe.ExpectColumnValuesToBeBetween(column="measured_at", min_value=0),
        gxe.ExpectColumnValuesToMatchRegex(column="program_id", regex=r"^[0-9a-f]{16}$"),
        gxe.ExpectColumnValuesToMatchRegex(column="task_id", regex=r"^[0-9a-f]{16}$"),
        gxe.ExpectColumnValuesToNotBeNull(column="error_msg", row_condition=failed),
        # Every timed repeat of a measured record is a finite, positive time (latency_s is their mean).
        gxe.ExpectColumnValuesToBeNull(column="latencies_problem", row_condition=measured),
        # featurize parses every trace: a bad one is a records defect, reported here.
        gxe.ExpectColumnValuesToBeNull(column="trace_problem"),
    ]
    return exps


def validate_records(df: pd.DataFrame, target: str, docs_dir: Path | None = None) -> ValidationSummary:
    """Run the records suite on a frame; optionally build HTML Data Docs into `docs_dir`."""
    # GX's between-check does not see inf as out of range on every backend: turn it into a
    # clear failure by mapping non-finite latencies of measured rows to -1.
    df = df.copy()
    df["latency_s"] = df["latency_s"].map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) or math.isfinite(v) else -1.0)
    if "latencies" in df:  # absent: the column-set expectation names the missing derived column
        df["latencies_problem"] = [_latencies_problem(r, v) for r, v in zip(df["record_id"], df["latencies"])]
    if "trace" in df:
        df["trace_problem"] = [_trace_problem(r, t) for r, t in zip(df["record_id"], df["trace"])]
    df = df.drop(columns=["latencies"], errors="ignore")  # list column: checked through latencies_problem

    success, failures = _run_suite(df, SUITE_NAME, target, _expectations(target), docs_dir)
    stats = {
        "valid_records": int((df["error_no"] == 0).sum()),
        "error_records": int((df["error_no"] != 0).sum()),
        "tasks": int(df["task_id"].nunique()),
    }
    return ValidationSummary(success=success, target=target, n_rows=len(df), failures=failures, statistics=stats)


def _feature_expectations(slot: str, target: str, n_features: int):
    import great_expectations.expectations as gxe

    from .features import FEATURE_SCHEMA_VERSION
    from .features.table import FRAME_COLUMNS

    # The list columns `flat` and `tokens` are replaced by derived columns (width, non-finite).
    columns = [c for c in FRAME_COLUMNS if c not in ("flat", "tokens")] + ["feature_schema", "flat_len", "flat_problem", "tokens_problem"]
    exps = [
        gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
        # Every slot trains and is evaluated on its own: an empty one (all records failed) is a defect.
        gxe.ExpectTableRowCountToBeBetween(min_value=1),
        gxe.ExpectColumnValuesToBeInSet(column="feature_schema", value_set=[FEATURE_SCHEMA_VERSION]),
        gxe.ExpectColumnValuesToBeInSet(column="flat_len", value_set=[n_features]),
        gxe.ExpectColumnValuesToBeInSet(column="slot", value_set=[slot]),
        gxe.ExpectColumnValuesToBeInSet(column="target", value_set=[target]),
    ]
    for col in ("record_id", "task_id", "program_id", "latency_s", "label"):
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col))
    exps += [
        # A duplicated row weighs a program twice in training and leaks across splits: one row per
        # record, and one per (task, program) since a slot holds one target.
        gxe.ExpectColumnValuesToBeUnique(column="record_id"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["task_id", "program_id"]),
        gxe.ExpectColumnValuesToBeBetween(column="latency_s", min_value=0, strict_min=True, max_value=3600),
        # label = task's min latency / latency: in (0, 1] when both are finite and positive.
        gxe.ExpectColumnValuesToBeBetween(column="label", min_value=0, strict_min=True, max_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="task_weight", min_value=1),
        gxe.ExpectColumnValuesToBeNull(column="flat_problem"),
        gxe.ExpectColumnValuesToBeNull(column="tokens_problem"),
    ]
    return exps


def validate_features(frame: pd.DataFrame, slot: str, target: str, feature_schema: str, feature_names: Sequence[str]) -> ValidationSummary:
    """Run the features suite on a feature frame (FRAME_COLUMNS) of one slot, as featurize writes
    it with `feature_schema` and `feature_names` in its meta file."""
    # inf label/latency: the pandas backend's between-checks fail on it (examples show `inf`).
    df = frame.drop(columns=["flat", "tokens"], errors="ignore")
    df["feature_schema"] = feature_schema
    if "flat" in frame:  # absent: the column-set expectation names the missing derived columns
        df["flat_len"] = [len(v) for v in frame["flat"]]
        df["flat_problem"] = [_nonfinite_problem(r, v, feature_names) for r, v in zip(frame["record_id"], frame["flat"])]
    if "tokens" in frame:
        df["tokens_problem"] = [_nonfinite_problem(r, v) for r, v in zip(frame["record_id"], frame["tokens"])]
    success, failures = _run_suite(df, FEATURES_SUITE_NAME, slot, _feature_expectations(slot, target, len(feature_names)))
    stats = {"rows": len(df), "tasks": int(df["task_id"].nunique()) if "task_id" in df else 0, "feature_width": len(feature_names), "feature_schema": feature_schema}
    return ValidationSummary(success=success, target=slot, n_rows=len(df), failures=failures, statistics=stats, suite=FEATURES_SUITE_NAME)


def _run_suite(df: pd.DataFrame, suite_name: str, target: str, expectations: list, docs_dir: Path | None = None) -> tuple[bool, list[dict]]:
    """Validate `df` against `expectations` with GX: (success, failures as plain dicts)."""
    import great_expectations as gx

    if docs_dir is None:
        return _run_suite_in(gx.get_context(mode="ephemeral"), df, suite_name, target, expectations, None)
    import tempfile

    # The GX project (config, stores) is scratch, removed with the command; only the HTML Data Docs are an output.
    with tempfile.TemporaryDirectory(prefix="tensorcost-gx-") as project:
        ctx = gx.get_context(mode="file", project_root_dir=project)
        return _run_suite_in(ctx, df, suite_name, target, expectations, Path(docs_dir).resolve())


def _run_suite_in(ctx, df: pd.DataFrame, suite_name: str, target: str, expectations: list, docs_dir: Path | None) -> tuple[bool, list[dict]]:
    import great_expectations as gx

    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001  (cosmetic only)
        pass
    ds_name = f"{suite_name}_{target}"
    try:
        ds = ctx.data_sources.get(ds_name)
    except (KeyError, ValueError):
        ds = ctx.data_sources.add_pandas(ds_name)
    try:
        asset = ds.get_asset(suite_name)
    except (LookupError, ValueError):
        asset = ds.add_dataframe_asset(suite_name)
    try:
        batch_def = asset.get_batch_definition("whole")
    except (KeyError, ValueError):
        batch_def = asset.add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name=f"{suite_name}_{target}")
    for e in expectations:
        suite.add_expectation(e)
    try:
        ctx.suites.delete(suite.name)
    except Exception:  # noqa: BLE001  (absent on first run)
        pass
    suite = ctx.suites.add(suite)
    vd_name = f"validate_{suite_name}_{target}"
    try:
        ctx.validation_definitions.delete(vd_name)
    except Exception:  # noqa: BLE001
        pass
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=vd_name, data=batch_def, suite=suite))
    if docs_dir is not None:
        site = {"class_name": "SiteBuilder", "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)}, "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"}}
        site_name = "tensorcost_docs"
        try:
            ctx.add_data_docs_site(site_name=site_name, site_config=site)
        except Exception:  # noqa: BLE001  (already configured in this project dir)
            pass
        cp_name = f"checkpoint_{suite_name}_{target}"
        try:
            ctx.checkpoints.delete(cp_name)
        except Exception:  # noqa: BLE001
            pass
        cp = ctx.checkpoints.add(gx.Checkpoint(name=cp_name, validation_definitions=[vd], actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[site_name])]))
        result = cp.run(batch_parameters={"dataframe": df})
        results = list(result.run_results.values())[0].results
        success = bool(result.success)
    else:
        vr = vd.run(batch_parameters={"dataframe": df})
        results, success = vr.results, bool(vr.success)
    failures = []
    for r in results:
        if r.success:
            continue
        cfg = r.expectation_config
        res = r.result or {}
        failures.append(
            {
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column") or ",".join(cfg.kwargs.get("column_list") or []) or None,
                "unexpected_count": int(res.get("unexpected_count") or 0),
                # Table-level expectations have no unexpected rows: show what was observed instead.
                "examples": [str(x) for x in (res.get("partial_unexpected_list") or [])][:5]
                or [json.dumps(res.get("details", {}).get("mismatched") or res.get("observed_value", ""), default=str)[:300]],
            }
        )
    return success, failures


def write_summary(summary: ValidationSummary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.to_dict(), indent=1))
