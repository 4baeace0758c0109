"""A short run of the importer's differential fuzzer (tests/tenset_fuzz.py; benchmarks/tenset_fuzz.py runs a
million lines): for every generated line the C scanner accepts, the reference path accepts it with
bit-identical fields; the whole importer, scanner on and off, on files of the generated lines
never crashes, never loses an acceptable line, gives identical tables and leaves nothing partial."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("hypothesis")



def _fuzz_module():
    import tenset_fuzz  # the test-support module (tests/ is on sys.path)

    return tenset_fuzz


@pytest.mark.timeout(120)
def test_a_short_fuzz_run_finds_no_crash_disagreement_or_lost_line(tmp_path):
    fz = _fuzz_module()
    stats = fz.fuzz(4000, seed=17, workdir=tmp_path, file_lines=1000)
    failures = json.dumps(stats.failures[:5], indent=1)
    assert (stats.crashes, stats.import_crashes, stats.disagreements, stats.lost, stats.partial_outputs) == (0, 0, 0, 0, 0), failures
    assert stats.lines >= 4000 and stats.imports >= 8
    # both sides of the contract were exercised: lines the scanner takes, lines only the reference path takes
    assert stats.scanner_accepted > 500 and stats.reference_accepted - stats.scanner_accepted > 100


def test_the_fuzzer_catches_a_scanner_that_disagrees(tmp_path, monkeypatch):
    """The harness itself: a scanner that misreports one field is caught, line by line and in the import."""
    fz = _fuzz_module()
    real = fz.tenset.scan_record
    if real is None:
        pytest.skip("C extension not built")

    def off_by_one(line):
        fields = real(line)
        if fields is None:
            return None
        key, trace, costs, mean, error_no, timestamp, version = fields
        return key, trace, costs, mean, error_no, timestamp + 1.0, version

    monkeypatch.setattr(fz.tenset, "scan_record", off_by_one)
    stats = fz.fuzz(300, seed=3, workdir=tmp_path, file_lines=300)
    kinds = {f["kind"] for f in stats.failures}
    assert stats.disagreements > 0 and {"different fields", "fast and reference imports differ"} <= kinds


def test_the_grammar_is_deterministic_per_plan():
    fz = _fuzz_module()
    plan = (12345, 0.1, 1, 20)
    assert fz.expand(plan, 7) == fz.expand(plan, 7) != fz.expand(plan, 8)
