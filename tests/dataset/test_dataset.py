"""Dataset-level analyses: cross-target agreement, noise, task selection, stats."""

import json

import pytest

from tensorcost import dataset
from tensorcost.collect import Task, select_tasks
from tensorcost.records import to_table


def _rows(target, lat_by_program, task="t0", error_programs=()):
    rows = []
    for i, (pid, lat) in enumerate(lat_by_program.items()):
        err = pid in error_programs
        rows.append({
            "record_id": f"{target}-{task}-{pid}", "source": "tvm-metaschedule", "target": target, "task_id": task,
            "task_name": "conv2d", "networks": json.dumps({"netA": 1}), "task_weight": 1, "op_kind": "conv2d",
            "shapes": "[]", "flops": 1.0, "bytes_moved": 1.0, "program_id": pid, "trace": "[]",
            "latencies": [] if err else [lat], "latency_s": None if err else lat, "error_no": 4 if err else 0,
            "error_msg": "x" if err else None, "measured_at": 1.0, "tvm_version": "0.27",
        })
    return rows


def test_spearman_hand_cases():
    assert dataset.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert dataset.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks a = [0,1,2], b = [0,2,1]: centred [-1,0,1] . [-1,1,0] = 1; norms 2 and 2 -> 0.5
    assert dataset.spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)


def test_cross_target_agreement_aligns_programs():
    a = to_table(_rows("A", {"p1": 1.0, "p2": 2.0, "p3": 3.0, "p4": 4.0}))
    # B reverses the order of p1/p2 only, lacks p4 and failed p3 -> common valid programs p1, p2... too few
    b = to_table(_rows("B", {"p1": 2.0, "p2": 1.0, "p3": 3.0, "p5": 9.0}, error_programs={"p3"}))
    res = dataset.cross_target_agreement({"A": a, "B": b})["A|B"]
    assert res["programs"] == 2 and res["tasks"] == 0  # tasks with < 3 common programs are skipped
    c = to_table(_rows("C", {"p1": 1.5, "p2": 1.0, "p3": 3.5, "p4": 5.0}))
    res = dataset.cross_target_agreement({"A": a, "C": c})["A|C"]
    # orders: A p1<p2<p3<p4, C p2<p1<p3<p4: one of 6 pairs swapped -> PCA 5/6; spearman 1 - 6*2/(4*15) = 0.8
    assert res["pca"] == pytest.approx(5 / 6)
    assert res["spearman_median"] == pytest.approx(0.8)


def test_relative_differences():
    first = to_table(_rows("A", {"p1": 1.0, "p2": 2.0, "p3": 4.0}))
    second = to_table(_rows("A", {"p1": 1.1, "p2": 2.0, "p3": 3.0}))
    res = dataset.relative_differences(first, second)
    # |diffs| = 0.1, 0, 0.25 -> median 0.1, p90 = 0.1 + 0.8*(0.25-0.1) = 0.22
    assert res["n"] == 3 and res["median"] == pytest.approx(0.1) and res["p90"] == pytest.approx(0.22)


def test_stats_counts_networks_and_errors(tmp_path):
    from tensorcost.records import write_records

    rows = _rows("A", {"p1": 1.0, "p2": 2.0}, error_programs={"p2"}) + _rows("A", {"p1": 1.0}, task="t1")
    rows[-1]["networks"] = json.dumps({"netB": 2, "netA": 1})
    rows[-1]["record_id"] = "other"
    write_records(to_table(rows), tmp_path / "r.parquet")
    s = dataset.stats([tmp_path / "r.parquet"])
    assert s == {"targets": {"A": {"tasks": 2, "networks": 2, "valid_records": 2, "error_records": 1}}, "total_valid_records": 2}


def _task(tid, flops, nets, op_kind="conv2d"):
    return Task(task_id=tid, task_name=tid, networks=nets, mod=None, op_kind=op_kind, shapes=[], flops=flops, bytes_moved=0.0)


def test_select_tasks_round_robins_over_networks():
    tasks = [_task("a1", 9e6, {"A": 1}), _task("a2", 8e6, {"A": 1}), _task("a3", 7e6, {"A": 1}),
             _task("b1", 5e6, {"B": 1}), _task("c1", 1e3, {"C": 1}), _task("big", 1e12, {"C": 1})]
    chosen = [t.task_id for t in select_tasks(tasks, 3, min_flops=1e4, max_flops=1e10)]
    # eligible: a1,a2,a3,b1 (c1 too small, big too large); round 1 takes A's and B's largest, round 2 A's next
    assert chosen == ["a1", "b1", "a2"]
    assert len(select_tasks(tasks, 100)) == len(tasks)


def test_select_tasks_keeps_only_the_op_kinds_asked_for():
    tasks = [_task("a1", 9e6, {"A": 1}), _task("a2", 8e6, {"A": 1}, op_kind="matmul"), _task("b1", 5e6, {"B": 1})]
    assert [t.task_id for t in select_tasks(tasks, 10, op_kinds=["matmul"])] == ["a2"]
    assert [t.task_id for t in select_tasks(tasks, 10, op_kinds=["conv2d"])] == ["a1", "b1"]
    assert select_tasks(tasks, 10, op_kinds=["dense"]) == []


