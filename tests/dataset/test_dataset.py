"""Dataset-level analyses: cross-target agreement, noise, task selection, stats."""

import json
from pathlib import Path

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


def _set_with_programs(where, programs_by_task):
    import pyarrow as pa
    import pyarrow.parquet as pq

    where.mkdir(parents=True, exist_ok=True)
    (where / "tasks.json").write_text(json.dumps({"meta": {"networks": ["n"]}, "tasks": [{"task_id": t, "task_name": t} for t in programs_by_task]}))
    schema = pa.schema([("task_id", pa.string()), ("program_id", pa.string()), ("trace", pa.string())])
    pq.write_table(pa.Table.from_pylist([{"task_id": t, "program_id": p, "trace": "[]"} for t, ps in programs_by_task.items() for p in ps], schema=schema),
                   where / "programs.parquet")


@pytest.mark.parametrize("held_order", ["as packed", "unsorted"])
def test_pack_merge_extends_a_task_measured_whole_and_keeps_its_earlier_records(tmp_path, held_order):
    """A run that measured every program the set has of a task, and more, extends it: the new
    programs join the set, the target's records of the task are the run's (one window), the
    earlier ones move to superseded-<variant>.parquet; other tasks and other targets stay. A
    records file another writer left unsorted is merged the same, and written sorted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tensorcost.records import read_records, write_records

    root, work, target = tmp_path / "bundled", tmp_path / "work", "zen4-2c.avx2-t1"
    _set_with_programs(root / "programs/cpu", {"t0": ["p1", "p2", "p3"], "t1": ["p1", "p2"]})
    held_records = to_table(_rows(target, {"p1": 1.0, "p2": 2.0, "p3": 3.0}, task="t0") + _rows(target, {"p1": 4.0, "p2": 5.0}, task="t1"))
    if held_order == "unsorted":
        held_records = held_records.take(pa.array([4, 0, 3, 2, 1]))
    write_records(held_records, dataset.bundled_records_path(target, root))
    other = dataset.bundled_records_path("zen5-2c.avx2-t1", root)
    write_records(to_table(_rows("zen5-2c.avx2-t1", {"p1": 1.5, "p2": 2.5, "p3": 3.5}, task="t0")), other)
    before_other = other.read_bytes()
    _set_with_programs(work / "data/programs", {"t0": ["p1", "p2", "p3", "p4", "p5"]})
    write_records(to_table(_rows(target, {"p1": 1.1, "p2": 2.1, "p3": 3.1, "p4": 0.5, "p5": 9.0}, task="t0", error_programs={"p5"})),
                  work / "data/raw" / target / "parts/part-000000.parquet")

    report = dataset.pack(work, [target], "cpu", root, merge=True)

    assert report["tasks_extended"] == ["t0"] and report["records_superseded"] == {target: 3} and report["tasks_already_in_the_set"] == []
    assert report["records"] == {target: 7}
    prog = pq.read_table(root / "programs/cpu/programs.parquet").to_pylist()
    assert sorted(r["program_id"] for r in prog if r["task_id"] == "t0") == ["p1", "p2", "p3", "p4", "p5"]
    assert len(prog) == 7  # t1's two kept, t0's three plus two, nothing twice
    held = read_records(dataset.bundled_records_path(target, root)).to_pylist()
    assert {r["program_id"]: r["latency_s"] for r in held if r["task_id"] == "t0"} == {"p1": 1.1, "p2": 2.1, "p3": 3.1, "p4": 0.5, "p5": None}
    assert {r["program_id"]: r["latency_s"] for r in held if r["task_id"] == "t1"} == {"p1": 4.0, "p2": 5.0}
    earlier = read_records(dataset.superseded_records_path(target, root)).to_pylist()
    assert {r["program_id"]: r["latency_s"] for r in earlier} == {"p1": 1.0, "p2": 2.0, "p3": 3.0}
    assert other.read_bytes() == before_other  # a platform the run did not measure keeps its records
    assert dataset.bundled_targets(root) == [target, "zen5-2c.avx2-t1"]  # the superseded file is not a target
    meta = json.loads((root / "programs/cpu/tasks.json").read_text())["meta"]["merged"][-1]
    assert meta["extended_tasks"] == 1 and meta["tasks"] == 0
    keys = [(r["task_id"], r["program_id"]) for r in held]
    assert keys == sorted(keys)

    # the same pack again (a user repeating the command): the tasks are in the set, nothing changes
    files = [root / "programs/cpu/programs.parquet", dataset.bundled_records_path(target, root), dataset.superseded_records_path(target, root)]
    before = [pq.read_table(f) for f in files]
    again = dataset.pack(work, [target], "cpu", root, merge=True)
    assert again["tasks_already_in_the_set"] == ["t0"] and again["records"] == {target: 7}
    assert all(pq.read_table(f).equals(b) for f, b in zip(files, before))

    # a records file cut short is named, and nothing of the dataset is written
    path = dataset.bundled_records_path(target, root)
    path.write_bytes(path.read_bytes()[:100])
    from tensorcost.records import RecordsSchemaError

    with pytest.raises(RecordsSchemaError, match="avx2-t1.parquet: not a readable Parquet records file"):
        dataset.pack(work, [target], "cpu", root, merge=True)
    assert pq.read_table(files[0]).equals(before[0]) and pq.read_table(files[2]).equals(before[2])


def test_pack_merge_leaves_out_a_task_not_measured_whole_until_collect_finishes_it(tmp_path):
    """A collect stopped early: the task it measured whole is extended, the one it did not is
    left out (named, nothing of it written); the same pack after collect finished adds it."""
    import pyarrow.parquet as pq

    from tensorcost.records import read_records, write_records

    root, work, target = tmp_path / "bundled", tmp_path / "work", "zen4-2c.avx2-t1"
    _set_with_programs(root / "programs/cpu", {"t0": ["p1", "p2"], "t1": ["p1", "p2"]})
    path = dataset.bundled_records_path(target, root)
    write_records(to_table(_rows(target, {"p1": 1.0, "p2": 2.0}, task="t0") + _rows(target, {"p1": 3.0, "p2": 4.0}, task="t1")), path)
    _set_with_programs(work / "data/programs", {"t0": ["p1", "p2", "p3"], "t1": ["p1", "p2", "p3"]})
    parts = work / "data/raw" / target / "parts"
    write_records(to_table(_rows(target, {"p1": 1.1, "p2": 2.1, "p3": 0.5}, task="t0") + _rows(target, {"p1": 3.1}, task="t1")), parts / "part-000000.parquet")

    first = dataset.pack(work, [target], "cpu", root, merge=True)
    assert first["tasks_extended"] == ["t0"] and first["tasks_not_measured_whole"] == ["t1"] and first["tasks_already_in_the_set"] == []
    held = read_records(path).to_pylist()
    assert {r["program_id"]: r["latency_s"] for r in held if r["task_id"] == "t1"} == {"p1": 3.0, "p2": 4.0}  # untouched
    assert sorted(r["program_id"] for r in pq.read_table(root / "programs/cpu/programs.parquet").to_pylist() if r["task_id"] == "t1") == ["p1", "p2"]

    write_records(to_table(_rows(target, {"p2": 4.1, "p3": 0.7}, task="t1")), parts / "part-000001.parquet")  # collect resumed
    second = dataset.pack(work, [target], "cpu", root, merge=True)
    assert second["tasks_extended"] == ["t1"] and second["tasks_already_in_the_set"] == ["t0"] and second["tasks_not_measured_whole"] == []
    held = read_records(path).to_pylist()
    assert {r["program_id"]: r["latency_s"] for r in held if r["task_id"] == "t1"} == {"p1": 3.1, "p2": 4.1, "p3": 0.7}
    assert {r["program_id"]: r["latency_s"] for r in held if r["task_id"] == "t0"} == {"p1": 1.1, "p2": 2.1, "p3": 0.5}  # packed once
    earlier = read_records(dataset.superseded_records_path(target, root)).to_pylist()
    assert sorted((r["task_id"], r["latency_s"]) for r in earlier) == [("t0", 1.0), ("t0", 2.0), ("t1", 3.0), ("t1", 4.0)]
    assert pq.read_table(root / "programs/cpu/programs.parquet").num_rows == 6


def test_extend_programs_keeps_the_held_ones_first_and_adds_only_new_ones():
    from tensorcost.collect.programs import extend_programs

    held = ['["a"]', '["b"]']
    fresh = ['["b"]', '["c"]', '["c"]', '["d"]', '["e"]']
    assert extend_programs(held, fresh, 4) == ['["a"]', '["b"]', '["c"]', '["d"]']
    assert extend_programs(held, fresh, 2) == held
    assert extend_programs(held, ['["a"]'], 10) == held  # a design space drawn whole gains nothing


def test_extend_needs_the_set_it_extends(tmp_path):
    from tensorcost.errors import UserError
    from tensorcost.params import load_collection_params

    params = tmp_path / "dense.yaml"
    params.write_text("sample:\n  reference_target: sapphirerapids-2c.avx2-t1\n  extend: true\n")
    with pytest.raises(UserError) as err:
        load_collection_params(params)
    assert "sample.tasks_from" in str(err.value)


def test_sampling_extends_a_real_task_with_fresh_programs_of_its_design_space(tmp_path):
    """`sample.extend` on a task of the bundled CPU set: its programs first, then fresh distinct
    ones drawn by MetaSchedule up to programs_per_task; a task already holding that many is not chosen."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tensorcost.collect import load_task_set, sample_task_set_from
    from tensorcost.params import load_collection_params
    from tensorcost.records import program_id

    src = json.loads((dataset.programs_dir("cpu") / "tasks.json").read_text())
    programs = pq.read_table(dataset.programs_dir("cpu") / "programs.parquet")
    small = sorted((t for t in src["tasks"] if t["op_kind"] == "matmul"), key=lambda t: t["flops"])[:2]
    ids = [t["task_id"] for t in small]
    held = {tid: [r["trace"] for r in programs.filter(pa.compute.equal(programs["task_id"], tid)).to_pylist()][: 3 if i == 0 else 6] for i, tid in enumerate(ids)}
    from_dir = tmp_path / "set"
    from_dir.mkdir()
    (from_dir / "tasks.json").write_text(json.dumps({"meta": src["meta"], "tasks": small}))
    pq.write_table(pa.Table.from_pylist([{"task_id": tid, "program_id": program_id(tr), "trace": tr} for tid, trs in held.items() for tr in trs]),
                   from_dir / "programs.parquet")
    params = tmp_path / "dense.yaml"
    params.write_text(f"sample:\n  reference_target: sapphirerapids-2c.avx512-t2\n  tasks_from: {from_dir}\n  extend: true\n"
                      "  programs_per_task: 6\n  seed: 13\n  max_tasks: 5\n")
    counts = sample_task_set_from(load_collection_params(params), tmp_path / "out")
    tasks, got, meta = load_task_set(tmp_path / "out")
    assert [t.task_id for t in tasks] == [ids[0]] and counts == {"tasks": 1, "programs": 6}  # the second holds 6 already
    assert got[ids[0]][:3] == held[ids[0]] and len({program_id(tr) for tr in got[ids[0]]}) == 6
    assert meta["extends"] == {"programs_per_task": 6, "seed": 13}


