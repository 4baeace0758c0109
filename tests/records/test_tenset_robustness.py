"""Nothing lost, nothing trusted blindly: the TenSet importer on bad lines, bad files and bad
directory entries, and when it fails or is interrupted.

One regression test per audit finding (issue 17), each checking the cause is fixed: the bad
input is quarantined or reported as `path:line: reason` / `path: reason`, every good line next to
it imports, and no partial output is left behind.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from tensorcost.records import importer, read_records, tenset
from tensorcost.records.importer import import_tenset
from tensorcost.records.tenset import target_id_for

LOGS = Path(__file__).resolve().parents[1] / "data" / "autoscheduler_logs"
GOOD = [line for line in (LOGS / "resnet-50-NHWC-B1-llvm.json").read_text().splitlines() if line.startswith("{")]
BASE = json.loads(GOOD[0])
needs_scanner = pytest.mark.skipif(tenset.scan_record is None, reason="C extension not built")


def _variant(ensure_ascii: bool = True, **changes) -> str:
    o = json.loads(json.dumps(BASE))
    for path, value in changes.items():
        *head, last = path.split("__")
        cur = o
        for k in head:
            cur = cur[int(k) if k.isdigit() else k]
        cur[int(last) if last.isdigit() else last] = value
    return json.dumps(o, ensure_ascii=ensure_ascii)


def _with_steps_text(steps_text: str) -> str:
    """BASE with its steps list replaced by raw JSON text."""
    line = json.dumps(BASE)
    steps = json.dumps(BASE["i"][1][1])
    assert line.count(steps) == 1
    return line.replace(steps, steps_text)


def _with_all_cost_text(text: str) -> str:
    """BASE with its all_cost (r[2], a field neither path keeps) replaced by raw JSON text."""
    line = json.dumps(BASE)
    old = f"], 0, {json.dumps(BASE['r'][2])}, "
    assert line.count(old) == 1
    return line.replace(old, f"], 0, {text}, ")


def _partial_outputs(root: Path) -> list[str]:
    """Temporary Parquet / quarantine files and spool files under `root`."""
    return sorted(str(p) for p in root.rglob("*") if p.name.endswith((".tmp", ".arrow")) or "tensorcost-import-" in str(p))


def _import_between_good_lines(tmp_path: Path, bad: str | bytes, fast: bool = True):
    """A file of 2 good lines, the bad line, 2 good lines; imported with the given path. Returns
    (report, table rows, quarantine entries, file)."""
    bad_b = bad if isinstance(bad, bytes) else bad.encode()
    src = tmp_path / f"bad-{int(fast)}.json"
    src.write_bytes(b"\n".join([GOOD[0].encode(), GOOD[1].encode(), bad_b, GOOD[2].encode(), GOOD[3].encode()]) + b"\n")
    out = tmp_path / f"o-{int(fast)}.parquet"
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    orig = importer._spool_root
    importer._spool_root = lambda out: str(spool)
    try:
        report = import_tenset([src], out, workers=1, progress=False, fast=fast)
    finally:
        importer._spool_root = orig
    q = out.with_name(out.name + ".quarantine.jsonl")
    entries = [json.loads(x) for x in q.read_text().splitlines()] if q.exists() else []
    assert _partial_outputs(tmp_path) == [] and list(spool.iterdir()) == []
    return report, read_records(out).to_pylist(), entries, src


# ---------------------------------------------------------------------------------------------
# The audit's findings, one by one
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
def test_an_integer_cost_above_2_53_is_imported_as_a_float_not_an_arrow_crash(tmp_path, fast):
    report, rows, entries, _ = _import_between_good_lines(tmp_path, _variant(r__0=[2**53 + 1, 0.5]), fast)
    assert report.imported == 5 and report.skipped == 0 and entries == []
    row = rows[2]
    assert row["latencies"] == [float(2**53 + 1), 0.5] and row["latency_s"] == (float(2**53 + 1) + 0.5) / 2


def test_costs_are_validated_as_a_whole_not_by_their_first_element():
    for costs, reason in (([0.1, True], "costs must be numbers"), ([0.1, "1"], "costs must be numbers"), ([0.1, None], "costs must be numbers"),
                          ([1.7e308, 1.7e308], "add up to more than the largest float"), ([0.1, 0], "non-positive"), ([10**400], "non-positive")):
        obj = json.loads(_variant(r__0=[0.5]))
        obj["r"][0] = costs
        with pytest.raises(tenset.MalformedRecord, match=reason):
            tenset.parse_line(obj)
    fields = tenset.parse_line(json.loads(_variant(r__0=[1, 2])))
    assert fields[2] == [1.0, 2.0] and all(type(c) is float for c in fields[2]) and fields[-1] == 1.5


@needs_scanner
def test_costs_that_overflow_their_sum_are_declined_by_the_scanner_and_rejected_by_both_paths(tmp_path):
    line = _variant(r__0=[1.7e308, 1.7e308])
    assert tenset.scan_record(line.encode()) is None
    for fast in (True, False):
        report, _rows, entries, src = _import_between_good_lines(tmp_path, line, fast)
        assert report.imported == 4 and [e["where"] for e in entries] == [f"{src}:3"]
        assert "add up to more than the largest float" in entries[0]["reason"]


def test_a_target_of_spaces_gets_an_unknown_target_id(tmp_path):
    assert target_id_for(Path("a.json"), "   ", None) == "unknown-unknown.tenset"
    assert target_id_for(Path("a.json"), "", None) == "unknown-unknown.tenset"
    report, rows, entries, _ = _import_between_good_lines(tmp_path, _variant(i__0__1="   "))
    assert report.imported == 5 and entries == [] and rows[2]["target"] == "unknown-unknown.tenset"


@pytest.mark.parametrize("depth", [60, 255, 600, 1020])
@pytest.mark.parametrize("fast", [True, False])
def test_deeply_nested_steps_are_quarantined_or_imported_never_a_crash(tmp_path, fast, depth):
    steps = json.dumps(BASE["i"][1][1])[:-1] + ", " + "[" * depth + "]" * depth + "]"
    report, rows, entries, src = _import_between_good_lines(tmp_path, _with_steps_text(steps), fast)
    if depth < 250:  # orjson writes back up to 254 levels
        assert report.imported == 5 and entries == []
        assert rows[2]["trace"] == orjson.dumps(orjson.loads(steps)).decode()
    else:
        assert report.imported == 4 and [(e["where"], e["reason"]) for e in entries] == [(f"{src}:3", "steps nested too deeply to store")]


@pytest.mark.parametrize("depth", [1000, 5000])
def test_a_deeply_nested_workload_key_is_quarantined_not_a_recursion_error(tmp_path, depth):
    report, _rows, entries, src = _import_between_good_lines(tmp_path, _variant(i__0__0=json.dumps(["deep", "PLACEHOLDER"]).replace('"PLACEHOLDER"', "[" * depth + "]" * depth)))
    assert report.imported == 4 and [(e["where"], e["reason"]) for e in entries] == [(f"{src}:3", "workload_key nested deeper than 64 levels")]


@pytest.mark.parametrize("wkey,reason", [
    ('["x", NaN]', "workload_key has NaN"), ('["x", -Infinity]', "workload_key has -Infinity"),
    ('["x", 1e400]', "beyond the float range"), ('["\\ud800"]', "lone UTF-16 surrogate"), ('["x", "\\udc00"]', "lone UTF-16 surrogate"),
    ('["a", [[[[1]]]]] x', "not a JSON list"),
])
@pytest.mark.parametrize("fast", [True, False])
def test_workload_keys_arrow_or_json_readers_cannot_store_are_quarantined(tmp_path, fast, wkey, reason):
    report, _rows, entries, src = _import_between_good_lines(tmp_path, _variant(i__0__0=wkey), fast)
    assert report.imported == 4 and len(entries) == 1 and entries[0]["where"] == f"{src}:3" and reason in entries[0]["reason"]


def test_a_workload_key_with_brackets_inside_strings_is_not_too_deep(tmp_path):
    report, rows, _entries, _ = _import_between_good_lines(tmp_path, _variant(i__0__0=json.dumps(["x" + "[" * 100, [1, 2]])))
    assert report.imported == 5 and rows[2]["task_name"] == "x" + "[" * 100


# Lines the audit found giving different fields on the two paths: the scanner now declines each
# (or agrees), and the two imports give identical tables.
DISAGREED = {
    "empty version": _variant(v=""),
    "duplicate key inside a step": _with_steps_text('[["CR", {"a": 1, "a": 2}], ["SP", 2, 0, 8, [2], 1]]'),
    "object inside a step": _with_steps_text('[["CR", {"b": 1, "a": [2]}]]'),
    "number orjson refuses, in a skipped field": _with_all_cost_text("1" + "0" * 250 + "e99"),
    "integer beyond a double, in a skipped field": _with_all_cost_text("1" + "0" * 309),
}


@needs_scanner
@pytest.mark.parametrize("name", list(DISAGREED))
def test_lines_that_once_disagreed_give_identical_imports(tmp_path, name):
    line = DISAGREED[name].encode()
    fields = tenset.scan_record(line)
    if name != "empty version":
        assert fields is None
    results = []
    for fast in (True, False):
        report, rows, entries, _ = _import_between_good_lines(tmp_path, line, fast)
        rows = [{k: v for k, v in r.items() if k != "record_id"} for r in rows]  # ids name the file, which differs
        results.append((report.imported, rows, [(e["reason"], e["line"]) for e in entries]))
    assert results[0] == results[1]
    if name == "empty version":
        assert results[0][1][2]["tvm_version"] == "auto_scheduler-"
    if "duplicate" in name:
        assert json.loads(results[0][1][2]["trace"])[0] == ["CR", {"a": 2}]


def test_the_quarantine_is_streamed_not_held_in_memory(tmp_path):
    """parse_file hands back a spool file of quarantined lines, never their text."""
    src = tmp_path / "bad.json"
    src.write_text("garbage\n" * 1000)
    spool = tmp_path / "spool"
    spool.mkdir()
    _ipc_path, report, q_path = tenset.parse_file((str(src), None, str(spool), True))
    assert isinstance(q_path, str) and report.skipped == 1000
    assert len(Path(q_path).read_text().splitlines()) == 1000


def _peak_rss_mb(tmp_path: Path, n_bad_mb: int) -> float:
    src = tmp_path / f"bad{n_bad_mb}.json"
    bad = ("x" + GOOD[0] + "\n").encode()
    with open(src, "wb") as f:
        f.writelines(bad for _ in range(n_bad_mb * 1_000_000 // len(bad)))
    code = textwrap.dedent(f"""
        import resource, sys
        from tensorcost.records.importer import import_tenset
        r = import_tenset([{str(src)!r}], {str(tmp_path / f"o{n_bad_mb}.parquet")!r}, workers=1, progress=False)
        assert r.imported == 0 and r.skipped > 0
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[-1])


