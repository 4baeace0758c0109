"""Bytes a row of a bundled slot's feature store on disk (Arrow Parquet fragments, as the
featurize stage writes them) and of its flat matrix in memory, under this checkout's feature schema.

    .venv/bin/python benchmarks/feature_store_bytes.py --slot zen3-2c.avx2-t1 --work /tmp/tc-store-bytes
    # another schema: the same command with PYTHONPATH=<an older checkout>/src

`--work` is emptied first and must not be inside the repository.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from common import bundled_feature_tables
from tensorcost.features import FEATURE_SCHEMA_VERSION, write_feature_store

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slot", default="zen3-2c.avx2-t1")
    ap.add_argument("--work", type=Path, required=True)
    a = ap.parse_args()
    work = a.work.resolve()
    if work == REPO or REPO in work.parents:
        raise SystemExit(f"--work {work}: inside the repository; give a scratch folder outside it")
    table = bundled_feature_tables([a.slot])[a.slot]
    shutil.rmtree(work, ignore_errors=True)
    write_feature_store(table, work, a.slot)
    size = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
    print(f"{FEATURE_SCHEMA_VERSION}: {len(table):,} rows, {table.flat.shape[1]} flat columns; "
          f"on disk {size / len(table):.1f} B a row, flat matrix in memory {table.flat.nbytes / len(table):.0f} B a row")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
