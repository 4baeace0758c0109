"""The importer's C fast path (`tensorcost.records._recscan`) against its reference path (orjson + parse_line).

The contract: the scanner accepts only lines the reference path accepts, and for those it gives
exactly the reference path's fields; everything else it declines (returns None) so the reference
path imports it or words the error.
"""

import io
import json
import random
import shutil
import sysconfig
from pathlib import Path

import orjson
import pytest

from tensorcost.records import tenset

LOGS = Path(__file__).resolve().parents[1] / "data" / "autoscheduler_logs"
scan = tenset.scan_record
needs_scanner = pytest.mark.skipif(scan is None, reason="C extension not built (no C compiler at install time)")


def _real_lines() -> list[bytes]:
    return [line for f in sorted(LOGS.glob("*.json")) for line in f.open("rb") if line[:1] == b"{"]


def _reference_fields(line: bytes):
    task, steps, costs, error_no, timestamp, version, mean = tenset.parse_line(orjson.loads(line))
    return (task[0], task[1], orjson.dumps(steps), costs if mean is not None else [], mean, error_no,
            float(timestamp) if type(timestamp) in (int, float) else 0.0, version)


def _scanned_fields(fields):
    key, trace, costs, mean, error_no, timestamp, version = fields
    wkey, target = orjson.loads(b"[" + key + b"]")
    return (wkey, target, trace, costs, mean, error_no, timestamp, version.decode() if version is not None else "v0.2")


def test_the_scanner_is_built_where_a_c_compiler_exists():
    if not (shutil.which(sysconfig.get_config_var("CC").split()[0]) or shutil.which("cc")):
        pytest.skip("no C compiler on this machine")
    assert scan is not None, "pip install did not build tensorcost.records._recscan although a C compiler exists"


@needs_scanner
def test_every_real_line_takes_the_fast_path_with_the_reference_fields():
    lines = _real_lines()
    assert len(lines) == 28
    for line in lines:
        fields = scan(line)
        assert fields is not None, line[:80]
        assert _scanned_fields(fields) == _reference_fields(line)


def _variant(obj: dict, **changes) -> bytes:
    o = json.loads(json.dumps(obj))
    for path, value in changes.items():
        *head, last = path.split("__")
        cur = o
        for k in head:
            cur = cur[int(k) if k.isdigit() else k]
        cur[int(last) if last.isdigit() else last] = value
    return json.dumps(o).encode() + b"\n"


BASE = json.loads(next(line for line in (LOGS / "resnet-50-NHWC-B1-llvm.json").open() if line.startswith("{")))

# Lines the scanner must decline (return None), each for its reason; the reference path then
# imports or rejects them by itself.
DECLINED = {
    "float in the steps (orjson re-spells floats)": _variant(BASE, i__1__1__0__3=1000.0),
    "escape in a step string": _variant(BASE, i__1__1__16__3='a"b'),
    "non-ASCII step string": _variant(BASE, i__1__1__16__3="é"),
    "\\u escape in the target": b'{"i": [["[\\"x\\", 1]", "llvm \\u0041"], [[], []]], "r": [[0.1], 0, 1.0, 1], "v": "v0.6"}\n',
    "-0 in the steps": json.dumps(BASE).replace('["CR", 6]', '["CR", -0]').encode(),
    "integer costs (orjson keeps ints)": _variant(BASE, r__0=[1, 2]),
    "huge exponent elsewhere (orjson refuses infinity)": json.dumps(BASE).replace(", 0.17921, ", ", 1e400, ").encode(),
    "unknown key": json.dumps(BASE | {"extra": 1}).encode(),
    "duplicate key": json.dumps(BASE)[:-1].encode() + b', "v": "v0.6"}',
    "trailing garbage": json.dumps(BASE).encode() + b" x",
    "truncated": json.dumps(BASE).encode()[:-10],
    "missing r": json.dumps({"i": BASE["i"]}).encode(),
    "negative cost": _variant(BASE, r__0=[0.1, -1.0]),
    "empty costs of a measured record": _variant(BASE, r__0=[]),
    "string cost": _variant(BASE, r__0=["x"]),
    "boolean error_no": _variant(BASE, r__1=True),
    "error_no beyond int32": _variant(BASE, r__1=2**40),
    "string timestamp": _variant(BASE, r__3="yesterday"),
    "version with an escape": _variant(BASE, v='v0.\\6'),
    "three-element state": _variant(BASE, i__1=[[], [], []]),
    "one-element task": _variant(BASE, i__0=["[\"x\"]"]),
    # issue 17: the fuzzer's findings (orjson keeps the last duplicate key; refuses 1e350; the sum overflows)
    "object in the steps": json.dumps(BASE).replace('["CR", 6]', '["CR", {"a": 1, "a": 2}]').encode(),
    "number beyond a double in a skipped field": json.dumps(BASE).replace(", 0.17921, ", ", 1" + "0" * 250 + "e99, ").encode(),
    "costs whose sum overflows": _variant(BASE, r__0=[1.7e308, 1.7e308]),
}


