"""Differential fuzzer of the TenSet importer: the C scanner against the reference path, and the
whole importer on files of generated lines.

    nice -n 10 .venv/bin/python benchmarks/tenset_fuzz.py --lines 1000000

Every generated line is checked twice:

1. line by line: `_recscan.scan_record(line)` against the reference path (orjson + `parse_line`
   + the workload decode, `_reference_row`). If the scanner accepts a line, the reference path
   must accept it with bit-identical fields (floats compared by their bits, so -0.0 is not 0.0);
   any exception other than `MalformedRecord` / `orjson.JSONDecodeError` on either side, or an
   accepted row that Arrow cannot store, is a crash.
2. file by file: the generated lines are written to record files (about `--file-lines` each,
   sometimes with a UTF-8 BOM, CRLF endings or no final newline, beside odd directory entries: an
   empty file, a broken symlink, a directory named like a record file, a FIFO) and imported with
   `import_tenset` twice, scanner on and off. The import must not raise, must import exactly the
   lines the reference path accepts one by one (a line it accepts but the table lacks is a *lost
   line*), both tables must be identical, and no `*.tmp`, spool or other partial file may be left.

Why hypothesis and not atheris: the input is a grammar (JSON lines of a fixed shape), and the
interesting cases are deep inside it: a float spelling in the costs, a duplicate key inside a
step, an integer just past 2^53, nesting past a serializer's limit. Here the grammar is written
down (`Grammar`: values, boundary numbers, spellings, whitespace, key orders, wrong shapes) and
byte-level mutations go on top, so most generated lines get past the JSON parser and reach the
checks where the two paths could differ (about 30% are accepted by the scanner, 39% by the
reference path). atheris only mutates bytes guided by coverage, and coverage of a C extension
needs it rebuilt with clang's -fsanitize=fuzzer-no-link, a build other than the one we ship;
without that it sees only the Python side and spends its time on lines both paths reject at the
first byte. hypothesis is a pure-Python dev dependency, deterministic per seed, and the same
code runs in the pytest suite (tests/records/test_tenset_fuzz.py).

How hypothesis is used: it draws each line's *plan* (`line_plans`: a seed, how often a slot
takes an unusual value, how many byte mutations, which kind of line), and the grammar expands the
plan with a seeded `random.Random`. Drawing every token through hypothesis cost about 11 ms a
line here (a million lines: 3 hours); a plan costs about 0.2 ms. The benchmark runs in rounds of
`--round-examples` examples (lists of 16-64 plans) with fresh seeds, optionally in `--jobs`
processes.

Prints: lines tried, lines the scanner accepted, crashes, disagreements, lines lost, partial
outputs left, files imported, elapsed seconds; failing lines go to `--failures` (JSON lines).
Exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import shutil
import struct
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, fields
from pathlib import Path

import orjson
import pyarrow.parquet as pq
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from tensorcost.records import importer, tenset

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "tests" / "data" / "autoscheduler_logs"

# ----------------------------------------------------------------------------------------------
# The grammar of a TenSet line
# ----------------------------------------------------------------------------------------------

REAL = [json.loads(line) for f in sorted(LOGS.glob("*.json")) for line in f.open() if line.startswith("{")]
REAL_STEPS = [o["i"][1][1] for o in REAL]
REAL_WKEYS = sorted({o["i"][0][0] for o in REAL})
REAL_COSTS = [o["r"][0] for o in REAL]
STEP_CODES = ["SP", "AN", "PR", "RE", "FU", "CA", "CI", "CHR", "CHW", "CR", "FSP", "FFSP", "RF", "SA", "CP", "XX", ""]
TARGETS = ["llvm -keys=cpu -mcpu=core-avx2", "llvm -keys=cpu", "cuda -keys=cuda,gpu -max_num_threads=1024 -thread_warp_size=32",
           "cuda -model=t4", "llvm -model=platinum-8272 -mcpu=cascadelake", "   ", "", "\t", "llvm -mcpu=", "x -model=k80",
           "llvm -mcpu=\u00e9t\u00e9", "opencl", "llvm -mcpu=a/b c"]
OP_NAMES = ["matmul_add", "conv2d_layer", "dense", "vm_mod_fused_nn_conv2d_add", "softmax", "", "x", "\u00e9", "a\"b", "pool_max"]
NUMBER_LITERALS = [  # spellings that stress number parsing and re-printing
    "0", "-0", "-0.0", "0.0", "1", "-1", "1.0", "1.5", "1e5", "1E5", "1e+5", "1e-5", "1E-05", "8.75e-06", "0.000159777",
    "6.622993261252126e-06", "1.3398602334200351e-05", "0.1000", "100000000000000", "999999999999999", "1000000000000000",
    "9007199254740992", "9007199254740993", "9223372036854775807", "9223372036854775808", "18446744073709551615",
    "18446744073709551616", "-9223372036854775809", "1e308", "1.7976931348623157e308", "1.8e308", "1e309", "1e400", "1e-400",
    "2.2250738585072014e-308", "4.9e-324", "1.5e-320", "1" + "0" * 250 + "e99", "1" + "0" * 300, "0." + "0" * 70 + "1",
    "123456789012345678901234567890", "1.7976931348623158e+308", "2147483647", "2147483648", "-2147483648", "-2147483649",
    "01", "1.", ".5", "+1", "1e", "--1", "NaN", "Infinity", "-Infinity", "0x10", "1_000",
]
MUTATION_BYTES = b'[]{}",:0123456789.eE+- \t\r\n\\/ntulfase\x00\x01\x7f\xc3\xa9\xff\xed#u'
MUTATION_SNIPPETS = [b"[" * 300, b"[" * 1100, b"]" * 300, b"1e400", b"-0", b'{"a": 1, "a": 2}', b'"\\u0000"', b'"\\ud800"',
                     b"true", b"null", b'"x"', b"1.0", b"9007199254740993", b", ", b'"v": ""', b'"v": "v0.6"', b"\xef\xbb\xbf",
                     b'"\\u0069"', b"\r", b"\\", b'\\"']


class Raw(str):
    """A literal rendered verbatim (a number spelling, an invalid token)."""


class Obj(list):
    """A JSON object as a list of (key, value) pairs: key order and duplicate keys are the grammar's to choose."""