def test_memory_stays_flat_with_any_amount_of_bad_input(tmp_path):
    small, large = _peak_rss_mb(tmp_path, 4), _peak_rss_mb(tmp_path, 60)
    assert large - small < 25, f"peak RSS {small:.0f} MB with 4 MB of bad lines, {large:.0f} MB with 60 MB"
    q = tmp_path / "o60.parquet.quarantine.jsonl"
    assert q.stat().st_size > 60_000_000  # every bad line is in the quarantine file


# ---------------------------------------------------------------------------------------------
# Bad lines of other kinds
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fast", [True, False])
def test_non_utf8_bytes_are_quarantined_and_written_readably(tmp_path, fast):
    report, _rows, entries, src = _import_between_good_lines(tmp_path, _variant(i__0__1="llvm X").encode().replace(b"X", b"\xff\xfe"), fast)
    assert report.imported == 4 and entries[0]["where"] == f"{src}:3" and "UTF-8" in entries[0]["reason"]
    assert "\ufffd" in entries[0]["line"]


def test_a_byte_order_mark_does_not_cost_the_first_line(tmp_path):
    src = tmp_path / "bom.json"
    src.write_bytes(b"\xef\xbb\xbf" + "\n".join(GOOD[:3]).encode() + b"\n")
    report = import_tenset([src], tmp_path / "o.parquet", workers=1, progress=False)
    assert report.imported == 3 and report.skipped == 0


