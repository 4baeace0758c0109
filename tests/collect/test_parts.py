"""A collector's persisted parts: what a resume reads back."""

import json

from tensorcost import collect
from tensorcost.records import to_table, write_records


def _row(rid: str) -> dict:
    return {"record_id": rid, "source": "tvm-metaschedule", "target": "zen3-2c.avx2-t1", "task_id": "t0", "task_name": "conv2d",
            "networks": json.dumps({"n": 1}), "task_weight": 1, "op_kind": "conv2d", "shapes": "[]", "flops": 1.0, "bytes_moved": 1.0,
            "program_id": rid, "trace": "[]", "latencies": [1e-3], "latency_s": 1e-3, "error_no": 0, "error_msg": None,
            "measured_at": 1.0, "tvm_version": "0.27"}


def test_an_empty_or_torn_part_is_set_aside_and_its_programs_measured_again(tmp_path, caplog):
    parts = collect.parts_dir(tmp_path)
    write_records(to_table([_row("a"), _row("b")]), parts / "part-000000-t0.parquet")
    (parts / "part-000001-t0.parquet").write_bytes(b"")                    # a machine crash after create
    good = (parts / "part-000000-t0.parquet").read_bytes()
    (parts / "part-000002-t0.parquet").write_bytes(good[: len(good) // 2])  # a torn write
    assert collect.finished_record_ids(tmp_path) == {"a", "b"}
    assert sorted(p.name for p in parts.iterdir()) == ["part-000000-t0.parquet", "part-000001-t0.parquet.unreadable", "part-000002-t0.parquet.unreadable"]
    assert "unreadable part" in caplog.text
    assert collect.finished_record_ids(tmp_path) == {"a", "b"}  # a second resume reads only good parts