def _deep(depth: int) -> Raw:
    """A list nested `depth` deep, as text (rendering it recursively would hit Python's limit)."""
    return Raw("[" * depth + "0" + "]" * depth)


BOUNDARY_INTS = [0, -1, 1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**15 - 1, 10**15, -(10**15)]
SPECIAL_TEXTS = ["", "x", "auto_unroll_max_step$16", "A", "float32", "\u00e9", "a/b", 'q"', "b\\s", "\x00", "\x1f", "\x7f", "\U0001f600", "\ud800",
                 "\udc00x", " ", "\t", "\u2028", "{", "[1]"]


class Grammar:
    """Expands one line plan into a line. `odd` is the chance that a slot takes an unusual value
    (another type, a boundary, a spelling the scanner must decline); the plan's seed drives the
    rest, so a plan (and a failing line) replays exactly."""

    def __init__(self, seed: int, odd: float) -> None:
        self.r = random.Random(seed)
        self.odd = odd

    def is_odd(self, scale: float = 1.0) -> bool:
        return self.r.random() < self.odd * scale

    # -- values --------------------------------------------------------------------------------
    def int_(self) -> int:
        r = self.r
        k = r.randrange(6)
        if k < 3:
            return r.randrange(-3, 4097)
        if k == 3:
            return r.choice(BOUNDARY_INTS)
        bits = r.randrange(1, 72)
        return r.getrandbits(bits) * r.choice((1, -1))

    def float_(self) -> float:
        r = self.r
        k = r.randrange(6)
        if k < 3:
            return r.uniform(1e-6, 1e-2)
        if k == 3:
            return r.random() * 10.0 ** r.randrange(-320, 309)
        if k == 4:
            x = struct.unpack("<d", struct.pack("<Q", r.getrandbits(64)))[0]
            return x if math.isfinite(x) else 1.0
        return float(r.randrange(0, 10**r.randrange(1, 17)))

    def literal(self) -> Raw:
        return Raw(self.r.choice(NUMBER_LITERALS))

    def number(self):
        k = self.r.randrange(3)
        return self.int_() if k == 0 else self.float_() if k == 1 else self.literal()

    def text(self) -> str:
        r = self.r
        if r.randrange(2):
            return r.choice(SPECIAL_TEXTS)
        alphabet = r.choice(("abcxyz_$0189", "abc\"\\/\x00\x1f \t\u00e9\u4e2d\U0001f600\ud800"))
        return "".join(r.choice(alphabet) for _ in range(r.randrange(9)))

    def scalar(self):
        k = self.r.randrange(6)
        return self.number() if k < 2 else self.text() if k < 4 else self.r.choice((True, False, None))

    def value(self, depth: int = 0):
        k = self.r.randrange(5 if depth < 3 else 3)
        if k < 3:
            return self.scalar()
        if k == 3:
            return [self.value(depth + 1) for _ in range(self.r.randrange(4))]
        return Obj((self.text(), self.value(depth + 1)) for _ in range(self.r.randrange(3)))

    # -- the fields of a record ----------------------------------------------------------------
    def step(self):
        r = self.r
        if not self.is_odd():
            step = [r.choice(STEP_CODES[:13]), *(r.randrange(0, 64) for _ in range(r.randrange(1, 4)))]
            k = r.randrange(4)
            if k == 1:
                step.append([r.choice((1, 2, 4, 8, 16, 32)) for _ in range(r.randrange(5))])
            elif k == 2:
                step.append(r.choice(("auto_unroll_max_step$16", "auto_unroll_max_step$512", "x")))
            return step
        k = r.randrange(7)
        if k == 0:
            return [r.choice(STEP_CODES), self.scalar(), self.int_()]
        if k == 1:
            return self.value()
        if k == 2:
            return [r.choice(STEP_CODES), _deep(r.choice((3, 60, 61, 62, 63, 64, 65, 250, 253, 254, 255, 256, 300, 1000, 1021, 1022, 1030)))]
        if k == 3:
            return [r.choice(STEP_CODES), Obj([("a", 1), ("a", 2)]) if r.randrange(2) else Obj([("b", 1), ("a", [2])])]
        if k == 4:
            return [r.choice(STEP_CODES), self.float_()]
        if k == 5:
            return [r.choice(STEP_CODES), self.text()]
        return [r.choice(STEP_CODES), r.choice((True, False, None)), [], self.literal()]

    def steps(self):
        r = self.r
        if not self.is_odd() and r.randrange(2):
            steps = [list(s) for s in r.choice(REAL_STEPS)]
            for s in steps:  # perturb the split factors, as the benchmark generator does
                if s[0] == "SP" and isinstance(s[4], list):
                    s[4] = [r.choice((1, 2, 4, 8, 16)) for _ in s[4]]
            if self.is_odd(3):
                steps.insert(r.randrange(len(steps) + 1), self.step())
            return steps
        return [self.step() for _ in range(r.randrange(8))]

    def workload_key(self) -> str:
        r = self.r
        if not self.is_odd():
            if r.randrange(2):
                return r.choice(REAL_WKEYS)
            args = [r.choice((self.r.randrange(1, 2048), [r.randrange(1, 512) for _ in range(r.randrange(5))], "float32", "int8")) for _ in range(r.randrange(6))]
            return json.dumps([r.choice(OP_NAMES), *args], ensure_ascii=bool(r.randrange(2)))
        k = r.randrange(4)
        if k == 0:
            return r.choice(["not json", "[]", "{}", "[1]", "[\"x\", NaN]", "[\"x\", Infinity]", "[\"x\", -Infinity]", "[\"x\", 1e400]", "[\"\\ud800\"]",
                             "[\"x\", \"\\udc00\"]", "[\"x\", 18446744073709551617]", "\"x\"", "", " [\"a\"] ", "[\"a\"] x", "[\"\\u00e9\"]",
                             "[\"x\", 1.5, -0.0, 1e308]", "[\"x\", {\"a\": 1, \"a\": 2}]", "[\"\\u0000\"]"])
        if k == 1:
            d = r.choice((10, 62, 63, 64, 65, 66, 100, 500, 990, 995, 1000, 1023, 1030, 5000))
            return "[\"deep\", " + "[" * d + "]" * d + "]"
        if k == 2:
            return json.dumps([self.text(), *(self.value() for _ in range(r.randrange(3)))], ensure_ascii=False)
        return self.text()

    def target(self) -> str:
        return self.text() if self.is_odd() else self.r.choice(TARGETS)

    def costs(self) -> list:
        r = self.r
        if not self.is_odd():
            if r.randrange(2):
                return r.choice(REAL_COSTS)
            return [r.uniform(1e-6, 1e-2) for _ in range(r.randrange(1, 11))]
        k = r.randrange(6)
        if k == 0:
            return [self.number() for _ in range(r.randrange(5))]
        if k == 1:
            return [self.scalar() for _ in range(r.randrange(4))]
        if k == 2:
            return [1e-4] * r.choice((1023, 1024, 1025))
        if k == 3:
            return [r.uniform(1e-6, 1e-2), self.r.choice((True, 1, 2**53 + 1, 2**64, -0.0, 0, 1e308, 1.7976931348623157e308, Raw("1e-400"), Raw("-0")))]
        if k == 4:
            return [self.float_() for _ in range(r.randrange(1, 4))]
        return self.value() if r.randrange(2) else []

    def record(self) -> Obj:
        r = self.r
        task = [self.workload_key(), self.target()]
        if r.randrange(2):
            task.append([8, 64, 64, 0, 0, 0, 0, 0])
        if self.is_odd():
            task.extend(self.value() for _ in range(r.randrange(1, 4)))
        inp = [task, [[] if not self.is_odd() else self.value(), self.steps()]]
        error_no = 0 if r.randrange(4) else r.randrange(1, 9)
        if self.is_odd():
            error_no = r.choice((self.int_(), self.literal(), self.float_(), True, False, None, "0"))
        timestamp = r.randrange(1_500_000_000, 1_700_000_000) if r.randrange(4) else r.uniform(1.5e9, 1.7e9)
        if self.is_odd():
            timestamp = self.scalar() if r.randrange(2) else self.literal()
        res = [self.costs(), error_no, r.uniform(0.01, 2.0) if not self.is_odd() else self.value(), timestamp]
        if self.is_odd():
            res.extend(self.scalar() for _ in range(r.randrange(1, 3)))
        pairs = [("i", inp), ("r", res)]
        k = r.randrange(8)
        if k < 6:
            pairs.append(("v", r.choice(("v0.6", "v0.5", "v0.3", "v0.2"))))
        if self.is_odd():
            pairs.append(("v", r.choice(("", " ", "v0.\u00e9", "v\\0", "\x00", "v0.6\n", "\ud800")) if r.randrange(2) else self.scalar()))
        if self.is_odd(0.5):  # structure mutations: wrong shapes of "i" and "r", extra and duplicate keys
            k = r.randrange(7)
            if k == 0:
                pairs.append((r.choice(("extra", "i", "r", "v", "I", "", "\u0069")), self.scalar()))
            elif k == 1:
                pairs.pop(r.randrange(len(pairs)))
            elif k == 2:
                (inp if r.randrange(2) else inp[1]).append(self.scalar())
            elif k == 3:
                del task[r.randrange(2):]
            elif k == 4:
                del res[r.randrange(4):]
            elif k == 5:
                i = r.randrange(len(pairs))
                pairs[i] = (pairs[i][0], self.value())
            else:
                task[r.randrange(2)] = self.scalar()
        if self.is_odd():
            r.shuffle(pairs)
        return Obj(pairs)

    # -- spelling --------------------------------------------------------------------------------
    def render_str(self, s: str) -> bytes:
        r = self.r
        if self.is_odd(0.3):
            k = r.randrange(2)
            if k == 0:  # \u escapes for plain letters, \/ for slashes
                out = json.dumps(s, ensure_ascii=True).replace("/", "\\/")
                return "".join(f"\\u{ord(c):04x}" if c.isalpha() and c.isascii() and i % 2 else c for i, c in enumerate(out)).encode()
            return b'"' + s.encode("utf-8", "surrogatepass") + b'"'  # raw control characters, lone surrogates
        return json.dumps(s, ensure_ascii=self.ascii_only).encode("utf-8", "surrogatepass")

    def render_float(self, x: float) -> bytes:
        f = self.float_fmt
        if f == 1:
            return b"%.17g" % x
        if f == 2:
            return b"%.6e" % x
        if f == 3:
            return (b"%.9E" % x).replace(b"E-", b"E-0")
        return repr(x).encode()

    def render(self, v) -> bytes:
        if isinstance(v, Raw):
            return v.encode()
        if v is True:
            return b"true"
        if v is False:
            return b"false"
        if v is None:
            return b"null"
        if isinstance(v, int):
            return str(v).encode()
        if isinstance(v, float):
            return self.render_float(v)
        if isinstance(v, str):
            return self.render_str(v)
        if isinstance(v, Obj):
            return b"{" + self.comma.join(self.render_str(k) + self.colon + self.render(x) for k, x in v) + b"}"
        return b"[" + self.comma.join(self.render(x) for x in v) + b"]"

    def mutate(self, line: bytes, n: int) -> bytes:
        r = self.r
        b = bytearray(line)
        for _ in range(n):
            pos = r.randrange(len(b) + 1)
            op = r.randrange(7)
            if op == 0 and pos < len(b):
                del b[pos]
            elif op == 1:
                b.insert(pos, r.choice(MUTATION_BYTES))
            elif op == 2 and pos < len(b):
                b[pos] = r.choice(MUTATION_BYTES)
            elif op == 3:
                b[pos:pos] = r.choice(MUTATION_SNIPPETS)
            elif op == 4:
                del b[pos:]
            elif op == 5 and pos < len(b):
                b[pos:pos] = b[pos:pos + r.randrange(1, 40)]
            else:
                b[pos:pos] = b" "
        return bytes(b)

    def line(self, kind: int, mutations: int) -> bytes:
        r = self.r
        if kind == 0:
            return r.choice([b"", b"# comment", b"   ", b"\t# indented comment", b"[1, 2]", b"garbage", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf",
                             b"null", b"{}", b" {\"i\": 1}", b"#\xff\xfe not UTF-8", b"\x0c", b"\r"])
        plain = kind < 12 or not self.is_odd(3)
        self.comma = b", " if plain else r.choice((b", ", b",", b" , ", b",\t", b", \r"))
        self.colon = b": " if plain else r.choice((b": ", b":", b" :\t"))
        self.ascii_only = plain or bool(r.randrange(2))
        self.float_fmt = 0 if plain else r.randrange(4)
        line = self.render(self.record())
        if self.is_odd():
            line = r.choice((b"", b" ", b"\t", b"  \r")) + line + r.choice((b"", b" ", b"\r", b" x", b"\r\r"))
        return self.mutate(line, mutations) if mutations else line