def test_crlf_line_ends_and_a_missing_final_newline_import(tmp_path):
    src = tmp_path / "crlf.json"
    src.write_bytes("\r\n".join(GOOD[:3]).encode())
    for fast in (True, False):
        report = import_tenset([src], tmp_path / f"o{fast}.parquet", workers=1, progress=False, fast=fast)
        assert report.imported == 3 and report.skipped == 0


@pytest.mark.parametrize("fast", [True, False])
def test_an_overlong_line_is_quarantined_whole_in_pieces_and_the_next_line_imports(tmp_path, monkeypatch, fast):
    monkeypatch.setattr(tenset, "MAX_LINE_BYTES", 4096)
    long_line = _variant(ensure_ascii=False, i__0__1="llvm " + "é" * 5000)  # non-ASCII: the pieces split UTF-8 sequences
    report, _rows, entries, src = _import_between_good_lines(tmp_path, long_line, fast)
    assert report.imported == 4 and report.lines == 5
    assert entries[0]["where"] == f"{src}:3" and entries[0]["reason"] == "line longer than 4096 bytes"
    assert entries[0]["line"] == long_line


# ---------------------------------------------------------------------------------------------
# Bad files and directory entries
# ---------------------------------------------------------------------------------------------


def _tree_with_one_good_file(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "measure_records" / "t4").mkdir(parents=True)
    (root / "measure_records" / "t4" / "good.json").write_text("\n".join(GOOD[:5]) + "\n")
    return root


