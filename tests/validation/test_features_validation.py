"""Great Expectations suite on the feature table (real featurized records): a clean table
passes; inf/NaN labels, NaN/inf features, duplicate rows, an empty table and another feature
schema are each named."""

from __future__ import annotations

import pandas as pd
import pytest

from tensorcost.features import FEATURE_SCHEMA_VERSION, featurize_table
from tensorcost.hardware import HARDWARE_FEATURE_NAMES
from tensorcost.records import to_table
from tensorcost.validation import validate_features

TARGET = "testcpu-1c.avx2-t1"
SLOT = "slot-a"
HW = [1.0] * len(HARDWARE_FEATURE_NAMES)


def _featurize(rows) -> pd.DataFrame:
    return featurize_table(to_table(rows), HW, HARDWARE_FEATURE_NAMES, slot=SLOT)


@pytest.fixture
def frame(make_row):
    """3 measured programs of one task and 1 error record (dropped by featurize)."""
    return _featurize([make_row(0, latency=1e-3), make_row(1, latency=2e-3), make_row(2, latency=4e-3), make_row(3, error_no=4)])


def _validate(frame: pd.DataFrame, schema: str = FEATURE_SCHEMA_VERSION):
    return validate_features(frame, SLOT, TARGET, schema, frame.attrs["feature_names"])


def _failed(summary) -> set[tuple[str, str | None]]:
    return {(f["expectation"], f["column"]) for f in summary.failures}


def test_clean_features_pass(frame):
    summary = _validate(frame)
    assert summary.success, summary.readable()
    assert summary.n_rows == 3 and summary.suite == "features"
    assert summary.statistics["feature_width"] == len(frame.attrs["feature_names"]) == len(frame.loc[0, "flat"])
    assert summary.to_dict()["suite"] == "features" and "features validation for slot-a: PASSED" in summary.readable()


@pytest.mark.parametrize("value", [float("inf"), -float("inf"), 0.0, 1.5], ids=["inf", "-inf", "zero", "above-1"])
def test_bad_label_fails(frame, value):
    frame.loc[1, "label"] = value
    summary = _validate(frame)
    assert _failed(summary) == {("expect_column_values_to_be_between", "label")}
    assert summary.failures[0]["unexpected_count"] == 1 and summary.failures[0]["examples"] == [str(value)]


def test_nan_label_and_nan_latency_fail(frame):
    frame.loc[0, "label"] = float("nan")
    frame.loc[2, "latency_s"] = float("nan")
    summary = _validate(frame)
    assert _failed(summary) == {("expect_column_values_to_not_be_null", "label"), ("expect_column_values_to_not_be_null", "latency_s")}


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("column", ["flat", "tokens"])
def test_non_finite_feature_fails(frame, column, value):
    bad = frame.loc[2, column].copy()
    bad[3] = value
    frame.at[2, column] = bad
    summary = _validate(frame)
    assert _failed(summary) == {("expect_column_values_to_be_null", f"{column}_problem")}
    example = summary.failures[0]["examples"][0]
    assert frame.loc[2, "record_id"] in example and "1 non-finite" in example
    if column == "flat":  # names the feature
        assert f"{frame.attrs['feature_names'][3]}={value}" in example


def test_duplicate_rows_fail(frame):
    dup = pd.concat([frame] + [frame.iloc[[0]]] * 5, ignore_index=True)
    dup.attrs = frame.attrs
    summary = _validate(dup)
    assert _failed(summary) == {("expect_column_values_to_be_unique", "record_id"), ("expect_compound_columns_to_be_unique", "task_id,program_id")}
    assert next(f for f in summary.failures if f["column"] == "record_id")["unexpected_count"] == 6


def test_same_program_twice_under_new_record_ids_fails(frame):
    frame.loc[1, "program_id"] = frame.loc[0, "program_id"]
    summary = _validate(frame)
    assert _failed(summary) == {("expect_compound_columns_to_be_unique", "task_id,program_id")}


def test_empty_table_fails(make_row):
    empty = _featurize([make_row(0, error_no=4), make_row(1, error_no=2)])  # every record failed to run
    assert len(empty) == 0
    summary = _validate(empty)
    assert _failed(summary) == {("expect_table_row_count_to_be_between", None)}
    assert summary.failures[0]["examples"] == ["0"]


def test_other_feature_schema_and_width_fail(frame):
    frame.at[0, "flat"] = frame.loc[0, "flat"][:-1]
    summary = _validate(frame, schema="tc-feat-1")
    assert _failed(summary) == {("expect_column_values_to_be_in_set", "feature_schema"), ("expect_column_values_to_be_in_set", "flat_len")}


def test_missing_column_and_other_target_fail(frame):
    frame = frame.drop(columns=["networks"])
    frame["target"] = "cpu-avx512-t1"
    summary = _validate(frame)
    assert ("expect_table_columns_to_match_set", None) in _failed(summary)
    assert ("expect_column_values_to_be_in_set", "target") in _failed(summary)
    # derived columns live on the suite's copy: the caller's frame is not modified
    assert not {"feature_schema", "flat_len", "flat_problem"} & set(frame.columns) and "flat" in frame