@needs_scanner
@pytest.mark.parametrize("reason", list(DECLINED))
def test_the_scanner_declines_what_it_does_not_fully_understand(reason):
    assert scan(DECLINED[reason]) is None


ACCEPTED = {
    "error record keeps no costs": _variant(BASE, r__0=[1e10], r__1=4),
    "error record with odd costs": _variant(BASE, r__0=["x", None], r__1=2),
    "no version (v0.2)": json.dumps({k: v for k, v in BASE.items() if k != "v"}).encode(),
    "17-digit costs": _variant(BASE, r__0=[6.622993261252126e-06, 1.3398602334200351e-05]),
    "float timestamp": _variant(BASE, r__3=1606960872.25),
    "compact separators": json.dumps(BASE, separators=(",", ":")).encode(),
    "extra result fields": _variant(BASE, r=BASE["r"] + ["note"]),
    "true/false/null in steps": _variant(BASE, i__1__1__0=["XX", True, False, None]),
    "object in the stages": _variant(BASE, i__1__0=[{"a": [1, 2.5]}]),
    "big ints outside the steps": _variant(BASE, i__0__2=[2**62, -(2**62)]),
}


@needs_scanner
@pytest.mark.parametrize("reason", list(ACCEPTED))
def test_the_scanner_gives_the_reference_fields_on_unusual_valid_lines(reason):
    line = ACCEPTED[reason]
    fields = scan(line)
    assert fields is not None
    assert _scanned_fields(fields) == _reference_fields(line)


@needs_scanner
def test_random_corruptions_never_make_the_scanner_disagree_with_the_reference():
    """3,000 seeded single-byte corruptions of real lines: whenever the scanner accepts one, the
    reference path accepts it too and gives the same fields."""
    rng = random.Random(0)
    lines = _real_lines()
    alphabet = b'[]{}",:0123456789.eE+- \\tnul\x00\xc3'
    accepted = declined = 0
    for _ in range(3000):
        b = bytearray(rng.choice(lines))
        pos = rng.randrange(len(b))
        op = rng.randrange(3)
        if op == 0:
            del b[pos]
        elif op == 1:
            b.insert(pos, rng.choice(alphabet))
        else:
            b[pos] = rng.choice(alphabet)
        line = bytes(b)
        fields = scan(line)
        if fields is None:
            declined += 1
            continue
        accepted += 1
        try:
            ref = _reference_fields(line)
        except (orjson.JSONDecodeError, tenset.MalformedRecord) as exc:
            pytest.fail(f"scanner accepted a line the reference path rejects ({exc}): {line!r}")
        assert _scanned_fields(fields) == ref, line
    assert accepted > 300 and declined > 300  # both sides of the contract were exercised


@needs_scanner
def test_fast_and_reference_imports_give_identical_tables_and_quarantines(tmp_path):
    bad_workload = _variant(BASE, i__0__0="not json")  # the scanner takes it; the workload decode rejects it
    lines = _real_lines() + list(DECLINED.values()) + list(ACCEPTED.values()) + [bad_workload, b"# comment\n", b"\n", b"garbage\n"]
    src = tmp_path / "mixed.json"
    src.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
    results = []
    for fast in (True, False):
        cols, report, quarantine = tenset._Columns(), tenset.ImportReport(), io.BytesIO()
        batches = list(tenset.import_file(src, cols, None, quarantine, report, {}, fast=fast)) + [cols.to_batch()]
        results.append((batches, report, quarantine.getvalue()))
    (fast_batches, fast_report, fast_q), (ref_batches, ref_report, ref_q) = results
    import pyarrow as pa

    assert pa.Table.from_batches(fast_batches).equals(pa.Table.from_batches(ref_batches))
    assert fast_q == ref_q and fast_report.examples == ref_report.examples
    assert any("workload_key is not a JSON list" in e for e in fast_report.examples)
    assert (fast_report.imported, fast_report.skipped, fast_report.comments) == (ref_report.imported, ref_report.skipped, ref_report.comments)
    valid = 0
    for line in lines:
        try:
            tenset._reference_row(src, line, tenset._Columns(), None, {}, {})
            valid += 1
        except tenset.MalformedRecord:
            pass
    assert fast_report.imported == valid >= 28 + len(ACCEPTED) + 5  # declined-but-valid lines are imported too


@needs_scanner
def test_cli_reports_the_fast_path_and_can_turn_it_off(tmp_path):
    import subprocess
    import sys

    import pyarrow.parquet as pq

    runs = {}
    for flag in ([], ["--reference-parser"]):
        out = tmp_path / f"o{len(flag)}.parquet"
        proc = subprocess.run([sys.executable, "-m", "tensorcost.cli", "import-tenset", str(LOGS), "--out", str(out), *flag], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        runs[bool(flag)] = (json.loads(proc.stdout), pq.read_table(out))
    assert runs[False][0]["fast_path_lines"] == 28 and runs[True][0]["fast_path_lines"] == 0
    assert runs[False][1].sort_by("record_id").equals(runs[True][1].sort_by("record_id"))