def _run(paths, tmp_path: Path, **kw):
    out = tmp_path / "o.parquet"
    report = import_tenset(paths, out, workers=kw.pop("workers", 1), progress=False, **kw)
    q = out.with_name(out.name + ".quarantine.jsonl")
    entries = [json.loads(x) for x in q.read_text().splitlines()] if q.exists() else []
    return report, entries


def test_an_empty_file_is_reported(tmp_path):
    root = _tree_with_one_good_file(tmp_path)
    (root / "empty.json").write_bytes(b"")
    report, entries = _run([root], tmp_path)
    assert report.imported == 5 and report.bad_files == 1
    assert entries == [{"where": str(root / "empty.json"), "reason": "empty file", "line": None}]
    assert f"{root / 'empty.json'}: empty file" in report.examples


def test_a_broken_symlink_is_reported(tmp_path):
    root = _tree_with_one_good_file(tmp_path)
    (root / "gone.json").symlink_to(tmp_path / "nowhere.json")
    report, entries = _run([root], tmp_path)
    assert report.imported == 5 and [(e["where"], e["reason"]) for e in entries] == [(str(root / "gone.json"), "broken symlink")]
    report, entries = _run([root / "gone.json", root / "measure_records"], tmp_path)  # named directly: the same
    assert report.imported == 5 and [e["reason"] for e in entries] == ["broken symlink"]


def test_a_fifo_is_reported_without_waiting_for_a_writer(tmp_path):
    root = _tree_with_one_good_file(tmp_path)
    os.mkfifo(root / "pipe.json")
    report, entries = _run([root], tmp_path)
    assert report.imported == 5 and [e["reason"] for e in entries] == ["not a regular file"]
    report, entries = _run([root / "pipe.json", root / "measure_records"], tmp_path)
    assert report.imported == 5 and [e["reason"] for e in entries] == ["not a regular file"]


