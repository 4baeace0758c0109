"""The validation gates of the stages, in a scratch working directory: bad records are reported
(not a featurize crash), features that fail their suite are not written, and train neither trains
nor registers on features whose suite failed or that are not the file it checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tensorcost import records as rec
from tensorcost import registry, stages
from tensorcost.errors import UserError
from tensorcost.hardware import describe_target
from tensorcost.validation import ValidationSummary, data_facts, write_summary

SLOT = "zen5-2c.avx2-t1"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    # The repository's params (SLOT is one of its dataset slots: stages refuse any other name).
    shutil.copy(Path(__file__).resolve().parents[2] / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)  # stages read and write relative to the repo root
    return tmp_path


def _write_records(make_row, rows_kw: list[dict]) -> None:
    hw = describe_target(SLOT)
    rows = [make_row(i, target=hw.id, **kw) for i, kw in enumerate(rows_kw)]
    rec.write_records(rec.to_table(rows), stages.RECORDS_DIR / f"{SLOT}.parquet")
    (stages.RECORDS_DIR / f"{SLOT}.target.json").write_text(json.dumps(hw.to_dict()))


def _passed_records_report() -> None:
    from tensorcost.params_io import md5_file

    write_summary(ValidationSummary(success=True, target=SLOT, n_rows=3, statistics={"records_md5": md5_file(stages.RECORDS_DIR / f"{SLOT}.parquet")}),
                  stages.REPORTS_DIR / "validation" / f"{SLOT}.json")


def test_non_json_trace_is_reported_by_validate_and_featurize_refuses(workdir, make_row):
    _write_records(make_row, [{"latency": 1e-3}, {"latency": 2e-3, "trace": "not json"}])
    with pytest.raises(UserError, match="records validation failed"):
        stages.validate(SLOT)
    report = json.loads((workdir / "reports/validation" / f"{SLOT}.json").read_text())
    assert report["success"] is False and report["failures"][0]["column"] == "trace_problem"
    assert (workdir / "reports/validation" / SLOT / "data_docs" / "index.html").exists()
    with pytest.raises(UserError, match=f"records of {SLOT} failed validation"):
        stages.featurize(SLOT)  # a clear refusal, not a TraceParseError
    assert not (workdir / "data/features").exists()


def test_failed_features_are_not_written(workdir, make_row):
    _write_records(make_row, [{"error_no": 4}, {"error_no": 4}])  # no valid record: empty features
    _passed_records_report()
    stale = workdir / "data/features" / SLOT / "meta.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"features of": "an earlier run"}')
    with pytest.raises(UserError) as err:
        stages.featurize(SLOT)
    msg = str(err.value)
    assert "\n" not in msg and SLOT in msg and f"data/features/{SLOT} not written" in msg and "expect_table_row_count_to_be_between" in msg
    report = json.loads((workdir / "reports/validation" / f"{SLOT}.features.json").read_text())
    assert report["suite"] == "features" and report["success"] is False
    assert not stale.exists() and not list((workdir / "data/features").iterdir())  # no store, no partial one


@pytest.fixture
def featurized(workdir, make_row):
    """A slot featurized by the real stage: its features passed their suite."""
    _write_records(make_row, [{"latency": 1e-3}, {"latency": 2e-3}, {"latency": 3e-3}, {"error_no": 4}])
    _passed_records_report()
    stages.featurize(SLOT)
    return workdir


def test_passed_features_give_the_registered_verdict(featurized):
    report = json.loads((featurized / "reports/validation" / f"{SLOT}.features.json").read_text())
    assert report["success"] is True and report["n_rows"] == 3
    facts = data_facts(stages.slot_data(SLOT))
    assert facts["validation_passed"] is True and facts["hash"] == report["statistics"]["features_md5"]


@pytest.fixture
def registrations(monkeypatch):
    """Every registry write train would make, recorded instead of done."""
    calls: list[tuple] = []
    record = lambda *a, **k: calls.append(("register", a, k)) or "1"  # noqa: E731
    monkeypatch.setattr(registry, "log_and_register", record)
    monkeypatch.setattr(registry.versions, "log_and_register", record)  # what register_trained calls
    monkeypatch.setattr(registry, "set_alias", lambda *a, **k: calls.append(("alias", a, k)))
    return calls


def test_failed_features_suite_stops_train_before_registration(featurized, registrations):
    report = featurized / "reports/validation" / f"{SLOT}.features.json"
    failed = json.loads(report.read_text())
    failed.update(success=False, failures=[{"expectation": "expect_column_values_to_be_between", "column": "label", "unexpected_count": 1, "examples": ["inf"]}])
    report.write_text(json.dumps(failed))
    with pytest.raises(UserError) as err:
        stages.train(SLOT)
    msg = str(err.value)
    assert "\n" not in msg and f"features validation failed for {SLOT}" in msg and f"data/features/{SLOT}" in msg
    assert "expect_column_values_to_be_between on label (1 rows)" in msg
    assert registrations == [] and not (featurized / "models").exists()


def test_features_changed_after_validation_stop_train(featurized, registrations):
    import pyarrow as pa
    import pyarrow.parquet as pq

    fragment = featurized / "data/features" / SLOT / "part-00000.parquet"
    data = pq.read_table(fragment)
    labels = data.column("label").to_numpy().copy()
    labels[0] = float("inf")  # what the issue saw trained and registered as `validation=passed`
    pq.write_table(data.set_column(data.column_names.index("label"), "label", pa.array(labels)), fragment)
    with pytest.raises(UserError, match="is not the store validated"):
        stages.train(SLOT)
    assert registrations == [] and not (featurized / "models").exists()


def test_train_without_a_features_verdict_refuses(featurized, registrations):
    (featurized / "reports/validation" / f"{SLOT}.features.json").unlink()
    with pytest.raises(UserError, match="no features validation"):
        stages.train(SLOT)
    assert registrations == []


@pytest.mark.parametrize("damage", ["failed", "stale", "missing", "garbage"])
def test_train_refuses_records_whose_verdict_failed_is_stale_or_missing(featurized, registrations, damage, make_row):
    """The records suite's verdict gates train as the features suite's does: failed (a latency of
    0, -1, inf...), of another records file, absent or unreadable: one line, nothing registered."""
    report = featurized / "reports/validation" / f"{SLOT}.json"
    if damage == "failed":
        report.write_text(json.dumps(json.loads(report.read_text()) | {"success": False}))
    elif damage == "stale":
        _write_records(make_row, [{"latency": 1e-3}, {"latency": -1.0}, {"latency": 3e-3}])  # records replaced after validation
    elif damage == "missing":
        report.unlink()
    else:
        report.write_text("[1, 2")
    with pytest.raises(UserError) as err:
        stages.train(SLOT)
    assert "\n" not in str(err.value) and (SLOT in str(err.value) or "validation" in str(err.value))
    assert registrations == [] and not (featurized / "models").exists()


def test_pooled_train_without_the_other_targets_store_says_what_to_run(featurized, registrations):
    """The repository's params pool both train targets; only SLOT is featurized here."""
    from tensorcost.errors import MissingDataError

    with pytest.raises(MissingDataError) as err:
        stages.train(SLOT)
    msg = str(err.value)
    assert "dvc repro featurize@sapphirerapids-2c.avx2-t1" in msg and "train.pool_platforms" in msg and "\n" not in msg
    assert registrations == [] and not (featurized / "models").exists()


