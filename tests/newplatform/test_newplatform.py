"""Growing the dataset by one platform: the catalog and params.yaml edits keep every comment and
add each entry once (the measurement itself: tests/collect)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tensorcost import hardware
from tensorcost.newplatform import add_to_catalog, add_to_profile, catalog_entry_yaml

REPO = Path(__file__).resolve().parents[2]


def test_params_blocks_grow_by_one_entry_and_keep_comments(tmp_path):
    text = (REPO / "params.yaml").read_text()
    f = tmp_path / "params.yaml"
    f.write_text(text)
    add_to_profile(f, ["zen3-2c.avx2-t1"], train=True)
    out = f.read_text()
    add_to_profile(f, ["zen3-2c.avx2-t1"], train=True)
    assert f.read_text() == out  # once only
    import difflib

    changed = [l for l in difflib.ndiff(text.splitlines(), out.splitlines()) if l[:1] in "+-"]
    assert len(changed) == 2 and all(l.startswith("+") for l in changed), changed  # two lines added, nothing else moved
    p = yaml.safe_load(out)
    assert p["targets"]["zen3-2c.avx2-t1"] == "data/bundled/platforms/zen3-2c/avx2-t1.parquet"
    assert p["train"]["targets"][-1] == "zen3-2c.avx2-t1" and len(p["train"]["targets"]) == len(yaml.safe_load(text)["train"]["targets"]) + 1
    assert [l for l in text.splitlines() if l.lstrip().startswith("#")] == [l for l in out.splitlines() if l.lstrip().startswith("#")]


def test_a_new_platform_is_appended_to_the_catalog_as_data(tmp_path, monkeypatch):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text((REPO / "src/tensorcost/data/catalog.yaml").read_text())
    # A platform no catalog holds (the host's own may already be in it).
    new = hardware.Platform(id="zen2-6c", kind="cpu", vendor="AuthenticAMD", model_name='AMD EPYC 7402P "Rome"', microarch="zen2", cores=6, clock_ghz=2.8,
                            l1d_kb=32, l2_kb=512, l3_kb=16384, isa=("sse4_2", "avx2", "fma"), fingerprint={"cpu_family": 23, "cpu_model": 49}, source="detected")
    assert add_to_catalog(new, catalog) is True
    doc = yaml.safe_load(catalog.read_text())
    again = hardware.Platform.from_dict({"id": "zen2-6c", **doc["platforms"]["zen2-6c"]})
    assert again == new  # the text block reads back as the same platform
    assert "# The platform catalog" in catalog.read_text()
    assert add_to_catalog(hardware.get_platform("zen5-2c"), catalog) is False  # already there: untouched
    assert catalog_entry_yaml(new).startswith("  zen2-6c:\n")


def test_a_new_platform_joins_the_study_profile_not_every_make_run(tmp_path):
    from tensorcost.newplatform import PROFILES, add_to_profile

    assert PROFILES["study"].name == "params-study.yaml"  # the default of `tensorcost platform add --profile`
    study = tmp_path / "params-study.yaml"
    study.write_text((REPO / "params-study.yaml").read_text())
    add_to_profile(study, ["zen2-6c.avx2-t1"], train=True)
    p = yaml.safe_load(study.read_text())
    assert p["targets"]["zen2-6c.avx2-t1"] == "data/bundled/platforms/zen2-6c/avx2-t1.parquet"
    assert p["train"]["targets"][-1] == "zen2-6c.avx2-t1"
    add_to_profile(study, ["zen2-6c.avx2-t1"], train=True)
    assert yaml.safe_load(study.read_text()) == p  # idempotent: a resumed `platform add` adds nothing twice


def test_unknown_profile_is_one_line_user_error():
    import pytest

    from tensorcost.errors import UserError
    from tensorcost.newplatform import add_host_platform

    with pytest.raises(UserError, match="unknown profile 'nightly'; valid: study, default"):
        add_host_platform(["avx2-t1"], 0.0, REPO / "docs/dataset-params.yaml", profile="nightly")


def test_new_records_pass_the_records_suite_before_joining(tmp_path):
    import pyarrow as pa
    import pytest

    from tensorcost import records as rec
    from tensorcost.errors import UserError
    from tensorcost.newplatform import check_records

    table = rec.read_records(REPO / "data/bundled/platforms/zen3-2c/avx2-t1.parquet").slice(0, 200)
    check_records(table, "zen3-2c.avx2-t1", tmp_path / "good.parquet")
    # records measured before platforms existed carry a host label; the records stage relabels them, so does the check
    legacy = table.set_column(table.schema.get_field_index("target"), "target", pa.array(["cpu-avx2-t1"] * table.num_rows, pa.string()))
    check_records(legacy, "zen3-2c.avx2-t1", tmp_path / "legacy.parquet")
    # A measurement that claims a negative latency must not join the dataset.
    lat = table.column("latencies").to_pylist()
    lat[3] = [-1.0 for _ in lat[3]]
    bad = table.set_column(table.schema.get_field_index("latencies"), "latencies", pa.array(lat, type=table.schema.field("latencies").type))
    with pytest.raises(UserError, match="bad.parquet: the records suite failed, file left as it was"):
        check_records(bad, "zen3-2c.avx2-t1", tmp_path / "bad.parquet")


def test_a_platform_in_the_dataset_measures_only_the_tasks_the_program_set_gained():
    from types import SimpleNamespace

    import pyarrow as pa

    from tensorcost.newplatform import missing_tasks

    tasks = [SimpleNamespace(task_id=t) for t in ("a", "b", "c", "d")]
    held = pa.table({"task_id": ["a", "a", "c"]})
    assert [t.task_id for t in missing_tasks(tasks, held)] == ["b", "d"]
    assert [t.task_id for t in missing_tasks(tasks, None)] == ["a", "b", "c", "d"]
    assert missing_tasks(tasks, pa.table({"task_id": ["a", "b", "c", "d"]})) == []


def test_a_task_whose_programs_grew_is_measured_again_whole():
    """After `sample.extend` grew a task on one platform, another platform's `platform add`
    measures that task whole (its old programs too: one window), not only the new programs."""
    from types import SimpleNamespace

    import pyarrow as pa

    from tensorcost.newplatform import missing_tasks
    from tensorcost.records import program_id

    tasks = [SimpleNamespace(task_id=t) for t in ("a", "b", "c")]
    programs = {"a": ['["x"]', '["y"]'], "b": ['["x"]', '["y"]', '["z"]'], "c": ['["x"]']}
    held = pa.table({"task_id": ["a", "a", "b", "b"], "program_id": [program_id(tr) for tr in ('["x"]', '["y"]', '["x"]', '["y"]')]})
    assert [t.task_id for t in missing_tasks(tasks, held, programs)] == ["b", "c"]  # b grew, c lacks everything
    assert [t.task_id for t in missing_tasks(tasks, held)] == ["c"]  # task ids only: the old reading


def test_programs_per_task_measures_a_grown_task_as_it_was_and_nothing_more():
    """`platform add --programs-per-task 2`: a task grown from 2 to 3 programs, held with its 2
    first, is whole at that cap (not measured again); without the cap it is measured again whole."""
    from types import SimpleNamespace

    import pyarrow as pa

    from tensorcost.newplatform import first_programs, missing_tasks
    from tensorcost.records import program_id

    tasks = [SimpleNamespace(task_id=t) for t in ("a", "b")]
    programs = {"a": ['["x"]', '["y"]', '["z"]'], "b": ['["x"]']}
    held = pa.table({"task_id": ["a", "a", "b"], "program_id": [program_id(tr) for tr in ('["x"]', '["y"]', '["x"]')]})
    assert first_programs(programs, 2) == {"a": ['["x"]', '["y"]'], "b": ['["x"]']}
    assert first_programs(programs, 0) is programs
    assert missing_tasks(tasks, held, first_programs(programs, 2)) == []
    assert [t.task_id for t in missing_tasks(tasks, held, programs)] == ["a"]


def test_negative_programs_per_task_is_one_line_user_error():
    import pytest

    from tensorcost.errors import UserError
    from tensorcost.newplatform import add_host_platform

    with pytest.raises(UserError, match="--programs-per-task -1: must be 0"):
        add_host_platform(["avx2-t1"], 0.0, REPO / "docs/dataset-params.yaml", programs_per_task=-1)