def test_a_directory_where_a_file_is_expected_is_reported(tmp_path):
    """A directory named like a record file inside a tree is walked into; a path that turns into
    a directory between listing and opening is reported, not a crash."""
    root = _tree_with_one_good_file(tmp_path)
    (root / "looks-like.json").mkdir()
    (root / "looks-like.json" / "inner.json").write_text(GOOD[5] + "\n")
    report, entries = _run([root], tmp_path)
    assert report.imported == 6 and entries == []
    cols, rep, q = tenset._Columns(), tenset.ImportReport(), io.BytesIO()
    assert list(tenset.import_file(root / "looks-like.json", cols, None, q, rep, {})) == []
    assert rep.examples == [f"{root / 'looks-like.json'}: is a directory"] and rep.bad_files == 1


def test_an_unreadable_file_is_reported_and_the_others_import(tmp_path, monkeypatch):
    root = _tree_with_one_good_file(tmp_path)
    locked = root / "locked.json"
    locked.write_text(GOOD[6] + "\n")
    real_open = os.open

    def fake_open(path, flags, *a, **k):  # root reads any file: simulate the permission error
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(tenset.os, "open", fake_open)
    report, entries = _run([root], tmp_path)
    assert report.imported == 5 and [(e["where"], e["reason"]) for e in entries] == [(str(locked), "cannot read (Permission denied)")]


def test_a_read_error_midway_keeps_the_lines_before_it(tmp_path, monkeypatch):
    root = _tree_with_one_good_file(tmp_path)
    flaky = root / "flaky.json"
    flaky.write_text("\n".join(GOOD[5:10]) + "\n")
    real = tenset._open_record_file

    class Flaky(io.BufferedReader):
        n = 0

        def readline(self, *a):
            Flaky.n += 1
            if Flaky.n == 3:
                raise OSError(5, "Input/output error")
            return super().readline(*a)

    def fake(path):
        f, size = real(path)
        if Path(path) != flaky:
            return f, size
        return Flaky(f.detach()), size

    monkeypatch.setattr(tenset, "_open_record_file", fake)
    report, entries = _run([root], tmp_path)
    assert report.imported == 5 + 2
    assert [(e["where"], e["reason"]) for e in entries] == [(f"{flaky}:3", "read error (Input/output error); the rest of the file is skipped")]


def test_a_non_utf8_file_name_is_imported_and_reported_readably(tmp_path):
    root = _tree_with_one_good_file(tmp_path)
    name = os.fsdecode(b"caf\xe9.json")
    (root / name).write_text(GOOD[5] + "\ngarbage\n")
    report, entries = _run([root], tmp_path)
    assert report.imported == 6 and [e["where"] for e in entries] == [f"{root}/caf\\xe9.json:2"]
    assert json.loads(subprocess.run([sys.executable, "-m", "tensorcost.cli", "import-tenset", str(root), "--out", str(tmp_path / "c.parquet")],
                                     capture_output=True, text=True, check=True).stdout)["imported"] == 6


def test_a_symlink_loop_is_reported_not_followed_forever(tmp_path):
    root = _tree_with_one_good_file(tmp_path)
    (root / "measure_records" / "t4" / "loop").symlink_to(root)
    report, entries = _run([root], tmp_path)
    assert report.imported == 5 and [e["reason"] for e in entries] == ["symlink loop"]


def test_the_same_file_named_twice_is_imported_once(tmp_path):
    root = _tree_with_one_good_file(tmp_path)
    good = root / "measure_records" / "t4" / "good.json"
    report, _ = _run([root, good, good], tmp_path)
    assert report.imported == 5 and report.files == 1
    ids = pq.read_table(tmp_path / "o.parquet").column("record_id").to_pylist()
    assert len(set(ids)) == len(ids) == 5


