"""`records.sorted_files`: a file sorted by key columns merged with new rows a batch at a time
(`dataset pack --merge`) writes what sorting the two together whole writes, whatever the batch
size, where the new keys fall, and what the transform drops."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tensorcost.records.sorted_files import is_sorted, merge_sorted

SCHEMA = pa.schema([("task_id", pa.string()), ("program_id", pa.string()), ("value", pa.int64())])
KEYS = ["task_id", "program_id"]


def _rows(rng: random.Random, n: int, tasks: int, programs: int, start: int) -> pa.Table:
    keys = sorted({(f"t{rng.randrange(tasks):02d}", f"p{rng.randrange(programs):03d}") for _ in range(n)})
    return pa.table({"task_id": [k[0] for k in keys], "program_id": [k[1] for k in keys],
                     "value": list(range(start, start + len(keys)))}, schema=SCHEMA)


@pytest.mark.parametrize("seed", range(6))
def test_a_merge_equals_sorting_both_whole(tmp_path, seed):
    rng = random.Random(seed)
    held = _rows(rng, 200, 12, 40, 0)
    path = tmp_path / "held.parquet"
    pq.write_table(held, path, row_group_size=rng.choice([1, 7, 64, 1000]))
    adds = _rows(rng, 60, 15, 40, 10_000)  # tasks before, among and after the file's; keys the file holds too
    adds = adds.take(pa.array(rng.sample(range(adds.num_rows), adds.num_rows)))  # in any order
    dropped = {f"t{rng.randrange(12):02d}" for _ in range(3)}

    def drop(part: pa.Table) -> pa.Table:
        return part.filter(pc.invert(pc.is_in(part.column("task_id"), value_set=pa.array(sorted(dropped)))))

    batch = rng.choice([1, 5, 16, 500])
    out = tmp_path / "out.parquet"
    assert merge_sorted(path, adds, out, KEYS, SCHEMA, batch, transform=drop) == drop(held).num_rows + adds.num_rows
    expected = pa.concat_tables([drop(held), adds]).sort_by([(k, "ascending") for k in KEYS])  # stable: the file's row first
    assert pq.read_table(out).equals(expected)
    sizes = [pq.ParquetFile(out).metadata.row_group(i).num_rows for i in range(pq.ParquetFile(out).metadata.num_row_groups)]
    assert all(n == batch for n in sizes[:-1]) and 0 < sizes[-1] <= batch
    assert is_sorted(out, KEYS) and pq.read_table(path).equals(held)


def test_is_sorted_sees_a_step_back_inside_a_batch_and_between_batches(tmp_path):
    path = tmp_path / "f.parquet"
    ok = pa.table({"task_id": ["a", "a", "b", "c"], "program_id": ["1", "2", "1", "0"], "value": [0, 1, 2, 3]}, schema=SCHEMA)
    pq.write_table(ok, path)
    assert is_sorted(path, KEYS, batch_rows=2) and is_sorted(path, ["task_id"])
    for order in ([1, 0, 2, 3], [0, 2, 1, 3], [0, 1, 3, 2]):
        pq.write_table(ok.take(pa.array(order)), path)
        assert not is_sorted(path, KEYS, batch_rows=2), order