def test_a_pack_killed_after_the_records_is_packed_again_to_the_same_dataset(tmp_path, monkeypatch):
    """kill -9 between the records and the program set: the same pack again gives the dataset
    one uninterrupted pack gives (no measurement moved twice, none lost)."""
    import shutil

    from tensorcost import safeio
    from tensorcost.records import read_records, write_records

    def setup(where):
        root, work, target = where / "bundled", where / "work", "zen4-2c.avx2-t1"
        _set_with_programs(root / "programs/cpu", {"t0": ["p1", "p2"]})
        write_records(to_table(_rows(target, {"p1": 1.0, "p2": 2.0}, task="t0")), dataset.bundled_records_path(target, root))
        _set_with_programs(work / "data/programs", {"t0": ["p1", "p2", "p3"]})
        new = _rows(target, {"p1": 1.1, "p2": 2.1, "p3": 0.5}, task="t0")
        for r in new:
            r["measured_at"] = 2.0
        write_records(to_table(new), work / "data/raw" / target / "parts/part-000000.parquet")
        return root, work, target

    root, work, target = setup(tmp_path / "once")
    dataset.pack(work, [target], "cpu", root, merge=True)
    root2, work2, _ = setup(tmp_path / "killed")
    real = safeio.atomic_output

    def die_at_the_program_set(path, *a, **k):
        if path.name == "programs.parquet":
            raise KeyboardInterrupt("killed")
        return real(path, *a, **k)

    import tensorcost.records.programs as program_table  # the program set's writers: whole, and merged a batch at a time
    import tensorcost.records.sorted_files as sorted_files

    for module in (program_table, sorted_files):
        monkeypatch.setattr(module, "atomic_output", die_at_the_program_set)
    with pytest.raises(KeyboardInterrupt):
        dataset.pack(work2, [target], "cpu", root2, merge=True)
    for module in (program_table, sorted_files):
        monkeypatch.setattr(module, "atomic_output", real)
    dataset.pack(work2, [target], "cpu", root2, merge=True)
    for f in ("programs/cpu/programs.parquet", "platforms/zen4-2c/avx2-t1.parquet", "platforms/zen4-2c/superseded-avx2-t1.parquet"):
        a, b = (read_records(r / f) if "platforms" in f else __import__("pyarrow.parquet").parquet.read_table(r / f) for r in (root, root2))
        assert a.sort_by("program_id").equals(b.sort_by("program_id")), f
    assert len(read_records(root2 / "platforms/zen4-2c/superseded-avx2-t1.parquet")) == 2
    shutil.rmtree(tmp_path / "once")