# A line plan, as hypothesis draws it: (seed, how odd, byte mutations, line kind). Drawing every
# token through hypothesis cost about 11 ms a line here (1M lines: 3 hours); a plan of four
# choices costs about 0.2 ms, and the grammar expands it with a seeded random.Random.
line_plans = st.tuples(st.integers(0, 2**64 - 1), st.sampled_from([0.0, 0.0, 0.02, 0.1, 0.3, 1.0]),
                       st.sampled_from([0, 0, 0, 0, 0, 1, 1, 2, 3]), st.integers(0, 31))


def expand(plan, salt: int = 0) -> bytes:
    """The line of a plan. hypothesis repeats plans often (its integers favour 0 and 2^64-1: about
    one plan in six was new), so the fuzzer salts each plan's seed with the run's seed and the
    line's number: the plans still choose the grammar's branches, the salt makes the values new."""
    seed, odd, mutations, kind = plan
    return Grammar((seed ^ (salt * 0x9E3779B97F4A7C15)) & (2**64 - 1), odd).line(kind, mutations)


# ----------------------------------------------------------------------------------------------
# The checks
# ----------------------------------------------------------------------------------------------


def exact(v):
    """A value with every float replaced by its bits: equality then means bit-identical fields."""
    if isinstance(v, float):
        return ("f", struct.pack("<d", v))
    if isinstance(v, (list, tuple)):
        return tuple(exact(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, exact(x)) for k, x in v.items()))
    return (type(v).__name__, v)


