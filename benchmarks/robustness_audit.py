"""Robustness audit of the registry / model / validation / params side (issue 17): every check
feeds real components (real model libraries, a real SQLite MLflow store, the real Great
Expectations suites, the real CLI) damaged inputs and counts what happened. The importer side
is measured by `benchmarks/tenset_fuzz.py` (docs/results/importer-robustness.md).

    nice -n 10 .venv/bin/python benchmarks/robustness_audit.py --out /tmp/robustness.json
    .venv/bin/python benchmarks/robustness_audit.py --quick          # smoke run, under a minute

Checks (one table row each):

- `model artifacts: <family>` (lightgbm, tvm_xgb, attention, random): a tiny model of the family
  is trained on a small real feature table and saved; N mutated copies (truncations, byte flips,
  deleted / duplicated lines, edited numbers, structured metadata edits incl. absurd sizes,
  deleted / added files) are each loaded in a separate `python -c` process with
  `tensorcost.models.load_model(dir)` and a prediction on a small table, under a timeout and a
  memory limit. Outcomes: refused (exit 2, one `error:` line: a `UserError` such as
  `ModelFormatError`), benign (loads, predictions identical to the intact model's), wrong (loads,
  predictions differ or are not finite: accepted damage; a local path has no hash, see notes),
  crash (killed by a signal, a traceback, a multi-line error, or a hang past the timeout).
- `registry: tampered artifacts`: a LightGBM model registered in a fresh SQLite store; the
  stored artifact files are tampered with in place and `registry.load_by_alias` runs in a
  separate process: every tampering must be refused by the hash check (`ArtifactIntegrityError`).
  The untampered store must load (a control, not counted).
- `promotion gates: injected failures`: each `MlflowClient` method promote / rollback call raises
  (on its 1st, 2nd or every call; an `MlflowException` or an `OSError`) while a worse candidate,
  a better candidate, or a rollback is attempted on a copy of a prepared store. A gate held when
  the champion is where it must be (unchanged after an error; a worse candidate never champion)
  and the history replays to the alias (what rollbacks rely on).
- `registry: concurrent first use`: K processes register and promote on a brand-new SQLite store
  at once; failures counted, then the store must hold K promotions as one chain and load.
- `params.yaml: bad edits`: bad edits of a copy of params.yaml, each run through
  `python -m tensorcost.cli stage records --target host` (loads and validates params first; with
  good params it stops at the missing host records): exit 2 with one stderr line naming
  params.yaml = refused; a traceback = crash; anything else = accepted (wrong).
- `validation: records suite` / `validation: features suite`: small real records / featurized
  tables with one defect each through `validate_records` / `validate_features` (GX): caught when
  the suite fails; a clean control must pass (a false alarm counts as wrong).

Prints a Markdown table; `--out` writes it as JSON with every non-refused case in detail.
Exit status 1 when anything crashed or was wrongly accepted (benign loads are fine).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import hashlib
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
TESTS = REPO / "tests"
for _p in (str(TESTS), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

PY = sys.executable
TARGET = "auditcpu-1c.avx2-t1"  # a well-formed target id (registry names are checked, not looked up)
FAMILY_LIST = ["lightgbm", "tvm_xgb", "attention", "random"]
NAMES = ["f0", "f1", "f2"]
ATT = {"epochs": 1, "d_model": 8, "n_heads": 2, "n_layers": 1, "max_len": 8, "threads": 1, "dropout": 0.0}
MEM_LIMIT = 6 << 30  # address space of each loader process: an absurd allocation fails instead of swapping


@dataclass
class Row:
    check: str
    tried: int = 0
    crashes: int = 0
    wrong: int = 0
    refused: int = 0
    other: int = 0  # benign loads, held gates that succeeded, clean controls ...
    seconds: float = 0.0
    command: str = ""
    notes: str = ""
    details: list = field(default_factory=list)

    def count(self, case: str, status: str, why: str) -> None:
        """One input's outcome: refused, benign (counted as other), wrong, or anything else = a crash;
        every outcome but a refusal is kept in `details`."""
        self.tried += 1
        if status == "refused":
            self.refused += 1
            return
        if status == "benign":
            self.other += 1
        elif status == "wrong":
            self.wrong += 1
        else:
            self.crashes += 1
        self.details.append({"case": case, "outcome": status, "why": why})


# -- small real tables (tests/helpers.py, tests/conftest.py builders) -------------------------------

def _rows(n_tasks=3, per_task=10, seed=0):
    from helpers import record_row as _record_row

    rng = np.random.default_rng(seed)
    return [_record_row(i, target="testcpu-1c.avx2-t1", task_id=f"{t:016x}", latency=float(1e-4 * (1 + rng.random() * 9)))
            for t in range(n_tasks) for i in range(per_task)]


def flat_table(n=90, seed=0):
    from helpers import feature_table

    rng = np.random.default_rng(seed)
    x = rng.random((n, len(NAMES))).astype(np.float32)
    return feature_table(x, np.repeat(["a", "b", "c"], n // 3), 1e-3 * (1 + x[:, 0] + 0.3 * x[:, 1]))


def ms_table(n=60, seed=0):
    from tensorcost.features.metaschedule import MS_FEATURE_DIM

    t = flat_table(n, seed)
    rng = np.random.default_rng(seed + 100)
    ms = [rng.random((int(rng.integers(1, 4)), MS_FEATURE_DIM)).astype(np.float32) for _ in range(n)]
    t.ms_features = ms
    return t


def token_table(seed=0):
    from tensorcost.features import featurize_records
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES
    from tensorcost.records import to_table

    return featurize_records(to_table(_rows(2, 8, seed)), [1.0] * len(HARDWARE_FEATURE_NAMES), HARDWARE_FEATURE_NAMES, slot="t")


def predict_table(family: str):
    """The table every loaded copy of a `family` model predicts on (built the same in every process)."""
    if family == "tvm_xgb":
        return ms_table(24, seed=7)
    if family == "attention":
        return token_table(seed=7)
    return flat_table(30, seed=7)


def train(family: str, directory: Path, seed: int = 0) -> None:
    # made for TARGET: the registry registers a model under its own target's name only
    from tensorcost.models import create_model

    if family == "lightgbm":
        m = create_model("lightgbm", TARGET, "s", NAMES, num_boost_round=8, min_data_in_leaf=2, num_threads=1, seed=seed)
        m.fit(flat_table(90, seed))
    elif family == "tvm_xgb":
        m = create_model("tvm_xgb", TARGET, "s", [])
        m.fit(ms_table(60, seed))
    elif family == "attention":
        t = token_table(seed)
        m = create_model("attention", TARGET, "s", t.feature_names or [], **{**ATT, "seed": seed})
        m.fit(t)
    else:
        m = create_model("random", TARGET, "s", [], seed=3 + seed)
    m.save(directory)


# -- subprocesses -------------------------------------------------------------------------------

LOADER = """
import sys, json
sys.path[:0] = [{bench!r}, {tests!r}]
from tensorcost.errors import UserError
try:
    from tensorcost.models import load_model
    model = load_model(sys.argv[1])
    import numpy as np, robustness_audit as ra
    p = np.asarray(model.predict(ra.predict_table(sys.argv[2])), dtype=np.float64)
