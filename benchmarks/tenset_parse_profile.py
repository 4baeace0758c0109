"""Where the TenSet importer's time goes, on the directory `benchmarks/tenset_import.py` generates.

    .venv/bin/python benchmarks/tenset_parse_profile.py --files 40

Prints (1) the cost of the per-line steps (the C scanner; the reference path's orjson decode and
trace re-serialization; SHA-1) on the generated lines, (2) the parsers alone (`tenset.parse_file`, no writer) in this process and in a pool
of 2 processes, and (3) the writer's Parquet encoding of the same records.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import tempfile
import time
import timeit
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from tensorcost import records as rec
from tensorcost.records import importer, tenset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/tensorcost-bench"))
    ap.add_argument("--files", type=int, default=40)
    args = ap.parse_args()
    files = sorted((args.workdir / "tenset" / "measure_records").rglob("*.json"))[: args.files]
    if not files:
        raise SystemExit(f"no generated records under {args.workdir}: run benchmarks/tenset_import.py first")
    lines = [line for f in files[:3] for line in f.open("rb")]  # the generator's lines vary in length
    steps = [orjson.loads(line)["i"][1][1] for line in lines]
    traces = [orjson.dumps(s) for s in steps]
    steps_fns = [("orjson.loads(line)", lambda: [orjson.loads(x) for x in lines]), ("orjson.dumps(steps)", lambda: [orjson.dumps(x) for x in steps]),
                 ("sha1(trace)", lambda: [hashlib.sha1(x).hexdigest()[:16] for x in traces])]
    if tenset.scan_record is not None:  # the C fast path replaces the first two
        steps_fns.insert(0, ("C scan_record(line)", lambda: [tenset.scan_record(x) for x in lines]))
    for name, fn in steps_fns:
        best = min(timeit.repeat(fn, number=1, repeat=5))
        print(f"{name:22s} {best / len(lines) * 1e6:.2f} us a line (mean line {sum(map(len, lines)) / len(lines):.0f} bytes)")

    with tempfile.TemporaryDirectory() as spool:
        jobs = [(str(f), None, spool, True) for f in files]
        t0, c0 = time.perf_counter(), time.process_time()
        outs = [tenset.parse_file(j) for j in jobs]
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        n_rec = sum(r.imported for _, r, _ in outs)
        print(f"parsers, in this process: {n_rec / dt:,.0f} records/s, {cpu / n_rec * 1e6:.1f} us CPU a record")
        table = pa.concat_tables(pa.ipc.open_stream(pa.memory_map(p)).read_all() for p, _, _ in outs)
        for w in (2,):
            with mp.get_context("fork").Pool(w) as pool:
                t0 = time.perf_counter()
                list(pool.imap(tenset.parse_file, jobs, chunksize=1))
                dt = time.perf_counter() - t0
            print(f"parsers, pool of {w} (no writer): {n_rec / dt:,.0f} records/s")
        out = Path(spool) / "o.parquet"
        c0 = time.process_time()
        pq.write_table(table.cast(rec.RECORDS_SCHEMA), out, compression="zstd", use_dictionary=importer.DICT_COLUMNS, write_statistics=importer.STATS_COLUMNS)
        print(f"writer, Parquet zstd encoding: {(time.process_time() - c0) / n_rec * 1e6:.1f} us CPU a record")


if __name__ == "__main__":
    main()
