"""Fuzz of the model loaders (issue 28, item 9): many mutated copies of a small real model of each
family, loaded and asked to predict by a long-lived worker process (one process a copy, as the
robustness audit does, would take hours for 10,000), which the fuzzer restarts when a copy kills it.

    .venv/bin/python benchmarks/loader_fuzz.py --copies 10000 --out docs/results/loader-fuzz.json

Families: LightGBM (text model), TVM's XGBoost (JSON), the attention model (torch weights, loaded
with weights_only). Mutations of one file of the copy: bit flips, truncation, random bytes
inserted, a line deleted / duplicated / swapped, a number replaced by an absurd one. Two modes,
half the copies each:

- `hashed`: the copy's metadata keeps the original file hashes: every mutation must be refused
  (loaded = accepted-and-wrong, unless the predictions are identical: benign);
- `rehashed`: the metadata's hashes are recomputed after the edit (what a careful attacker or a
  tool that rewrote the file would leave): the family's own structure checks are what stands
  between the file and the library's parser. Loaded copies may predict differently (the file is
  another valid model); they must not crash or hang.

Outcomes per copy: refused (a one-line UserError), benign (loads, identical predictions), loaded
(rehashed mode, loads, other predictions), wrong (hashed mode, loads, other predictions), error
(any other exception: a traceback), crash (the worker died: a signal), hang (no answer within
--timeout). Exit status 1 when anything crashed, hung, errored or was wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent / "tests")]

FAMILIES = {"lightgbm": "model.txt", "tvm_xgb": "xgb_model.json", "attention": "weights.pt"}
ABSURD = [b"0", b"-1", b"1e308", b"-1e308", b"nan", b"inf", b"9223372036854775807", b"1000000000", b"4294967297", b"0.5", b"-0", b"99999999"]


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random edit of `data`: (what, new bytes)."""
    n = len(data)
    op = rng.choice(["flip", "flip", "truncate", "insert", "line_del", "line_dup", "line_swap", "number", "number"])
    if op == "flip" and n:
        b = bytearray(data)
        k = rng.choice([1, 1, 2, 4, 16])
        at = sorted(rng.randrange(n) for _ in range(k))
        for p in at:
            b[p] ^= 1 << rng.randrange(8)
        return f"{k} bit flip(s) at {at[:4]}", bytes(b)
    if op == "truncate":
        cut = rng.randrange(n + 1)
        return f"truncated to {cut}/{n}", data[:cut]
    if op == "insert":
        at = rng.randrange(n + 1)
        return f"{8} random bytes at {at}", data[:at] + bytes(rng.randrange(256) for _ in range(8)) + data[at:]
    lines = data.split(b"\n")
    if op.startswith("line") and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        if op == "line_del":
            return f"line {i} deleted", b"\n".join(lines[:i] + lines[i + 1:])
        if op == "line_dup":
            return f"line {i} duplicated", b"\n".join(lines[:i + 1] + lines[i:])
        lines[i], lines[j] = lines[j], lines[i]
        return f"lines {i} and {j} swapped", b"\n".join(lines)
    nums = list(re.finditer(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?", data[:200_000]))
    if nums:
        m = rng.choice(nums)
        v = rng.choice(ABSURD)
        return f"number at {m.start()} -> {v.decode()}", data[:m.start()] + v + data[m.end():]
    return "1 bit flip", bytes([data[0] ^ 1]) + data[1:] if n else b"x"


# -- the worker: loads copies until told to stop ------------------------------------------------

def worker(timeout: float) -> None:
    import signal

    import numpy as np

    import robustness_audit as ra
    from tensorcost.errors import UserError
    from tensorcost.models import load_model

    tables = {f: ra.predict_table(f) for f in FAMILIES}

    def on_alarm(*_):
        raise TimeoutError

    signal.signal(signal.SIGALRM, on_alarm)
    # answers go on a private copy of stdout; whatever the libraries print (C-level warnings on fd
    # 1) goes to stderr, so it cannot be read as an answer
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    print("ready", file=answers, flush=True)
    for line in sys.stdin:
        directory, family = line.rstrip("\n").split("\t")
        signal.alarm(max(1, int(timeout)))
        try:
            p = np.asarray(load_model(directory).predict(tables[family]), dtype=np.float64)
            out = {"status": "loaded", "pred": [repr(float(v)) for v in p.ravel()], "shape": list(p.shape)}
        except UserError as exc:
            msg = str(exc)
            out = {"status": "refused" if "\n" not in msg else "error", "why": msg[:300]}
        except TimeoutError:
            out = {"status": "hang", "why": f"over {timeout:g} s"}
        except Exception as exc:  # noqa: BLE001  (what the fuzz is looking for)
            out = {"status": "error", "why": f"{type(exc).__name__}: {str(exc)[:300]}"}
        finally:
            signal.alarm(0)
        print(json.dumps(out), file=answers, flush=True)


class Worker:
    def __init__(self, timeout: float):
        self.timeout = timeout
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", "--timeout", str(self.timeout)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        assert self.proc.stdout.readline().strip() == "ready"

    def ask(self, directory: Path, family: str) -> dict:
        import select

        try:
            self.proc.stdin.write(f"{directory}\t{family}\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout + 15)
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        # no answer: the copy killed the worker (a signal) or hung it past the alarm
        self.proc.kill()
        rc = self.proc.wait()
        self.start()
        return {"status": "crash" if rc < 0 and ready else "hang", "why": f"worker exit {rc}"}

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=10_000, help="mutated copies in all (split evenly over families and modes)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds a copy may take to load and predict")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.timeout)
        return 0
    import numpy as np
    from tqdm import tqdm

    import robustness_audit as ra

    from tensorcost.models.base import seal_metadata

    rng = random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="tensorcost-fuzz-"))
    w = Worker(a.timeout)
    counts: dict = {}
    cases: list = []
    t0 = time.time()
    try:
        jobs = [(f, mode) for f in a.families for mode in ("hashed", "rehashed")]
        per = -(-a.copies // len(jobs))
        bar = tqdm(total=per * len(jobs), desc="loader fuzz", unit="copy")
        for family, mode in jobs:
            base = work / f"{family}-intact"
            ra.train(family, base)
            ref = w.ask(base, family)
            assert ref["status"] == "loaded", ref
            ref_pred = np.array([float(v) for v in ref["pred"]])
            files = [FAMILIES[family], "metadata.json"] if mode == "hashed" else [FAMILIES[family]]
            for i in range(per):
                copy = work / "copy"
                shutil.rmtree(copy, ignore_errors=True)
                shutil.copytree(base, copy)
                name = rng.choice(files)
                what, new = mutate((base / name).read_bytes(), rng)
                (copy / name).write_bytes(new)
                if mode == "rehashed":  # the hash recomputed after the edit: the structure checks are what is left
                    meta = json.loads((copy / "metadata.json").read_text())
                    meta["files_sha256"][name] = _sha256(copy / name)
                    (copy / "metadata.json").write_text(json.dumps(meta))
                    seal_metadata(copy)  # and the metadata's own digest
                r = w.ask(copy, family)
                status = r["status"]
                if status == "loaded":
                    pred = np.array([float(v) for v in r["pred"]])
                    same = pred.shape == ref_pred.shape and np.all(np.isfinite(pred)) and np.allclose(pred, ref_pred, rtol=1e-6, atol=1e-9)
                    if same:
                        status = "benign"
                    elif mode == "hashed":
                        status = "wrong"
                    elif not np.all(np.isfinite(pred)):
                        status = "loaded (non-finite scores)"
                key = (family, mode, status)
                counts[key] = counts.get(key, 0) + 1
                if status not in ("refused", "benign", "loaded"):
                    cases.append({"family": family, "mode": mode, "file": name, "mutation": what, "outcome": status, "why": r.get("why", "")})
                bar.update(1)
        bar.close()
    finally:
        w.close()
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.time() - t0
    rows = {}
    for (family, mode, status), n in sorted(counts.items()):
        rows.setdefault(f"{family} / {mode}", {})[status] = n
    print(f"| family / mode | copies | refused | benign | loaded (another valid model) | wrong | error | crash | hang |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, r in rows.items():
        print(f"| {k} | {sum(r.values())} | {r.get('refused', 0)} | {r.get('benign', 0)} | {r.get('loaded', 0) + r.get('loaded (non-finite scores)', 0)} | "
              f"{r.get('wrong', 0)} | {r.get('error', 0)} | {r.get('crash', 0)} | {r.get('hang', 0)} |")
    bad = [c for c in cases if c["outcome"] in ("wrong", "error", "crash", "hang")]
    print(f"{sum(counts.values())} copies in {seconds:.0f} s; {len(bad)} crash/hang/error/wrong")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"copies": sum(counts.values()), "seconds": round(seconds, 1), "seed": a.seed, "rows": rows, "cases": cases[:200]}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