except UserError as exc:
    print(f"error: {{exc}}", file=sys.stderr)
    sys.exit(2)
print("PRED " + json.dumps([repr(float(v)) for v in p.ravel()] + [repr(p.shape)]))
""".format(bench=str(BENCH), tests=str(TESTS))


def _limit_memory():
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT, MEM_LIMIT))


@dataclass
class Proc:
    rc: int | None  # None: timed out
    out: str
    err: str
    seconds: float


def run_proc(args: list[str], cwd: Path | None = None, env: dict | None = None, timeout: float = 60, limit_memory: bool = True) -> Proc:
    t0 = time.time()
    full_env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", **(env or {})}
    try:
        p = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
                           preexec_fn=_limit_memory if limit_memory else None)
        return Proc(p.returncode, p.stdout, p.stderr, time.time() - t0)
    except subprocess.TimeoutExpired as exc:
        return Proc(None, str(exc.stdout or ""), str(exc.stderr or ""), time.time() - t0)


def _err_lines(err: str) -> list[str]:
    # warnings printed by libraries (FutureWarning / UserWarning lines) are not the error
    # and neither are MLflow's progress bars and INFO/WARNING log lines
    lines = [ln for ln in err.splitlines() if ln.strip()]
    return [ln for ln in lines if not re.search(r"Warning:|warnings\.warn|^\s+warnings|\d+%\|.*\|| (INFO|WARNING|DEBUG) (mlflow|alembic)", ln)]


def classify(p: Proc, user_error_rc: int = 2) -> tuple[str, str]:
    """('refused' | 'crash' | 'ok', why) of a finished process."""
    if p.rc is None:
        return "crash", "hung: timed out"
    if p.rc < 0:
        return "crash", f"killed by signal {-p.rc}"
    lines = _err_lines(p.err)
    if "Traceback (most recent call last)" in p.err:
        return "crash", "traceback: " + (lines[-1] if lines else "")[:300]
    if p.rc == user_error_rc or (user_error_rc == 2 and p.rc == 3):
        if len(lines) == 1 and lines[0].startswith("error: "):
            return "refused", lines[0][:300]
        return "crash", f"exit {p.rc} but {len(lines)} stderr lines: " + " | ".join(lines[-3:])[:300]
    if p.rc == 0:
        return "ok", ""
    return "crash", f"exit {p.rc}: " + " | ".join(lines[-3:])[:300]


def parallel(fn, items, jobs: int, desc: str):
    from tqdm import tqdm

    with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(fn, it) for it in items]
        for f in tqdm(cf.as_completed(futures), total=len(futures), desc=desc, leave=False, file=sys.stderr):
            pass
    return [f.result() for f in futures]


# -- 1. model artifacts --------------------------------------------------------------------------

ABSURD = ["0", "-1", "1e308", "-1e308", "nan", "inf", "9223372036854775807", "1000000000", "4294967297", "0.5", "-0"]


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _meta_edits(meta: dict, rng: random.Random) -> list[tuple[str, callable]]:
    """Structured edits of metadata.json (each a function of the parsed dict)."""
    out = []
    for fam in FAMILY_LIST + ["nosuch", "../lightgbm"]:
        if fam != meta["family"]:
            out.append((f"meta family={fam}", lambda m, f=fam: m.update(family=f)))
    out += [
        ("meta feature_names=[]", lambda m: m.update(feature_names=[])),
        ("meta feature_names+1", lambda m: m["feature_names"].append("extra")),
        ("meta feature_names=str", lambda m: m.update(feature_names="f0")),
        ("meta params=[]", lambda m: m.update(params=[])),
        ("meta params={}", lambda m: m.update(params={})),
        ("meta params.unknown", lambda m: m["params"].update(unknown_key=1)),
        ("meta extra=None", lambda m: m.update(extra=None)),
        ("meta extra={}", lambda m: m.update(extra={})),
        ("meta missing family", lambda m: m.pop("family")),
        ("meta unknown top key", lambda m: m.update(surprise=1)),
        ("meta top-level list", None),
    ]
    for key, val in meta.get("params", {}).items():
        if isinstance(val, bool):
            out.append((f"meta params.{key}='no'", lambda m, k=key: m["params"].update({k: "no"})))
        elif isinstance(val, (int, float)):
            for v in (0, -1, 10**9, 2**63, 1e308, float("nan"), "12", None):
                out.append((f"meta params.{key}={v!r}", lambda m, k=key, v=v: m["params"].update({k: v})))
        elif isinstance(val, str):
            out.append((f"meta params.{key}='bogus'", lambda m, k=key: m["params"].update({k: "bogus"})))
    for key, val in meta.get("extra", {}).items():
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            for v in (0, -1, 10**9, 2**40):
                out.append((f"meta extra.{key}={v!r}", lambda m, k=key, v=v: m["extra"].update({k: v})))
        elif isinstance(val, dict):
            for sub, sv in val.items():
                if isinstance(sv, list) and sv:
                    out.append((f"meta extra.{key}.{sub}=[] ", lambda m, k=key, s=sub: m["extra"][k].update({s: []})))
                    out.append((f"meta extra.{key}.{sub}[0]=nan", lambda m, k=key, s=sub: m["extra"][k][s].__setitem__(0, float("nan"))))
                    out.append((f"meta extra.{key}.{sub}=zeros", lambda m, k=key, s=sub, n=len(sv): m["extra"][k].update({s: [0.0] * n})))
        elif isinstance(val, list) and val:
            out.append((f"meta extra.{key}=[]", lambda m, k=key: m["extra"].update({k: []})))
    return out


def _mutations(model_dir: Path, seed: int) -> dict[str, list[tuple[str, callable]]]:
    """kind -> [(name, apply(dir))]: every mutation the audit can draw for this model directory."""
    rng = random.Random(seed)
    kinds: dict[str, list] = {"truncate": [], "byteflip": [], "lines": [], "numbers": [], "metadata": [], "files": []}
    files = sorted(p.name for p in model_dir.iterdir() if p.is_file())
    for name in files:
        data = (model_dir / name).read_bytes()
        n = len(data)

        def write(d, name=name, new=None):
            (d / name).write_bytes(new)

        for frac in (0.0, 0.01, 0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9, 0.97, 0.99):
            cut = int(n * frac)
            kinds["truncate"].append((f"{name} truncated to {cut}/{n} B", lambda d, c=cut, w=write, data=data: w(d, new=data[:c])))
        kinds["truncate"].append((f"{name} minus last byte", lambda d, w=write, data=data: w(d, new=data[:-1])))
        for _ in range(12):
            k = rng.choice([1, 1, 2, 8])
            pos = sorted(rng.randrange(n) for _ in range(k)) if n else []
            bits = [1 << rng.randrange(8) for _ in pos]

            def flip(d, pos=pos, bits=bits, w=write, data=data):
                b = bytearray(data)
                for p, bit in zip(pos, bits):
                    b[p] ^= bit
                w(d, new=bytes(b))

            kinds["byteflip"].append((f"{name} {k} bit flip(s) at {pos[:3]}", flip))
        kinds["files"].append((f"{name} deleted", lambda d, name=name: (d / name).unlink()))
        if _is_text(data) and n:
            lines = data.split(b"\n")
            for _ in range(6):
                i = rng.randrange(len(lines))
                kinds["lines"].append((f"{name} line {i} deleted", lambda d, i=i, w=write, lines=lines: w(d, new=b"\n".join(lines[:i] + lines[i + 1:]))))
            for _ in range(3):
                i = rng.randrange(len(lines))
                kinds["lines"].append((f"{name} line {i} duplicated", lambda d, i=i, w=write, lines=lines: w(d, new=b"\n".join(lines[:i + 1] + lines[i:]))))
            nums = list(re.finditer(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?", data))
            for _ in range(14 if nums else 0):
                m = rng.choice(nums)
                v = rng.choice(ABSURD).encode()
                kinds["numbers"].append((f"{name} number {m.group().decode()[:20]!s} at {m.start()} -> {v.decode()}",
                                         lambda d, m=m, v=v, w=write, data=data: w(d, new=data[:m.start()] + v + data[m.end():])))
    kinds["files"].append(("extra file added", lambda d: (d / "extra.bin").write_bytes(b"\x80\x04junk")))
    kinds["files"].append(("directory emptied", lambda d: [p.unlink() for p in d.iterdir()]))
    meta = json.loads((model_dir / "metadata.json").read_text())
    for name, edit in _meta_edits(meta, rng):
        def apply(d, edit=edit):
            m = json.loads((d / "metadata.json").read_text())
            if edit is None:
                m = [m]
            else:
                edit(m)
            (d / "metadata.json").write_text(json.dumps(m))
            if isinstance(m, dict):  # a careful editor re-seals the digest: the loader's own checks are what is tested
                from tensorcost.models.base import seal_metadata

                seal_metadata(d)

        kinds["metadata"].append((name, apply))
    return kinds


def _draw(kinds: dict[str, list], n: int, seed: int) -> list[tuple[str, callable]]:
    """n mutations, round-robin over kinds (each kind shuffled), so every kind is represented."""
    rng = random.Random(seed)
    pools = {k: rng.sample(v, len(v)) for k, v in kinds.items() if v}
    out = []
    while len(out) < n and any(pools.values()):
        for k in list(pools):
            if pools[k] and len(out) < n:
                out.append(pools[k].pop())
    return out


def _dir_digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _preds(out: str):
    for line in out.splitlines():
        if line.startswith("PRED "):
            vals = json.loads(line[5:])
            return np.array([float(v) for v in vals[:-1]]), vals[-1]
    return None, None


def check_model_family(family: str, n: int, work: Path, jobs: int, timeout: float, inproc_ref: bool = False) -> Row:
    row = Row(f"model artifacts: {family}", command=f"load_model(dir) + predict, one `python -c` per copy (timeout {timeout:g} s)")
    t0 = time.time()
    base = work / f"{family}-intact"
    train(family, base)
    muts = _draw(_mutations(base, seed=sum(map(ord, family))), n, seed=1)
    base_digest = _dir_digest(base)

    def one(item):
        i, (name, apply) = item
        if apply is None:  # the intact model (the control), loaded in parallel with the copies
            p = run_proc([PY, "-c", LOADER, str(base), family], timeout=timeout * 2)
            return name, "control", p
        d = work / f"{family}-m{i:03d}"
        shutil.copytree(base, d)
        try:
            apply(d)
        except Exception as exc:  # noqa: BLE001  (a mutation that cannot apply: skip it)
            return name, "skip", repr(exc)
        if _dir_digest(d) == base_digest:
            shutil.rmtree(d, ignore_errors=True)
            return name, "skip", "no change"
        p = run_proc([PY, "-c", LOADER, str(d), family], timeout=timeout)
        shutil.rmtree(d, ignore_errors=True)
        status, why = classify(p)
        return (name, "loaded", p) if status == "ok" else (name, status, why)

    if inproc_ref:  # --quick: the intact model loaded in this process (saves a process start per family)
        from tensorcost.models import load_model

        p = np.asarray(load_model(base).predict(predict_table(family)), dtype=np.float64)
        ref = Proc(0, "PRED " + json.dumps([repr(float(v)) for v in p.ravel()] + [repr(p.shape)]), "", 0)
        results = [None] + parallel(one, list(enumerate(muts)), jobs, family)
    else:
        results = parallel(one, [(-1, ("intact model (control)", None))] + list(enumerate(muts)), jobs, family)
        ref = results[0][2]
    ref_pred, ref_shape = _preds(ref.out)
    if classify(ref)[0] != "ok" or ref_pred is None:
        row.crashes += 1
        row.details.append({"case": "intact model (control)", "outcome": "control failed", "why": classify(ref)[1] or ref.err[-500:]})
        row.seconds = time.time() - t0
        return row
    for name, status, why in results[1:]:
        if status == "skip":
            continue
        if status == "loaded":
            pred, shape = _preds(why.out)
            if pred is None:
                status, why = "crash", "exit 0 without predictions"
            elif shape == ref_shape and pred.shape == ref_pred.shape and np.all(np.isfinite(pred)) and np.allclose(pred, ref_pred, rtol=1e-6, atol=1e-9):
                status, why = "benign", "loads, identical predictions"
            else:
                diff = np.nanmax(np.abs(pred - ref_pred)) if pred.shape == ref_pred.shape else f"shape {shape} vs {ref_shape}"
                status, why = "wrong", f"loads, predictions differ (max |diff| {diff}, all finite: {bool(np.all(np.isfinite(pred)))})"
        row.count(name, status, why)
    row.notes = f"{row.other} benign (changed bytes, identical predictions)"
    if row.wrong:
        row.notes += "; wrong = a local directory has no hash: edits that still parse load (the registry path refuses them)"
    row.seconds = time.time() - t0
    return row


# -- registry helpers ----------------------------------------------------------------------------

@contextlib.contextmanager
def store_at(directory: Path):
    """MLFLOW_TRACKING_URI -> a SQLite store in `directory`, working directory there (artifacts land in it)."""
    directory.mkdir(parents=True, exist_ok=True)
    old_uri, old_cwd = os.environ.get("MLFLOW_TRACKING_URI"), os.getcwd()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{directory / 'mlflow.db'}"
    os.chdir(directory)
    try:
        yield os.environ["MLFLOW_TRACKING_URI"]
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri


def register(model_dir: Path, run: str, pca: float, family: str, alias: str | None = None) -> str:
    from tensorcost import registry

    tags = {"target": TARGET, "model_family": family, "feature_schema": "s", "eval_data_hash": "e1", "validation": "passed",
            "metric.pca": pca, "metric.top1": pca, "metric.top5": pca}
    return registry.log_and_register(model_dir, TARGET, experiment="audit", run_name=run, params={}, metrics={"pca": pca}, tags=tags, alias=alias)


def stored_dir(version: str) -> Path:
    from urllib.parse import urlparse

    from mlflow import MlflowClient

    from tensorcost import registry

    src = MlflowClient().get_model_version(registry.model_name(TARGET), version).source
    return Path(urlparse(src).path if src.startswith("file:") else src)


REG_LOADER = """
import sys
from tensorcost import registry
from tensorcost.errors import UserError
try:
    model, resolved = registry.load_by_alias({target!r}, "candidate")