def test_sampling_names_an_unknown_op_kind_before_any_work(tmp_path):
    from tensorcost.collect import sample_task_set_from
    from tensorcost.errors import UserError
    from tensorcost.params import load_collection_params

    params = tmp_path / "zoo4.yaml"
    params.write_text("sample:\n  reference_target: sapphirerapids-2c.avx2-t1\n  op_kinds: [matmul, denze]\n")
    with pytest.raises(UserError) as err:
        sample_task_set_from(load_collection_params(params), tmp_path / "out")
    assert "sample.op_kinds: ['denze'] is not" in str(err.value) and "matmul" in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_program_sample_is_not_one_side_of_a_split():
    """The host's sample and the split strategies hash the same (task, program) keys: the sample
    must be salted, or every sampled program lands on the test side of within_task."""
    import numpy as np

    from tensorcost.records import program_id
    from tensorcost.splits import assign_test

    programs = {f"t{i}": [f'[["p", {i}, {j}]]' for j in range(100)] for i in range(6)}
    chosen = dataset.sample_programs(programs, 3, 16, 0)
    assert len(chosen) == 3 and all(len(v) == 16 for v in chosen.values())
    assert dataset.sample_programs(programs, 3, 16, 0) == chosen and dataset.sample_programs(programs, 3, 16, 1) != chosen
    tasks = [t for t, trs in chosen.items() for _ in trs]
    pids = [program_id(tr) for trs in chosen.values() for tr in trs]
    share = assign_test("within_task", tasks, pids, 0.3, 0).mean()
    assert 0.1 < share < 0.5, share
    assert np.all([set(v) <= set(programs[t]) for t, v in chosen.items()])


def test_pack_merge_adds_new_tasks_and_keeps_everything_existing(tmp_path):
    """A second program set joins the first: new tasks and their records are added, a task the
    set already has is left out, and no existing byte of tasks or records changes meaning."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tensorcost.records import read_records, write_records

    root, work = tmp_path / "bundled", tmp_path / "work"
    programs = pa.schema([("task_id", pa.string()), ("program_id", pa.string()), ("trace", pa.string())])

    def task_set(where, ids):
        where.mkdir(parents=True, exist_ok=True)
        (where / "tasks.json").write_text(json.dumps({"meta": {"networks": ["n"]}, "tasks": [{"task_id": t, "task_name": t} for t in ids]}))
        pq.write_table(pa.Table.from_pylist([{"task_id": t, "program_id": p, "trace": "[]"} for t in ids for p in ("p1", "p2", "p3")], schema=programs),
                       where / "programs.parquet")

    task_set(root / "programs/cpu", ["t0"])
    write_records(to_table(_rows("zen4-2c.avx2-t1", {"p1": 1.0, "p2": 2.0, "p3": 3.0}, task="t0")), dataset.bundled_records_path("zen4-2c.avx2-t1", root))
    task_set(work / "data/programs", ["t0", "t9"])  # t0 again: left out
    new = _rows("zen4-2c.avx2-t1", {"p1": 5.0, "p2": 6.0, "p3": 7.0}, task="t9") + _rows("zen4-2c.avx2-t1", {"p1": 9.0}, task="t0")
    write_records(to_table(new), work / "data/raw/zen4-2c.avx2-t1/parts/part-000000.parquet")
    report = dataset.pack(work, ["zen4-2c.avx2-t1"], "cpu", root, merge=True)
    assert report == {"records": {"zen4-2c.avx2-t1": 6}, "tasks_already_in_the_set": ["t0"]}
    tasks = json.loads((root / "programs/cpu/tasks.json").read_text())["tasks"]
    assert [t["task_id"] for t in tasks] == ["t0", "t9"]
    assert pq.read_table(root / "programs/cpu/programs.parquet").num_rows == 6
    merged = read_records(dataset.bundled_records_path("zen4-2c.avx2-t1", root)).to_pylist()
    t0 = {r["program_id"]: r["latency_s"] for r in merged if r["task_id"] == "t0"}
    assert t0 == {"p1": 1.0, "p2": 2.0, "p3": 3.0}  # the existing measurements, not the run's t0


def test_noise_comparisons_use_exactly_the_noise_sample_programs():
    # Some traces are programs of two tasks: matching on program_id alone once compared 267
    # records of other platforms against a noise sample of 229.
    targets = ["sapphirerapids-2c.avx2-t1", "zen5-2c.avx2-t1", "zen4-2c.avx2-t1"]
    report = dataset.noise_and_platforms(targets)
    row = report["sapphirerapids-2c.avx2-t1"]
    assert row["programs"] == row["two_passes"]["programs"] == row["noise"]["n"]
    assert {v["programs"] for v in row["vs"].values()} == {row["programs"]}


def test_agreement_leaves_out_pairs_without_shared_programs():
    tables = {"a": to_table(_rows("a", {"p1": 1.0, "p2": 2.0, "p3": 3.0})),
              "b": to_table(_rows("b", {"p1": 1.5, "p2": 2.5, "p3": 2.0})),
              "gpu": to_table(_rows("gpu", {"q1": 1.0, "q2": 2.0, "q3": 3.0}))}
    result = dataset.cross_target_agreement(tables)
    assert list(result) == ["a|b"]
    assert "| `a` vs `b` |" in dataset.agreement_markdown(result)
