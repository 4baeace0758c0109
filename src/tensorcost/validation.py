"""Great Expectations suites that guard the records table between stages. GX lives only here."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .records import COLUMNS

SUITE_NAME = "records"


@dataclass
class ValidationSummary:
    success: bool
    target: str
    n_rows: int
    failures: list[dict] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"success": self.success, "target": self.target, "n_rows": self.n_rows, "failures": self.failures, "statistics": self.statistics}

    def readable(self) -> str:
        head = f"records validation for {self.target}: {'PASSED' if self.success else 'FAILED'} ({self.n_rows} rows)"
        lines = [head]
        for f in self.failures:
            lines.append(f"  - {f['expectation']} on {f.get('column') or '(table)'}: {f['unexpected_count']} rows; examples: {f['examples']}")
        return "\n".join(lines)


def _expectations(target: str):
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    measured, failed = Column("error_no") == 0, Column("error_no") != 0

    # `latencies` (a list column) is dropped before validation; every other column must be there.
    exps = [gxe.ExpectTableColumnsToMatchSet(column_set=[c for c in COLUMNS if c != "latencies"], exact_match=True)]
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
    ]
    return exps


def validate_records(df: pd.DataFrame, target: str, docs_dir: Path | None = None) -> ValidationSummary:
    """Run the records suite on a frame; optionally build HTML Data Docs into `docs_dir`."""
    import great_expectations as gx

    # GX's between-check does not see inf as out of range on every backend: turn it into a
    # clear failure by mapping non-finite latencies of measured rows to -1.
    df = df.copy()
    df["latency_s"] = df["latency_s"].map(lambda v: v if v is None or (isinstance(v, float) and math.isnan(v)) or math.isfinite(v) else -1.0)
    df = df.drop(columns=["latencies"], errors="ignore")  # list column: not needed by the suite

    if docs_dir is not None:
        import tempfile

        docs_dir = Path(docs_dir).resolve()
        # The GX project (config, stores) is scratch; only the HTML Data Docs are an output.
        project = tempfile.mkdtemp(prefix="tensorcost-gx-")
        ctx = gx.get_context(mode="file", project_root_dir=project)
    else:
        ctx = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001  (cosmetic only)
        pass
    ds_name = f"records_{target}"
    try:
        ds = ctx.data_sources.get(ds_name)
    except (KeyError, ValueError):
        ds = ctx.data_sources.add_pandas(ds_name)
    try:
        asset = ds.get_asset("records")
    except (LookupError, ValueError):
        asset = ds.add_dataframe_asset("records")
    try:
        batch_def = asset.get_batch_definition("whole")
    except (KeyError, ValueError):
        batch_def = asset.add_batch_definition_whole_dataframe("whole")
    suite = gx.ExpectationSuite(name=f"{SUITE_NAME}_{target}")
    for e in _expectations(target):
        suite.add_expectation(e)
    try:
        ctx.suites.delete(suite.name)
    except Exception:  # noqa: BLE001  (absent on first run)
        pass
    suite = ctx.suites.add(suite)
    vd_name = f"validate_{target}"
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
        cp_name = f"checkpoint_{target}"
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
                "column": cfg.kwargs.get("column"),
                "unexpected_count": int(res.get("unexpected_count") or 0),
                "examples": [str(x) for x in (res.get("partial_unexpected_list") or [])][:5] or [json.dumps(res.get("details", {}).get("mismatched", ""), default=str)[:300]],
            }
        )
    stats = {
        "valid_records": int((df["error_no"] == 0).sum()),
        "error_records": int((df["error_no"] != 0).sum()),
        "tasks": int(df["task_id"].nunique()),
    }
    return ValidationSummary(success=success, target=target, n_rows=len(df), failures=failures, statistics=stats)


def write_summary(summary: ValidationSummary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary.to_dict(), indent=1))