def test_a_missing_path_is_a_usage_error_and_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        _run([tmp_path / "nope"], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_stale_quarantine_of_an_earlier_import_is_removed(tmp_path):
    root = _tree_with_one_good_file(tmp_path)
    (tmp_path / "o.parquet.quarantine.jsonl").write_text("old\n")
    report, entries = _run([root], tmp_path)
    assert report.skipped == 0 and entries == [] and not (tmp_path / "o.parquet.quarantine.jsonl").exists()


# ---------------------------------------------------------------------------------------------
# Failures and interruptions leave nothing partial behind
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_or_interrupted_import_leaves_no_partial_output(tmp_path, monkeypatch, exc, workers):
    root = _tree_with_one_good_file(tmp_path)
    for i in range(3):
        (root / f"r{i}.json").write_text("\n".join(GOOD) + "\ngarbage\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "o.parquet").write_bytes(b"the previous import")
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(importer, "_spool_root", lambda out: str(spool))
    calls = []
    real_flush = importer.shutil.copyfileobj

    def failing_copy(*a, **k):  # fails in the writer after the first file's results arrived
        calls.append(1)
        if len(calls) == 2:
            raise exc
        return real_flush(*a, **k)

    monkeypatch.setattr(importer.shutil, "copyfileobj", failing_copy)
    with pytest.raises(type(exc)):
        import_tenset([root], out_dir / "o.parquet", workers=workers, progress=False)
    assert sorted(p.name for p in out_dir.iterdir()) == ["o.parquet"] and _partial_outputs(tmp_path) == []
    assert (out_dir / "o.parquet").read_bytes() == b"the previous import"
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_during_an_import_leaves_no_partial_output(tmp_path, workers):
    root = _tree_with_one_good_file(tmp_path)
    for i in range(4):
        (root / f"r{i}.json").write_text("\n".join(GOOD) + "\ngarbage\n")
    out_dir, spool = tmp_path / "out", tmp_path / "spool"
    out_dir.mkdir()
    spool.mkdir()
    # the first file parsed sends SIGTERM to the importing process (from a worker: its parent)
    code = textwrap.dedent(f"""
        import os, signal, sys
        from tensorcost.records import importer
        importer._spool_root = lambda out: {str(spool)!r}
        real = importer.parse_file
        main = os.getpid()
        def parse_file(args):
            result = real(args)
            os.kill(main, signal.SIGTERM)
            return result
        importer.parse_file = parse_file
        importer.import_tenset([{str(root)!r}], {str(out_dir / "o.parquet")!r}, workers={workers}, progress=False)
        print("finished")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 128 + signal.SIGTERM and "finished" not in proc.stdout, proc.stderr
    assert list(out_dir.iterdir()) == [] and list(spool.iterdir()) == []


def test_the_sigterm_handler_is_restored_after_an_import(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    _run([_tree_with_one_good_file(tmp_path)], tmp_path)
    assert signal.getsignal(signal.SIGTERM) is before


def test_parallel_import_quarantines_like_serial(tmp_path):
    root = _tree_with_one_good_file(tmp_path)
    for i in range(3):
        (root / f"r{i}.json").write_text("\n".join(GOOD[:4]) + f"\ngarbage {i}\n" + _variant(r__0=[2**53 + 1]) + "\n")
    (root / "empty.json").write_bytes(b"")
    results = []
    for workers in (1, 2):
        out = tmp_path / f"o{workers}.parquet"
        report = import_tenset([root], out, workers=workers, progress=False)
        q = out.with_name(out.name + ".quarantine.jsonl").read_text().splitlines()
        results.append((report.imported, report.skipped, report.bad_files, sorted(q), pq.read_table(out).sort_by("record_id")))
    assert results[0][:4] == results[1][:4] and results[0][4].equals(results[1][4])
    assert results[0][:3] == (5 + 3 * 5, 3, 1)


def test_an_earlier_quarantine_inside_the_input_directory_is_not_read_as_records(tmp_path):
    root = _tree_with_one_good_file(tmp_path)
    (root / "bad.json").write_text("garbage\n")
    for _ in range(2):  # the second import finds the first one's quarantine (a *.jsonl) under root
        report = import_tenset([root], root / "o.parquet", workers=1, progress=False)
        assert (report.imported, report.skipped, report.files) == (5, 1, 2)