def test_validate_names_the_records_file_it_judged(workdir, make_row):
    from tensorcost.params_io import md5_file

    _write_records(make_row, [{"latency": 1e-3}, {"latency": 2e-3}])
    stages.validate(SLOT)
    report = json.loads((workdir / "reports/validation" / f"{SLOT}.json").read_text())
    assert report["success"] and report["statistics"]["records_md5"] == md5_file(stages.RECORDS_DIR / f"{SLOT}.parquet")


def test_train_pool_platforms_trains_on_every_train_targets_training_side(tmp_path, monkeypatch):
    """`train.pool_platforms`: a target's models train on its split's training side joined by the
    same split's training side of the other train target (real records of two bundled platforms,
    real validate / featurize stages, a real MLflow registry); its test side stays its own, and
    the registered version names the slots it was trained on."""
    import numpy as np
    import pyarrow.parquet as pq
    import yaml
    from mlflow import MlflowClient

    from tensorcost import dataset
    from tensorcost.evaluation import train_test
    from tensorcost.features import load_feature_table

    root = Path(__file__).resolve().parents[2]
    other = "sapphirerapids-2c.avx2-t1"
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update({"targets": [SLOT, other], "pool_platforms": True, "models": ["lightgbm_reg"]})
    params["split"]["strategy"] = "within_task"
    params["models"]["lightgbm_rank"]["num_boost_round"] = 20
    params["models"]["lightgbm_reg"]["num_boost_round"] = 20
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    sides = {}
    for slot, folder in ((SLOT, "zen5-2c"), (other, "sapphirerapids-2c")):
        table = pq.read_table(root / "data/bundled/platforms" / folder / "avx2-t1.parquet")
        tasks = table.column("task_id").to_numpy(zero_copy_only=False)
        rec.write_records(dataset.relabel(table.filter(np.isin(tasks, sorted(set(tasks))[:6])), slot), stages.RECORDS_DIR / f"{slot}.parquet")
        (stages.RECORDS_DIR / f"{slot}.target.json").write_text(json.dumps(describe_target(slot).to_dict()))
        stages.validate(slot)
        stages.featurize(slot)
        sides[slot] = train_test(load_feature_table(stages.FEATURES_DIR, slot)[0], "within_task", params["split"])
    stages.train(SLOT)
    row = json.loads((tmp_path / "reports/train" / f"{SLOT}.json").read_text())["models"]["lightgbm_reg"]
    assert row["train_records"] == len(sides[SLOT][0]) + len(sides[other][0])
    assert row["test_records"] == len(sides[SLOT][1])
    tags = MlflowClient().get_model_version(registry.model_name(SLOT), row["version"]).tags
    assert tags["trained_on_slots"] == f"{SLOT},{other}"
    # a program on the target's test side is on the other's too: none was trained on
    test_programs = set(zip(sides[SLOT][1].frame["task_id"], sides[SLOT][1].frame["program_id"]))
    assert not test_programs & set(zip(sides[other][0].frame["task_id"], sides[other][0].frame["program_id"]))
