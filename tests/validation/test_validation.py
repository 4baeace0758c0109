"""Great Expectations suite on the records table: a clean frame passes, each defect is named."""

from __future__ import annotations

import json

import pytest

from tensorcost.records import to_table
from tensorcost.validation import ValidationSummary, validate_records, write_summary

TARGET = "testcpu-1c.avx2-t1"


@pytest.fixture
def frame(make_row):
    """2 measured rows and 1 error row (null latency) of one target."""
    rows = [make_row(0, latency=1e-3), make_row(1, latency=2e-3), make_row(2, error_no=4)]
    return to_table(rows).to_pandas()


def test_valid_records_pass(frame):
    summary = validate_records(frame, TARGET)
    assert summary.success, summary.readable()
    assert summary.failures == []
    assert summary.n_rows == 3
    # 2 rows with error_no == 0, 1 error row, one task
    assert summary.statistics == {"valid_records": 2, "error_records": 1, "tasks": 1}
    assert "PASSED" in summary.readable()


def _failed(summary: ValidationSummary) -> set[tuple[str, str | None]]:
    return {(f["expectation"], f["column"]) for f in summary.failures}


@pytest.mark.parametrize(
    "value",
    [-1e-3, float("inf")],
    ids=["negative", "inf"],
)
def test_bad_latency_on_measured_row_fails(frame, value):
    frame.loc[0, "latency_s"] = value
    summary = validate_records(frame, TARGET)
    assert not summary.success
    assert ("expect_column_values_to_be_between", "latency_s") in _failed(summary)
    f = next(f for f in summary.failures if f["column"] == "latency_s")
    assert f["unexpected_count"] == 1
    text = summary.readable()
    assert "FAILED" in text and "latency_s" in text and "expect_column_values_to_be_between" in text


def test_wrong_target_fails(frame):
    frame.loc[1, "target"] = "cpu-avx512-t1"
    summary = validate_records(frame, TARGET)
    assert not summary.success
    assert ("expect_column_values_to_be_in_set", "target") in _failed(summary)
    f = next(f for f in summary.failures if f["column"] == "target")
    assert f["unexpected_count"] == 1
    assert "cpu-avx512-t1" in f["examples"]
    assert "FAILED" in summary.readable()


def test_null_latency_on_measured_row_fails(frame):
    frame.loc[0, "latency_s"] = None
    summary = validate_records(frame, TARGET)
    assert not summary.success
    assert ("expect_column_values_to_not_be_null", "latency_s") in _failed(summary)
    assert "FAILED" in summary.readable()


def test_write_summary(tmp_path):
    s = ValidationSummary(success=False, target=TARGET, n_rows=3, failures=[
        {"expectation": "expect_x", "column": "c", "unexpected_count": 2, "examples": ["1"]}
    ])
    out = tmp_path / "reports" / "summary.json"
    write_summary(s, out)
    data = json.loads(out.read_text())
    assert data["success"] is False and data["failures"][0]["expectation"] == "expect_x"
    assert "expect_x on c: 2 rows" in s.readable()


def test_latency_on_error_row_fails(frame):
    frame.loc[2, "latency_s"] = 5e-3  # error_no == 4 but a latency is present
    summary = validate_records(frame, TARGET)
    assert not summary.success
    assert ("expect_column_values_to_be_null", "latency_s") in _failed(summary)


def test_duplicate_record_id_fails_and_input_is_not_modified(frame):
    frame.loc[1, "record_id"] = frame.loc[0, "record_id"]
    frame.loc[0, "latency_s"] = float("inf")
    summary = validate_records(frame, TARGET)
    assert not summary.success
    assert ("expect_column_values_to_be_unique", "record_id") in _failed(summary)
    # the inf -> -1 mapping happens on a copy: the caller's frame is untouched
    assert frame.loc[0, "latency_s"] == float("inf")
    assert "latencies" in frame.columns


def test_empty_table_fails():
    summary = validate_records(to_table([]).to_pandas(), TARGET)
    assert not summary.success
    assert ("expect_table_row_count_to_be_between", None) in _failed(summary)
    assert "expect_table_row_count_to_be_between on (table)" in summary.failed_expectations()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1e-3, 0.0], ids=["nan", "inf", "negative", "zero"])
def test_bad_value_inside_latencies_fails(frame, value):
    frame.at[1, "latencies"] = [2e-3, value]  # latency_s (the mean) left as it was: only the list is bad
    summary = validate_records(frame, TARGET)
    assert not summary.success
    assert _failed(summary) == {("expect_column_values_to_be_null", "latencies_problem")}
    f = summary.failures[0]
    assert f["unexpected_count"] == 1 and frame.loc[1, "record_id"] in f["examples"][0]


def test_empty_latencies_of_a_measured_record_fail(frame):
    frame.at[0, "latencies"] = []
    summary = validate_records(frame, TARGET)
    assert _failed(summary) == {("expect_column_values_to_be_null", "latencies_problem")}


@pytest.mark.parametrize("trace,why", [("[[\"SP\", 2", "not JSON"), ('{"steps": []}', "JSON dict, not a list")], ids=["not-json", "not-a-list"])
def test_bad_trace_fails_with_a_report(frame, trace, why):
    frame.loc[2, "trace"] = trace  # an error record too: featurize never sees it, but it is still bad data
    frame.loc[0, "trace"] = trace
    summary = validate_records(frame, TARGET)
    assert not summary.success
    assert _failed(summary) == {("expect_column_values_to_be_null", "trace_problem")}
    f = summary.failures[0]
    assert f["unexpected_count"] == 2 and why in f["examples"][0] and frame.loc[0, "record_id"] in f["examples"][0]


@pytest.mark.parametrize("latencies,latency_s,why", [
    ([1e-300, 1e-300], 1e-300, "each a finite time in"),
    ([9e15, 9e15], 9e15, "each a finite time in"),
    ([1e-3, 3e-3], 5e-3, "is not the mean of its repeats"),
])
def test_latencies_outside_the_protocol_or_against_their_repeats_fail(make_row, latencies, latency_s, why):
    """Issue 28: 1e-300 s, 9e15 s and a latency_s that contradicts its own repeats passed both suites."""
    from tensorcost import records as rec
    from tensorcost.hardware import describe_target
    from tensorcost.validation import validate_records

    hw = describe_target("zen5-2c.avx2-t1")
    rows = [make_row(0, target=hw.id), make_row(1, target=hw.id, latencies=latencies, latency_s=latency_s)]
    summary = validate_records(rec.to_table(rows).to_pandas(), hw.id)
    assert not summary.success
    assert any(f.get("column") == "latencies_problem" and any(why in str(ex) for ex in f["examples"]) for f in summary.failures), summary.failures