except registry.ArtifactIntegrityError as exc:
    print(f"error: {{exc}}", file=sys.stderr)
    sys.exit(3)
except UserError as exc:
    print(f"error: {{exc}}", file=sys.stderr)
    sys.exit(2)
print("LOADED", model.family, resolved.version)
""".format(target=TARGET)


def check_registry_tamper(n: int, work: Path, timeout: float) -> Row:
    from tqdm import tqdm

    row = Row("registry: tampered artifacts", command="registry.load_by_alias in a `python -c` per tampering (fresh SQLite store)")
    t0 = time.time()
    d = work / "registry"
    with store_at(d) as uri:
        train("lightgbm", d / "trained")
        train("lightgbm", d / "other", seed=5)  # a different valid model, for a swap
        v = register(d / "trained", "a", 0.5, "lightgbm", alias="candidate")
        stored = stored_dir(v)
    backup = d / "backup"
    shutil.copytree(stored, backup)
    env = {"MLFLOW_TRACKING_URI": uri}
    model_txt = (backup / "model.txt").read_bytes()
    digit = re.search(rb"leaf_value=(-?\d)", model_txt)

    def put(name, data):
        return lambda s: (s / name).write_bytes(data)

    def swap(s):
        for p in s.iterdir():
            p.unlink()
        for p in (d / "other").iterdir():
            shutil.copy(p, s / p.name)

    tampers = [
        ("model.txt truncated to half", put("model.txt", model_txt[: len(model_txt) // 2])),
        ("model.txt one bit flipped", put("model.txt", model_txt[:200] + bytes([model_txt[200] ^ 1]) + model_txt[201:])),
        ("model.txt a leaf value's digit changed (same length)",
         put("model.txt", model_txt[: digit.end() - 1] + (b"8" if model_txt[digit.end() - 1:digit.end()] != b"8" else b"7") + model_txt[digit.end():])),
        ("model.txt deleted", lambda s: (s / "model.txt").unlink()),
        ("metadata.json trailing space", lambda s: (s / "metadata.json").write_bytes((backup / "metadata.json").read_bytes() + b" ")),
        ("metadata.json family -> random", lambda s: (s / "metadata.json").write_text((backup / "metadata.json").read_text().replace('"lightgbm"', '"random"'))),
        ("metadata.json deleted", lambda s: (s / "metadata.json").unlink()),
        ("extra file added", put("extra.bin", b"\x80\x04junk")),
        ("file in a new subdirectory", lambda s: ((s / "sub").mkdir(), (s / "sub" / "x.txt").write_text("x"))),
        ("model.txt renamed", lambda s: (s / "model.txt").rename(s / "model.txt.bak")),
        ("whole directory swapped for another valid model", swap),
        ("directory emptied", lambda s: [p.unlink() for p in s.iterdir()]),
    ][:n]

    def restore():
        shutil.rmtree(stored)
        shutil.copytree(backup, stored)

    ctl = run_proc([PY, "-c", REG_LOADER], cwd=d, env=env, timeout=timeout * 2)
    ctl_status, why = classify(ctl)
    if ctl_status != "ok" or "LOADED lightgbm" not in ctl.out:
        row.crashes += 1
        row.details.append({"case": "untampered store (control)", "outcome": ctl_status, "why": why or ctl.err[-500:]})
    for name, tamper in tqdm(tampers, desc="registry", leave=False, file=sys.stderr):
        tamper(stored)
        p = run_proc([PY, "-c", REG_LOADER], cwd=d, env=env, timeout=timeout)
        restore()
        row.tried += 1
        status, why = classify(p)
        if status == "refused" and p.rc == 3:
            row.refused += 1
        elif status == "refused":
            row.wrong += 1  # refused, but not by the hash check
            row.details.append({"case": name, "outcome": "refused, not by the hash check", "why": why})
        elif status == "ok":
            row.wrong += 1
            row.details.append({"case": name, "outcome": "wrong", "why": "loaded: " + p.out.strip()[:200]})
        else:
            row.crashes += 1
            row.details.append({"case": name, "outcome": status, "why": why})
    row.notes = "refused = ArtifactIntegrityError (hash check) in one line; untampered control loads" + ("" if ctl_status == "ok" else " (control FAILED)")
    row.seconds = time.time() - t0
    return row


# -- 2. promotion gates under injected failures -------------------------------------------------

GATE_METHODS = ["get_model_version_by_alias", "get_model_version", "set_registered_model_alias", "delete_registered_model_alias",
                "get_experiment_by_name", "create_experiment", "create_run", "set_terminated", "search_runs", "search_registered_models"]


def check_gates(work: Path, quick: bool) -> Row:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INTERNAL_ERROR
    from tqdm import tqdm

    from tensorcost import registry
    from tensorcost.errors import UserError

    row = Row("promotion gates: injected failures", command="registry.promote / rollback with one MlflowClient method failing (in process, store copies)")
    t0 = time.time()
    # Templates: A: v1 champion, v2 better (candidate), v3 worse. B: v1 then v2 promoted (for rollback).
    templates = {}
    for key in ("A", "B"):
        d = work / f"gates-{key}"
        with store_at(d):
            train("random", d / "m")
            v1 = register(d / "m", "v1", 0.5, "random")
            assert registry.promote(TARGET, v1).promoted
            v2 = register(d / "m", "v2", 0.9, "random", alias="candidate")
            v3 = register(d / "m", "v3", 0.1, "random")
            if key == "B":
                assert registry.promote(TARGET, v2).promoted
        templates[key] = (d, v1, v2, v3)

    def mlflow_exc():
        return MlflowException("database is locked", error_code=INTERNAL_ERROR)

    excs = {"MlflowException": mlflow_exc, "OSError": lambda: OSError("disk I/O error")}
    # (when, exception): the 1st call failing with each exception, the 2nd and every call with MlflowException
    faults = [("1st", "MlflowException")] if quick else [("1st", "MlflowException"), ("1st", "OSError"), ("2nd", "MlflowException"), ("all", "MlflowException")]
    methods = ["get_model_version_by_alias", "set_registered_model_alias", "set_terminated"] if quick else GATE_METHODS
    cases = [(s, m, w, e) for s in ("worse", "better", "rollback") for m in methods for w, e in faults]
    fired_total = held = 0
    for i, (scenario, method, when, exc_name) in enumerate(tqdm(cases, desc="gates", leave=False, file=sys.stderr)):
        src, v1, v2, v3 = templates["B" if scenario == "rollback" else "A"]
        d = work / f"gate-{i:03d}"
        shutil.copytree(src, d, ignore=shutil.ignore_patterns("m", "mlruns"))
        real = getattr(MlflowClient, method)
        calls = [0]

        def fake(self, *a, _real=real, _when=when, _exc=excs[exc_name], **k):
            calls[0] += 1
            if _when == "all" or (_when == "1st" and calls[0] == 1) or (_when == "2nd" and calls[0] == 2):
                raise _exc()
            return _real(self, *a, **k)

        outcome, err = "ok", ""
        with store_at(d):
            setattr(MlflowClient, method, fake)
            try:
                if scenario == "worse":
                    res = registry.promote(TARGET, v3)
                elif scenario == "better":
                    res = registry.promote(TARGET)
                else:
                    res = registry.rollback(TARGET)
            except UserError as exc:
                outcome, err = "refused", str(exc)
                res = None
            except Exception as exc:  # noqa: BLE001  (not a one-line error: a traceback at the CLI)
                outcome, err = "crash", f"{type(exc).__name__}: {str(exc)[:200]}"
                res = None
            finally:
                setattr(MlflowClient, method, real)
            fired = calls[0] > 0 and (when != "2nd" or calls[0] >= 2)
            champ = registry.get_version(TARGET, registry.CHAMPION)
            champ = champ.version if champ else None
            chain = registry.champion_chain(registry.history(TARGET))  # noqa: SLF001  (what rollbacks replay)
        consistent = (chain[-1] if chain else None) == champ
        if scenario == "worse":
            ok_champ = champ == v1
        elif scenario == "better":
            ok_champ = champ == (v2 if (res is not None and res.promoted) else v1)
        else:
            ok_champ = champ == (v1 if (res is not None and res.promoted) else v2)
        gate_held = ok_champ and consistent
        if outcome == "refused" and "\n" in err:
            outcome = "crash"
        case = f"{scenario}: {method} fails ({exc_name}, {when} call)"
        if not fired:
            row.details.append({"case": case, "outcome": "not exercised", "why": f"{method} not called {when if when != 'all' else ''}"})
            shutil.rmtree(d, ignore_errors=True)
            continue
        fired_total += 1
        row.tried += 1
        held += gate_held
        if not gate_held:
            row.wrong += 1
            row.details.append({"case": case, "outcome": "gate broken", "why": f"champion {champ} (v1={v1} v2={v2} v3={v3}), history chain ends {chain[-1] if chain else None}; {outcome}: {err[:200]}"})
        elif outcome == "crash":
            row.crashes += 1
            row.details.append({"case": case, "outcome": "crash (gate held)", "why": err})
        elif outcome == "refused":
            row.refused += 1
        else:
            row.other += 1
        shutil.rmtree(d, ignore_errors=True)
    row.notes = (f"gates held {held}/{fired_total}; {row.other} went through anyway (the failed call was off the critical path or retried); "
                 f"scenarios: worse candidate, better candidate, rollback")
    row.seconds = time.time() - t0
    return row


def at(col, i, v):
    """A damage: set one cell of a frame."""
    def f(df):
        df.at[i, col] = v
        return df
    return f


# -- 3. concurrent first use ---------------------------------------------------------------------

def _race_worker() -> str:
    """The test suite's race worker (tests/registry/test_registry_concurrency.py), one source for
    both: the audit runs it at scale."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_race_test", Path(__file__).resolve().parents[1] / "tests/registry/test_registry_concurrency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WORKER.format(target=TARGET)