def test_pack_of_a_run_that_was_not_sampled_or_measured_says_what_to_run(tmp_path):
    from tensorcost.errors import MissingDataError

    root, work = tmp_path / "bundled", tmp_path / "work"
    _set_with_programs(root / "programs/cpu", {"t0": ["p1"]})
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(MissingDataError, match="dataset sample"):
        dataset.pack(work, ["zen4-2c.avx2-t1"], "cpu", root, merge=True)
    _set_with_programs(work / "data/programs", {"t0": ["p1", "p2"]})
    with pytest.raises(MissingDataError, match="dataset collect --work .* --target zen4-2c.avx2-t1"):
        dataset.pack(work, ["zen4-2c.avx2-t1"], "cpu", root, merge=True)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == snapshot


def test_sampling_from_a_set_that_is_not_there_says_where_it_looked(tmp_path, monkeypatch):
    """docs/dataset-params-dense1.yaml names the bundled set relative to the repository root: run
    from another folder, the error says so before any work (it was a traceback)."""
    from tensorcost.collect import sample_task_set_from
    from tensorcost.errors import MissingDataError
    from tensorcost.params import load_collection_params

    monkeypatch.chdir(tmp_path)
    params = load_collection_params(Path(__file__).resolve().parents[2] / "docs/dataset-params-dense1.yaml")
    with pytest.raises(MissingDataError) as err:
        sample_task_set_from(params, tmp_path / "out")
    assert "sample.tasks_from: data/bundled/programs/cpu/tasks.json is not there" in str(err.value) and str(tmp_path) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_every_grown_bundled_task_holds_its_earlier_programs_first():
    """`platform add --programs-per-task N` measures each task's first N programs: for a task
    `sample.extend` grew, the first ones must be those it held before (what every other platform
    measured), or a capped platform would hold a mix no other platform holds."""
    from tensorcost import collect
    from tensorcost.records import program_id, read_records

    tasks, programs, _ = collect.load_task_set(dataset.programs_dir("cpu"))
    checked = 0
    for target in dataset.bundled_targets():
        path = dataset.superseded_records_path(target)
        if not path.exists():
            continue
        earlier = dataset.program_keys(read_records(path))
        for task in sorted({t for t, _ in earlier}):
            ids = [program_id(tr) for tr in programs[task]]
            n = sum((task, p) in earlier for p in ids)
            assert n and all((task, p) in earlier for p in ids[:n]), f"{target}: task {task}'s earlier programs are not its first {n}"
            checked += 1
    assert checked  # the bundled set has grown tasks (zen3-2c)