REJECTED = (tenset.MalformedRecord, orjson.JSONDecodeError)


@dataclass
class Stats:
    lines: int = 0
    scanner_accepted: int = 0
    reference_accepted: int = 0
    crashes: int = 0
    disagreements: int = 0
    lost: int = 0
    partial_outputs: int = 0
    files: int = 0
    imports: int = 0
    import_crashes: int = 0
    failures: list = field(default_factory=list)

    def merge(self, other: Stats) -> None:
        for f in fields(self):
            if f.name == "failures":
                for x in other.failures:
                    self.fail_record(x)
            else:
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def fail_record(self, x: dict) -> None:
        if len(self.failures) < 400 and sum(1 for y in self.failures if y["kind"] == x["kind"]) < 20:
            self.failures.append(x)

    def fail(self, kind: str, line: bytes | None, detail: str) -> None:
        """Keep a sample of the failures: the first 20 of each kind, 400 in all."""
        if len(self.failures) < 400 and sum(1 for x in self.failures if x["kind"] == kind) < 20:
            self.failures.append({"kind": kind, "line": None if line is None else line[:2000].decode("utf-8", "backslashreplace"), "detail": detail[-2000:]})


def _split_lines(data: bytes) -> list[bytes]:
    """The lines as the importer reads them (binary readline: split after each b'\\n')."""
    out = data.split(b"\n")
    lines = [x + b"\n" for x in out[:-1]]
    if out[-1]:
        lines.append(out[-1])
    return lines