WORKER = _race_worker()

AFTER = """
from tensorcost import registry
ev = registry.history({target!r})
model, r = registry.load_by_alias({target!r})
chain, cur = True, ""
for e in ev:
    chain &= e["previous"] == cur and e["promoted"] == "true"
    cur = e["version"]
print("EVENTS", len(ev), "CHAIN", chain and cur == r.version, "CHAMPION", r.version, model.family)
""".format(target=TARGET)


def check_concurrency(k: int, rounds: int, work: Path, timeout: float) -> Row:
    row = Row("registry: concurrent first use", command=f"{k} `python worker.py` at once on a brand-new SQLite store (register + promote)")
    t0 = time.time()
    for r in range(rounds):
        d = work / f"race-{r}"
        d.mkdir()
        (d / "worker.py").write_text(WORKER)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{d / 'mlflow.db'}", "OMP_NUM_THREADS": "1"}
        procs = [subprocess.Popen([PY, "worker.py", str(i), str(k)], cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(k)]
        for i, p in enumerate(procs):
            try:
                out, err = p.communicate(timeout=timeout)
                res = Proc(p.returncode, out, err, 0)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
                res = Proc(None, out, err, 0)
            row.tried += 1
            status, why = classify(res)
            if status == "ok" and res.out.startswith("True"):
                row.other += 1
            elif status == "ok":
                row.wrong += 1
                row.details.append({"case": f"round {r} worker {i}", "outcome": "not promoted", "why": res.out.strip()[:300]})
            elif status == "refused":
                row.refused += 1
                row.details.append({"case": f"round {r} worker {i}", "outcome": "refused", "why": why})
            else:
                row.crashes += 1
                row.details.append({"case": f"round {r} worker {i}", "outcome": status, "why": why})
        after = run_proc([PY, "-c", AFTER], cwd=d, env={"MLFLOW_TRACKING_URI": env["MLFLOW_TRACKING_URI"]}, timeout=timeout)
        usable = after.rc == 0 and f"EVENTS {k} CHAIN True" in after.out
        if not usable:
            row.wrong += 1
            row.details.append({"case": f"round {r}: store after the race", "outcome": "broken", "why": (after.out + " " + " | ".join(_err_lines(after.err)[-2:]))[:400]})
        row.notes += f"round {r}: store {'usable, one chain of ' + str(k) + ' promotions, champion loads' if usable else 'NOT usable'}; "
    row.notes = f"{row.other} workers registered + promoted; " + row.notes.strip("; ")
    row.seconds = time.time() - t0
    return row


# -- 4. bad params -------------------------------------------------------------------------------

def _set(path: str, value):
    def edit(p):
        keys = path.split(".")
        cur = p
        for k in keys[:-1]:
            cur = cur[k]
        cur[keys[-1]] = value
    return edit


PARAM_EDITS: list[tuple[str, object]] = [
    ("host.tasks: 'ten'", _set("host.tasks", "ten")),
    ("host.tasks: -1", _set("host.tasks", -1)),
    ("host.tasks: 1.5", _set("host.tasks", 1.5)),
    ("host.seed: true", _set("host.seed", True)),
    ("host.programs_per_task: 1e400 (inf)", _set("host.programs_per_task", float("inf"))),
    ("host.target: '../etc'", _set("host.target", "../etc")),
    ("host.target: with a quote", _set("host.target", "zen4-2c.avx2-t1' OR '1")),
    ("host.variants: []", _set("host.variants", [])),
    ("host.unknown_key: 1", _set("host.unknown_key", 1)),
    ("measure.number: 0", _set("measure.number", 0)),
    ("measure.repeat: '3' (string)", _set("measure.repeat", "3")),
    ("measure.builder_workers: -2", _set("measure.builder_workers", -2)),
    ("measure.min_repeat_ms: -5", _set("measure.min_repeat_ms", -5)),
    ("measure: null", _set("measure", None)),
    ("measure.number: true (bool for an int)", _set("measure.number", True)),
    ("tune.seed: true (bool for an int)", _set("tune.seed", True)),
    ("tune.max_tasks: '3' (string for an int)", _set("tune.max_tasks", "3")),
    ("models.attention.epochs: '8' (string for an int)", _set("models.attention.epochs", "8")),
    ("models.lightgbm_rank.num_boost_round: true (bool for an int)", _set("models.lightgbm_rank.num_boost_round", True)),
    ("split.strategy: 'random'", _set("split.strategy", "random")),
    ("split.test_fraction: 1.5", _set("split.test_fraction", 1.5)),
    ("split.test_fraction: 0", _set("split.test_fraction", 0)),
    ("split.test_fraction: .nan", _set("split.test_fraction", float("nan"))),
    ("split.test_families: [nosuch]", _set("split.test_families", ["nosuch"])),
    ("split.seed: 'zero'", _set("split.seed", "zero")),
    ("models.lightgbm_rank.num_leaves: -3", _set("models.lightgbm_rank.num_leaves", -3)),
    ("models.lightgbm_rank.objective: poisson", _set("models.lightgbm_rank.objective", "poisson")),
    ("models.lightgbm_rank.deterministic: 'no' (quoted)", _set("models.lightgbm_rank.deterministic", "no")),
    ("models.attention.program_features: 'no' (quoted)", _set("models.attention.program_features", "no")),
    ("models.attention.d_model: 1e9", _set("models.attention.d_model", 10**9)),
    ("models.attention.n_heads: 3 (does not divide d_model)", _set("models.attention.n_heads", 3)),
    ("models.attention.fusion: sum", _set("models.attention.fusion", "sum")),
    ("models.attention.loss: mse", _set("models.attention.loss", "mse")),
    ("models.attention.lr: -0.1", _set("models.attention.lr", -0.1)),
    ("models.attention.dropout: 1.5", _set("models.attention.dropout", 1.5)),
    ("models.attention.epochs: 'many'", _set("models.attention.epochs", "many")),
    ("models.attention.unknown_param: 1", _set("models.attention.unknown_param", 1)),
    ("models.random.family: nosuch", _set("models.random.family", "nosuch")),
    ("models.lightgbm_reg.base: nosuch", _set("models.lightgbm_reg.base", "nosuch")),
    ("models.lightgbm_reg.base: itself (loop)", _set("models.lightgbm_reg.base", "lightgbm_reg")),
    ("train.targets: ['../x.y']", _set("train.targets", ["../x.y"])),
    ("train.targets: a quote", _set("train.targets", ["zen4-2c.avx2-t1'"])),
    ("train.models: [nosuch]", _set("train.models", ["nosuch"])),
    ("train.candidate_metrics: [accuracy]", _set("train.candidate_metrics", ["accuracy"])),
    ("evaluate.splits: [bogus]", _set("evaluate.splits", ["bogus"])),
    ("evaluate.targets: [not-a-slot.x]", _set("evaluate.targets", ["nosuch-1c.avx2-t1"])),
    ("transfer.fractions: [0, 10]", _set("transfer.fractions", [0, 10])),
    ("transfer.confidence: 1.5 (not a probability)", _set("transfer.confidence", 1.5)),
    ("transfer.sources: [nosuch.x]", _set("transfer.sources", ["nosuch-1c.avx2-t1"])),
    ("transfer.target: '../../etc'", _set("transfer.target", "../../etc")),
    ("tune.max_trials_global: -1", _set("tune.max_trials_global", -1)),
    ("registry.experiment: 123 (int)", _set("registry.experiment", 123)),
    ("targets: {}", _set("targets", {})),
    ("targets: slot source '../outside.parquet'", lambda p: p["targets"].update({"zen4-2c.avx2-t1": "../outside.parquet"})),
    ("targets: slot source '/etc/passwd'", lambda p: p["targets"].update({"zen4-2c.avx2-t1": "/etc/passwd"})),
    ("targets: host source elsewhere", lambda p: p["targets"].update({"host": "data/elsewhere"})),
    ("targets: slot '../x'", lambda p: p["targets"].update({"../x": "data/x.parquet"})),
    # issue 28's classes: empty lists and names, names that would become paths, duplicate keys,
    # alias bombs, files over the size limit
    ("train.models: []", _set("train.models", [])),
    ("train.candidate_metrics: []", _set("train.candidate_metrics", [])),
    ("split.test_families: []", _set("split.test_families", [])),
    ("registry.experiment: ''", _set("registry.experiment", "")),
    ("registry.experiment: '../x'", _set("registry.experiment", "../x")),
    ("models: a preset named '/tmp/x'", lambda p: (p["models"].update({"/tmp/x": {"family": "random"}}), p["train"].update({"models": ["/tmp/x"]}))),
    ("models: a preset named 'e/../../../x'", lambda p: (p["models"].update({"e/../../../x": {"family": "random"}}), p["train"].update({"models": ["e/../../../x"]}))),
    ("train.targets: an id ending in a newline", _set("train.targets", ["zen5-2c.avx2-t1\n"])),
    ("train.targets: a unicode look-alike hyphen", _set("train.targets", ["zen5\u20102c.avx2-t1"])),
    ("targets: a slot with a trailing newline", lambda p: p["targets"].update({"zen4-2c.avx2-t1\n": "data/x.parquet"})),
    ("tune.alias: 'champion/../x'", _set("tune.alias", "champion/../x")),
    ("a duplicate top-level key", "DUPLICATE_KEY"),  # the text is built from params.yaml in check_params
    ("a YAML alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                          "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                          "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"),
    ("a 3 MB params file", "host:\n  tasks: 3\n" + "# padding\n" * 300_000),
    ("top level: a list", "- a\n- b\n"),
    ("not YAML: unclosed bracket", "host: [unclosed\n"),
    ("empty file", ""),
    ("binary junk", "\x00\x01\x02 \xff"),
]


def check_params(n: int | None, work: Path, jobs: int, timeout: float) -> Row:
    import yaml

    dup = (REPO / "params.yaml").read_text() + "\nhost:\n  tasks: 1\n"  # the second `host:` must not silently win
    PARAM_EDITS[:] = [(name, dup if edit == "DUPLICATE_KEY" else edit) for name, edit in PARAM_EDITS]

    row = Row("params.yaml: bad edits", command="`python -m tensorcost.cli stage records --target host` on an edited copy of params.yaml")
    t0 = time.time()
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    edits = PARAM_EDITS if n is None else PARAM_EDITS[:: max(1, len(PARAM_EDITS) // n)][:n]
    cmd = [PY, "-m", "tensorcost.cli", "stage", "records", "--target", "host"]

    def one(item):
        i, (name, edit) = item
        d = work / f"params-{i:03d}"
        d.mkdir()
        if isinstance(edit, str):
            (d / "params.yaml").write_text(edit)
        elif edit is None:
            (d / "params.yaml").write_text(yaml.safe_dump(base))
        else:
            p = json.loads(json.dumps(base))
            edit(p)
            (d / "params.yaml").write_text(yaml.safe_dump(p, allow_unicode=True))
        res = run_proc(cmd, cwd=d, timeout=timeout, limit_memory=False)
        shutil.rmtree(d, ignore_errors=True)
        status, why = classify(res)
        if status == "refused" and "params.yaml" not in why:
            return name, "wrong", "accepted (failed later, not on params): " + why
        if status == "ok":
            return name, "wrong", "accepted, exit 0"
        return name, status, why

    control = one((999, ("unedited params.yaml (control)", None)))
    results = parallel(one, list(enumerate(edits)), jobs, "params")
    for name, status, why in results:
        row.count(name, status, why)
    ok_control = control[1] == "wrong" and "params.yaml" not in control[2]
    row.notes = "refused = exit 2, one stderr line naming params.yaml; control (unedited) " + (
        "gets past params to the missing host records" if ok_control else f"FAILED: {control}")
    row.seconds = time.time() - t0
    return row


# -- 4b. output paths that would destroy an input (issue 28 item 1) --------------------------------

def _digest_tree(paths) -> dict:
    out = {}
    for root in paths:
        root = Path(root)
        for f in ([root] if root.is_file() else sorted(root.rglob("*"))):
            if f.is_file():
                out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def check_output_paths(work: Path, timeout: float) -> Row:
    """Each careless --out: refused in one line (exit 2), every input and an existing good output
    byte-identical afterwards, no half-written file left beside them."""
    row = Row("output paths: careless --out", command="`tensorcost import-tenset ... --out X`, `tensorcost tune ... --out X` with X an input, inside one, a folder...")
    t0 = time.time()
    base = work / "outpaths"
    shutil.rmtree(base, ignore_errors=True)
    src = base / "in"
    src.mkdir(parents=True)
    shutil.copy(TESTS / "data" / "autoscheduler_logs" / "matmul.json", src / "matmul.json")
    (base / "empty.json").write_text("")
    (base / "afile").write_text("not a folder")
    (base / "adir").mkdir()
    (base / "net.py").write_text("from torch import nn\ndef build():\n    return nn.ReLU()\n")
    good = base / "good.parquet"
    ok = run_proc([PY, "-m", "tensorcost.cli", "import-tenset", str(src / "matmul.json"), "--out", str(good), "--target", "zen5-2c.avx2-t1", "--workers", "1"],
                  timeout=timeout * 3, limit_memory=False)
    if ok.rc != 0:
        row.notes = f"control import FAILED: {ok.err[-300:]}"
        return row
    imp = [PY, "-m", "tensorcost.cli", "import-tenset"]
    cases = [
        ("--out is the input file", imp + [str(src / "matmul.json"), "--out", str(src / "matmul.json"), "--workers", "1"]),
        ("--out inside the imported folder, under a records name", imp + [str(src), "--out", str(src / "out.json"), "--workers", "1"]),
        ("--out inside the imported folder as Parquet (not read back: allowed)", imp + [str(src), "--out", str(src / "out.parquet"), "--workers", "1"]),
        ("--out onto a folder", imp + [str(src / "matmul.json"), "--out", str(base / "adir"), "--workers", "1"]),
        ("--out under a file (not a folder)", imp + [str(src / "matmul.json"), "--out", str(base / "afile" / "x.parquet"), "--workers", "1"]),
        ("an empty input over a good output", imp + [str(base / "empty.json"), "--out", str(good), "--workers", "1"]),
        ("an input path with a typo", imp + [str(src / "matmull.json"), "--out", str(good), "--workers", "1"]),
        ("tune --out is the network file", [PY, "-m", "tensorcost.cli", "tune", "--network", f"{base / 'net.py'}:build", "--input-shape", "1,8", "--out", str(base / "net.py")]),
        ("score --out is the network file", [PY, "-m", "tensorcost.cli", "score", "--network", f"{base / 'net.py'}:build", "--input-shape", "1,8", "--out", str(base / "net.py")]),
    ]
    for name, cmd in cases:
        before = _digest_tree([src, good, base / "net.py", base / "afile"])
        res = run_proc(cmd, cwd=base, timeout=timeout * 3, limit_memory=False)
        status, why = classify(res)
        after = _digest_tree([src, good, base / "net.py", base / "afile"])
        debris = [p.name for p in base.rglob("*") if ".tmp" in p.name or p.name.startswith(".tc-tmp")]
        changed = sorted(k for k in before if before[k] != after.get(k))  # what existed before must be byte-identical
        if changed:
            status, why = "wrong", f"an input or the good output changed: {changed[:3]}"
        elif debris:
            status, why = "wrong", f"left {debris[:3]}"
        elif status == "ok" and "allowed" in name:
            status, why = "benign", "imported beside the inputs, every input untouched"
        elif status == "ok":
            status, why = "wrong", "accepted, exit 0"
        row.count(name, status, why)
    row.notes = "refused = exit 2, one `error:` line, every input and the earlier good output byte-identical, no temp file left"
    row.seconds = time.time() - t0
    return row


# -- 5. bad records into validation --------------------------------------------------------------

def _records_cases():
    import pandas as pd

    from helpers import record_row as _record_row
    from tensorcost.records import to_table

    def frame():
        rows = [_record_row(0, target="testcpu-1c.avx2-t1", latency=1e-3), _record_row(1, target="testcpu-1c.avx2-t1", latency=2e-3),
                _record_row(2, target="testcpu-1c.avx2-t1", latency=3e-3), _record_row(3, target="testcpu-1c.avx2-t1", error_no=4)]
        return to_table(rows).to_pandas()

    def dup(df):
        return pd.concat([df, df.iloc[[0]]], ignore_index=True)

    cases = [
        ("latency_s NaN on a measured row", at("latency_s", 0, float("nan"))),
        ("latency_s +inf", at("latency_s", 0, float("inf"))),
        ("latency_s -inf", at("latency_s", 1, -float("inf"))),
        ("latency_s negative", at("latency_s", 0, -1e-3)),
        ("latency_s zero", at("latency_s", 0, 0.0)),
        ("latency_s 1e9 s", at("latency_s", 0, 1e9)),
        ("latencies contain NaN", at("latencies", 1, [2e-3, float("nan")])),
        ("latencies contain inf", at("latencies", 1, [2e-3, float("inf")])),
        ("latencies contain a negative", at("latencies", 1, [2e-3, -1.0])),
        ("latencies empty on a measured row", at("latencies", 0, [])),
        ("latency on an error row", at("latency_s", 3, 1e-3)),
        ("trace not JSON", at("trace", 0, '[["SP", 2')),
        ("trace a JSON dict", at("trace", 0, '{"steps": []}')),
        ("trace null", at("trace", 0, None)),
        ("duplicate record", dup),
        ("other target in the file", at("target", 0, "cpu-avx512-t1")),
        ("task_id not hex", at("task_id", 0, "../../etc")),
        ("error_no out of range", at("error_no", 3, 99)),
        ("empty table", lambda df: df.iloc[0:0]),
        ("column missing (latencies)", lambda df: df.drop(columns=["latencies"])),
    ]
    return frame, cases


def _features_cases():
    import pandas as pd

    from helpers import record_row as _record_row
    from tensorcost.features import featurize_table
    from tensorcost.hardware import HARDWARE_FEATURE_NAMES
    from tensorcost.records import to_table

    def frame():
        rows = [_record_row(i, target="testcpu-1c.avx2-t1", latency=1e-3 * (1 + i)) for i in range(3)] + [_record_row(3, target="testcpu-1c.avx2-t1", error_no=4)]
        return featurize_table(to_table(rows), [1.0] * len(HARDWARE_FEATURE_NAMES), HARDWARE_FEATURE_NAMES, slot="slot-a")

    def flat_bad(v):
        def f(df):
            x = np.array(df.at[0, "flat"], dtype=np.float32).copy()
            x[1] = v
            df.at[0, "flat"] = x
            return df
        return f

    def tokens_bad(df):
        x = np.array(df.at[1, "tokens"], dtype=np.float32).copy()
        x[0] = np.inf
        df.at[1, "tokens"] = x
        return df

    def width(df):
        df.at[0, "flat"] = np.array(df.at[0, "flat"], dtype=np.float32)[:-1]
        return df

    def dup_prog(df):
        df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
        df.at[len(df) - 1, "record_id"] = "another-id"
        return df

    cases = [
        ("label +inf", at("label", 1, float("inf"))),
        ("label NaN", at("label", 1, float("nan"))),
        ("label 1.5", at("label", 1, 1.5)),
        ("label 0", at("label", 1, 0.0)),
        ("latency_s NaN", at("latency_s", 0, float("nan"))),
        ("latency_s inf", at("latency_s", 0, float("inf"))),
        ("latency_s negative", at("latency_s", 0, -1.0)),
        ("NaN in a feature", flat_bad(np.nan)),
        ("inf in a feature", flat_bad(np.inf)),
        ("inf in the tokens", tokens_bad),
        ("feature vector one short", width),
        ("duplicate row", lambda df: pd.concat([df, df.iloc[[0]]], ignore_index=True)),
        ("same (task, program) twice", dup_prog),
        ("empty table", lambda df: df.iloc[0:0]),
        ("other slot", at("slot", 0, "slot-b")),
        ("task_weight 0", at("task_weight", 0, 0)),
    ]
    return frame, cases


def check_validation(suite: str, quick: bool) -> Row:
    from tqdm import tqdm

    from tensorcost.validation import validate_features, validate_records

    row = Row(f"validation: {suite} suite", command=f"validate_{suite}(damaged small real table) (Great Expectations)")
    t0 = time.time()
    make, cases = _records_cases() if suite == "records" else _features_cases()
    if quick:
        cases = cases[::6]

    def run(df):
        if suite == "records":
            return validate_records(df, "testcpu-1c.avx2-t1")
        from tensorcost.features import FEATURE_SCHEMA_VERSION
        return validate_features(df, "slot-a", "testcpu-1c.avx2-t1", FEATURE_SCHEMA_VERSION, make().attrs["feature_names"])

    control = run(make())
    if not control.success:
        row.wrong += 1
        row.details.append({"case": "clean table (control)", "outcome": "false alarm", "why": control.failed_expectations()[:400]})
    for name, damage in tqdm(cases, desc=suite, leave=False, file=sys.stderr):
        row.tried += 1
        try:
            s = run(damage(make()))
        except Exception as exc:  # noqa: BLE001
            row.crashes += 1
            row.details.append({"case": name, "outcome": "crash", "why": f"{type(exc).__name__}: {str(exc)[:300]}"})
            continue
        if s.success:
            row.wrong += 1
            row.details.append({"case": name, "outcome": "wrong", "why": "suite passed"})
        else:
            row.refused += 1
    row.notes = "refused = the suite fails and names the expectation; clean control " + ("passes" if control.success else "FAILS")
    row.seconds = time.time() - t0
    return row


# -- main ----------------------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    out = ["| check | command | inputs tried | crashes | accepted but wrong | refused (one line) | other | seconds | notes |",
           "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        out.append(f"| {r.check} | {r.command} | {r.tried} | {r.crashes} | {r.wrong} | {r.refused} | {r.other} | {r.seconds:.0f} | {r.notes} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run (under a minute): a few cases of each check")
    ap.add_argument("--mutations", type=int, default=None, help="mutated copies per model family (default: lightgbm 30, others 14; quick 1)")
    ap.add_argument("--jobs", type=int, default=2, help="loader processes at once")
    ap.add_argument("--workers", type=int, default=None, help="processes racing on a new store (default 8; quick 2)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds before a loader process counts as hung")
    ap.add_argument("--only", nargs="*", default=None, help="checks to run: models registry gates concurrency params outputs validation")
    ap.add_argument("--out", type=Path, help="write the rows (with details) as JSON here")
    args = ap.parse_args()
    default_mut = {"lightgbm": 30, "tvm_xgb": 14, "attention": 14, "random": 14}
    n_mut = {f: args.mutations if args.mutations is not None else (1 if args.quick else default_mut[f]) for f in FAMILY_LIST}
    k = args.workers if args.workers is not None else (2 if args.quick else 8)
    only = set(args.only or ["models", "registry", "gates", "concurrency", "params", "outputs", "validation"])

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    import mlflow  # noqa: F401  (configures its loggers on import: quiet them after)

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    logging.getLogger("tensorcost").setLevel(logging.ERROR)
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

    t0 = time.time()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="tc-audit-") as tmp:
        work = Path(tmp)
        if "models" in only:
            for fam in FAMILY_LIST:
                rows.append(check_model_family(fam, n_mut[fam], work, args.jobs, args.timeout, inproc_ref=args.quick))
        if "registry" in only:
            rows.append(check_registry_tamper(1 if args.quick else 99, work, args.timeout))
        if "gates" in only:
            rows.append(check_gates(work, args.quick))
        if "concurrency" in only:
            rows.append(check_concurrency(k, 1, work, 300))
        if "params" in only:
            rows.append(check_params(3 if args.quick else None, work, args.jobs, args.timeout))
        if "outputs" in only:
            rows.append(check_output_paths(work, args.timeout))
        if "validation" in only:
            rows.append(check_validation("records", args.quick))
            rows.append(check_validation("features", args.quick))
    total = time.time() - t0
    print(table(rows))
    print(f"\ntotal {total:.0f} s ({'quick' if args.quick else 'full'} run, {os.cpu_count()} CPUs)")
    bad = [(r.check, d) for r in rows for d in r.details if d["outcome"] not in ("not exercised", "benign")]
    if bad:
        print("\nNot refused cleanly:")
        for check, d in bad:
            print(f"- {check}: {d['case']}: {d['outcome']}: {d['why']}")
    if args.out:
        args.out.write_text(json.dumps({"quick": args.quick, "seconds": total, "rows": [asdict(r) for r in rows]}, indent=1))
    return 1 if any(r.crashes or r.wrong for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