def _is_record(line: bytes) -> bytes | None:
    """The bytes the reference path parses, or None for a blank or comment line."""
    if line[:1] == b"{":
        return line
    stripped = line.strip()
    return None if not stripped or stripped[:1] == b"#" else stripped


def _scanned(fields_):
    key, trace, costs, mean, error_no, timestamp, version = fields_
    wkey, target = orjson.loads(b"[" + key + b"]")
    return wkey, target, trace, costs, mean, error_no, timestamp, version.decode() if version is not None else "v0.2"


def _reference_fields(line: bytes):
    task, steps, costs, error_no, timestamp, version, mean = tenset.parse_line(orjson.loads(line))
    return (task[0], task[1], orjson.dumps(steps), costs if mean is not None else [], mean, error_no,
            float(timestamp) if type(timestamp) in (int, float) else 0.0, version)


class ReferenceOracle:
    """Whether the reference path, alone on a line, imports it: parse, workload decode and Arrow
    conversion (the oracle of 'an acceptable line'). Rows are converted to Arrow a batch at a
    time; a batch that fails is converted row by row to find the lines that crash it."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.cols = tenset._Columns()
        self.owners: list[tuple[list, int, bytes]] = []

    def accepts(self, path: Path, line: bytes, oks: list, index: int) -> bool | None:
        try:
            row = tenset._reference_row(path, line, self.cols, None, {}, {})
        except REJECTED:
            return False
        except Exception:  # noqa: BLE001 - a crash is what we count
            self.stats.crashes += 1
            self.stats.fail("crash: reference path", line, traceback.format_exc())
            return None
        self.cols.rows.append(("x", *row))
        self.owners.append((oks, index, line))
        if len(self.owners) >= 1000:
            self.flush()
        return True

    def flush(self) -> None:
        cols, owners = self.cols, self.owners
        self.cols, self.owners = tenset._Columns(), []
        rows = cols.rows
        try:
            cols.to_batch()
        except Exception:  # noqa: BLE001 - some row(s) crash the conversion: find them below
            ok = False
        else:
            ok = True
        if ok:
            return
        for row, (oks, index, line) in zip(rows, owners):
            one = tenset._Columns()
            one.workloads = [cols.workloads[row[1]]]
            one.rows = [(row[0], 0, *row[2:])]
            try:
                one.to_batch()
            except Exception:  # noqa: BLE001
                self.stats.crashes += 1
                self.stats.fail("crash: Arrow conversion of an accepted row", line, traceback.format_exc())
                oks[index] = None


def check_line(line: bytes, stats: Stats, oracle: ReferenceOracle, oks: list, path: Path = Path("fuzz.json")) -> None:
    """The scanner against the reference path on one line as the importer reads it from a file
    (with its newline); appends to `oks` whether the line is acceptable (None: a crash)."""
    stats.lines += 1
    index = len(oks)
    rec = _is_record(line)
    if rec is None:
        oks.append(False)
        return
    fields_ = None
    if rec[:1] == b"{" and tenset.scan_record is not None:
        try:
            fields_ = tenset.scan_record(rec)
        except Exception:  # noqa: BLE001
            stats.crashes += 1
            stats.fail("crash: scanner", rec, traceback.format_exc())
    oks.append(None)
    oks[index] = oracle.accepts(path, rec, oks, index)
    if fields_ is None:
        return
    stats.scanner_accepted += 1
    try:
        ref = _reference_fields(rec)
    except REJECTED as exc:
        stats.disagreements += 1
        stats.fail("scanner accepted, reference rejected", rec, str(exc))
        return
    except Exception:  # noqa: BLE001
        return  # counted as a crash by the oracle
    try:
        ours = _scanned(fields_)
    except Exception:  # noqa: BLE001
        stats.crashes += 1
        stats.fail("crash: decoding the scanner's key", rec, traceback.format_exc())
        return
    if exact(ours) != exact(ref):
        stats.disagreements += 1
        stats.fail("different fields", rec, f"scanner {ours!r}\nreference {ref!r}")


def _table_rows(path: Path) -> dict:
    t = pq.read_table(path)
    return {r["record_id"]: exact(r) for r in t.to_pylist()}


def _leftovers(root: Path, allowed: set) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name not in allowed and not p.is_dir())


def _odd_entries(d: Path, kind: int) -> None:
    """Directory entries that are not record files the importer can read."""
    if kind == 0:
        (d / "empty.json").write_bytes(b"")
    elif kind == 1:
        (d / "broken.json").symlink_to(d / "does-not-exist.json")
    elif kind == 2:
        (d / "dir.json").mkdir()
    elif kind == 3 and hasattr(os, "mkfifo"):
        os.mkfifo(d / "fifo.json")
    elif kind == 4:
        (d / os.fsdecode(b"bad-name-\xff.json")).write_bytes(b"# only a comment\n")


def check_files(lines: list[bytes], oks: list, stats: Stats, workdir: Path, variant: int) -> None:
    """Import the lines as record files, scanner on and off: no crash, no lost or extra line,
    identical tables, nothing partial left behind."""
    src = workdir / "src"
    shutil.rmtree(src, ignore_errors=True)
    (src / "measure_records" / "t4").mkdir(parents=True)
    half = len(lines) // 2
    parts = [(src / "a.json", lines[:half], oks[:half]), (src / "measure_records" / "t4" / "b.json", lines[half:], oks[half:])]
    expected = {}
    for n_file, (f, ls, ok) in enumerate(parts):
        # a BOM, CRLF line ends, no final newline: none changes which lines are acceptable
        data = b"".join(ls)
        if variant % 7 == 1 and n_file == 0:
            data = b"\xef\xbb\xbf" + data
        elif variant % 7 == 2:
            data = data.replace(b"\n", b"\r\n")
        elif variant % 7 == 3 and data.endswith(b"\n"):
            data = data[:-1]
        f.write_bytes(data)
        got = _split_lines(data)
        if got and got[0][:3] == b"\xef\xbb\xbf":  # the importer drops a BOM before the first line
            rec = _is_record(got[0][3:])
            scratch = [None]
            oracle = ReferenceOracle(Stats())
            scratch[0] = False if rec is None else oracle.accepts(f, rec, scratch, 0)
            oracle.flush()
            ok = scratch + ok[1:]
        tag = tenset._sha(str(f), 12)
        for lineno, good in enumerate(ok, 1):
            if good:
                expected[f"{tag}{lineno:08x}"] = ls[lineno - 1]
    stats.files += 2
    if variant % 5 == 4:
        _odd_entries(src, (variant // 5) % 5)
    spool = workdir / "spool"
    spool.mkdir(exist_ok=True)
    tables = {}
    with _patched_spool(spool):
        for fast in (True, False):
            out_dir = workdir / f"out-{int(fast)}"
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.mkdir()
            out = out_dir / "o.parquet"
            stats.imports += 1
            try:
                importer.import_tenset([src], out, workers=1, progress=False, fast=fast)
                tables[fast] = _table_rows(out)
            except Exception:  # noqa: BLE001
                stats.import_crashes += 1
                stats.fail(f"crash: import_tenset(fast={fast})", None, traceback.format_exc())
                tables[fast] = {}
            left = _leftovers(out_dir, {"o.parquet", "o.parquet.quarantine.jsonl"}) + _leftovers(spool, set())
            if left:
                stats.partial_outputs += len(left)
                stats.fail("partial output left", None, repr(left))
            shutil.rmtree(spool, ignore_errors=True)
            spool.mkdir()
    fast_rows, ref_rows = tables[True], tables[False]
    for rid, line in expected.items():
        if rid not in fast_rows or rid not in ref_rows:
            stats.lost += 1
            stats.fail("lost line", line, rid)
    for rid in set(fast_rows) | set(ref_rows):
        if rid not in expected:
            stats.disagreements += 1
            stats.fail("imported a line the reference path alone rejects", None, rid)
        elif rid in fast_rows and rid in ref_rows and fast_rows[rid] != ref_rows[rid]:
            stats.disagreements += 1
            stats.fail("fast and reference imports differ", expected[rid], f"{fast_rows[rid]!r}\n{ref_rows[rid]!r}")


@contextlib.contextmanager
def _patched_spool(spool: Path):
    old = importer._spool_root
    importer._spool_root = lambda out: str(spool)
    try:
        yield
    finally:
        importer._spool_root = old


class Fuzzer:
    """Feeds generated lines through check_line, and every `file_lines` of them through check_files."""

    def __init__(self, workdir: Path, file_lines: int, bar=None, seed: int = 0) -> None:
        self.salt = seed << 40
        self.stats = Stats()
        self.oracle = ReferenceOracle(self.stats)
        self.workdir = workdir
        self.file_lines = file_lines
        self.bar = bar
        self.pending: list[bytes] = []
        self.oks: list = []
        self.variant = 0

    def add(self, plans: list) -> None:
        for plan in plans:
            self.salt += 1
            for line in _split_lines(expand(plan, self.salt) + b"\n"):  # a mutation may have put a newline inside
                check_line(line, self.stats, self.oracle, self.oks)
                self.pending.append(line)
        if self.bar is not None:
            self.bar.update(len(plans))
        if len(self.pending) >= self.file_lines:
            self.flush()

    def flush(self) -> None:
        self.oracle.flush()
        self.stats.reference_accepted += sum(1 for ok in self.oks if ok)
        if self.pending:
            check_files(self.pending, self.oks, self.stats, self.workdir, self.variant)
            self.variant += 1
        self.pending, self.oks = [], []


def fuzz(n_lines: int, seed: int, workdir: Path, file_lines: int = 2000, round_examples: int = 200, bar=None) -> Stats:
    """Generate `n_lines` lines with hypothesis (rounds of fresh seeds) and check them all."""
    fuzzer = Fuzzer(workdir, file_lines, bar, seed)
    generated = [0]

    @settings(max_examples=round_examples, database=None, deadline=None, derandomize=False, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @given(st.lists(line_plans, min_size=16, max_size=64))
    def one(lines):
        if generated[0] >= n_lines:
            return
        lines = lines[: n_lines - generated[0]]
        generated[0] += len(lines)
        fuzzer.add(lines)

    # hypothesis caches what it learns under ./.hypothesis: keep that in the work directory
    set_hypothesis_home_dir(workdir / ".hypothesis")
    try:
        round_no = 0
        while generated[0] < n_lines:
            hseed(seed * 1_000_003 + round_no)(one)()
            round_no += 1
    finally:
        set_hypothesis_home_dir(None)
    fuzzer.flush()
    return fuzzer.stats


def _worker(args) -> Stats:
    n, seed, workdir, file_lines, round_examples = args
    Path(workdir).mkdir(parents=True, exist_ok=True)
    return fuzz(n, seed, Path(workdir), file_lines, round_examples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000, help="lines to generate (a mutation may split one in two: lines_tried counts the lines as read)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="processes, each fuzzing its share with its own seeds")
    ap.add_argument("--file-lines", type=int, default=2000, help="lines per importer run")
    ap.add_argument("--round-examples", type=int, default=200, help="hypothesis examples per round (a fresh seed each round)")
    ap.add_argument("--failures", type=Path, default=Path("tenset_fuzz_failures.jsonl"))
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    from tqdm import tqdm

    scanner = "on" if tenset.scan_record is not None else "NOT BUILT (reference path only)"
    print(f"tensorcost {tenset.__file__}; C scanner {scanner}", flush=True)
    t0 = time.perf_counter()
    stats = Stats()
    with tempfile.TemporaryDirectory(prefix="tenset-fuzz-", dir=args.workdir) as tmp:
        if args.jobs <= 1:
            with tqdm(total=args.lines, unit="line", smoothing=0.05, mininterval=2) as bar:
                stats = fuzz(args.lines, args.seed, Path(tmp), args.file_lines, args.round_examples, bar=bar)
        else:
            import multiprocessing as mp

            chunk = 20_000
            jobs = [(min(chunk, args.lines - start), args.seed * 7919 + start // chunk, os.path.join(tmp, f"w{start // chunk}"), args.file_lines,
                     args.round_examples) for start in range(0, args.lines, chunk)]
            with mp.get_context("fork").Pool(args.jobs) as pool, tqdm(total=args.lines, unit="line", smoothing=0.05, mininterval=2) as bar:
                for (n, *_), part in zip(jobs, pool.imap(_worker, jobs)):
                    stats.merge(part)
                    bar.update(n)
    dt = time.perf_counter() - t0
    with open(args.failures, "w") as f:
        f.writelines(json.dumps(x) + "\n" for x in stats.failures)
    summary = {"lines_tried": stats.lines, "scanner_accepted": stats.scanner_accepted, "reference_accepted": stats.reference_accepted,
               "crashes": stats.crashes + stats.import_crashes, "line_crashes": stats.crashes, "import_crashes": stats.import_crashes,
               "disagreements": stats.disagreements, "lines_lost": stats.lost, "partial_outputs_left": stats.partial_outputs,
               "files_imported": stats.files, "imports": stats.imports, "elapsed_s": round(dt, 1)}
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    print(json.dumps(summary))
    if stats.failures:
        kinds = {}
        for x in stats.failures:
            kinds[x["kind"]] = kinds.get(x["kind"], 0) + 1
        print(f"first {len(stats.failures)} failures by kind (in {args.failures}): {kinds}")
    sys.exit(1 if (stats.crashes or stats.import_crashes or stats.disagreements or stats.lost or stats.partial_outputs) else 0)


if __name__ == "__main__":
    main()
